// The router of the LLM gateway: each request goes to a deployment of its model (weighted, least in flight or
// latency-aware), is retried on another one on connect errors, 429 and 5xx while nothing has reached the client,
// then handed to the model's fallbacks; a circuit breaker per deployment keeps a failing backend out of rotation.
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { OVERHEAD_HEADER } from './overhead.js';
import { backoffDelay } from '../backoff.js';
import type { DeploymentConfig, LlmConfig, ModelConfig } from '../config/llm-schema.js';
import { DEFAULT_BASE_URL } from '../config/llm-schema.js';
import { errorMessage } from '../errors.js';
import { safeJson } from '../wire/json.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics.js';
import { PeakEwma, pickDeployment } from './balancer.js';
import type { Strategy } from './balancer.js';
import { createBreaker } from './breaker.js';
import type { Lease, Leases } from '../store/coordination.js';
import type { LimitStore, LimitTake } from '../store/store.js';
import { estimateTokens } from '../policy/limits/rate-limiter.js';
import { createLeaseKeeper } from '../store/lease-keeper.js';
import { deferCorrections } from '../store/deferred-corrections.js';
import type { Breaker } from './breaker.js';
import { asOpenAiError, openAiError, streamFailure } from './openai-errors.js';
import {
  AnthropicStreamError,
  anthropicHeaders,
  createAnthropicStreamTranslator,
  fromAnthropicError,
  fromAnthropicResponse,
  toAnthropicRequest,
} from './providers/anthropic.js';
import { openAiBody, openAiHeaders } from './providers/openai.js';
import { sinkJson } from './sink.js';
import type { Sink } from './sink.js';
import { createSseParser } from '../wire/sse.js';
import type { ChatCompletionRequest, OpenAiErrorBody, Usage } from './types.js';
import { usageFromStream, usageIn } from './usage.js';
import { currentTracing } from '../telemetry/tracing.js';
import type { AttemptResult, TraceParent } from '../telemetry/tracing.js';

export type Route = 'chat' | 'embeddings';

/**
 * The `route` label of the LLM metrics: a client's /v1 request is `chat` or `embeddings`; a model call mcplex
 * makes itself is `agent` (a step of a tool-running chat) or `sampling` (an MCP server's sampling request), so
 * that the /v1 counts are the clients' requests.
 */
export type MetricRoute = Route | 'agent' | 'sampling';

export const metricRouteOf = (request: { route: Route; metricRoute?: MetricRoute | undefined }): MetricRoute =>
  request.metricRoute ?? request.route;

const MINUTE = 60_000;

class Deployment {
  readonly id: string;
  readonly pool: Pool;
  readonly basePath: string;
  readonly breaker: Breaker;
  inFlight = 0;
  private readonly latency = new PeakEwma();

  constructor(
    readonly modelName: string,
    index: number,
    readonly config: DeploymentConfig,
    breaker: { failures: number; cooldownMs: number },
  ) {
    this.id = `${modelName}#${index}`;
    const url = new URL(config.baseUrl ?? DEFAULT_BASE_URL[config.provider]);
    this.basePath = url.pathname.replace(/\/$/, '');
    this.pool = new Pool(url.origin, {
      connections: config.maxConcurrent,
      keepAliveTimeout: 30_000,
      connect: { timeout: config.timeouts.connect },
      // Our own timers (first token, total) decide; undici's defaults would cut long generations.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
    this.breaker = createBreaker(breaker);
  }

  get weight(): number {
    return this.config.weight;
  }

  get maxConcurrent(): number {
    return this.config.maxConcurrent;
  }

  cost(): number {
    return this.latency.estimate() * (this.inFlight + 1);
  }

  observe(rttMs: number): void {
    this.latency.observe(rttMs, performance.now());
  }
}

export interface ModelRoute {
  name: string;
  config: ModelConfig;
  deployments: Deployment[];
}

/** How one attempt ended. */
type Attempt =
  /** `model` and `text`: what the backend said it was and answered, read only for a span. */
  | { kind: 'done'; usage: Usage | undefined; model?: string | undefined; text?: string | undefined }
  /** Failed before anything reached the client: another attempt may still answer it. */
  | { kind: 'retry'; reason: string; error: OpenAiErrorBody; status: number; retryAfterMs?: number }
  /** Failed in a way another deployment would not fix (a bad request), or after the response began. */
  | { kind: 'final'; error?: OpenAiErrorBody; status?: number };

const RETRYABLE_STATUS = new Set([408, 409, 429, 500, 502, 503, 504, 529]);

/** `retry-after-ms`, else `retry-after` in seconds or as an HTTP date. */
function retryAfterMs(headers: Record<string, string | string[] | undefined>): number | undefined {
  const ms = Number(headers['retry-after-ms']);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const raw = headers['retry-after'];
  const value = Array.isArray(raw) ? raw[0] : raw;
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The backend's own name for the model that answered, read from the head of its JSON answer. */
function responseModel(text: string): string | undefined {
  return /"model"\s*:\s*"([^"\\]{1,200})"/.exec(text.slice(0, 2048))?.[1];
}

/** How an attempt ended, as its span says it. */
function describeAttempt(outcome: Attempt): AttemptResult {
  if (outcome.kind === 'done') {
    return {
      status: 200,
      responseModel: outcome.model,
      inputTokens: outcome.usage?.prompt_tokens,
      outputTokens: outcome.usage?.completion_tokens ?? undefined,
      output: outcome.text,
    };
  }
  if (outcome.kind === 'retry') return { status: outcome.status, errorType: outcome.reason };
  // Final: a client error as the backend gave it, a stream broken after it began, or a client that went away.
  return outcome.status === undefined
    ? { errorType: 'incomplete' }
    : { status: outcome.status, errorType: String(outcome.status) };
}

export interface RouterOptions {
  logger: Logger;
  metrics: Metrics;
  /**
   * Leases every replica shares: when given, a deployment's `maxConcurrent` holds across all of them (each
   * attempt holds one of its slots), not only in this process.
   */
  leases?: Leases | undefined;
  /** How long an attempt's slot outlives its last renewal (a replica that died keeps it this long). */
  leaseTtlMs?: number;
  /** Where deployments' own rpm/tpm budgets are counted (shared by every replica on it). */
  budgets?: LimitStore | undefined;
}

/** What the router needs of a request that passed the gate. */
export interface RoutedRequest {
  readonly route: Route;
  readonly body: Record<string, unknown>;
  /** The client's own bytes of `body`: sent on unchanged when the backend's model name is the public one. */
  readonly raw?: Buffer | undefined;
  readonly sink: Sink;
  readonly started: number;
  readonly requestId: string;
  /** The public model name asked for. */
  readonly requested: string;
  /** The model whose deployments answer first; its fallbacks follow. */
  readonly primary: ModelRoute;
  /** The metrics' route label when it is not `route` (a model call mcplex makes itself). */
  readonly metricRoute?: MetricRoute | undefined;
  /** The traced request this answer is for: the parent of its attempts' spans. */
  readonly trace?: TraceParent | undefined;
}

export interface Router {
  /** Configured models by their name. */
  readonly routes: ReadonlyMap<string, ModelRoute>;
  /** Configured models by every public name, aliases included. */
  readonly byName: ReadonlyMap<string, ModelRoute>;
  /**
   * Answers one request into `sink`: the deployments of `primary`, then of its fallbacks, with retries. Returns the
   * usage of the answer that was sent (undefined for an error answer, or a client that went away).
   */
  routeRequest(request: RoutedRequest): Promise<Usage | undefined>;
  close(): Promise<void>;
}

export function createRouter(config: LlmConfig, options: RouterOptions): Router {
  const { logger, metrics, leases } = options;
  const leaseTtlMs = options.leaseTtlMs ?? 30_000;
  const keeper = leases ? createLeaseKeeper(leaseTtlMs) : undefined;
  const deferred = options.budgets && deferCorrections(options.budgets);
  const budgets = deferred?.limits;
  /**
   * Takes one request and the request's estimated tokens from `d`'s own budgets: the tokens taken, or how long
   * until it has room again (nothing kept taken then).
   */
  async function spend(d: Deployment, body: Record<string, unknown>): Promise<{ tokens: number } | { waitMs: number }> {
    const { rpm, tpm } = d.config;
    if (!budgets || (rpm === undefined && tpm === undefined)) return { tokens: 0 };
    const time = Date.now();
    const tokens = tpm === undefined ? 0 : Math.min(estimateTokens(body), tpm);
    // Both budgets in one atomic step, all or nothing: a refused attempt keeps neither.
    const takes: LimitTake[] = [];
    if (rpm !== undefined) takes.push({ key: `deployment:${d.id}:rpm`, cost: 1, limit: rpm, periodMs: MINUTE });
    if (tpm !== undefined && tokens > 0) {
      takes.push({ key: `deployment:${d.id}:tpm`, cost: tokens, limit: tpm, periodMs: MINUTE });
    }
    const decisions = await budgets.takeAll({ takes, now: time });
    if (decisions.every((x) => x.allowed)) return { tokens };
    return { waitMs: Math.max(...decisions.filter((x) => !x.allowed).map((x) => x.retryAfterMs)) };
  }
  /** Returns budget taken for an attempt that did not use it (or used less), with the deployment's next take. */
  function giveBack(d: Deployment, requests: number, tokens: number): void {
    const { rpm, tpm } = d.config;
    if (requests > 0 && rpm !== undefined) {
      deferred?.later({ key: `deployment:${d.id}:rpm`, units: -requests, limit: rpm, periodMs: MINUTE });
    }
    if (tokens > 0 && tpm !== undefined) {
      deferred?.later({ key: `deployment:${d.id}:tpm`, units: -tokens, limit: tpm, periodMs: MINUTE });
    }
  }

  /** A slot of `d` among every replica's attempts; null when they hold all of them. No leases: always one. */
  async function claim(d: Deployment): Promise<Lease | undefined | null> {
    if (!leases) return undefined;
    const lease = await leases.acquire(`deployment:${d.id}`, d.maxConcurrent, leaseTtlMs);
    if (lease === undefined) return null;
    keeper!.hold(lease);
    return lease;
  }
  const routes = new Map<string, ModelRoute>();
  const byName = new Map<string, ModelRoute>();
  for (const [name, model] of Object.entries(config.models)) {
    const route: ModelRoute = {
      name,
      config: model,
      deployments: model.deployments.map((d, i) => new Deployment(name, i, d, config.breaker)),
    };
    routes.set(name, route);
    byName.set(name, route);
    for (const alias of model.aliases) byName.set(alias, route);
  }

  /** The breaker gauge changes only when a breaker does (not on every request). */
  const gaugeStates = new Map<Deployment, string>();
  function breakerGauge(d: Deployment): void {
    const state = d.breaker.state;
    if (gaugeStates.get(d) === state) return;
    gaugeStates.set(d, state);
    metrics.llmBreakerState.set({ deployment: d.id }, state === 'closed' ? 0 : state === 'half-open' ? 1 : 2);
  }

  /** Metric children per route, model and deployment: label lookups once, not on every request. */
  const children = new Map<string, ReturnType<typeof successMetrics>>();
  function successMetrics(labels: { route: MetricRoute; model: string; deployment: string }) {
    const owner = { model: labels.model, deployment: labels.deployment };
    return {
      requests: metrics.llmRequests.labels({ ...labels, status: '200' }),
      upstream: metrics.llmUpstreamSeconds.labels(labels),
      overhead: metrics.llmOverheadSeconds.labels({ route: labels.route }),
      tokensIn: metrics.llmTokens.labels({ ...owner, direction: 'in' }),
      tokensOut: metrics.llmTokens.labels({ ...owner, direction: 'out' }),
    };
  }

  /**
   * One attempt against one deployment. Writes the response when it succeeds (or fails after the response
   * began); otherwise reports why, for the caller to retry or answer.
   */
  async function attempt(d: Deployment, request: RoutedRequest, trace?: Record<string, string>): Promise<Attempt> {
    const { route, body, sink, requested: publicModel, started } = request;
    const anthropic = d.config.provider === 'anthropic';
    if (anthropic && route === 'embeddings') {
      return {
        kind: 'final',
        status: 400,
        error: openAiError(400, `model "${publicModel}" is served by Anthropic, which has no embeddings API`),
      };
    }
    const stream = route === 'chat' && body.stream === true;
    const chat = body as unknown as ChatCompletionRequest;
    let payload: string | Buffer;
    let headers: Record<string, string>;
    let path: string;
    if (anthropic) {
      payload = JSON.stringify(
        toAnthropicRequest(chat, { model: d.config.model, defaultMaxTokens: d.config.defaultMaxTokens }),
      );
      headers = { ...anthropicHeaders(d.config.apiKey), ...d.config.headers };
      path = `${d.basePath}/messages`;
    } else {
      // The client's own bytes when nothing in them changes (the public name is the backend's name).
      const raw = body.model === d.config.model ? request.raw : undefined;
      payload = raw ?? openAiBody(body, d.config);
      headers = openAiHeaders(d.config);
      path = `${d.basePath}/${route === 'chat' ? 'chat/completions' : 'embeddings'}`;
    }

    if (trace) headers = { ...headers, ...trace };
    const abort = new AbortController();
    let reason: 'client' | 'first-token' | 'total' | undefined;
    const stop = (why: typeof reason) => {
      reason ??= why;
      abort.abort(new Error(why));
    };
    const offGone = sink.onGone(() => stop('client'));
    const firstToken = setTimeout(() => stop('first-token'), d.config.timeouts.firstToken);
    const total = setTimeout(() => stop('total'), d.config.timeouts.total);
    const sentAt = performance.now();
    d.inFlight++;
    const labels = { route: metricRouteOf(request), model: publicModel, deployment: d.id };
    let committed = false;
    try {
      let response: Dispatcher.ResponseData;
      try {
        response = await d.pool.request({ method: 'POST', path, headers, body: payload, signal: abort.signal });
      } catch (error) {
        return failed(error);
      }
      if (response.statusCode >= 400) {
        const text = await response.body.text().catch(() => '');
        clearTimeout(firstToken);
        const { body: error, status } = anthropic
          ? fromAnthropicError(response.statusCode, safeJson(text))
          : { body: asOpenAiError(response.statusCode, text), status: response.statusCode };
        if (RETRYABLE_STATUS.has(response.statusCode)) {
          const after = retryAfterMs(response.headers);
          return {
            kind: 'retry',
            reason: String(response.statusCode),
            status,
            error,
            ...(after === undefined ? {} : { retryAfterMs: after }),
          };
        }
        d.breaker.success(); // The backend answered: a client error says nothing about its health.
        if (response.statusCode === 401 || response.statusCode === 403) {
          // mcplex's own key for the backend was refused: not the client's fault, nor something it can fix.
          logger.warn({ deployment: d.id, status: response.statusCode }, 'the LLM backend refused its credentials');
          const message = `the backend of model "${publicModel}" refused mcplex's credentials`;
          return { kind: 'final', status: 502, error: openAiError(502, message, 'server_error', 'upstream_auth') };
        }
        return { kind: 'final', status, error };
      }

      if (!stream) {
        const text = await response.body.text();
        clearTimeout(firstToken);
        const upstreamMs = performance.now() - sentAt;
        d.observe(upstreamMs);
        let out = text;
        let usage: Usage | undefined;
        if (anthropic) {
          const translated = fromAnthropicResponse(JSON.parse(text), publicModel);
          usage = translated.usage;
          out = JSON.stringify(translated);
        } else {
          usage = usageIn(text);
        }
        const overheadMs = performance.now() - started - upstreamMs;
        sink.head(200, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(out)),
          [OVERHEAD_HEADER]: overheadMs.toFixed(3),
          'x-mcplex-deployment': d.id,
        });
        sink.end(out);
        committed = true;
        succeeded(d, labels, upstreamMs, overheadMs, usage);
        if (!trace) return { kind: 'done', usage };
        return {
          kind: 'done',
          usage,
          model: anthropic ? publicModel : responseModel(text),
          ...(currentTracing()?.captureContent ? { text: out } : {}),
        };
      }

      // Streaming: nothing is written until the backend's first chunk, so a failure before it can be retried.
      const translator = anthropic
        ? createAnthropicStreamTranslator(publicModel, {
            includeUsage: (chat.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true,
          })
        : undefined;
      const parser = anthropic ? createSseParser() : undefined;
      let usageText = '';
      let overheadMs = 0;
      let lastWrite = performance.now();
      const keepAlive = setInterval(() => {
        if (committed && performance.now() - lastWrite >= config.keepAliveMs) {
          sink.write(': keep-alive\n\n');
          lastWrite = performance.now();
        }
      }, config.keepAliveMs);
      keepAlive.unref();
      try {
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          let out: string | Buffer = chunk;
          if (translator && parser) {
            let text = '';
            for (const event of parser.push(chunk.toString('utf8'))) {
              for (const piece of translator.push(event.event, safeJson(event.data))) {
                text += `data: ${JSON.stringify(piece)}\n\n`;
              }
            }
            if (translator.done) text += 'data: [DONE]\n\n';
            if (text === '') continue;
            out = text;
          } else if (chunk.includes('"usage"') || usageText !== '') {
            // Usage rides in one of the last chunks; only those are decoded.
            usageText += chunk.toString('utf8');
          }
          if (!committed) {
            clearTimeout(firstToken);
            overheadMs = sentAt - started;
            sink.head(200, {
              'content-type': 'text/event-stream',
              'cache-control': 'no-cache',
              [OVERHEAD_HEADER]: overheadMs.toFixed(3),
              'x-mcplex-deployment': d.id,
            });
            committed = true;
          }
          sink.write(out);
          lastWrite = performance.now();
        }
      } catch (error) {
        if (!committed) return failed(error);
        // The stream broke after it began: the client learns it in-band; there is no retrying a half answer.
        const message = error instanceof AnthropicStreamError ? error.body : openAiError(502, streamFailure(error));
        if (!sink.gone) sink.end(`data: ${JSON.stringify(message)}\n\n`);
        if (reason !== 'client') failure(d);
        metrics.llmRequests.inc({ ...labels, status: reason === 'client' ? '499' : '502' });
        return { kind: 'final' };
      } finally {
        clearInterval(keepAlive);
      }
      if (!committed) {
        return failed(new Error('the backend ended the stream without sending anything'));
      }
      sink.end();
      const upstreamMs = performance.now() - sentAt;
      d.observe(upstreamMs);
      const usage = translator ? translator.usage : usageFromStream(usageText);
      succeeded(d, labels, upstreamMs, overheadMs, usage);
      return { kind: 'done', usage };
    } finally {
      d.inFlight--;
      clearTimeout(firstToken);
      clearTimeout(total);
      offGone();
      breakerGauge(d);
    }

    function failed(error: unknown): Attempt {
      if (reason === 'client') return { kind: 'final' };
      const timedOut = reason === 'first-token' || reason === 'total';
      const message = timedOut
        ? `the backend did not answer in time (${reason === 'total' ? 'total' : 'first token'} timeout)`
        : `the backend could not be reached: ${errorMessage(error)}`;
      return {
        kind: 'retry',
        reason: timedOut ? 'timeout' : 'connect',
        status: timedOut ? 504 : 502,
        error: openAiError(timedOut ? 504 : 502, message, 'server_error', timedOut ? 'timeout' : 'upstream_error'),
      };
    }
  }

  function succeeded(
    d: Deployment,
    labels: { route: MetricRoute; model: string; deployment: string },
    upstreamMs: number,
    overheadMs: number,
    usage: Usage | undefined,
  ): void {
    d.breaker.success();
    const key = `${labels.route}\0${labels.model}\0${labels.deployment}`;
    let child = children.get(key);
    if (!child) children.set(key, (child = successMetrics(labels)));
    child.requests.inc();
    child.upstream.observe(upstreamMs / 1000);
    child.overhead.observe(Math.max(0, overheadMs) / 1000);
    if (usage) {
      child.tokensIn.inc(usage.prompt_tokens);
      child.tokensOut.inc(usage.completion_tokens ?? 0);
    }
  }

  function failure(d: Deployment): void {
    d.breaker.failure();
    breakerGauge(d);
  }

  const routeRequest: Router['routeRequest'] = async (request) => {
    const { sink, requestId, requested, primary } = request;
    const route = metricRouteOf(request);
    const chain = [primary, ...primary.config.fallbacks.map((name) => byName.get(name)!)];
    const { retries } = config;
    let last: Extract<Attempt, { kind: 'retry' }> | undefined;
    /** The shortest wait until a deployment that was over its budget has room again. */
    let overBudgetMs: number | undefined;
    let lastDeployment = '';
    /** Attempts so far across the chain (for their spans). */
    let attempted = 0;
    // Each model of the chain gets the retry budget; when it is spent (or every deployment is out), the next one.
    for (const model of chain) {
      const tried = new Set<Deployment>();
      // Deployments whose every slot other replicas hold, or whose own budget is spent: out for this request,
      // like one busy here.
      const full = new Set<Deployment>();
      for (let attempts = 0; attempts <= retries.attempts; attempts++) {
        if (sink.gone) return undefined;
        const exclude = full.size === 0 ? tried : new Set([...tried, ...full]);
        let d = pickDeployment(model.deployments, model.config.strategy as Strategy, exclude);
        // Every deployment failed once: try them again (the breaker still keeps broken ones out).
        if (d === undefined && tried.size > 0) d = pickDeployment(model.deployments, model.config.strategy, full);
        if (d === undefined) break;
        const spent = await spend(d, request.body);
        if ('waitMs' in spent) {
          // Not an attempt: no retry budget is spent on a deployment that was never asked.
          overBudgetMs = Math.min(overBudgetMs ?? Infinity, spent.waitMs);
          full.add(d);
          attempts--;
          continue;
        }
        const lease = await claim(d);
        if (lease === null) {
          giveBack(d, 1, spent.tokens);
          full.add(d);
          attempts--;
          continue;
        }
        if (!d.breaker.acquire()) {
          if (lease) keeper!.letGo(lease);
          break;
        }
        let outcome: Attempt;
        try {
          if (last !== undefined) {
            metrics.llmRetries.inc({ model: requested, deployment: lastDeployment, reason: last.reason });
            const delay = Math.max(
              last.retryAfterMs ?? 0,
              backoffDelay(attempts, { initialDelay: retries.initialDelayMs, maxDelay: retries.maxDelayMs }),
            );
            if (delay > 0) await sleep(delay);
            if (sink.gone) return undefined;
          }
          const tracing = currentTracing();
          outcome = tracing
            ? await tracing.llmAttempt(
                request.trace,
                {
                  operation: request.route,
                  model: d.config.model,
                  provider: d.config.provider,
                  deployment: d.id,
                  attempt: ++attempted,
                  baseUrl: d.config.baseUrl ?? DEFAULT_BASE_URL[d.config.provider],
                },
                (headers) => attempt(d, request, headers),
                describeAttempt,
              )
            : await attempt(d, request);
        } finally {
          if (lease) keeper!.letGo(lease);
        }
        if (outcome.kind === 'done') {
          // The estimate corrected by what the backend reported.
          const used = outcome.usage ? outcome.usage.prompt_tokens + (outcome.usage.completion_tokens ?? 0) : undefined;
          if (used !== undefined && used < spent.tokens) giveBack(d, 0, spent.tokens - used);
          return outcome.usage;
        }
        if (outcome.kind === 'final') {
          if (outcome.error && outcome.status !== undefined) {
            sinkJson(sink, outcome.status, outcome.error);
            metrics.llmRequests.inc({ route, model: requested, deployment: d.id, status: String(outcome.status) });
          }
          return undefined;
        }
        failure(d);
        logger.warn({ requestId, model: requested, deployment: d.id, reason: outcome.reason }, 'LLM attempt failed');
        last = outcome;
        lastDeployment = d.id;
        tried.add(d);
        // A backend that asks for a longer pause than mcplex waits: the next model, or the client, decides.
        if (outcome.retryAfterMs !== undefined && outcome.retryAfterMs > retries.maxRetryAfterMs) break;
      }
    }
    if (last) {
      answerFailure(sink, last, route, requested, lastDeployment);
      return undefined;
    }
    if (overBudgetMs !== undefined) {
      const message = `every deployment of model "${requested}" has used its budget for now`;
      sinkJson(sink, 429, openAiError(429, message, 'rate_limit_error', 'deployment_budget_exceeded'), {
        'retry-after': String(Math.max(1, Math.ceil(overBudgetMs / 1000))),
      });
      metrics.llmRequests.inc({ route, model: requested, deployment: '', status: '429' });
      return undefined;
    }
    sinkJson(sink, 503, openAiError(503, `no deployment of model "${requested}" is available`, 'server_error'));
    metrics.llmRequests.inc({ route, model: requested, deployment: '', status: '503' });
    return undefined;
  };

  function answerFailure(
    sink: Sink,
    last: Extract<Attempt, { kind: 'retry' }>,
    route: MetricRoute,
    model: string,
    deployment: string,
  ): void {
    const headers: Record<string, string> =
      last.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.ceil(last.retryAfterMs / 1000)) };
    sinkJson(sink, last.status, last.error, headers);
    metrics.llmRequests.inc({ route, model, deployment, status: String(last.status) });
  }

  return {
    routes,
    byName,
    routeRequest,
    async close() {
      await deferred?.flush();
      await Promise.allSettled([...routes.values()].flatMap((r) => r.deployments.map((d) => d.pool.close())));
    },
  };
}
