// The aggregated MCP server that downstream clients talk to: one low-level SDK Server whose handlers
// answer lists from the catalog and forward calls, reads, gets and completions to the owning upstream.
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  ProtocolError,
  SERVER_INFO_META_KEY,
  Server,
  UrlElicitationRequiredError,
  inputRequired,
  isInputRequiredResult,
} from '@modelcontextprotocol/server';
import type { InputRequiredResult, ServerContext } from '@modelcontextprotocol/server';
import type { InputRounds } from '../bridge/input-rounds.js';
import type { Subscriptions } from './subscriptions.js';
import type { CallToolRequest, CallToolResult, Progress } from '@modelcontextprotocol/client';
import type { ClientCapabilities } from '@modelcontextprotocol/client';
import type { CallOptions, DownstreamRelay, LogMessage } from '../upstream/upstream.js';
import { ERRORS, McplexError } from '../../errors.js';
import type { Catalog } from '../catalog/catalog.js';
import { exposeContentUris } from '../catalog/catalog.js';
import { paginate } from './paginate.js';
import { scopeCheck } from '../../policy/auth/scopes.js';
import type { ScopeCheck } from '../../policy/auth/scopes.js';
import type { KeyScopes } from '../../store/store.js';
import { ANONYMOUS } from '../../policy/auth/keys.js';
import { admitted } from '../../policy/limits/mcp-call-limits.js';
import type { AdmitCall } from '../../policy/limits/mcp-call-limits.js';
import { scopedPrompt, scopedResource, scopedView } from './scoped-view.js';
import { unknownParamHeaders } from './param-headers.js';
import type { IncomingHttpHeaders } from 'node:http';
import { currentTracing } from '../../telemetry/tracing.js';

export interface AggregateServerOptions {
  name: string;
  /** What the client may reach (its API key's scopes); everything when absent. */
  scopes?: KeyScopes;
  /** Who the client is (a principal id): input-required rounds belong to it. */
  principal?: string;
  version: string;
  pageSize: number;
  /** Input-required rounds for 2026-07-28 clients; without it they cannot be asked anything. */
  rounds?: InputRounds;
  /** Resource subscriptions of legacy clients; without it subscribing is not offered. */
  subscriptions?: Subscriptions;
  /**
   * The subscriptions of the 2025-11-25 session this instance serves one request of: they outlive the instance, so
   * the session keeps them (and their count) rather than this instance.
   */
  session?: SessionSubscriptions;
  /** How many URIs this server's client may be subscribed to at once. */
  maxSubscriptions: number;
  instructions?: string;
  /** Admits each call that reaches an upstream under the caller's and the server's limits, and counts it. */
  admit?: AdmitCall;
}

export interface SessionSubscriptions {
  /** Subscribes the session to an exposed URI the caller may read (scope checked already). */
  subscribe(uri: string): Promise<void>;
  unsubscribe(uri: string): Promise<void>;
}

/**
 * Maps errors to JSON-RPC errors once, at the boundary, by the registry's codes (so that clients can tell "no such
 * thing" from "server down"); upstream protocol errors pass through untouched.
 */
export function toWireError(error: unknown): unknown {
  if (error instanceof McplexError) {
    return new ProtocolError(ERRORS[error.code].rpc, error.message, { code: error.code, ...error.data });
  }
  return error;
}

/**
 * A URL elicitation (a sign-in an upstream needs, say) in a 2026-07-28 request's terms: an input-required result
 * asking for it, which that revision has in place of the -32042 error of earlier ones; undefined for anything else.
 */
export function urlElicitationResult(error: unknown): InputRequiredResult | undefined {
  if (!(error instanceof UrlElicitationRequiredError)) return undefined;
  const inputRequests = Object.fromEntries(
    error.elicitations.map((e, i) => [
      e.elicitationId ?? `url-${i}`,
      inputRequired.elicitUrl({ message: e.message, url: e.url }),
    ]),
  );
  return inputRequired({ inputRequests });
}

/** The name the calling client gives itself: in a 2026-07-28 request's envelope, else in its initialize. */
function clientNamed(server: Server, ctx: ServerContext): { client?: string } {
  const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
  const info = (envelope?.[CLIENT_INFO_META_KEY] as { name?: unknown } | undefined) ?? server.getClientVersion();
  return typeof info?.name === 'string' ? { client: info.name } : {};
}

/** Whether the request is of the 2026-07-28 revision (it carries the per-request envelope). */
const isModern = (ctx: ServerContext) =>
  (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[PROTOCOL_VERSION_META_KEY] !== undefined;

async function wrap<T>(run: () => Promise<T>, ctx?: ServerContext): Promise<T> {
  try {
    // Awaited here so that a synchronous throw in `run` is mapped as well.
    return await run();
  } catch (error) {
    const tracing = ctx && currentTracing();
    if (tracing) tracing.mcpRequestFailed(tracing.parentFromHeaders(ctx.http?.req?.headers), error);
    throw toWireError(error);
  }
}

/**
 * The downstream client's `_meta` minus what belongs to its own hop: the protocol envelope
 * (`io.modelcontextprotocol/*`: its version, capabilities, identity) and its progress token.
 */
export function forwardableParams<T extends { _meta?: Record<string, unknown> }>(params: T): T {
  const meta = params._meta;
  if (meta === undefined) return params;
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key !== 'progressToken' && !key.startsWith('io.modelcontextprotocol/')) kept[key] = value;
  }
  const { _meta: _dropped, ...rest } = params;
  return (Object.keys(kept).length === 0 ? rest : { ...rest, _meta: kept }) as T;
}

/** The route of a tool the caller may use; a tool outside its scope does not exist for it. */
function assertToolInScope(catalog: Catalog, scope: ScopeCheck, name: string): ReturnType<Catalog['resolveTool']> {
  const route = catalog.resolveTool(name);
  if (!scope.unrestricted && !scope.tool(route.upstream.key, name)) {
    throw new McplexError('UNKNOWN_TOOL', `unknown tool "${name}"`);
  }
  return route;
}

/**
 * Routes a tools/call to the owning upstream under the tool's original name, with the `Mcp-Param-*` headers of
 * the client's request that the tool does not declare.
 */
export function callRoutedTool(
  catalog: Catalog,
  params: CallToolRequest['params'],
  options: CallOptions,
  headers?: IncomingHttpHeaders | Headers,
  scope?: ScopeCheck,
  admit?: AdmitCall,
): Promise<CallToolResult> {
  const route = scope ? assertToolInScope(catalog, scope, params.name) : catalog.resolveTool(params.name);
  const unknown = unknownParamHeaders(catalog.tool(params.name), headers);
  const call = { server: route.upstream.key, method: 'tools/call', name: route.original } as const;
  return admitted(admit, call, () =>
    route.upstream.callTool(
      { ...forwardableParams(params), name: route.original },
      unknown ? { ...options, headers: unknown } : options,
    ),
  ).then((result) => exposeContentUris(route.upstream, result));
}

/** The capabilities of the client behind a request: from its envelope (modern) or its initialize (legacy). */
export function callerCapabilities(server: Server, ctx: ServerContext): ClientCapabilities | undefined {
  // The SDK lifts the 2026-07-28 envelope off `_meta` into `ctx.mcpReq.envelope`.
  const envelope = ctx.mcpReq.envelope as Record<string, unknown> | undefined;
  const fromEnvelope = envelope?.[CLIENT_CAPABILITIES_META_KEY] as ClientCapabilities | undefined;
  return fromEnvelope ?? server.getClientCapabilities();
}

type RelayedMethod = 'elicitation/create' | 'sampling/createMessage' | 'roots/list';

/** Lets the upstream ask this request's client (elicitation, sampling, roots) in the context of the request. */
function relayFor(server: Server, ctx: ServerContext, log: (message: LogMessage) => void): DownstreamRelay {
  return {
    capabilities: callerCapabilities(server, ctx),
    log,
    // Only the three client methods reach here (checked against the capabilities first).
    request: (method, params) =>
      ctx.mcpReq.send({ method: method as RelayedMethod, params: params as Record<string, unknown> | undefined }),
  };
}

/** Answers a 2026-07-28 client sent without a requestState of mcplex's: they go to the upstream's first round. */
function unasked(ctx: ServerContext): Pick<CallOptions, 'inputResponses'> {
  const responses = ctx.mcpReq.inputResponses;
  if (responses === undefined || ctx.mcpReq.requestState() !== undefined) return {};
  return { inputResponses: responses as Record<string, unknown> };
}

/**
 * Runs a forwarded request with the caller's cancellation, its relay for upstream questions, and upstream
 * progress relayed under the caller's own token. Progress sent before the result reaches the caller before it:
 * a 2026-07-28 response stream ends with the result, and a late notification would be lost.
 */
async function forward<T>(server: Server, ctx: ServerContext, run: (options: CallOptions) => Promise<T>): Promise<T> {
  return forwardRequest(server, ctx, undefined, run) as Promise<T>;
}

/**
 * Like `forward`, for the requests that may ask the client for input (tools/call, prompts/get, resources/read):
 * a 2026-07-28 client gets the upstream's questions as input-required rounds.
 */
async function forwardRequest<T>(
  server: Server,
  ctx: ServerContext,
  rounds: { engine: InputRounds; principal: string; subject: string } | undefined,
  run: (options: CallOptions) => Promise<T>,
): Promise<T | InputRequiredResult> {
  const token = ctx.mcpReq._meta?.progressToken;
  // The /mcp request's span (its handler sees its headers), for the spans of the upstream calls.
  const trace = currentTracing()?.parentFromHeaders(ctx.http?.req?.headers);
  const traced = trace ? { trace } : {};
  let sent: Promise<unknown> = Promise.resolve();
  const onprogress =
    token === undefined
      ? undefined
      : (progress: Progress) => {
          const params = { ...progress, progressToken: token };
          sent = sent.then(() => ctx.mcpReq.notify({ method: 'notifications/progress', params }).catch(() => {}));
        };
  const progress = onprogress ? { onprogress } : {};
  // The SDK's log() applies the client's level (its setLevel, or the level in a 2026-07-28 request).
  const log = (message: LogMessage) => {
    sent = sent.then(() => ctx.mcpReq.log(message.level, message.data, message.logger).catch(() => {}));
  };
  const result =
    rounds && (ctx.mcpReq.envelope as Record<string, unknown> | undefined)?.[PROTOCOL_VERSION_META_KEY] !== undefined
      ? await rounds.engine.run(
          ctx,
          rounds.principal,
          `${ctx.mcpReq.method} ${rounds.subject}`,
          callerCapabilities(server, ctx),
          { log, ...(onprogress ? { progress: onprogress } : {}) },
          (relay, signal, roundProgress) =>
            run({
              signal,
              relay,
              ...(roundProgress ? { onprogress: roundProgress } : {}),
              ...unasked(ctx),
              ...traced,
            }),
        )
      : await run({
          signal: ctx.mcpReq.signal,
          relay: relayFor(server, ctx, log),
          ...progress,
          // The upstream closed its stream to be polled: so does this one (a resumable session stream only).
          onpause: () => ctx.http?.closeSSE?.(),
          ...traced,
        });
  await sent;
  return withoutUpstreamIdentity(result);
}

/**
 * A 2026-07-28 upstream names itself in a result's `_meta`; the client's server is mcplex, never the upstream
 * (the SDK stamps mcplex's own identity on 2026-07-28 answers; a 2025-11-25 answer carries none).
 */
function withoutUpstreamIdentity<T>(result: T): T {
  const meta = (result as { _meta?: Record<string, unknown> } | null)?._meta;
  if (meta === undefined || !(SERVER_INFO_META_KEY in meta)) return result;
  const { [SERVER_INFO_META_KEY]: _upstream, ...rest } = meta;
  const { _meta: _dropped, ...body } = result as { _meta?: unknown };
  return (Object.keys(rest).length === 0 ? body : { ...body, _meta: rest }) as T;
}

export function createAggregateServer(catalog: Catalog, options: AggregateServerOptions): Server {
  const principal = options.principal ?? ANONYMOUS.id;
  const server = new Server(
    { name: options.name, version: options.version },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: {
          listChanged: true,
          ...(options.subscriptions || options.session ? { subscribe: true } : {}),
        },
        prompts: { listChanged: true },
        completions: {},
        logging: {},
      },
      ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
      ...(options.rounds ? { requestState: { verify: options.rounds.verifier(principal) } } : {}),
    },
  );
  const { pageSize, rounds, subscriptions, admit } = options;
  const scope = scopeCheck(options.scopes ?? {});
  const view = () => scopedView(catalog, scope);
  const withRounds = (subject: string) => (rounds ? { engine: rounds, principal, subject } : undefined);
  if (options.session) {
    const session = options.session;
    server.setRequestHandler('resources/subscribe', async (request) =>
      wrap(async () => {
        scopedResource(catalog, scope, request.params.uri);
        await session.subscribe(request.params.uri);
        return {};
      }),
    );
    server.setRequestHandler('resources/unsubscribe', async (request) =>
      wrap(async () => {
        await session.unsubscribe(request.params.uri);
        return {};
      }),
    );
  } else if (subscriptions) {
    // This server instance is the subscriber: one per legacy session or stdio connection.
    const subscriber = { notifyUpdated: (uri: string) => void server.sendResourceUpdated({ uri }).catch(() => {}) };
    const held = new Set<string>();
    const max = options.maxSubscriptions;
    server.setRequestHandler('resources/subscribe', async (request) =>
      wrap(async () => {
        const { uri } = request.params;
        scopedResource(catalog, scope, uri);
        if (held.has(uri)) {
          await subscriptions.subscribe(uri, subscriber);
          return {};
        }
        if (held.size >= max) {
          throw new McplexError(
            'TOO_MANY_SUBSCRIPTIONS',
            `too many resource subscriptions: this client holds ${max}, the most allowed; unsubscribe first`,
            { data: { limit: max } },
          );
        }
        // The place is taken before the upstream is asked, so that subscribes sent together cannot all pass.
        held.add(uri);
        try {
          await subscriptions.subscribe(uri, subscriber);
        } catch (error) {
          held.delete(uri);
          throw error;
        }
        return {};
      }),
    );
    server.setRequestHandler('resources/unsubscribe', async (request) =>
      wrap(async () => {
        await subscriptions.unsubscribe(request.params.uri, subscriber);
        held.delete(request.params.uri);
        return {};
      }),
    );
    const previous = server.onclose;
    server.onclose = () => {
      subscriptions.drop(subscriber);
      previous?.();
    };
  }

  server.setRequestHandler('tools/list', async (request) =>
    wrap(async () => {
      const { tools, version } = view();
      const page = paginate(tools, request.params?.cursor, pageSize, version);
      return { tools: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('tools/call', async (request, ctx) =>
    wrap(() => {
      // Checked here as well as in callRoutedTool: a resumed input-required round does not call it again, and the
      // scope must hold on every round.
      assertToolInScope(catalog, scope, request.params.name);
      return forwardRequest(server, ctx, withRounds(request.params.name), (options) =>
        callRoutedTool(
          catalog,
          request.params,
          { ...options, principal, ...clientNamed(server, ctx) },
          ctx.http?.req?.headers,
          scope,
          admit,
        ),
      ).catch((error: unknown) => {
        const asked = isModern(ctx) ? urlElicitationResult(error) : undefined;
        if (asked) return asked;
        throw error;
      });
    }, ctx),
  );
  server.setRequestHandler('resources/list', async (request) =>
    wrap(async () => {
      const { resources, version } = view();
      const page = paginate(resources, request.params?.cursor, pageSize, version);
      return { resources: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('resources/templates/list', async (request) =>
    wrap(async () => {
      const { resourceTemplates, version } = view();
      const page = paginate(resourceTemplates, request.params?.cursor, pageSize, version);
      return { resourceTemplates: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('resources/read', async (request, ctx) =>
    wrap(async () => {
      const route = scopedResource(catalog, scope, request.params.uri);
      const params = { ...forwardableParams(request.params), uri: route.original };
      const call = { server: route.upstream.key, method: 'resources/read', name: route.original } as const;
      const result = await forwardRequest(server, ctx, withRounds(request.params.uri), (options) =>
        admitted(admit, call, () => route.upstream.readResource(params, options)),
      );
      if (isInputRequiredResult(result)) return result;
      // Contents carry the URI the client asked for, so that it can match them to its request.
      const prefix = request.params.uri.slice(0, request.params.uri.length - route.original.length);
      return { ...result, contents: result.contents.map((c) => ({ ...c, uri: prefix + c.uri })) };
    }, ctx),
  );
  server.setRequestHandler('prompts/list', async (request) =>
    wrap(async () => {
      const { prompts, version } = view();
      const page = paginate(prompts, request.params?.cursor, pageSize, version);
      return { prompts: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('prompts/get', async (request, ctx) =>
    wrap(async () => {
      const route = scopedPrompt(catalog, scope, request.params.name);
      const params = { ...forwardableParams(request.params), name: route.original };
      const call = { server: route.upstream.key, method: 'prompts/get', name: route.original } as const;
      const result = await forwardRequest(server, ctx, withRounds(request.params.name), (options) =>
        admitted(admit, call, () => route.upstream.getPrompt(params, options)),
      );
      return isInputRequiredResult(result) ? result : exposeContentUris(route.upstream, result);
    }, ctx),
  );
  server.setRequestHandler('completion/complete', async (request, ctx) =>
    wrap(async () => {
      const ref = request.params.ref;
      if (ref.type === 'ref/prompt') {
        const route = scopedPrompt(catalog, scope, ref.name);
        const params = { ...forwardableParams(request.params), ref: { ...ref, name: route.original } };
        return forward(server, ctx, (options) => route.upstream.complete(params, options));
      }
      const route = scopedResource(catalog, scope, ref.uri);
      const params = { ...forwardableParams(request.params), ref: { ...ref, uri: route.original } };
      return forward(server, ctx, (options) => route.upstream.complete(params, options));
    }),
  );
  return server;
}
