// The aggregated server over Streamable HTTP in both protocol eras: 2025-11-25 clients get sessions
// (Mcp-Session-Id, GET stream, DELETE, resumable SSE); 2026-07-28 clients are served statelessly per request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { classifyInboundRequest, createMcpHandler, isInitializeRequest } from '@modelcontextprotocol/server';
import type { AuthInfo, Server } from '@modelcontextprotocol/server';
import type { Logger } from '../../log/logger.js';
import type { Catalog, ListChanges } from '../catalog/catalog.js';
import { markOpenEnded } from '../../wire/open-ended.js';
import { sendJsonRpcError } from '../../wire/json.js';
import { fastToolCall, plainModernToolCall, serveFastToolCall } from './fast-tool-call.js';
import { createLegacySessions } from './legacy-sessions.js';
import type { SessionLimits } from './legacy-sessions.js';
import type { SessionSubscriptions } from './aggregate-server.js';
import type { SessionDirectory } from '../../store/sessions.js';
import type { PubSub } from '../../store/coordination.js';
import type { FastToolCall } from './fast-tool-call.js';
import { checkParamHeaders, paramHeaders } from './param-headers.js';
import { invalidParams } from './request-params.js';
import type { Subscriptions } from './subscriptions.js';
import type { Principal } from '../../policy/auth/keys.js';
import { ANONYMOUS } from '../../policy/auth/keys.js';
import { scopeCheck } from '../../policy/auth/scopes.js';
import type { ScopeRequirements } from '../../policy/auth/required-scopes.js';
import type { AdmitCall } from '../../policy/limits/mcp-call-limits.js';
import { timedAdmit } from '../../policy/limits/mcp-call-limits.js';

export type { SessionLimits } from './legacy-sessions.js';

export interface McpHttpEndpointOptions {
  /**
   * An aggregated server for one request, showing what `principal` may reach; a request of a 2025-11-25 session
   * passes the session's subscriptions.
   */
  createServer: (era: 'legacy' | 'modern', principal: Principal, session?: SessionSubscriptions) => Server;
  catalog: Catalog;
  /** Where 2026-07-28 listen streams subscribe to resources (2025-11-25 sessions subscribe through their server). */
  subscriptions?: Subscriptions;
  logger: Logger;
  /** Legacy sessions: how many, for how long, and what each keeps for resumption. */
  sessions: SessionLimits;
  /** Where legacy sessions live: this process, or Redis for every replica. */
  directory: SessionDirectory;
  /** This process's name among the replicas. */
  replica: string;
  /** Messages between the replicas about sessions; without it each process hears only itself. */
  pubsub?: PubSub;
  /** Whether a replica is alive. Default: this one only. */
  alive?: (replica: string) => boolean;
  /** How many URIs one 2026-07-28 listen request may name. */
  maxSubscriptions: number;
  /**
   * OAuth scopes calls need per server and tool (`auth.oauth.serverScopes`, `toolScopes`), and how a request short
   * of them is refused (403 insufficient_scope, the challenge naming what it needs).
   */
  scopes?: { requirements: ScopeRequirements; refuse(res: ServerResponse, needed: readonly string[]): void };
  /** Admits the calls of `principal` that reach an upstream (the fast path's; the SDK path's come with the server). */
  admitFor?: (principal: Principal) => AdmitCall | undefined;
}

export interface McpHttpEndpoint {
  /** Serves POST /mcp with an already parsed body, for an authenticated principal. */
  post(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal): Promise<void>;
  /** Serves GET (standalone stream, resume) and DELETE (end session) /mcp. */
  sessionRequest(req: IncomingMessage, res: ServerResponse, principal: Principal): Promise<void>;
  notifyListChanged(changes: ListChanges): void;
  sessionCount(): Promise<number>;
  /** Sessions with a stream open or a request in progress on this process. */
  sessionsInUse(): number;
  /** What the sessions' replay buffers hold now (JSON characters). */
  replayBytes(): Promise<number>;
  close(): Promise<void>;
}

/**
 * The answer to a 2026-07-28 tools/call whose `Mcp-Param-*` headers disagree with its arguments (HTTP 400,
 * -32020), or false when they agree or the tool declares none.
 */
function rejectParamHeaders(catalog: Catalog, req: IncomingMessage, res: ServerResponse, body: unknown): boolean {
  const message = body as { id?: unknown; method?: unknown; params?: { name?: unknown; arguments?: unknown } };
  if (message.method !== 'tools/call' || typeof message.params?.name !== 'string') return false;
  // A request whose Mcp-Name disagrees with its body gets the SDK's own answer to that first.
  if (header(req, 'mcp-name') !== message.params.name) return false;
  const tool = catalog.tool(message.params.name);
  const declarations = tool ? paramHeaders(tool) : [];
  if (declarations.length === 0) return false;
  const rejection = checkParamHeaders(declarations, message.params.arguments, req.headers);
  if (rejection === undefined) return false;
  sendJsonRpcError(res, 400, rejection, message.id ?? null);
  return true;
}

/** The server (and exposed tool) a message's call goes to, when it is one that reaches an upstream. */
function callTarget(catalog: Catalog, message: unknown): { server: string; tool: string | undefined } | undefined {
  const { method, params } = (message ?? {}) as { method?: unknown; params?: { name?: unknown; uri?: unknown } };
  try {
    if (method === 'tools/call' && typeof params?.name === 'string') {
      return { server: catalog.resolveTool(params.name).upstream.key, tool: params.name };
    }
    if (method === 'prompts/get' && typeof params?.name === 'string') {
      return { server: catalog.resolvePrompt(params.name).upstream.key, tool: undefined };
    }
    if (method === 'resources/read' && typeof params?.uri === 'string') {
      return { server: catalog.resolveResource(params.uri).upstream.key, tool: undefined };
    }
  } catch {
    // Unknown names get their usual answer further on.
  }
  return undefined;
}

/**
 * Refuses a request (every message of a batch) whose calls need OAuth scopes the principal's token lacks, naming
 * all the scopes they need; false when it has them.
 */
function refusedScope(
  res: ServerResponse,
  body: unknown,
  principal: Principal,
  scopes: NonNullable<McpHttpEndpointOptions['scopes']>,
  catalog: Catalog,
): boolean {
  const needed = new Set<string>();
  for (const message of Array.isArray(body) ? body : [body]) {
    const target = callTarget(catalog, message);
    if (!target || scopes.requirements.missing(principal, target.server, target.tool).length === 0) continue;
    for (const scope of scopes.requirements.needed(target.server, target.tool)) needed.add(scope);
  }
  if (needed.size === 0) return false;
  scopes.refuse(res, [...needed]);
  return true;
}

/** The resource URIs a 2026-07-28 `subscriptions/listen` request asks to follow. */
function listenedUris(body: unknown): string[] {
  const message = body as { method?: unknown; params?: { notifications?: { resourceSubscriptions?: unknown } } };
  if (message.method !== 'subscriptions/listen') return [];
  const uris = message.params?.notifications?.resourceSubscriptions;
  return Array.isArray(uris) ? [...new Set(uris.filter((uri): uri is string => typeof uri === 'string'))] : [];
}

/** The SDK's pass-through auth info for a principal: its identity only, never a credential. */
function authInfoFor(principal: Principal): AuthInfo {
  return { token: '', clientId: principal.id, scopes: [], extra: { principal } };
}

function principalOf(info: AuthInfo | undefined): Principal {
  return (info?.extra?.principal as Principal | undefined) ?? ANONYMOUS;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export function createMcpHttpEndpoint(options: McpHttpEndpointOptions): McpHttpEndpoint {
  const { logger } = options;
  const limits = options.sessions;
  const sessions = createLegacySessions({
    createServer: (principal, session) => options.createServer('legacy', principal, session),
    catalog: options.catalog,
    ...(options.subscriptions ? { subscriptions: options.subscriptions } : {}),
    directory: options.directory,
    limits,
    maxSubscriptions: options.maxSubscriptions,
    logger,
    replica: options.replica,
    ...(options.pubsub ? { pubsub: options.pubsub } : {}),
    ...(options.alive ? { alive: options.alive } : {}),
    ...(options.admitFor ? { admitFor: options.admitFor } : {}),
  });
  // The principal rides on `req.auth` (the SDK's pass-through auth info) into the per-request factory.
  const modern = createMcpHandler((ctx) => options.createServer('modern', principalOf(ctx.authInfo)), {
    legacy: 'reject',
  });
  const modernNode = toNodeHandler(modern);
  // The SDK's listen router delivers an update to every stream that named its URI, so all listen streams share
  // this one function (the subscriptions call it once per update, however many streams hold the URI).
  const notifyListeners = (uri: string) => modern.notify.resourceUpdated(uri);

  /** Open 2026-07-28 listen streams per principal id. */
  const listens = new Map<string, number>();

  /** Counts a listen stream against its principal until it closes; false after answering 429 past the cap. */
  function holdListen(res: ServerResponse, principal: Principal): boolean {
    const held = listens.get(principal.id) ?? 0;
    if (principal.id !== ANONYMOUS.id && held >= limits.maxListensPerPrincipal) {
      sendJsonRpcError(res, 429, {
        code: -32000,
        message: `too many open subscriptions/listen streams for this key (${limits.maxListensPerPrincipal}); close some first`,
        data: { code: 'TOO_MANY_LISTENS', limit: limits.maxListensPerPrincipal },
      });
      return false;
    }
    listens.set(principal.id, held + 1);
    res.once('close', () => {
      const left = (listens.get(principal.id) ?? 1) - 1;
      if (left > 0) listens.set(principal.id, left);
      else listens.delete(principal.id);
    });
    return true;
  }

  /** Subscribes the URIs for a listen stream until its response closes; a URI nobody serves gets an error. */
  async function followListen(res: ServerResponse, uris: string[], principal: Principal): Promise<boolean> {
    const subscriptions = options.subscriptions;
    if (!subscriptions || uris.length === 0) return true;
    // The URIs come de-duplicated (listenedUris).
    const max = options.maxSubscriptions;
    if (uris.length > max) {
      sendJsonRpcError(res, 400, {
        code: -32602,
        message: `too many resource subscriptions: a listen request may name at most ${max} URIs`,
        data: { code: 'TOO_MANY_SUBSCRIPTIONS', limit: max },
      });
      return false;
    }
    const scope = scopeCheck(principal.scopes);
    if (!scope.unrestricted) {
      const hidden = uris.find((uri) => {
        try {
          return !scope.server(options.catalog.resolveResource(uri).upstream.key);
        } catch {
          return false;
        }
      });
      if (hidden !== undefined) {
        sendJsonRpcError(res, 404, { code: -32002, message: `unknown resource "${hidden}"` });
        return false;
      }
    }
    // This stream is one subscriber, released when its response closes: from the start, so that a client that
    // goes away while the upstream is still being subscribed leaves nothing behind.
    const subscriber = { notifyUpdated: notifyListeners };
    let closed = false;
    const release = () => {
      closed = true;
      subscriptions.drop(subscriber);
    };
    res.once('close', release);
    try {
      for (const uri of uris) {
        if (closed) break;
        await subscriptions.subscribe(uri, subscriber);
      }
    } catch (error) {
      const gone = closed;
      res.off('close', release);
      release();
      const message = error instanceof Error ? error.message : String(error);
      if (!gone) sendJsonRpcError(res, 404, { code: -32002, message });
      return false;
    }
    // A client that went away meanwhile was released at once; its stream is not served.
    return !closed;
  }

  /** Answers a request whose params do not fit its method's schema (-32602 naming the field); false when they do. */
  function refuseInvalid(res: ServerResponse, body: unknown, era: 'legacy' | 'modern'): boolean {
    // A batch goes to the SDK whole: answering for one member here would drop the others.
    const invalid = invalidParams(body, era);
    if (invalid === undefined) return false;
    // An error about the request itself, as the SDK's handlers answer one (HTTP 200, the error in the body).
    sendJsonRpcError(res, 200, invalid.error, invalid.id);
    return true;
  }

  async function legacy(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal): Promise<void> {
    const sessionId = header(req, 'mcp-session-id');
    if (sessionId !== undefined) {
      if (await sessions.serve(req, res, body, principal, sessionId)) return;
      // 404 tells a legacy client that its session is gone and it should initialise again.
      sendJsonRpcError(res, 404, { code: -32001, message: 'Session not found' });
      return;
    }
    if (req.method === 'POST' && isInitializeRequest(body)) {
      await sessions.open(req, res, body, principal);
      return;
    }
    if (req.method === 'POST' && refuseInvalid(res, body, 'legacy')) return;
    sendJsonRpcError(res, 400, { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' });
  }

  return {
    async post(req, res, body, principal) {
      if (principal.grants && options.scopes && refusedScope(res, body, principal, options.scopes, options.catalog))
        return;
      // Only 2025-era clients carry a session id: skip classification for the sessions we know.
      const sessionId = header(req, 'mcp-session-id');
      if (sessionId !== undefined && (await sessions.serve(req, res, body, principal, sessionId))) return;
      /** A modern tools/call without the SDK server, once its Mcp-Param-* headers agree with its arguments. */
      const serveModernCall = async (call: FastToolCall) => {
        if (rejectParamHeaders(options.catalog, req, res, body)) return;
        const admit = timedAdmit(options.admitFor?.(principal), res);
        await serveFastToolCall(
          options.catalog,
          call,
          'modern',
          res,
          new AbortController(),
          principal,
          undefined,
          admit,
        );
      };
      // The common modern call, recognised without classifying the whole body.
      const plain = plainModernToolCall(req, body);
      if (plain) {
        await serveModernCall(plain);
        return;
      }
      const outcome = classifyInboundRequest({
        httpMethod: 'POST',
        body,
        protocolVersionHeader: header(req, 'mcp-protocol-version'),
        mcpMethodHeader: header(req, 'mcp-method'),
        mcpNameHeader: header(req, 'mcp-name'),
      });
      if (outcome.kind === 'legacy') {
        await legacy(req, res, body, principal);
        return;
      }
      if (outcome.kind === 'modern' && outcome.messageKind === 'request') {
        if ((body as { method?: unknown }).method === 'subscriptions/listen') {
          // A listen stays open for as long as the client likes: a drain does not wait for it, and one principal
          // may hold only so many at once.
          markOpenEnded(res);
          if (!holdListen(res, principal)) return;
        }
        const call = fastToolCall(req, body, 'modern');
        if (call) {
          await serveModernCall(call);
          return;
        }
        if (rejectParamHeaders(options.catalog, req, res, body)) return;
        if (!(await followListen(res, listenedUris(body), principal))) return;
      }
      if (refuseInvalid(res, body, 'modern')) return;
      // Other modern requests, and malformed ones, which the modern entry answers with the right error.
      (req as IncomingMessage & { auth?: AuthInfo }).auth = authInfoFor(principal);
      await modernNode(req, res, body);
    },
    async sessionRequest(req, res, principal) {
      await legacy(req, res, undefined, principal);
    },
    notifyListChanged(changes) {
      if (changes.tools) modern.notify.toolsChanged();
      if (changes.resources) modern.notify.resourcesChanged();
      if (changes.prompts) modern.notify.promptsChanged();
      sessions.notifyListChanged(changes);
    },
    sessionCount: () => sessions.count(),
    sessionsInUse: () => sessions.inUse(),
    replayBytes: () => sessions.logBytes(),
    async close() {
      await sessions.close();
      await modern.close();
    },
  };
}
