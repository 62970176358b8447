// The OpenAI-compatible HTTP API: /v1/chat/completions (plain and streamed), /v1/embeddings, /v1/models and
// /v1/conversations. It authenticates, reads and validates the request, and hands it on: a chat naming a stored
// conversation to the conversation turns, one carrying the `mcp` extension to the tool-running chat, and every
// other request to the LLM core's stages. Errors become OpenAI error JSON here, and only here.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AgentRunner } from '../../agent/agent.js';
import type { Metrics } from '../../metrics.js';
import { McplexError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import type { LlmCore } from '../../llm/core.js';
import { validateRequest } from '../../llm/core.js';
import { openAiError, toOpenAiError, unauthorized } from '../../llm/openai-errors.js';
import type { Route } from '../../llm/router.js';
import { responseSink } from '../../llm/sink.js';
import { authAnswer } from '../../policy/auth/challenge.js';
import { ANONYMOUS } from '../../policy/auth/keys.js';
import type { Principal } from '../../policy/auth/keys.js';
import type { Policy } from '../../policy/policy.js';
import { readBody } from '../../wire/body.js';
import { isClientAbort } from '../../wire/client-abort.js';
import { assertJsonContentType, parseJsonObject, sendJson } from '../../wire/json.js';
import { createConversationTurns } from './conversation-turns.js';
import { handleConversations } from './conversations.js';
import { OVERHEAD_HEADER, overheadSince } from '../../llm/overhead.js';
import { currentTracing } from '../../telemetry/tracing.js';

export interface V1ApiOptions {
  core: LlmCore;
  /** The tool-running chat, for chat requests with an `mcp` field; without it such requests are refused. */
  agent?: AgentRunner | undefined;
  /** Keys, scopes, limits and usage; without it every request is anonymous and unlimited. */
  policy?: Policy | undefined;
  logger: Logger;
  maxBodyBytes: number;
  /** Where a tool-running chat is counted once, as the client's one request (its model calls count as `agent`). */
  metrics?: Metrics | undefined;
}

export interface V1Api {
  /** Serves a /v1 request; false when the path is none of its routes. */
  handle(req: IncomingMessage, res: ServerResponse, path: string, started: number): Promise<boolean>;
}

export function createV1Api(options: V1ApiOptions): V1Api {
  const { core, policy, logger, metrics } = options;
  const known = new Set(core.modelNames());
  const agent: AgentRunner | undefined =
    options.agent && metrics
      ? countedAgent(options.agent, (model, status) =>
          // A name no model has is the caller's text: as a label it would add a series per made-up name.
          metrics.llmRequests.inc({ route: 'chat', model: known.has(model) ? model : '', deployment: 'agent', status }),
        )
      : options.agent;
  const store = policy?.store;
  const serveConversation = createConversationTurns({ core, agent, conversations: store?.conversations });
  const created = Math.floor(Date.now() / 1000);
  // Request ids: the client's x-request-id when it sends a sane one, else this process's prefix and a counter.
  const idPrefix = randomBytes(4).toString('hex');
  let sequence = 0;

  function models(res: ServerResponse, principal: Principal): void {
    const data = core
      .modelsFor(principal)
      .sort()
      .map((id) => ({ id, object: 'model', created, owned_by: 'mcplex' }));
    sendJson(res, 200, { object: 'list', data });
  }

  async function serve(
    route: Route,
    req: IncomingMessage,
    res: ServerResponse,
    started: number,
    requestId: string,
    principal: Principal,
  ): Promise<void> {
    assertJsonContentType(req);
    const raw = await readBody(req, options.maxBodyBytes);
    const body = parseJsonObject(raw);
    validateRequest(route, body);
    const tracing = currentTracing();
    const trace = tracing?.parentOf(res);
    if (tracing) tracing.llmRequestBody(trace, body);
    if (route === 'chat' && body.conversation !== undefined && body.conversation !== null) {
      await serveConversation({ body, res, started, requestId, principal });
      return;
    }
    if (route === 'chat' && body.mcp !== undefined && body.mcp !== null) {
      if (!agent) throw new McplexError('LLM_BAD_REQUEST', 'the mcp extension is not available');
      await agent(principal, body, res);
      return;
    }
    await core.serve({
      route,
      body,
      raw,
      principal,
      requested: body.model as string,
      requestId,
      started,
      sink: responseSink(res),
      setHeader: (name, value) => void res.setHeader(name, value),
      http: { req, res },
      ...(trace ? { trace } : {}),
    });
  }

  async function handle(req: IncomingMessage, res: ServerResponse, path: string, started: number): Promise<boolean> {
    const tracing = currentTracing();
    const operation =
      tracing && req.method === 'POST'
        ? path === '/v1/chat/completions'
          ? 'chat'
          : path === '/v1/embeddings'
            ? 'embeddings'
            : undefined
        : undefined;
    if (tracing && operation) {
      await tracing.llmRequest(
        req,
        res,
        operation,
        started,
        async () => void (await handleUntraced(req, res, path, started)),
      );
      return true;
    }
    return handleUntraced(req, res, path, started);
  }

  async function handleUntraced(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    started: number,
  ): Promise<boolean> {
    const given = req.headers['x-request-id'];
    const requestId = typeof given === 'string' && /^[\w.:-]{1,128}$/.test(given) ? given : `${idPrefix}-${++sequence}`;
    res.setHeader('x-request-id', requestId);
    try {
      if (!path.startsWith('/v1/')) return false;
      const auth = policy ? await policy.authenticate(req) : ({ ok: true, principal: ANONYMOUS } as const);
      if (!auth.ok) {
        const answer = authAnswer(auth, '/v1', policy?.oauth);
        if (answer.challenge !== undefined) res.setHeader('www-authenticate', answer.challenge);
        const keyFailure = answer.status === 401 && auth.message === undefined && auth.reason !== 'invalid_token';
        sendJson(
          res,
          answer.status,
          keyFailure ? unauthorized(auth.reason) : openAiError(answer.status, answer.message, 'invalid_request_error'),
        );
        return true;
      }
      const principal = auth.principal;
      if (store && (await handleConversations(req, res, path, principal, store.conversations, options.maxBodyBytes))) {
        return true;
      }
      if (path === '/v1/models' && req.method === 'GET') {
        res.setHeader(OVERHEAD_HEADER, overheadSince(started));
        models(res, principal);
      } else if (path === '/v1/chat/completions' && req.method === 'POST') {
        await serve('chat', req, res, started, requestId, principal);
      } else if (path === '/v1/embeddings' && req.method === 'POST') {
        await serve('embeddings', req, res, started, requestId, principal);
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
      if (!(error instanceof McplexError)) {
        logger.error({ err: errorMessage(error), path, requestId }, 'LLM request failed');
      }
      const { status, body } = toOpenAiError(error);
      if (!res.headersSent) res.setHeader(OVERHEAD_HEADER, overheadSince(started));
      sendJson(res, status, body);
    }
    return true;
  }

  return { handle };
}

/** The tool-running chat, counted once per client request when it has answered (or failed). */
function countedAgent(run: AgentRunner, count: (model: string, status: string) => void): AgentRunner {
  return async (principal, body, res, turn) => {
    try {
      await run(principal, body, res, turn);
    } finally {
      count(typeof body.model === 'string' ? body.model : '', String(res.headersSent ? res.statusCode : 500));
    }
  };
}
