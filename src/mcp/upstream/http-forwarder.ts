// The fast path to a Streamable HTTP upstream: forwards one JSON-RPC request over a pooled keep-alive
// connection (undici) on the session the SDK client negotiated, and reads the answer from a JSON body or an
// SSE stream. It reports `fallback` only when the server provably did not run the request (an expired session,
// a refused connection) or asks for input first, so that the caller can take the SDK client path without
// running a tool twice.
import { CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY } from '@modelcontextprotocol/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';

export interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

export type ForwardOutcome =
  | { kind: 'result'; result: Record<string, unknown> }
  | { kind: 'error'; error: JsonRpcError }
  | { kind: 'fallback'; reason: string };

/** What the SDK client negotiated, read at call time (the session can be re-initialised in between). */
export interface ForwardSession {
  era: 'legacy' | 'modern';
  protocolVersion: string;
  sessionId: string | undefined;
  /** The per-request `_meta` envelope of the modern era (protocol version, client info, capabilities). */
  envelope: Readonly<Record<string, unknown>> | undefined;
}

export interface ForwardOptions {
  session: ForwardSession;
  signal: AbortSignal;
  /** The `Mcp-Name` of a modern request (the tool name). */
  name?: string;
  /** Called for each progress notification the server sends for this request. */
  onProgress?: (progress: unknown) => void;
  /** Answers a request the server sends on this request's response stream. */
  answer?: (method: string, params: unknown) => Promise<unknown>;
  /** Called for each log message the server sends on this request's response stream. */
  onLog?: (params: unknown) => void;
  /** The client capabilities to declare in a 2026-07-28 request (those of the client behind the call). */
  capabilities?: Record<string, unknown>;
  /** Called when the server ends the response stream before answering and the stream will be resumed (polling). */
  onPause?: () => void;
  /** Extra headers for this request (the `Mcp-Param-*` headers mcplex passes on). */
  headers?: Record<string, string>;
}

export interface HttpForwarder {
  call(method: string, params: Record<string, unknown>, options: ForwardOptions): Promise<ForwardOutcome>;
  close(): Promise<void>;
}

export interface HttpForwarderOptions {
  url: string;
  headers: Readonly<Record<string, string>>;
  /** Answers a request the server sends on the response stream (roots, sampling, elicitation). */
  answerServerRequest: (method: string, params: unknown) => Promise<unknown>;
  connections?: number;
}

/** Raised when the upstream answered in a way that is neither a result nor a JSON-RPC error. */
export class ForwardError extends Error {
  override readonly name = 'ForwardError';
}

interface JsonRpcMessage {
  jsonrpc?: string;
  id?: string | number | null;
  method?: string;
  params?: unknown;
  result?: Record<string, unknown>;
  error?: JsonRpcError;
}

const ACCEPT = 'application/json, text/event-stream';
const EVENT_BOUNDARY = /\r\n\r\n|\n\n|\r\r|\r\n\n|\n\r\n/;
/** Errors that mean the request never reached the server, so running it again cannot run it twice. */
const NOT_SENT = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT']);
/** How long to wait before resuming a response stream when the server named no `retry:` (the SDK's default). */
const DEFAULT_RESUME_DELAY_MS = 1000;
/** Resumptions in a row that bring no new event before the call is given up. */
const MAX_IDLE_RESUMES = 3;

/** Where a response stream left off: the last event id (to resume from) and the server's `retry:` advice. */
interface StreamPosition {
  lastEventId: string | undefined;
  retryMs: number | undefined;
}

/** A response stream that ended (or broke) before the answer came, with where it got to. */
interface StreamEnded extends StreamPosition {
  kind: 'ended';
  /** The stream's error when it broke rather than ended. */
  error?: unknown;
}

function isJsonRpcError(value: unknown): value is JsonRpcError {
  const error = value as JsonRpcError | undefined;
  return typeof error?.code === 'number' && typeof error.message === 'string';
}

export function createHttpForwarder(options: HttpForwarderOptions): HttpForwarder {
  const url = new URL(options.url);
  const pool = new Pool(url.origin, {
    connections: options.connections ?? 64,
    keepAliveTimeout: 30_000,
    // The caller owns the call timeout (restarted by progress); undici's own 300 s limits would cut long calls.
    headersTimeout: 0,
    bodyTimeout: 0,
  });
  const path = `${url.pathname}${url.search}`;
  // String ids in a namespace of their own: the SDK client uses numbers on the same session.
  let counter = 0;

  function headersFor(session: ForwardSession, method: string | undefined, name: string | undefined) {
    const headers: Record<string, string> = {
      ...options.headers,
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-protocol-version': session.protocolVersion,
    };
    if (session.sessionId !== undefined) headers['mcp-session-id'] = session.sessionId;
    if (session.era === 'modern' && method !== undefined) {
      headers['mcp-method'] = method;
      if (name !== undefined) headers['mcp-name'] = name;
    }
    return headers;
  }

  async function post(session: ForwardSession, message: JsonRpcMessage): Promise<void> {
    const response = await pool.request({
      method: 'POST',
      path,
      headers: headersFor(session, message.method, undefined),
      body: JSON.stringify(message),
    });
    await response.body.dump();
  }

  /** Answers a server-to-client request that arrived on the response stream (legacy era, same session). */
  async function reply(
    session: ForwardSession,
    message: JsonRpcMessage,
    answerFor: ForwardOptions['answer'],
  ): Promise<void> {
    let answer: JsonRpcMessage;
    try {
      const answering = answerFor ?? options.answerServerRequest;
      const result = (await answering(message.method!, message.params)) as Record<string, unknown>;
      answer = { jsonrpc: '2.0', id: message.id, result };
    } catch (error) {
      const code = typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -32603;
      const text = error instanceof Error ? error.message : String(error);
      answer = { jsonrpc: '2.0', id: message.id, error: { code, message: text } };
    }
    await post(session, answer);
  }

  /**
   * Reads SSE events until the response to `id` arrives. The rest of a POST response stream is consumed in the
   * background (the server ends it after the response) so that the connection goes back to the pool; stopping
   * early would destroy the socket and cost an error with a stack trace on every call. A resumed stream (a GET)
   * is closed once the answer is in: it may stay open. A stream that ends or breaks before the answer resolves
   * as `ended`, with the last event id and `retry:` seen (starting from `from`), for the caller to resume it.
   */
  function readSse(
    body: Dispatcher.ResponseData['body'],
    id: string,
    session: ForwardSession,
    onProgress: ((progress: unknown) => void) | undefined,
    answer: ForwardOptions['answer'],
    onLog: ForwardOptions['onLog'],
    from: StreamPosition = { lastEventId: undefined, retryMs: undefined },
    resumed = false,
  ): Promise<ForwardOutcome | StreamEnded> {
    return new Promise((resolve, reject) => {
      let buffer = '';
      let settled = false;
      const position = { ...from };
      const finish = (run: () => ForwardOutcome | StreamEnded) => {
        if (settled) return;
        settled = true;
        if (resumed) body.destroy();
        try {
          resolve(run());
        } catch (error) {
          reject(error);
        }
      };
      body.setEncoding('utf8');
      body.on('data', (chunk: string) => {
        if (settled) return;
        buffer += chunk;
        let match: RegExpExecArray | null;
        while (!settled && (match = EVENT_BOUNDARY.exec(buffer)) !== null) {
          const event = buffer.slice(0, match.index);
          buffer = buffer.slice(match.index + match[0].length);
          const lines = event.split(/\r\n|\n|\r/);
          for (const line of lines) {
            const value = line.slice(line.indexOf(':') + 1).replace(/^ /, '');
            if (line.startsWith('id:') && !value.includes('\0')) position.lastEventId = value;
            else if (line.startsWith('retry:') && /^\d+$/.test(value)) position.retryMs = Number(value);
          }
          const data = lines
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(line[5] === ' ' ? 6 : 5))
            .join('\n');
          if (data === '') continue;
          let message: JsonRpcMessage;
          try {
            message = JSON.parse(data) as JsonRpcMessage;
          } catch {
            finish(() => {
              throw new ForwardError('the server sent an event that is not JSON');
            });
            return;
          }
          if (message.id === id && (message.result !== undefined || message.error !== undefined)) {
            finish(() => settle(message));
          } else if (message.method !== undefined && message.id !== undefined && message.id !== null) {
            void reply(session, message, answer).catch(() => {});
          } else if (message.method === 'notifications/progress' && onProgress) {
            const params = message.params as { progressToken?: unknown } | undefined;
            if (params?.progressToken === id) onProgress(params);
          } else if (message.method === 'notifications/message') {
            onLog?.(message.params);
          }
        }
      });
      body.once('end', () => finish(() => ({ kind: 'ended', ...position })));
      // `on`, not `once`: a stream destroyed after the answer may still report an error, which must not throw.
      body.on('error', (error) => finish(() => ({ kind: 'ended', ...position, error })));
    });
  }

  /**
   * Reopens a legacy-era response stream that ended before its answer: a GET with `Last-Event-ID` after the
   * delay the server asked for (SEP-1699 polling, or a dropped connection). The server replays what followed
   * that event, the answer included. A 2026-07-28 stream cannot be resumed: its end is final.
   */
  async function resume(
    ended: StreamEnded,
    session: ForwardSession,
    signal: AbortSignal,
    read: (body: Dispatcher.ResponseData['body'], from: StreamPosition) => Promise<ForwardOutcome | StreamEnded>,
  ): Promise<ForwardOutcome> {
    let current = ended;
    for (let idle = 0; ; idle++) {
      const lastEventId = current.lastEventId;
      if (session.era !== 'legacy' || lastEventId === undefined || signal.aborted || idle >= MAX_IDLE_RESUMES) {
        if (current.error !== undefined) throw current.error;
        throw new ForwardError('the server ended the response stream without answering');
      }
      await sleep(current.retryMs ?? DEFAULT_RESUME_DELAY_MS, undefined, { signal });
      const { 'content-type': _type, ...headers } = headersFor(session, undefined, undefined);
      const response = await pool.request({
        method: 'GET',
        path,
        headers: { ...headers, accept: 'text/event-stream', 'last-event-id': lastEventId },
        signal,
      });
      const type = String(response.headers['content-type'] ?? '');
      if (response.statusCode < 200 || response.statusCode >= 300 || !type.includes('text/event-stream')) {
        await response.body.dump();
        throw new ForwardError(`could not resume the response stream: HTTP ${response.statusCode}`);
      }
      const outcome = await read(response.body, current);
      if (outcome.kind !== 'ended') return outcome;
      // A stream that moved on is progress: only resumptions that bring nothing count towards giving up.
      if (outcome.lastEventId !== lastEventId) idle = -1;
      current = outcome;
    }
  }

  function settle(message: JsonRpcMessage): ForwardOutcome {
    if (message.error !== undefined) {
      if (!isJsonRpcError(message.error)) throw new ForwardError('the server sent a malformed error');
      return { kind: 'error', error: message.error };
    }
    // Input-required results too: the caller runs the rounds.
    return { kind: 'result', result: message.result ?? {} };
  }

  return {
    async call(method, params, { session, signal, name, onProgress, answer, onLog, capabilities, onPause, headers }) {
      const id = `mcplex-${++counter}`;
      // The request id doubles as progress token: progress keeps a long call inside its timeout.
      const meta = {
        ...(params._meta as Record<string, unknown> | undefined),
        ...(onProgress ? { progressToken: id } : {}),
        ...(session.era === 'modern' ? session.envelope : undefined),
        // A 2026-07-28 server logs only for requests that name a level; the caller filters by its client's level.
        ...(session.era === 'modern' && onLog ? { [LOG_LEVEL_META_KEY]: 'debug' } : {}),
        ...(session.era === 'modern' && capabilities ? { [CLIENT_CAPABILITIES_META_KEY]: capabilities } : {}),
      };
      const sent = Object.keys(meta).length === 0 ? params : { ...params, _meta: meta };
      // In the legacy era closing a stream does not cancel: the server is told explicitly.
      const onAbort = () => {
        if (session.era !== 'legacy') return;
        const notice = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id } };
        void post(session, notice).catch(() => {});
      };
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        let response: Dispatcher.ResponseData;
        try {
          response = await pool.request({
            method: 'POST',
            path,
            headers: headers ? { ...headers, ...headersFor(session, method, name) } : headersFor(session, method, name),
            body: JSON.stringify({ jsonrpc: '2.0', id, method, params: sent }),
            signal,
          });
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'string' && NOT_SENT.has(code)) return { kind: 'fallback', reason: code };
          throw error;
        }
        const type = String(response.headers['content-type'] ?? '');
        if (response.statusCode === 404) {
          await response.body.dump();
          return { kind: 'fallback', reason: 'session expired' };
        }
        if (response.statusCode >= 200 && response.statusCode < 300 && type.includes('text/event-stream')) {
          const outcome = await readSse(response.body, id, session, onProgress, answer, onLog);
          if (outcome.kind !== 'ended') return outcome;
          if (session.era === 'legacy' && outcome.lastEventId !== undefined && outcome.error === undefined) onPause?.();
          return await resume(outcome, session, signal, (body, from) =>
            readSse(body, id, session, onProgress, answer, onLog, from, true),
          );
        }
        const text = await response.body.text();
        let message: JsonRpcMessage | undefined;
        try {
          message = type.includes('application/json') && text !== '' ? (JSON.parse(text) as JsonRpcMessage) : undefined;
        } catch {
          message = undefined;
        }
        if (message && (message.id === id || (message.id === null && isJsonRpcError(message.error)))) {
          return settle(message);
        }
        throw new ForwardError(`unexpected answer: HTTP ${response.statusCode} ${type}`.trim());
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
    close: () => pool.close(),
  };
}
