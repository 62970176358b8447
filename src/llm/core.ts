// The LLM core: models, policies and backends, with no HTTP routes of its own. Every request runs the same
// composed stages over one context: gate (scopes, limits; settles usage afterwards) → batch (embeddings) →
// cache → coalesce → route (backends, retries, fallbacks). The /v1 front hands it HTTP requests; the sampling
// bridge and the tool-running chat call it in-process (complete, completeStream), through the gate and the router.
import type { LlmConfig } from '../config/llm-schema.js';
import { McplexError, errorMessage } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics.js';
import type { Principal } from '../policy/auth/keys.js';
import { scopeCheck } from '../policy/auth/scopes.js';
import { createResponseCache } from '../policy/cache/response-cache.js';
import type { Policy } from '../policy/policy.js';
import { createMemoryStore } from '../store/memory/memory-store.js';
import type { Coordination, Leases } from '../store/coordination.js';
import { createCoalescer } from './batching/coalescer.js';
import { createFillLock } from './stages/fill-lock.js';
import type { CacheStore, LimitStore } from '../store/store.js';
import { safeJson } from '../wire/json.js';
import { createSseParser } from '../wire/sse.js';
import { bufferedError, llmFailure } from './openai-errors.js';
import { compose } from './pipeline.js';
import type { LlmContext, Stage } from './pipeline.js';
import { createRouter } from './router.js';
import type { Route } from './router.js';
import { bufferSink } from './sink.js';
import type { Sink } from './sink.js';
import { createBatchStage } from './stages/batch.js';
import { createCacheStage } from './stages/cache.js';
import { createCoalesceStage } from './stages/coalesce.js';
import { createGateStage } from './stages/gate.js';
import type { RequestNotes } from './stages/gate.js';
import { createRouteStage } from './stages/route.js';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, OpenAiErrorBody } from './types.js';
import type { TraceParent } from '../telemetry/tracing.js';

export interface LlmCoreOptions {
  logger: Logger;
  metrics: Metrics;
  /** Keys, scopes, limits and usage; without it every request is anonymous and unlimited. */
  policy?: Policy | undefined;
  /** The cache every replica shares (Redis), for `cache.store: "redis"`. */
  sharedCache?: CacheStore | undefined;
  /** Leases every replica shares (Redis): each deployment's `maxConcurrent` then holds across all of them. */
  leases?: Leases | undefined;
  /**
   * The coordination every replica shares (Redis): with the shared cache, identical requests on different
   * replicas then cause one backend call (the cache's fill lock).
   */
  coordination?: Coordination | undefined;
  leaseTtlMs?: number;
  /** Where deployments' own rpm/tpm budgets are counted (Redis, else the store, else this process). */
  budgets?: LimitStore | undefined;
  /** The recent-requests log: every request the gate sees, with its status, latency and tokens. */
  requestLog?: RequestNotes | undefined;
}

export interface LlmCore {
  /** Answers a validated request into `ctx.sink` through every stage: gate, batch, cache, coalesce, route. */
  serve(ctx: LlmContext): Promise<void>;
  /** The gate and the router only: for answers that must come from a backend (a stored conversation's turn). */
  serveDirect(ctx: LlmContext): Promise<void>;
  /** A chat completion for a caller inside mcplex, under `principal`'s scopes and limits. */
  complete(principal: Principal, request: ChatCompletionRequest, trace?: TraceParent): Promise<ChatCompletion>;
  /**
   * The same, streamed: chunks reach `onChunk` as they arrive (Anthropic streams translated as on /v1). Throws a
   * McplexError when it is refused or fails, also when the stream breaks after it began.
   */
  completeStream(
    principal: Principal,
    request: ChatCompletionRequest,
    onChunk: (chunk: ChatCompletionChunk) => void,
    trace?: TraceParent,
  ): Promise<void>;
  /** Public model names a principal may use, canonical names first. */
  modelsFor(principal: Principal): string[];
  /** Public model names (aliases included). */
  modelNames(): string[];
  close(): Promise<void>;
}

/** Refuses a request body the stages cannot work with, naming the parameter. */
export function validateRequest(route: Route, body: Record<string, unknown>): void {
  const bad = (param: string, message: string) => {
    throw new McplexError('LLM_BAD_REQUEST', message, { data: { param } });
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

export function createLlmCore(config: LlmConfig, options: LlmCoreOptions): LlmCore {
  const { logger, metrics, policy } = options;
  const router = createRouter(config, {
    logger,
    metrics,
    leases: options.leases,
    budgets: options.budgets,
    ...(options.leaseTtlMs === undefined ? {} : { leaseTtlMs: options.leaseTtlMs }),
  });
  const { routes, byName } = router;
  const gate = createGateStage({ byName, metrics, policy, requestLog: options.requestLog });
  const route = createRouteStage(router);
  const batch =
    config.batching.windowMs > 0
      ? createBatchStage({ windowMs: config.batching.windowMs, maxInputs: config.batching.maxInputs, router })
      : undefined;
  const stages: Stage[] = [gate];
  // Batched embeddings are answered from their batch, before the cache is asked.
  if (batch) stages.push(batch.stage);
  if (config.cache.enabled) {
    const chosen =
      config.cache.store === 'redis'
        ? options.sharedCache
        : config.cache.store === 'store'
          ? policy?.store.cache
          : undefined;
    const cache = createResponseCache(chosen ?? createMemoryStore({ maxCacheBytes: config.cache.maxBytes }).cache, {
      ttlMs: config.cache.ttlMs,
      onError: (error) => logger.warn({ err: errorMessage(error) }, 'cache failed'),
    });
    // Coalescing shares the answers the cache may keep: it needs the cache's share key, and keeps the answer
    // the cache saves.
    const coalescer = createCoalescer();
    const fill =
      config.cache.store === 'redis' && options.coordination
        ? {
            lock: createFillLock({ coordination: options.coordination, ttlMs: options.leaseTtlMs ?? 30_000 }),
            fillsHere: (shareKey: string) => coalescer.get(shareKey) !== undefined,
          }
        : undefined;
    stages.push(
      createCacheStage({ cache, shared: config.cache.shared, logger, metrics, fill }),
      createCoalesceStage(coalescer),
    );
  }
  stages.push(route);
  const serve = compose(stages);
  const serveDirect = compose([gate, route]);
  let sequence = 0;

  /** A context for a caller inside mcplex: no HTTP exchange, headers dropped. */
  function internal(principal: Principal, body: Record<string, unknown>, sink: Sink, trace?: TraceParent): LlmContext {
    validateRequest('chat', body);
    return {
      route: 'chat',
      // mcplex's own model calls: a server's sampling request, or a step of a tool-running chat.
      metricRoute: principal.kind === 'server' ? 'sampling' : 'agent',
      body,
      principal,
      requested: body.model as string,
      requestId: `internal-${++sequence}`,
      started: performance.now(),
      sink,
      setHeader: () => {},
      ...(trace ? { trace } : {}),
    };
  }

  async function complete(
    principal: Principal,
    request: ChatCompletionRequest,
    trace?: TraceParent,
  ): Promise<ChatCompletion> {
    const sink = bufferSink();
    await serveDirect(internal(principal, { ...request, stream: false }, sink, trace));
    const text = sink.text();
    if (sink.status !== 200) throw llmFailure(sink.status ?? 502, bufferedError(text));
    return JSON.parse(text) as ChatCompletion;
  }

  async function completeStream(
    principal: Principal,
    request: ChatCompletionRequest,
    onChunk: (chunk: ChatCompletionChunk) => void,
    trace?: TraceParent,
  ): Promise<void> {
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
    const body = { ...request, stream: true, stream_options: { include_usage: true } };
    await serveDirect(internal(principal, body, sink, trace));
    if (status !== 200) throw llmFailure(status ?? 502, bufferedError(errorText));
    if (broken) throw llmFailure(502, broken);
  }

  return {
    serve,
    serveDirect,
    complete,
    completeStream,
    modelsFor(principal) {
      const scope = scopeCheck(principal.scopes);
      const canonical = [...routes.keys()].filter((name) => scope.model(name));
      const aliases = [...byName.entries()]
        .filter(([id, model]) => id !== model.name && scope.model(id, model.name))
        .map(([id]) => id);
      return [...canonical, ...aliases];
    },
    modelNames: () => [...byName.keys()],
    async close() {
      batch?.flush();
      await router.close();
    },
  };
}
