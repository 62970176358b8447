// The OpenAI-compatible API in front of the configured LLM backends: /v1/chat/completions (plain and streamed),
// /v1/embeddings and /v1/models. A request passes the policies (key, scopes, limits), is answered from the cache,
// joins an identical request in flight or an embedding batch, or goes to the router (router.ts); the same gate
// serves callers inside mcplex (the sampling bridge, the agent loop) through complete and completeStream.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { LlmConfig } from '../config/llm-schema.js';
import { McplexError, errorMessage } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics.js';
import { readBody } from '../wire/body.js';
import { isClientAbort } from '../wire/client-abort.js';
import { assertJsonContentType, parseJsonObject, safeJson, sendJson } from '../wire/json.js';
import { createSseParser } from '../wire/sse.js';
import { handleConversations } from './conversations.js';
import { bufferedError, openAiError, llmFailure, toOpenAiError, unauthorized } from './openai-errors.js';
import { createConversationTurns } from './conversation-turns.js';
import type { AgentRunner } from './conversation-turns.js';
import { createPolicyGate } from './policy-gate.js';
import { createRouter } from './router.js';
import type { ModelRoute, Route } from './router.js';
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
import type { Principal } from '../policy/auth/keys.js';
import { scopeCheck } from '../policy/auth/scopes.js';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, OpenAiErrorBody, Usage } from './types.js';

export interface LlmGatewayOptions {
  logger: Logger;
  metrics: Metrics;
  /** Keys, scopes, limits and usage; without it every request is anonymous and unlimited. */
  policy?: Policy;
  maxBodyBytes: number;
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
  /**
   * The /v1 API over this gateway, handing chat requests with an `mcp` field to `agent` (the tool-running chat,
   * built on this gateway; without it such requests are refused). Built last, so that nothing is bound late.
   */
  front(agent?: AgentRunner): V1Api;
  /** Public model names (aliases included). */
  modelNames(): string[];
  close(): Promise<void>;
}

/** The OpenAI-compatible HTTP API. */
export interface V1Api {
  /** Serves a /v1 request; false when the path is none of its routes. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, started: number): Promise<boolean>;
}

/** What the /v1 API adds over the gateway: the tool-running chat, and chat turns in stored conversations. */
interface Front {
  agent: AgentRunner | undefined;
  serveConversation: ReturnType<typeof createConversationTurns>;
}

export function createLlmGateway(config: LlmConfig, options: LlmGatewayOptions): LlmGateway {
  const { logger, metrics } = options;
  /** Request bodies as they arrived, by their parsed object. */
  const rawBodies = new WeakMap<object, Buffer>();
  const router = createRouter(config, { logger, metrics, rawBodies });
  const { routes, byName, routeRequest } = router;
  const { gate, settle } = createPolicyGate({ byName, metrics, ...(options.policy ? { policy: options.policy } : {}) });
  const created = Math.floor(Date.now() / 1000);
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
              throw new BatchFailure(sink.status ?? 502, bufferedError(text));
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
    assertJsonContentType(req);
    const raw = await readBody(req, options.maxBodyBytes);
    const parsed = parseJsonObject(raw);
    rawBodies.set(parsed, raw);
    return parsed;
  }

  function validate(route: Route, body: Record<string, unknown>): void {
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

  async function serve(
    route: Route,
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    requestId: string,
    principal: Principal,
    front: Front,
  ): Promise<void> {
    const body = await readJson(req);
    validate(route, body);
    if (route === 'chat' && body.conversation !== undefined && body.conversation !== null) {
      await front.serveConversation(body, res, started, requestId, principal);
      return;
    }
    if (route === 'chat' && body.mcp !== undefined && body.mcp !== null) {
      const agent = front.agent;
      if (!agent) throw new McplexError('LLM_BAD_REQUEST', 'the mcp extension is not available');
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
      throw llmFailure(sink.status ?? 502, bufferedError(text));
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
      throw llmFailure(status ?? 502, bufferedError(errorText));
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

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    started: number,
    front: Front,
  ): Promise<boolean> {
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : `${idPrefix}-${++sequence}`;
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
      if (store && (await handleConversations(req, res, path, principal, store.conversations, options.maxBodyBytes))) {
        return true;
      }
      if (path === '/v1/models' && req.method === 'GET') models(res, principal);
      else if (path === '/v1/chat/completions' && req.method === 'POST') {
        await serve('chat', req, res, started, requestId, principal, front);
      } else if (path === '/v1/embeddings' && req.method === 'POST') {
        await serve('embeddings', req, res, started, requestId, principal, front);
      } else {
        sendJson(res, 404, openAiError(404, `Unknown request URL: ${req.method} ${path}`, 'invalid_request_error'));
      }
    } catch (error) {
      if (!(error instanceof McplexError) && isClientAbort(req, res)) {
        logger.debug({ err: errorMessage(error), path, requestId }, 'client went away');
        res.destroy();
        return true;
      }
      if (error instanceof McplexError && error.code === 'BODY_TOO_LARGE') res.setHeader('connection', 'close');
      if (!(error instanceof McplexError))
        logger.error({ err: errorMessage(error), path, requestId }, 'LLM request failed');
      const { status, body } = toOpenAiError(error);
      sendJson(res, status, body);
    }
    return true;
  }

  return {
    front(agent) {
      const serveConversation = createConversationTurns({
        gate,
        settle,
        routeRequest,
        conversations: options.policy?.store.conversations,
        agent: () => agent,
      });
      const front: Front = { agent, serveConversation };
      return { handle: (req, res, path, started) => handle(req, res, path, started, front) };
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
      await router.close();
    },
  };
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
