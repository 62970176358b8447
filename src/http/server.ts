// The HTTP ingress: routes /mcp, /healthz and /readyz, applies the Host/Origin guards and the body limit,
// and turns every failure into a response in one place. The process never goes down on bad input.
import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import {
  isJsonContentType,
  localhostAllowedHostnames,
  localhostAllowedOrigins,
  validateHostHeader,
  validateOriginHeader,
} from '@modelcontextprotocol/server';
import type { Logger } from '../log/logger.js';
import type { SignInPages } from './sign-in-pages.js';
import { McplexError, errorMessage } from '../errors.js';
import { StoreError } from '../store/store.js';
import type { McpHttpEndpoint } from '../mcp/downstream/http-endpoint.js';
import type { V1Api } from './v1/v1-api.js';
import type { Metrics } from '../metrics.js';
import { children } from '../metrics.js';
import type { Policy } from '../policy/policy.js';
import { authAnswer } from '../policy/auth/challenge.js';
import type { Principal } from '../policy/auth/keys.js';
import { ANONYMOUS } from '../policy/auth/keys.js';
import { readBody } from '../wire/body.js';
import { TOO_DEEP, sendJson, sendJsonRpcError, tooDeep } from '../wire/json.js';
import { handleAdmin } from './admin.js';
import type { AdminConnections, AdminOptions, AdminServers } from './admin.js';
import { loadConsole } from './console.js';
import { createDrain } from './drain.js';
import { markOpenEnded } from '../wire/open-ended.js';
import { limitConnections } from './connection-limits.js';
import { isClientAbort } from '../wire/client-abort.js';
import { openAiError } from '../llm/openai-errors.js';
import { upstreamTime } from '../wire/upstream-time.js';
import { currentTracing } from '../telemetry/tracing.js';

/** RFC 9728 protected-resource metadata: the root document and one per resource path (`/mcp`, `/v1`). */
const WELL_KNOWN_RESOURCE = '/.well-known/oauth-protected-resource';
export interface HttpServerOptions {
  /** The address mcplex listens on; it is always an acceptable Host. */
  host: string;
  maxBodyBytes: number;
  allowedHosts: readonly string[];
  allowedOrigins: readonly string[];
  logger: Logger;
  mcp: McpHttpEndpoint;
  /** The OpenAI-compatible API under /v1. */
  llm?: V1Api;
  /** Served on GET /metrics in the Prometheus text format. */
  metrics?: Metrics;
  /** Who may use /mcp (API keys); without it every request is anonymous. */
  policy?: Policy;
  /** How long a client may take to send its headers and its whole request, and to keep an idle connection. */
  timeouts: { headersMs: number; requestMs: number; keepAliveMs: number };
  /** Open connections in all, and from one client address (off unless set). */
  maxConnections: number;
  maxConnectionsPerAddress?: number | undefined;
  /**
   * Resolves once every upstream has had its first connection attempt (each bounded by its startup timeout): /mcp
   * requests wait for it, so that a replica that has just started (behind a balancer that sends it traffic at once)
   * answers with the whole catalog rather than an empty one.
   */
  mcpReady?: () => Promise<void>;
  /** This replica's name, sent with every answer (`x-mcplex-replica`). */
  replica?: string;
  /** The live replicas, for GET /admin/cluster. */
  cluster?: () => Promise<unknown>;
  /** The MCP servers, for GET /admin/servers and POST /admin/servers/<name>/restart. */
  servers?: AdminServers;
  /** The recent-requests log, for GET /admin/requests. */
  requests?: AdminOptions['requests'];
  /** Usage per time bucket, for GET /admin/usage/series. */
  usageSeries?: AdminOptions['usageSeries'];
  /** The web console under /ui/ (on unless false). */
  console?: boolean;
  /** The sign-in pages of upstreams that sign each principal in (under /oauth/). */
  signIn?: SignInPages;
  /** Principals' sign-ins to those upstreams, for /admin/connections. */
  connections?: AdminConnections;
  /** Readiness report for GET /readyz: ready decides the status code, the rest is the body. */
  readiness: () => Promise<{ ready: boolean; body: unknown }>;
  /** With API keys, a token besides an admin key for /metrics and the details of /readyz. */
  metricsToken?: string | undefined;
}

/** The listener, with a graceful shutdown. */
export interface McplexHttpServer extends HttpServer {
  /** Stops accepting connections and waits up to `timeoutMs` for the requests in progress; see drain.ts. */
  drain(timeoutMs: number): Promise<boolean>;
  /** Whether /ui/ serves the console (it is on and built). */
  readonly console: boolean;
}

/** The JSON-RPC methods of MCP, as metric labels; anything else a client sends is "other". */
const MCP_METHODS = new Set([
  'initialize',
  'ping',
  'server/discover',
  'tools/list',
  'tools/call',
  'resources/list',
  'resources/templates/list',
  'resources/read',
  'resources/subscribe',
  'resources/unsubscribe',
  'subscriptions/listen',
  'prompts/list',
  'prompts/get',
  'completion/complete',
  'logging/setLevel',
]);

function methodLabel(method: unknown): string {
  if (typeof method !== 'string') return 'response';
  if (method.startsWith('notifications/')) return 'notification';
  return MCP_METHODS.has(method) ? method : 'other';
}

/** Compares a presented secret with the expected one in time independent of where they differ. */
function sameSecret(presented: string, expected: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

export function createHttpServer(options: HttpServerOptions): McplexHttpServer {
  const { logger, mcp } = options;
  const boundHost = options.host.includes(':') && !options.host.startsWith('[') ? `[${options.host}]` : options.host;
  const hosts = [...localhostAllowedHostnames(), boundHost, ...options.allowedHosts];
  const origins = [...localhostAllowedOrigins(), ...options.allowedOrigins];
  // Host values already accepted skip the SDK check (it parses a URL per request); the set stays small.
  const acceptedHosts = new Set<string>();

  /**
   * Why a request is refused by the DNS-rebinding guards (its Host, and its Origin when `origin`), or undefined;
   * each route answers the refusal (403) in its own error shape.
   */
  function refusal(req: IncomingMessage, origin: boolean): string | undefined {
    const host = req.headers.host;
    if (host === undefined || !acceptedHosts.has(host)) {
      const checked = validateHostHeader(host, hosts);
      if (!checked.ok) return checked.message;
      if (host !== undefined && acceptedHosts.size < 64) acceptedHosts.add(host);
    }
    if (!origin || req.headers.origin === undefined) return undefined;
    const checked = validateOriginHeader(req.headers.origin, origins);
    return checked.ok ? undefined : checked.message;
  }
  const guarded = (
    req: IncomingMessage,
    res: ServerResponse,
    origin: boolean,
    shape: 'json-rpc' | 'openai' | 'plain',
  ) => {
    const reason = refusal(req, origin);
    if (reason === undefined) return true;
    if (shape === 'json-rpc') sendJsonRpcError(res, 403, { code: -32000, message: reason });
    else if (shape === 'openai') sendJson(res, 403, openAiError(403, reason));
    else sendJson(res, 403, { error: { code: 'FORBIDDEN', message: reason } });
    return false;
  };

  /**
   * The caller of an /mcp request, or undefined after answering 401 or 403 (with a Bearer challenge; with OAuth,
   * the protected-resource metadata's URL in it), 400 for a credential in the query, 503 when a token's issuer
   * cannot be reached.
   */
  async function mcpPrincipal(req: IncomingMessage, res: ServerResponse): Promise<Principal | undefined> {
    if (!options.policy) return ANONYMOUS;
    const auth = await options.policy.authenticate(req);
    if (auth.ok) return auth.principal;
    const answer = authAnswer(auth, '/mcp', options.policy.oauth);
    if (answer.challenge !== undefined) res.setHeader('www-authenticate', answer.challenge);
    sendJsonRpcError(res, answer.status, { code: -32001, message: answer.message });
    return undefined;
  }

  /**
   * Whether the caller may see the operator's views (/metrics, the details of /readyz): anyone in keyless mode
   * (loopback only), else an admin key or the metrics token.
   */
  async function operatorAccess(req: IncomingMessage): Promise<'ok' | 'missing' | 'refused'> {
    const { policy, metricsToken } = options;
    if (!policy || policy.mode === 'none') return 'ok';
    const header = req.headers.authorization;
    if (header === undefined && req.headers['x-api-key'] === undefined) return 'missing';
    if (metricsToken !== undefined && header !== undefined && sameSecret(header, `Bearer ${metricsToken}`)) {
      return 'ok';
    }
    const auth = await policy.authenticate(req);
    return auth.ok && auth.principal.scopes.admin === true ? 'ok' : 'refused';
  }

  const { metrics } = options;
  const requestTimer = metrics && children((method) => metrics.mcpRequestSeconds.labels({ method }));
  const overheadTimer = metrics && children((method) => metrics.mcpOverheadSeconds.labels({ method }));
  /**
   * Observes an /mcp request's whole time under its method (a bounded label: unknown methods are "other"), and
   * mcplex's share of it when the request waited on an upstream.
   */
  function timeMcp(res: ServerResponse, body: unknown, started: number): void {
    if (!requestTimer || !overheadTimer) return;
    const method = Array.isArray(body) ? 'batch' : methodLabel((body as { method?: unknown } | null)?.method);
    const observed = requestTimer(method);
    res.once('close', () => {
      const took = performance.now() - started;
      observed.observe(took / 1000);
      const upstream = upstreamTime(res);
      if (upstream !== undefined) overheadTimer(method).observe(Math.max(0, took - upstream) / 1000);
    });
  }

  const consoleFiles = options.console === false ? undefined : loadConsole();
  const admin: AdminOptions | undefined = options.policy && {
    policy: options.policy,
    maxBodyBytes: options.maxBodyBytes,
    replica: options.replica,
    cluster: options.cluster,
    servers: options.servers,
    ...(options.requests ? { requests: options.requests } : {}),
    ...(options.usageSeries ? { usageSeries: options.usageSeries } : {}),
    ...(options.connections ? { connections: options.connections } : {}),
  };

  let mcpReady = options.mcpReady === undefined;
  async function handleMcp(req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    if (!guarded(req, res, true, 'json-rpc')) return;
    if (!mcpReady) {
      await options.mcpReady?.();
      mcpReady = true;
    }
    const principal = await mcpPrincipal(req, res);
    if (!principal) return;
    if (req.method === 'GET' || req.method === 'DELETE') {
      // A GET is a notification stream, open for as long as the client likes: a drain does not wait for it.
      if (req.method === 'GET') markOpenEnded(res);
      await mcp.sessionRequest(req, res, principal);
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('allow', 'GET, POST, DELETE');
      sendJsonRpcError(res, 405, { code: -32000, message: `method ${req.method} is not allowed on /mcp` });
      return;
    }
    if (!isJsonContentType(req.headers['content-type'])) {
      sendJsonRpcError(res, 415, {
        code: -32000,
        message: 'Unsupported Media Type: Content-Type must be application/json',
      });
      return;
    }
    const raw = await readBody(req, options.maxBodyBytes);
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch (error) {
      sendJsonRpcError(res, 400, { code: -32700, message: `Parse error: ${errorMessage(error)}` });
      return;
    }
    // Refused here, with or without a session, before any code walks the message.
    if (Array.isArray(body) && body.length === 0) {
      sendJsonRpcError(res, 400, { code: -32600, message: 'Invalid Request: empty JSON-RPC batch' });
      return;
    }
    if (tooDeep(raw, body)) {
      sendJsonRpcError(res, 400, { code: -32600, message: `Invalid Request: ${TOO_DEEP}` });
      return;
    }
    timeMcp(res, body, started);
    const tracing = currentTracing();
    if (tracing) return tracing.mcpRequest(req, res, body, started, () => mcp.post(req, res, body, principal));
    await mcp.post(req, res, body, principal);
  }

  async function route(req: IncomingMessage, res: ServerResponse, started: number): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    if (path === '/mcp') return handleMcp(req, res, started);
    if (path.startsWith('/v1/') && options.llm) {
      // The same DNS-rebinding guards as /mcp: a web page must not spend this host's LLM budget.
      if (!guarded(req, res, true, 'openai')) return;
      if (await options.llm.handle(req, res, path, started)) return;
    }
    if (path.startsWith('/admin/') && admin) {
      if (!guarded(req, res, true, 'openai')) return;
      return handleAdmin(req, res, path, admin);
    }
    // Pages for a person's browser, reached from links mcplex gave its clients: the Host is checked; the consent
    // form checks its own origin and CSRF token.
    if (path.startsWith('/oauth/') && options.signIn) {
      if (!guarded(req, res, false, 'plain')) return;
      if (await options.signIn.handle(req, res, path)) return;
    }
    if (
      (path === '/ui' || path.startsWith('/ui/')) &&
      consoleFiles &&
      (req.method === 'GET' || req.method === 'HEAD')
    ) {
      if (!guarded(req, res, false, 'plain')) return;
      return consoleFiles.serve(path, res);
    }
    if (path === '/metrics' && req.method === 'GET' && options.metrics) {
      if (!guarded(req, res, false, 'plain')) return;
      const access = await operatorAccess(req);
      if (access !== 'ok') {
        const status = access === 'missing' ? 401 : 403;
        if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="mcplex"');
        const message =
          status === 401
            ? 'metrics need an admin API key or the metrics token (Authorization: Bearer …)'
            : 'metrics need an admin API key or the metrics token';
        return sendJson(res, status, { error: { code: status === 401 ? 'UNAUTHORIZED' : 'FORBIDDEN', message } });
      }
      const text = await options.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': options.metrics.registry.contentType });
      res.end(text);
      return;
    }
    if (path === '/healthz' && req.method === 'GET') return sendJson(res, 200, { status: 'ok' });
    if (path.startsWith(WELL_KNOWN_RESOURCE) && req.method === 'GET') {
      const oauth = options.policy?.oauth;
      const resource = path.slice(WELL_KNOWN_RESOURCE.length);
      if (oauth && (resource === '' || resource === '/mcp' || resource === '/v1')) {
        // Public, and read by browser-based clients: any origin may fetch it.
        res.setHeader('access-control-allow-origin', '*');
        res.setHeader('cache-control', 'max-age=300');
        // The root document names the base URL, which covers /mcp and /v1 (tokens for it are accepted on both).
        return sendJson(res, 200, oauth.metadata(resource));
      }
    }
    if (path === '/readyz' && req.method === 'GET') {
      // Server names, pids and errors are for this host's operators, not for a rebinding web page.
      if (!guarded(req, res, false, 'plain')) return;
      const { ready, body } = await options.readiness();
      // A balancer needs only the status; the servers, their pids and errors are for an admin or the metrics token.
      if ((await operatorAccess(req)) !== 'ok') return sendJson(res, ready ? 200 : 503, { ready });
      return sendJson(res, ready ? 200 : 503, body);
    }
    sendJson(res, 404, { error: { code: 'NOT_FOUND', message: `no route for ${req.method} ${path}` } });
  }

  const { headersMs, requestMs, keepAliveMs } = options.timeouts;
  const server = createServer(
    {
      headersTimeout: headersMs,
      requestTimeout: requestMs,
      keepAliveTimeout: keepAliveMs,
      // How often Node looks for requests past those timeouts (30 s by default, which would let a slow client
      // hold its socket for up to that much longer).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersMs / 4))),
    },
    (req, res) => {
      if (connections.refused(req.socket)) {
        req.socket.destroy();
        return;
      }
      drain.track(res);
      if (options.replica !== undefined) res.setHeader('x-mcplex-replica', options.replica);
      route(req, res, performance.now()).catch((error: unknown) => {
        if (error instanceof McplexError && error.code === 'BODY_TOO_LARGE') {
          // Stop reading: the client gets its answer and the connection is not reused for the rest of the body.
          res.setHeader('connection', 'close');
          sendJsonRpcError(res, 413, { code: -32600, message: error.message });
          return;
        }
        if (error instanceof StoreError && error.code === 'UNAVAILABLE') {
          // The shared state is away (Redis, PostgreSQL): a moment's outage, not a fault of mcplex or the client.
          logger.warn({ err: errorMessage(error), url: req.url }, 'request failed: the shared state is unavailable');
          if (!res.headersSent) {
            sendJsonRpcError(res, 503, { code: -32000, message: `unavailable: ${error.message}` });
          } else res.end();
          return;
        }
        if (isClientAbort(req, res)) logger.debug({ err: errorMessage(error), url: req.url }, 'client went away');
        else logger.error({ err: errorMessage(error), url: req.url }, 'request failed');
        if (!res.headersSent) sendJsonRpcError(res, 500, { code: -32603, message: 'Internal error' });
        else res.end();
      });
    },
  );
  const connections = limitConnections(server, {
    max: options.maxConnections,
    ...(options.maxConnectionsPerAddress === undefined ? {} : { perAddress: options.maxConnectionsPerAddress }),
  });
  const drain = createDrain(server);
  return Object.assign(server, {
    drain: (timeoutMs: number) => drain.drain(timeoutMs),
    console: consoleFiles?.built === true,
  });
}
