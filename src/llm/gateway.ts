// The OpenAI-compatible API in front of the configured LLM backends: /v1/chat/completions (plain and streamed),
// /v1/embeddings and /v1/models. Each request is routed to a deployment of its model (weighted, least in flight
// or latency-aware), retried on another one on connect errors, 429 and 5xx while nothing has reached the client,
// then handed to the model's fallbacks; a circuit breaker per deployment keeps a failing backend out of rotation.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { DeploymentConfig, LlmConfig, ModelConfig } from '../config/llm-schema.js';
import { DEFAULT_BASE_URL } from '../config/llm-schema.js';
import { McplexError, errorMessage } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics.js';
import { readBody } from '../http/body.js';
import { backoffDelay } from '../backoff.js';
import { PeakEwma, pickDeployment } from './balancer.js';
import type { Strategy } from './balancer.js';
import { createBreaker } from './breaker.js';
import type { Breaker } from './breaker.js';
import {
  AnthropicStreamError,
  anthropicHeaders,
  createAnthropicStreamTranslator,
  fromAnthropicError,
  fromAnthropicResponse,
  toAnthropicRequest,
} from './providers/anthropic.js';
import { openAiBody, openAiHeaders } from './providers/openai.js';
import { createSseParser } from './sse.js';
import { addToolCallDeltas } from './tool-call-deltas.js';
import { parseJsonObject, sendJson } from '../http/json.js';
import { handleConversations, withConversation } from './conversations.js';
import { bufferSink, flightSink, responseSink } from './sink.js';
import type { Sink } from './sink.js';
import { cacheable, cacheKey } from '../policy/cache/cache-key.js';
import { CACHE_HEADER, createResponseCache, fromSse, replayJson, replaySse } from '../policy/cache/response-cache.js';
import type { ResponseCache } from '../policy/cache/response-cache.js';
import { createCoalescer, createFlight } from './batching/coalescer.js';
import { createEmbeddingBatcher } from './batching/embedding-batcher.js';
import { createMemoryStore } from '../store/memory/memory-store.js';
import type { Policy } from '../policy/policy.js';
import { ANONYMOUS } from '../policy/auth/keys.js';
import type { AuthFailure, Principal } from '../policy/auth/keys.js';
import { scopeCheck } from '../policy/auth/scopes.js';
import { estimateTokens } from '../policy/limits/rate-limiter.js';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionRequest,
  ChatMessage,
  OpenAiErrorBody,
  ToolCall,
  Usage,
} from './types.js';
import type { Admission } from '../policy/limits/rate-limiter.js';

type Route = 'chat' | 'embeddings';

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

interface ModelRoute {
  name: string;
  config: ModelConfig;
  deployments: Deployment[];
}

/** How one attempt ended. */
type Attempt =
  | { kind: 'done'; usage: Usage | undefined }
  /** Failed before anything reached the client: another attempt may still answer it. */
  | { kind: 'retry'; reason: string; error: OpenAiErrorBody; status: number; retryAfterMs?: number }
  /** Failed in a way another deployment would not fix (a bad request), or after the response began. */
  | { kind: 'final'; error?: OpenAiErrorBody; status?: number };

const RETRYABLE_STATUS = new Set([408, 409, 429, 500, 502, 503, 504, 529]);

export function openAiError(status: number, message: string, type?: string, code?: string | null, param?: string) {
  const kind =
    type ??
    (status === 401
      ? 'authentication_error'
      : status === 403
        ? 'permission_error'
        : status === 404
          ? 'not_found_error'
          : status === 429
            ? 'rate_limit_error'
            : status >= 500
              ? 'server_error'
              : 'invalid_request_error');
  return { error: { message, type: kind, param: param ?? null, code: code ?? null } } satisfies OpenAiErrorBody;
}

/** A JSON answer into a sink (which may be shared by coalesced requests, or buffered). */
function sinkJson(sink: Sink, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (sink.started) return;
  const text = JSON.stringify(body);
  sink.head(status, {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  sink.end(text);
}

/** `retry-after-ms`, else `retry-after` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Record<string, string | string[] | undefined>): number | undefined {
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

function asOpenAiError(status: number, text: string): OpenAiErrorBody {
  try {
    const parsed = JSON.parse(text) as Partial<OpenAiErrorBody>;
    if (parsed.error && typeof parsed.error.message === 'string') {
      return openAiError(
        status,
        parsed.error.message,
        parsed.error.type,
        parsed.error.code,
        parsed.error.param ?? undefined,
      );
    }
  } catch {
    // Not JSON: the text itself is the best message there is.
  }
  return openAiError(status, text.slice(0, 500) || `the backend answered HTTP ${status}`);
}

function usageOf(value: unknown): Usage | undefined {
  const usage = (value as { usage?: Usage } | null)?.usage;
  return usage && typeof usage.prompt_tokens === 'number' ? usage : undefined;
}

/** Runs a chat request that carries the `mcp` extension (the tool-running loop). */
export type AgentRunner = (principal: Principal, body: Record<string, unknown>, res: ServerResponse) => Promise<void>;

export interface LlmGatewayOptions {
  logger: Logger;
  /** The tool-running chat for requests with an `mcp` field; without it such requests are refused. */
  agent?: () => AgentRunner | undefined;
  metrics: Metrics;
  /** Keys, scopes, limits and usage; without it every request is anonymous and unlimited. */
  policy?: Policy;
  maxBodyBytes: number;
}

/** An LLM request refused or failed, for callers inside mcplex; `data.error` is the OpenAI error body. */
export function llmFailure(status: number, body: OpenAiErrorBody): McplexError {
  return new McplexError('LLM_FAILED', body.error.message, { status, data: { error: body.error } });
}

export interface LlmGateway {
  /** A chat completion for a caller inside mcplex, under `principal`'s scopes and limits. */
  complete(principal: Principal, request: ChatCompletionRequest): Promise<ChatCompletion>;
  /** The same, streamed: chunks reach `onChunk` as they arrive. */
  completeStream(
    principal: Principal,
    request: ChatCompletionRequest,
    onChunk: (chunk: ChatCompletionChunk) => void,
  ): Promise<void>;
  /** Public model names a principal may use, canonical names first. */
  modelsFor(principal: Principal): string[];
  /** Serves a /v1 request; false when the path is none of its routes. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, started: number): Promise<boolean>;
  /** Public model names (aliases included). */
  modelNames(): string[];
  close(): Promise<void>;
}

export function createLlmGateway(config: LlmConfig, options: LlmGatewayOptions): LlmGateway {
  const { logger, metrics } = options;
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
  const created = Math.floor(Date.now() / 1000);
  /** Request bodies as they arrived, by their parsed object. */
  const rawBodies = new WeakMap<object, Buffer>();
  const cache: ResponseCache | undefined = config.cache.enabled
    ? createResponseCache(
        config.cache.store === 'store' && options.policy
          ? options.policy.store.cache
          : createMemoryStore({ maxCacheBytes: config.cache.maxBytes }).cache,
        { ttlMs: config.cache.ttlMs, onError: (error) => logger.warn({ err: errorMessage(error) }, 'cache failed') },
      )
    : undefined;
  const coalescer = createCoalescer();
  const batcher =
    config.batching.windowMs > 0
      ? createEmbeddingBatcher({
          windowMs: config.batching.windowMs,
          maxInputs: config.batching.maxInputs,
          send: async (model, inputs, extra) => {
            // One routed request for the whole batch, answered into a buffer and split among the callers.
            const sink = bufferSink();
            const route = routes.get(model)!;
            await routeRequest(
              'embeddings',
              { ...extra, model, input: inputs },
              sink,
              performance.now(),
              'batch',
              model,
              route,
            );
            const text = sink.text();
            if (sink.status !== 200) {
              const parsed = safeJson(text) as OpenAiErrorBody | undefined;
              throw new BatchFailure(
                sink.status ?? 502,
                parsed?.error ? parsed : openAiError(502, text || 'no answer'),
              );
            }
            const answer = JSON.parse(text) as {
              data: { index: number; embedding: number[] | string }[];
              usage?: { prompt_tokens?: number };
            };
            const vectors = new Array<number[] | string>(inputs.length);
            for (const item of answer.data) vectors[item.index] = item.embedding;
            return { vectors, promptTokens: answer.usage?.prompt_tokens ?? 0 };
          },
        })
      : undefined;
  // Request ids: the client's x-request-id when it sends a sane one, else this process's prefix and a counter.
  const idPrefix = randomBytes(4).toString('hex');
  let sequence = 0;

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
  function successMetrics(labels: { route: Route; model: string; deployment: string }) {
    const owner = { model: labels.model, deployment: labels.deployment };
    return {
      requests: metrics.llmRequests.labels({ ...labels, status: '200' }),
      upstream: metrics.llmUpstreamSeconds.labels(labels),
      overhead: metrics.llmOverheadSeconds.labels({ route: labels.route }),
      tokensIn: metrics.llmTokens.labels({ ...owner, direction: 'in' }),
      tokensOut: metrics.llmTokens.labels({ ...owner, direction: 'out' }),
    };
  }

  function models(res: ServerResponse, principal: Principal): void {
    const scope = scopeCheck(principal.scopes);
    const data = [...byName.entries()]
      .filter(([id, route]) => scope.model(id, route.name))
      .map(([id]) => id)
      .sort()
      .map((id) => ({ id, object: 'model', created, owned_by: 'mcplex' }));
    sendJson(res, 200, { object: 'list', data });
  }

  async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
    const raw = await readBody(req, options.maxBodyBytes);
    const parsed = parseJsonObject(raw);
    rawBodies.set(parsed, raw);
    return parsed;
  }

  function validate(route: Route, body: Record<string, unknown>): void {
    const bad = (param: string, message: string) => {
      throw new McplexError('LLM_BAD_REQUEST', message, { status: 400, data: { param } });
    };
    if (typeof body.model !== 'string' || body.model === '') bad('model', 'you must provide a model parameter');
    if (route === 'chat') {
      if (!Array.isArray(body.messages) || body.messages.length === 0) {
        bad('messages', "'messages' must be a non-empty array");
      }
      if (body.stream !== undefined && typeof body.stream !== 'boolean') bad('stream', "'stream' must be a boolean");
    } else if (body.input === undefined || body.input === null) {
      bad('input', "'input' is required");
    }
  }

  /**
   * One attempt against one deployment. Writes the response when it succeeds (or fails after the response
   * began); otherwise reports why, for the caller to retry or answer.
   */
  async function attempt(
    d: Deployment,
    route: Route,
    body: Record<string, unknown>,
    sink: Sink,
    publicModel: string,
    started: number,
  ): Promise<Attempt> {
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
      const raw = body.model === d.config.model ? rawBodies.get(body) : undefined;
      payload = raw ?? openAiBody(body, d.config);
      headers = openAiHeaders(d.config);
      path = `${d.basePath}/${route === 'chat' ? 'chat/completions' : 'embeddings'}`;
    }

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
    const labels = { route, model: publicModel, deployment: d.id };
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
        const error = anthropic
          ? fromAnthropicError(response.statusCode, safeJson(text)).body
          : asOpenAiError(response.statusCode, text);
        const status = anthropic ? fromAnthropicError(response.statusCode, safeJson(text)).status : response.statusCode;
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
          'x-mcplex-overhead-ms': overheadMs.toFixed(3),
          'x-mcplex-deployment': d.id,
        });
        sink.end(out);
        committed = true;
        succeeded(d, labels, upstreamMs, overheadMs, usage);
        return { kind: 'done', usage };
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
              connection: 'keep-alive',
              'x-mcplex-overhead-ms': overheadMs.toFixed(3),
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
        if (reason !== 'client') failure(d, labels);
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
    labels: { route: Route; model: string; deployment: string },
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

  function failure(d: Deployment, _labels: { model: string; deployment: string }): void {
    d.breaker.failure();
    breakerGauge(d);
  }

  /** Serves one chat or embeddings request: deployments of the model, then of its fallbacks, with retries. */
  /** Why a request may not go ahead, as the OpenAI error to answer with. */
  interface Refusal {
    status: number;
    body: OpenAiErrorBody;
    headers: Record<string, string>;
  }

  /**
   * The policy gate of a validated request: its model exists and is in the principal's scope, and its limits
   * admit it. Returns the model's route and the admission to release when the answer is done.
   */
  async function gate(
    route: Route,
    body: Record<string, unknown>,
    principal: Principal,
  ): Promise<{ primary: ModelRoute; admission: Extract<Admission, { ok: true }> | undefined } | Refusal> {
    const requested = body.model as string;
    const refuse = (status: number, error: OpenAiErrorBody, headers: Record<string, string> = {}): Refusal => {
      metrics.llmRequests.inc({ route, model: requested, deployment: '', status: String(status) });
      return { status, body: error, headers };
    };
    const primary = byName.get(requested);
    if (!primary) {
      const message = `The model \`${requested}\` does not exist`;
      return refuse(404, openAiError(404, message, 'invalid_request_error', 'model_not_found', 'model'));
    }
    if (!scopeCheck(principal.scopes).model(requested, primary.name)) {
      const message = `${principal.kind === 'server' ? `MCP server "${principal.name}"` : 'this API key'} may not use model "${requested}"`;
      return refuse(403, openAiError(403, message, 'permission_error', 'model_not_allowed', 'model'));
    }
    const { rpm, tpm, maxConcurrent } = principal.limits;
    const admission =
      options.policy && (rpm !== undefined || tpm !== undefined || maxConcurrent !== undefined)
        ? await options.policy.limiter.admit(principal, tpm !== undefined ? estimateTokens(body) : 0)
        : undefined;
    if (admission && !admission.ok) {
      const code = admission.limit === 'concurrency' ? 'concurrency_limit_exceeded' : 'rate_limit_exceeded';
      return refuse(429, openAiError(429, admission.message, admission.limit, code), admission.headers);
    }
    return { primary, admission };
  }

  /** Releases the admission and adds the usage to the principal's account. */
  function settle(
    principal: Principal,
    requested: string,
    admission: Extract<Admission, { ok: true }> | undefined,
    usage: Usage | undefined,
  ): void {
    admission?.release(usage ? usage.prompt_tokens + (usage.completion_tokens ?? 0) : undefined);
    if (options.policy && principal !== ANONYMOUS) {
      options.policy.usage.add(principal.id, requested, usage?.prompt_tokens ?? 0, usage?.completion_tokens ?? 0);
    }
  }

  async function serve(
    route: Route,
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    requestId: string,
    principal: Principal,
  ): Promise<void> {
    const body = await readJson(req);
    validate(route, body);
    if (route === 'chat' && body.conversation !== undefined && body.conversation !== null) {
      await serveConversation(body, res, started, requestId, principal);
      return;
    }
    if (route === 'chat' && body.mcp !== undefined && body.mcp !== null) {
      const agent = options.agent?.();
      if (!agent) throw new McplexError('LLM_BAD_REQUEST', 'the mcp extension is not available', { status: 400 });
      await agent(principal, body, res);
      return;
    }
    const requested = body.model as string;
    const passed = await gate(route, body, principal);
    if ('status' in passed) {
      sendJson(res, passed.status, passed.body, passed.headers);
      return;
    }
    const { primary, admission } = passed;
    if (admission) for (const [name, value] of Object.entries(admission.headers)) res.setHeader(name, value);
    let usage: Usage | undefined;
    try {
      usage = await deliver(route, body, req, res, started, requestId, requested, primary, principal);
    } finally {
      settle(principal, requested, admission, usage);
    }
  }

  /**
   * A chat turn in a stored conversation: its history goes before the new messages, and the new messages with the
   * model's answer are appended in one step, guarded by the version read (a concurrent turn makes this one a 409).
   */
  async function serveConversation(
    body: Record<string, unknown>,
    res: ServerResponse,
    started: number,
    requestId: string,
    principal: Principal,
  ): Promise<void> {
    const store = options.policy?.store;
    const bad = (message: string, param: string) =>
      new McplexError('LLM_BAD_REQUEST', message, { status: 400, data: { param } });
    if (!store) throw bad('conversations need a store', 'conversation');
    const { conversation, conversation_version: version, ...rest } = body;
    const id =
      typeof conversation === 'object' && conversation !== null ? (conversation as { id?: unknown }).id : conversation;
    if (typeof id !== 'string') throw bad("'conversation' must be a conversation id", 'conversation');
    if (rest.mcp !== undefined) throw bad('mcp and conversation cannot be combined yet', 'mcp');
    if (rest.n !== undefined && rest.n !== null && rest.n !== 1) throw bad('n must be 1 in a conversation', 'n');
    const turn = await withConversation(
      store.conversations,
      principal,
      id,
      rest.messages as ChatMessage[],
      version === undefined ? {} : { expectedVersion: version as number },
    );
    const request: Record<string, unknown> = { ...rest, messages: turn.messages };
    const requested = request.model as string;
    const passed = await gate('chat', request, principal);
    if ('status' in passed) {
      sendJson(res, passed.status, passed.body, passed.headers);
      return;
    }
    const { primary, admission } = passed;
    if (admission) for (const [name, value] of Object.entries(admission.headers)) res.setHeader(name, value);
    if (request.stream === true) {
      await streamConversationTurn(request, res, started, requestId, principal, primary, admission, turn, id);
      return;
    }
    const sink = bufferSink();
    let usage: Usage | undefined;
    try {
      usage = await routeRequest('chat', request, sink, started, requestId, requested, primary);
    } finally {
      settle(principal, requested, admission, usage);
    }
    const text = sink.text();
    if (sink.status !== 200) {
      sendJson(res, sink.status ?? 502, safeJson(text) ?? openAiError(502, 'no answer'));
      return;
    }
    const answer = JSON.parse(text) as ChatCompletion;
    const reply = answer.choices[0]?.message;
    const newVersion = await turn.commit(reply ? [reply as unknown as ChatMessage] : []);
    sendJson(
      res,
      200,
      { ...answer, conversation: { id, version: newVersion } },
      { 'x-conversation-version': String(newVersion) },
    );
  }

  /**
   * A streamed turn of a stored conversation: chunks go to the client as they arrive while the answer is rebuilt
   * from them; the backend's `[DONE]` is held back until the turn is appended, then a last chunk names the new
   * version. A turn that lost the race ends with a 409 error event instead (nothing appended).
   */
  async function streamConversationTurn(
    request: Record<string, unknown>,
    res: ServerResponse,
    started: number,
    requestId: string,
    principal: Principal,
    primary: ModelRoute,
    admission: Extract<Admission, { ok: true }> | undefined,
    turn: Awaited<ReturnType<typeof withConversation>>,
    id: string,
  ): Promise<void> {
    const requested = request.model as string;
    const client = responseSink(res);
    const parser = createSseParser();
    let content = '';
    const calls: ToolCall[] = [];
    let chunkId = '';
    let broken = false;
    const sink: Sink = {
      head: (status, headers) => client.head(status, headers),
      write(chunk) {
        const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
        if (!client.started || res.statusCode !== 200) {
          client.write(chunk);
          return;
        }
        let out = '';
        for (const event of parser.push(text)) {
          if (event.data === '[DONE]') continue;
          out += `data: ${event.data}\n\n`;
          const piece = safeJson(event.data) as (ChatCompletionChunk & { error?: unknown }) | undefined;
          if (piece?.error !== undefined) broken = true;
          const delta = piece?.choices?.[0]?.delta;
          if (piece?.id) chunkId = piece.id;
          if (typeof delta?.content === 'string') content += delta.content;
          addToolCallDeltas(calls, delta?.tool_calls);
        }
        if (out !== '') client.write(out);
      },
      end(chunk) {
        if (chunk !== undefined) this.write(chunk);
      },
      get started() {
        return client.started;
      },
      get gone() {
        return client.gone;
      },
      onGone: (listener) => client.onGone(listener),
    };
    let usage: Usage | undefined;
    try {
      usage = await routeRequest('chat', request, sink, started, requestId, requested, primary);
    } finally {
      settle(principal, requested, admission, usage);
    }
    if (res.writableEnded || res.destroyed) return;
    // An error status, or a stream that broke after it began (its error event already went out): nothing to keep.
    if (res.statusCode !== 200 || broken) {
      res.end();
      return;
    }
    const made = calls.filter(Boolean);
    const reply: ChatMessage = {
      role: 'assistant',
      content: content || null,
      ...(made.length > 0 ? { tool_calls: made } : {}),
    };
    try {
      const version = await turn.commit([reply]);
      const last = {
        id: chunkId,
        object: 'chat.completion.chunk',
        created: Math.floor(Date.now() / 1000),
        model: requested,
        choices: [],
        conversation: { id, version },
      };
      res.end(`data: ${JSON.stringify(last)}\n\ndata: [DONE]\n\n`);
    } catch (error) {
      const status = error instanceof McplexError ? error.status : 500;
      const code = error instanceof McplexError && typeof error.data?.code === 'string' ? error.data.code : null;
      res.end(`data: ${JSON.stringify(openAiError(status, errorMessage(error), undefined, code))}\n\n`);
    }
  }

  /**
   * A chat completion for a caller inside mcplex (the sampling bridge, the agent loop): the same policies and
   * routing as /v1, without HTTP. Throws a McplexError carrying the OpenAI error when it is refused or fails.
   */
  async function complete(principal: Principal, request: ChatCompletionRequest): Promise<ChatCompletion> {
    const body = { ...request, stream: false } as Record<string, unknown>;
    validate('chat', body);
    const requested = body.model as string;
    const passed = await gate('chat', body, principal);
    if ('status' in passed) throw llmFailure(passed.status, passed.body);
    const { primary, admission } = passed;
    const sink = bufferSink();
    let usage: Usage | undefined;
    try {
      usage = await routeRequest('chat', body, sink, performance.now(), `internal-${++sequence}`, requested, primary);
    } finally {
      settle(principal, requested, admission, usage);
    }
    const text = sink.text();
    if (sink.status !== 200) {
      const parsed = safeJson(text) as OpenAiErrorBody | undefined;
      throw llmFailure(sink.status ?? 502, parsed?.error ? parsed : openAiError(502, text || 'no answer'));
    }
    return JSON.parse(text) as ChatCompletion;
  }

  /**
   * A streamed chat completion for a caller inside mcplex (the agent loop): each chunk reaches `onChunk` as it
   * arrives (Anthropic streams translated like on /v1). Throws a McplexError when it is refused or fails before
   * the stream began; a stream that breaks later ends with an error chunk handed to `onError`.
   */
  async function completeStream(
    principal: Principal,
    request: ChatCompletionRequest,
    onChunk: (chunk: ChatCompletionChunk) => void,
  ): Promise<void> {
    const body = { ...request, stream: true, stream_options: { include_usage: true } } as Record<string, unknown>;
    validate('chat', body);
    const requested = body.model as string;
    const passed = await gate('chat', body, principal);
    if ('status' in passed) throw llmFailure(passed.status, passed.body);
    const { primary, admission } = passed;
    const parser = createSseParser();
    let status: number | undefined;
    let errorText = '';
    let broken: OpenAiErrorBody | undefined;
    const sink: Sink = {
      head(code) {
        status = code;
      },
      write(chunk) {
        const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
        if (status !== 200) {
          errorText += text;
          return;
        }
        for (const event of parser.push(text)) {
          if (event.data === '[DONE]') continue;
          const parsed = safeJson(event.data) as (ChatCompletionChunk & Partial<OpenAiErrorBody>) | undefined;
          if (parsed?.error) broken = parsed as unknown as OpenAiErrorBody;
          else if (parsed) onChunk(parsed);
        }
      },
      end(chunk) {
        if (chunk !== undefined) this.write(chunk);
      },
      get started() {
        return status !== undefined;
      },
      gone: false,
      onGone: () => () => {},
    };
    let usage: Usage | undefined;
    try {
      usage = await routeRequest('chat', body, sink, performance.now(), `internal-${++sequence}`, requested, primary);
    } finally {
      settle(principal, requested, admission, usage);
    }
    if (status !== 200) {
      const parsed = safeJson(errorText) as OpenAiErrorBody | undefined;
      throw llmFailure(status ?? 502, parsed?.error ? parsed : openAiError(502, errorText || 'no answer'));
    }
    if (broken) throw llmFailure(502, broken);
  }

  /**
   * Answers a request that passed the policies: from the cache, by joining an identical request in flight, as
   * part of an embedding batch, or by routing it to a backend. Returns the usage the backend reported (none for
   * answers that cost nothing upstream).
   */
  async function deliver(
    route: Route,
    body: Record<string, unknown>,
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    requestId: string,
    requested: string,
    primary: ModelRoute,
    principal: Principal,
  ): Promise<Usage | undefined> {
    if (route === 'embeddings' && batcher && batchable(body)) {
      return embedInBatch(body, res, requested, primary);
    }
    const mode = cache ? cacheable(body, req.headers, route) : 'no';
    if (!cache || mode !== 'yes') {
      if (cache) res.setHeader(CACHE_HEADER, mode === 'bypass' ? 'bypass' : 'miss');
      return routeRequest(route, body, responseSink(res), started, requestId, requested, primary);
    }
    const namespace = config.cache.shared ? '' : principal.id;
    const key = cacheKey(route, { ...body, model: primary.name }, namespace);
    const stream = body.stream === true;
    const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    const hit = await cache.lookup(key);
    if (hit && (stream ? replaySse(res, hit, {}, includeUsage) : replayJson(res, hit))) {
      metrics.llmRequests.inc({ route, model: requested, deployment: 'cache', status: '200' });
      return undefined;
    }
    res.setHeader(CACHE_HEADER, 'miss');
    // Identical requests in flight share one upstream call; the delivery form is part of the key (the bytes differ).
    const { flight, leader } = coalescer.join(
      `${key}:${stream ? (includeUsage ? 'sse+u' : 'sse') : 'json'}`,
      createFlight,
    );
    flight.pipe(res);
    if (!leader) {
      await new Promise<void>((resolve) => flight.onDone(resolve));
      return undefined;
    }
    let usage: Usage | undefined;
    try {
      usage = await routeRequest(route, body, flightSink(flight), started, requestId, requested, primary);
      if (flight.state === 'open') flight.end();
    } catch (error) {
      flight.fail(error);
      throw error;
    }
    if (flight.state === 'ended' && flight.status === 200 && !flight.abandoned) {
      const text = flight.text();
      try {
        // Entries are kept in the plain JSON form; a streamed request replays them as a stream.
        await cache.save(key, stream ? fromSse(text) : text, 'json');
      } catch (error) {
        logger.debug({ err: errorMessage(error), requestId }, 'response not cached');
      }
    }
    return usage;
  }

  /** Embeddings of plain text inputs join a micro-batch for their model; the answer is assembled per caller. */
  async function embedInBatch(
    body: Record<string, unknown>,
    res: ServerResponse,
    requested: string,
    primary: ModelRoute,
  ): Promise<Usage | undefined> {
    const { model: _model, input, ...extra } = body;
    const inputs = typeof input === 'string' ? [input] : (input as string[]);
    try {
      const parts = await Promise.all(inputs.map((text) => batcher!.embed(primary.name, text, extra)));
      const promptTokens = parts.reduce((n, p) => n + p.promptTokens, 0);
      const usage = { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens };
      sendJson(res, 200, {
        object: 'list',
        data: parts.map((p, index) => ({ object: 'embedding', index, embedding: p.vector })),
        model: requested,
        usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
      });
      return usage;
    } catch (error) {
      const failure = error instanceof BatchFailure ? error : undefined;
      sendJson(res, failure?.status ?? 502, failure?.body ?? openAiError(502, errorMessage(error)));
      return undefined;
    }
  }

  /** Tries the model's deployments, then its fallbacks; returns the usage of the answer that was sent. */
  async function routeRequest(
    route: Route,
    body: Record<string, unknown>,
    sink: Sink,
    started: number,
    requestId: string,
    requested: string,
    primary: ModelRoute,
  ): Promise<Usage | undefined> {
    const chain = [primary, ...primary.config.fallbacks.map((name) => byName.get(name)!)];
    const { retries } = config;
    let last: Extract<Attempt, { kind: 'retry' }> | undefined;
    let lastDeployment = '';
    // Each model of the chain gets the retry budget; when it is spent (or every deployment is out), the next one.
    for (const model of chain) {
      const tried = new Set<Deployment>();
      for (let attempts = 0; attempts <= retries.attempts; attempts++) {
        if (sink.gone) return undefined;
        let d = pickDeployment(model.deployments, model.config.strategy as Strategy, tried);
        // Every deployment failed once: try them again (the breaker still keeps broken ones out).
        if (d === undefined && tried.size > 0) d = pickDeployment(model.deployments, model.config.strategy, new Set());
        if (d === undefined || !d.breaker.acquire()) break;
        if (last !== undefined) {
          metrics.llmRetries.inc({ model: requested, deployment: lastDeployment, reason: last.reason });
          const delay = Math.max(
            last.retryAfterMs ?? 0,
            backoffDelay(attempts, { initialDelay: retries.initialDelayMs, maxDelay: retries.maxDelayMs }),
          );
          if (delay > 0) await sleep(delay);
          if (sink.gone) return undefined;
        }
        const outcome = await attempt(d, route, body, sink, requested, started);
        if (outcome.kind === 'done') return outcome.usage;
        if (outcome.kind === 'final') {
          if (outcome.error && outcome.status !== undefined) {
            sinkJson(sink, outcome.status, outcome.error);
            metrics.llmRequests.inc({ route, model: requested, deployment: d.id, status: String(outcome.status) });
          }
          return undefined;
        }
        failure(d, { model: requested, deployment: d.id });
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
    sinkJson(sink, 503, openAiError(503, `no deployment of model "${requested}" is available`, 'server_error'));
    metrics.llmRequests.inc({ route, model: requested, deployment: '', status: '503' });
    return undefined;
  }

  function answerFailure(
    sink: Sink,
    last: Extract<Attempt, { kind: 'retry' }>,
    route: Route,
    model: string,
    deployment: string,
  ): void {
    const headers: Record<string, string> =
      last.retryAfterMs === undefined ? {} : { 'retry-after': String(Math.ceil(last.retryAfterMs / 1000)) };
    sinkJson(sink, last.status, last.error, headers);
    metrics.llmRequests.inc({ route, model, deployment, status: String(last.status) });
  }

  return {
    async handle(req, res, path, started) {
      const given = req.headers['x-request-id'];
      const requestId =
        typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : `${idPrefix}-${++sequence}`;
      res.setHeader('x-request-id', requestId);
      try {
        if (!path.startsWith('/v1/')) return false;
        const auth = options.policy
          ? await options.policy.authenticate(req)
          : ({ ok: true, principal: ANONYMOUS } as const);
        if (!auth.ok) {
          sendJson(res, 401, unauthorized(auth.reason));
          return true;
        }
        const principal = auth.principal;
        const store = options.policy?.store;
        if (
          store &&
          (await handleConversations(req, res, path, principal, store.conversations, options.maxBodyBytes))
        ) {
          return true;
        }
        if (path === '/v1/models' && req.method === 'GET') models(res, principal);
        else if (path === '/v1/chat/completions' && req.method === 'POST') {
          await serve('chat', req, res, started, requestId, principal);
        } else if (path === '/v1/embeddings' && req.method === 'POST') {
          await serve('embeddings', req, res, started, requestId, principal);
        } else {
          sendJson(res, 404, openAiError(404, `Unknown request URL: ${req.method} ${path}`, 'invalid_request_error'));
        }
      } catch (error) {
        if (error instanceof McplexError) {
          if (error.code === 'BODY_TOO_LARGE') res.setHeader('connection', 'close');
          const param = typeof error.data?.param === 'string' ? error.data.param : undefined;
          const code = typeof error.data?.code === 'string' ? error.data.code : null;
          sendJson(res, error.status, openAiError(error.status, error.message, undefined, code, param));
        } else {
          logger.error({ err: errorMessage(error), path, requestId }, 'LLM request failed');
          sendJson(res, 500, openAiError(500, 'internal error'));
        }
      }
      return true;
    },
    modelNames: () => [...byName.keys()],
    complete,
    completeStream,
    modelsFor(principal) {
      const scope = scopeCheck(principal.scopes);
      const canonical = [...routes.keys()].filter((name) => scope.model(name));
      const aliases = [...byName.entries()]
        .filter(([id, route]) => id !== route.name && scope.model(id, route.name))
        .map(([id]) => id);
      return [...canonical, ...aliases];
    },
    async close() {
      batcher?.flush();
      await Promise.allSettled([...routes.values()].flatMap((r) => r.deployments.map((d) => d.pool.close())));
    },
  };
}

/** OpenAI's answer to a missing or wrong key. */
export function unauthorized(reason: AuthFailure): OpenAiErrorBody {
  const message =
    reason === 'missing'
      ? 'You did not provide an API key. Send it as "Authorization: Bearer <key>".'
      : reason === 'revoked'
        ? 'This API key has been revoked.'
        : reason === 'expired'
          ? 'This API key has expired.'
          : 'Incorrect API key provided.';
  return openAiError(401, message, 'invalid_request_error', 'invalid_api_key');
}

/** A batch's upstream error, handed to every caller in the batch. */
class BatchFailure extends Error {
  constructor(
    readonly status: number,
    readonly body: OpenAiErrorBody,
  ) {
    super(body.error.message);
  }
}

/** Plain text inputs can be batched; token arrays go on their own. */
function batchable(body: Record<string, unknown>): boolean {
  const input = body.input;
  return (
    typeof input === 'string' || (Array.isArray(input) && input.length > 0 && input.every((i) => typeof i === 'string'))
  );
}

/**
 * The `usage` object of a chat completion or embeddings answer, read without parsing the whole answer: it is the
 * last top-level field in practice, and the answer itself passes through untouched.
 */
export function usageIn(text: string): Usage | undefined {
  const at = text.lastIndexOf('"usage"');
  if (at < 0) return undefined;
  const start = text.indexOf('{', at);
  if (start < 0) return undefined;
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92)
        i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123) depth++;
    else if (c === 125 && --depth === 0) return usageOf({ usage: safeJson(text.slice(start, i + 1)) });
  }
  return undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function streamFailure(error: unknown): string {
  return `the backend stream broke: ${errorMessage(error)}`;
}

/** The usage of an OpenAI stream: the `usage` of the last data line that has one. */
function usageFromStream(text: string): Usage | undefined {
  if (text === '') return undefined;
  let usage: Usage | undefined;
  for (const line of text.split('\n')) {
    if (!line.startsWith('data: {') || !line.includes('"usage"')) continue;
    usage = usageOf(safeJson(line.slice(6))) ?? usage;
  }
  return usage;
}
