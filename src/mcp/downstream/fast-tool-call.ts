// The hot path of the aggregated endpoint: a plain `tools/call` (no progress token) from a known legacy session
// or a modern request is answered with one JSON body, without building a per-request SDK server or converting
// to web streams. Everything else, and anything unusual about this request, goes through the SDK server.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  CLIENT_INFO_META_KEY,
  classifyInboundRequest,
  LOG_LEVEL_META_KEY,
  PROTOCOL_VERSION_META_KEY,
  ProtocolError,
  RELATED_TASK_META_KEY,
  SERVER_INFO_META_KEY,
  SUPPORTED_PROTOCOL_VERSIONS,
} from '@modelcontextprotocol/server';
import { VERSION } from '../../version.js';
import type { DownstreamRelay } from '../upstream/upstream.js';
import type { CallToolRequest, ClientCapabilities } from '@modelcontextprotocol/client';
import type { Catalog } from '../catalog/catalog.js';
import { callRoutedTool, toWireError, urlElicitationResult } from './aggregate-server.js';
import type { Principal } from '../../policy/auth/keys.js';
import { scopeCheck } from '../../policy/auth/scopes.js';
import type { AdmitCall } from '../../policy/limits/mcp-call-limits.js';
import { sendJson } from '../../wire/json.js';
import { currentTracing } from '../../telemetry/tracing.js';

type RequestId = string | number;

/** Revisions the modern fast path answers; others go to the SDK, which knows what it supports. */
const MODERN_VERSIONS = new Set(['2026-07-28']);

export interface FastToolCall {
  id: RequestId;
  params: CallToolRequest['params'];
  /** What the caller declared: never elicitation, sampling or roots on this path. */
  capabilities: ClientCapabilities | undefined;
  /** The name the caller gives itself (its initialize's, or its envelope's), when it gives one. */
  client?: string;
}

/**
 * The request when the fast path can serve it, else undefined. A client that can answer elicitation, sampling
 * or roots goes through the SDK server, which can put the upstream's questions to it during the call;
 * `legacyCapabilities` are those a legacy session declared (modern requests carry theirs in the envelope).
 */
export function fastToolCall(
  req: IncomingMessage,
  body: unknown,
  era: 'legacy' | 'modern',
  legacyCapabilities?: ClientCapabilities,
  legacyClientInfo?: unknown,
): FastToolCall | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const message = body as { jsonrpc?: unknown; id?: unknown; method?: unknown; params?: unknown };
  if (message.jsonrpc !== '2.0' || message.method !== 'tools/call') return undefined;
  if (typeof message.id !== 'string' && typeof message.id !== 'number') return undefined;
  // The SDK takes only safe integers as numeric ids (zod's int()): anything else gets its error answer.
  if (typeof message.id === 'number' && !Number.isSafeInteger(message.id)) return undefined;
  const params = message.params as { name?: unknown; arguments?: unknown; _meta?: { progressToken?: unknown } };
  if (typeof params !== 'object' || params === null || typeof params.name !== 'string') return undefined;
  const args = params.arguments;
  if (args !== undefined && (typeof args !== 'object' || args === null || Array.isArray(args))) {
    return undefined;
  }
  // A `_meta` that is no object gets the SDK path's answer (-32602 naming it).
  const meta: unknown = params._meta;
  if (meta !== undefined && (typeof meta !== 'object' || meta === null || Array.isArray(meta))) return undefined;
  // Progress needs a streamed response: the SDK server does that.
  if (params._meta?.progressToken !== undefined) return undefined;
  // A retry of an input-required round belongs to the round engine of the SDK path.
  if ('requestState' in params || 'inputResponses' in params) return undefined;
  const capabilities =
    era === 'legacy'
      ? legacyCapabilities
      : ((params._meta as Record<string, unknown> | undefined)?.['io.modelcontextprotocol/clientCapabilities'] as
          ClientCapabilities | undefined);
  if (capabilities?.elicitation || capabilities?.sampling || capabilities?.roots) return undefined;
  const accept = req.headers.accept ?? '';
  if (!accept.includes('application/json') && !accept.includes('*/*')) return undefined;
  const version = req.headers['mcp-protocol-version'];
  if (era === 'legacy') {
    if (typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) return undefined;
  } else {
    // The SDK's modern entry checks that the headers agree with the body; the fast path takes only requests
    // where they plainly do, and leaves every other case (and its error answer) to the SDK.
    const envelope = params._meta as Record<string, unknown> | undefined;
    if (typeof version !== 'string' || envelope?.['io.modelcontextprotocol/protocolVersion'] !== version)
      return undefined;
    if (!MODERN_VERSIONS.has(version)) return undefined;
    if (req.headers['mcp-method'] !== 'tools/call' || req.headers['mcp-name'] !== params.name) return undefined;
  }
  const info = (
    era === 'legacy' ? legacyClientInfo : (params._meta as Record<string, unknown> | undefined)?.[CLIENT_INFO_META_KEY]
  ) as { name?: unknown } | undefined;
  return {
    id: message.id,
    params: params as CallToolRequest['params'],
    capabilities,
    ...(typeof info?.name === 'string' ? { client: info.name } : {}),
  };
}

const REQUEST_KEYS = new Set(['jsonrpc', 'id', 'method', 'params']);

/** Envelope verdicts by the envelope's JSON: a client sends the same envelope on every request. */
const envelopeVerdicts = new Map<string, boolean>();
const MAX_ENVELOPE_VERDICTS = 256;
/** Longer envelopes are not remembered (256 of them must stay small): their requests take the SDK's path. */
const MAX_ENVELOPE_CHARS = 4096;

/**
 * Whether the SDK's modern entry accepts this envelope, asked once per distinct envelope; undefined when the
 * envelope is too large to remember.
 */
function validEnvelope(meta: Record<string, unknown>, version: string): boolean | undefined {
  const key = JSON.stringify(meta);
  if (key.length > MAX_ENVELOPE_CHARS) return undefined;
  let verdict = envelopeVerdicts.get(key);
  if (verdict === undefined) {
    const outcome = classifyInboundRequest({
      httpMethod: 'POST',
      body: { jsonrpc: '2.0', id: 0, method: 'tools/call', params: { _meta: meta } },
      protocolVersionHeader: version,
      mcpMethodHeader: 'tools/call',
    });
    verdict = outcome.kind === 'modern' && outcome.messageKind === 'request';
    if (envelopeVerdicts.size >= MAX_ENVELOPE_VERDICTS) envelopeVerdicts.clear();
    envelopeVerdicts.set(key, verdict);
  }
  return verdict;
}

/**
 * A 2026-07-28 `tools/call` that the fast path can take without the SDK's classification of the whole body
 * (four schema parses per request): a plain JSON-RPC request with no other top-level keys, an integer or
 * string id, the headers agreeing with the body, and an envelope the SDK has accepted before. Anything else
 * returns undefined and goes through the classification as usual, which answers every malformed case.
 */
export function plainModernToolCall(req: IncomingMessage, body: unknown): FastToolCall | undefined {
  if (req.headers['mcp-session-id'] !== undefined) return undefined;
  const version = req.headers['mcp-protocol-version'];
  if (typeof version !== 'string' || !MODERN_VERSIONS.has(version)) return undefined;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  for (const key in body) if (!REQUEST_KEYS.has(key)) return undefined;
  const message = body as { id?: unknown; params?: unknown };
  const params = message.params as { _meta?: unknown } | undefined;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return undefined;
  const meta = params._meta;
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) return undefined;
  const envelope = meta as Record<string, unknown>;
  if (envelope[PROTOCOL_VERSION_META_KEY] !== version || RELATED_TASK_META_KEY in envelope) return undefined;
  const call = fastToolCall(req, body, 'modern');
  return call && validEnvelope(envelope, version) === true ? call : undefined;
}

const SERVER_INFO = { name: 'mcplex', version: VERSION };

/**
 * The upstream's result as mcplex's own: a 2026-07-28 result names its server in `_meta`, which must be mcplex
 * (as on the SDK path), not the upstream behind it; legacy results carry no server identity.
 */
function asOwnResult(result: Record<string, unknown>, era: 'legacy' | 'modern'): Record<string, unknown> {
  const { [SERVER_INFO_META_KEY]: _upstreamInfo, ...meta } = (result._meta ?? {}) as Record<string, unknown>;
  if (era === 'legacy') {
    const { _meta: _dropped, ...rest } = result;
    return Object.keys(meta).length === 0 ? rest : { ...rest, _meta: meta };
  }
  return { ...result, _meta: { ...meta, [SERVER_INFO_META_KEY]: SERVER_INFO }, resultType: 'complete' };
}

const MISSING_CAPABILITY = -32021;

const SEVERITY = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];

/**
 * One JSON body, unless a notification (a log message) must go out before the result: then the answer
 * becomes an SSE stream, as the SDK's own per-request transport does it.
 */
function createAnswer(res: ServerResponse) {
  let streaming = false;
  const event = (message: unknown) => `event: message\ndata: ${JSON.stringify(message)}\n\n`;
  return {
    notify(message: unknown): void {
      if (res.writableEnded) return;
      if (!streaming) {
        streaming = true;
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      }
      res.write(event(message));
    },
    /** A cancelled call gets no response; the HTTP exchange still ends, as an empty, closed stream. */
    abandon(): void {
      if (res.writableEnded || res.destroyed) return;
      if (!streaming) res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.end();
    },
    finish(payload: unknown, status = 200): void {
      if (streaming) {
        res.end(event(payload));
        return;
      }
      sendJson(res, status, payload);
    },
  };
}

/** Whether a message at `level` passes the client's threshold (no threshold: legacy sends all, modern none). */
function passes(level: string, threshold: string | undefined, era: 'legacy' | 'modern'): boolean {
  if (threshold === undefined) return era === 'legacy';
  return SEVERITY.indexOf(level) >= SEVERITY.indexOf(threshold);
}

/**
 * Runs the call and writes the JSON-RPC answer. `signal` is aborted by a legacy cancellation; a client that
 * closes the connection (the modern way to cancel) aborts it as well.
 */
export async function serveFastToolCall(
  catalog: Catalog,
  call: FastToolCall,
  era: 'legacy' | 'modern',
  res: ServerResponse,
  cancel: AbortController,
  principal: Principal,
  logLevel?: string,
  admit?: AdmitCall,
): Promise<void> {
  const headers = era === 'modern' ? res.req.headers : undefined;
  res.once('close', () => {
    if (!res.writableFinished) cancel.abort(new Error('client closed the connection'));
  });
  const answer = createAnswer(res);
  const tracing = currentTracing();
  const trace = tracing?.parentOf(res);
  const threshold =
    era === 'legacy'
      ? logLevel
      : ((call.params._meta as Record<string, unknown> | undefined)?.[LOG_LEVEL_META_KEY] as string | undefined);
  try {
    // The caller cannot answer questions from the upstream: saying so lets the upstream report it clearly.
    const relay: DownstreamRelay = {
      capabilities: call.capabilities,
      request: () => Promise.reject(new Error('the client cannot answer requests during this call')),
      log: (message) => {
        if (passes(message.level, threshold, era)) {
          answer.notify({ jsonrpc: '2.0', method: 'notifications/message', params: message });
        }
      },
    };
    const scope = scopeCheck(principal.scopes);
    const options = {
      signal: cancel.signal,
      relay,
      principal: principal.id,
      ...(call.client === undefined ? {} : { client: call.client }),
      ...(trace ? { trace } : {}),
    };
    const result = await callRoutedTool(catalog, call.params, options, headers, scope, admit);
    if (cancel.signal.aborted) {
      answer.abandon();
      return;
    }
    answer.finish({
      jsonrpc: '2.0',
      id: call.id,
      result: asOwnResult(result, era),
    });
  } catch (error) {
    if (cancel.signal.aborted) {
      answer.abandon();
      return;
    }
    const asked = era === 'modern' ? urlElicitationResult(error) : undefined;
    if (asked) {
      // Input-required, not complete: the client asks its user, then sends the call again.
      const result = { ...asked, _meta: { ...asked._meta, [SERVER_INFO_META_KEY]: SERVER_INFO } };
      answer.finish({ jsonrpc: '2.0', id: call.id, result });
      return;
    }
    tracing?.mcpRequestFailed(trace, error);
    const wire = toWireError(error);
    const payload =
      wire instanceof ProtocolError
        ? { code: wire.code, message: wire.message, ...(wire.data === undefined ? {} : { data: wire.data }) }
        : { code: -32603, message: wire instanceof Error ? wire.message : String(wire) };
    // A handler's error is in-band (HTTP 200), except a missing client capability, whose 400 the 2026-07-28
    // specification requires whatever produced it.
    const status = era === 'modern' && payload.code === MISSING_CAPABILITY ? 400 : 200;
    answer.finish({ jsonrpc: '2.0', id: call.id, error: payload }, status);
  }
}
