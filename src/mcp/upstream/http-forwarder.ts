// The fast path to a Streamable HTTP upstream: forwards one JSON-RPC request over a pooled keep-alive
// connection (undici) on the session the SDK client negotiated, and reads the answer from a JSON body or an
// SSE stream. It reports `fallback` only when the server provably did not run the request (an expired session,
// a refused connection) or asks for input first, so that the caller can take the SDK client path without
// running a tool twice.
import { CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY } from '@modelcontextprotocol/client';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import { createSseParser } from '../../wire/sse.js';

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
  /** The caller's cancellation. */
  signal?: AbortSignal;
  /** How long to wait for the answer; every progress report starts the wait again. */
  timeoutMs?: number;
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
  /** How long a response stream may stay open after its answer before it is cut (default 5000 ms). */
  lingerMs?: number;
}

/** Raised when the upstream sent no answer within the call's timeout (restarted by each progress report). */
export class ForwardTimeout extends Error {
  override readonly name = 'ForwardTimeout';
  constructor(readonly timeoutMs: number) {
    super(`no answer within ${timeoutMs} ms`);
  }
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

/** A response that is not an event stream, read whole. */
interface PlainAnswer {
  kind: 'plain';
  status: number;
  type: string;
  text: string;
}

/** What a call hands on from its response stream. */
interface EventHandlers {
  onProgress: (progress: unknown) => void;
  answer: ForwardOptions['answer'];
  onLog: ForwardOptions['onLog'];
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
  const lingerMs = options.lingerMs ?? 5000;
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
   * Reads the SSE events of a response stream, chunk by chunk, until the answer to `id`: progress, log messages
   * and requests from the server on the way are handed on, and the position (last event id, `retry:` advice) is
   * kept for a resumption. `feed` returns the answer once it has arrived; an event that is not JSON throws.
   */
  function sseReader(id: string, session: ForwardSession, events: EventHandlers, from: StreamPosition) {
    const parser = createSseParser();
    const position = { ...from };
    return {
      position,
      feed(chunk: string): ForwardOutcome | undefined {
        const parsed = parser.push(chunk);
        // Where the stream got to, events without data (a priming event) included.
        if (parser.lastEventId !== undefined) position.lastEventId = parser.lastEventId;
        if (parser.retryMs !== undefined) position.retryMs = parser.retryMs;
        for (const { data } of parsed) {
          if (data === '') continue;
          let message: JsonRpcMessage;
          try {
            message = JSON.parse(data) as JsonRpcMessage;
          } catch {
            throw new ForwardError('the server sent an event that is not JSON');
          }
          if (message.id === id && (message.result !== undefined || message.error !== undefined)) {
            return settle(message);
          } else if (message.method !== undefined && message.id !== undefined && message.id !== null) {
            void reply(session, message, events.answer).catch(() => {});
          } else if (message.method === 'notifications/progress') {
            const params = message.params as { progressToken?: unknown } | undefined;
            if (params?.progressToken === id) events.onProgress(params);
          } else if (message.method === 'notifications/message') {
            events.onLog?.(message.params);
          }
        }
        return undefined;
      },
    };
  }

  /**
   * Reads a resumed response stream (a GET) until the answer, which closes it (such a stream may stay open);
   * one that ends or breaks first resolves as `ended`, with where it got to.
   */
  function readResumed(
    body: Dispatcher.ResponseData['body'],
    reader: ReturnType<typeof sseReader>,
  ): Promise<ForwardOutcome | StreamEnded> {
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (outcome: ForwardOutcome | StreamEnded | Error) => {
        if (settled) return;
        settled = true;
        body.destroy();
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      body.setEncoding('utf8');
      body.on('data', (chunk: string) => {
        if (settled) return;
        try {
          const outcome = reader.feed(chunk);
          if (outcome) finish(outcome);
        } catch (error) {
          finish(error as Error);
        }
      });
      body.once('end', () => finish({ kind: 'ended', ...reader.position }));
      // `on`, not `once`: a stream destroyed after the answer may still report an error, which must not throw.
      body.on('error', (error) => finish({ kind: 'ended', ...reader.position, error }));
    });
  }

  /**
   * Sends one request (undici's dispatch: no per-request stream or promise machinery) and reads its answer: an
   * SSE stream through `sseReader` until the answer, any other body whole. The rest of an event stream is let
   * run out, so that the connection goes back to the pool; one still open `lingerMs` after the answer is cut,
   * so that a server that never ends its streams cannot take the pool's connections one call at a time.
   * `control` receives the exchange's abort.
   */
  function exchange(
    headers: Record<string, string>,
    body: string,
    reader: () => ReturnType<typeof sseReader>,
    control: (abort: (reason: unknown) => void) => void,
  ): Promise<ForwardOutcome | StreamEnded | PlainAnswer> {
    return new Promise((resolve, reject) => {
      let settled = false;
      let status = 0;
      let type = '';
      let sse: ReturnType<typeof sseReader> | undefined;
      let decoder: StringDecoder | undefined;
      let controller: Dispatcher.DispatchController | undefined;
      /** Why the exchange was stopped before undici started it (it waited for a pooled connection). */
      let stoppedEarly: Error | undefined;
      let linger: NodeJS.Timeout | undefined;
      const chunks: Buffer[] = [];
      const finish = (outcome: ForwardOutcome | StreamEnded | PlainAnswer | Error) => {
        if (settled) return;
        settled = true;
        if (outcome instanceof Error) reject(outcome);
        else resolve(outcome);
      };
      /**
       * Settles with what a still-open event stream brought. After an answer the stream has a while to end before
       * it is cut; after an event that is not JSON it is cut at once.
       */
      const finishStream = (outcome: ForwardOutcome | Error) => {
        finish(outcome);
        if (outcome instanceof Error) {
          controller?.abort(outcome);
          return;
        }
        linger = setTimeout(
          () => controller?.abort(new ForwardError('the server kept the stream open after answering')),
          lingerMs,
        );
        linger.unref();
      };
      // A stop before undici starts the request (all pooled connections busy) ends the call at once; the request
      // is aborted when its turn comes.
      control((reason) => {
        const error = reason instanceof Error ? reason : new ForwardError(`stopped: ${String(reason)}`);
        if (controller) {
          controller.abort(error);
          return;
        }
        stoppedEarly = error;
        finish(error);
      });
      pool.dispatch(
        { method: 'POST', path, headers, body },
        {
          onRequestStart(started) {
            controller = started;
            if (stoppedEarly) started.abort(stoppedEarly);
          },
          onResponseStart(_controller, statusCode, responseHeaders) {
            status = statusCode;
            type = String(responseHeaders['content-type'] ?? '');
            if (status >= 200 && status < 300 && type.includes('text/event-stream')) {
              sse = reader();
              decoder = new StringDecoder('utf8');
            }
          },
          onResponseData(_controller, chunk) {
            if (settled) return;
            if (!sse) {
              chunks.push(chunk);
              return;
            }
            try {
              const outcome = sse.feed(decoder!.write(chunk));
              if (outcome) finishStream(outcome);
            } catch (error) {
              finishStream(error as Error);
            }
          },
          onResponseEnd() {
            clearTimeout(linger);
            if (sse) finish({ kind: 'ended', ...sse.position });
            else finish({ kind: 'plain', status, type, text: Buffer.concat(chunks).toString('utf8') });
          },
          onResponseError(_controller, error) {
            clearTimeout(linger);
            // An SSE stream that breaks after some events may still be resumed from its last event id.
            if (sse) finish({ kind: 'ended', ...sse.position, error });
            else finish(error);
          },
        },
      );
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
    async call(method, params, options) {
      const { session, signal, timeoutMs, name, onProgress, answer, onLog, capabilities, onPause, headers } = options;
      signal?.throwIfAborted();
      const id = `mcplex-${++counter}`;
      // The request id doubles as progress token: progress keeps a long call inside its timeout.
      const meta = {
        ...(params._meta as Record<string, unknown> | undefined),
        progressToken: id,
        ...(session.era === 'modern' ? session.envelope : undefined),
        // A 2026-07-28 server logs only for requests that name a level; the caller filters by its client's level.
        ...(session.era === 'modern' && onLog ? { [LOG_LEVEL_META_KEY]: 'debug' } : {}),
        ...(session.era === 'modern' && capabilities ? { [CLIENT_CAPABILITIES_META_KEY]: capabilities } : {}),
      };
      // The call ends early on the caller's cancellation or the timeout: whichever stops it first is the reason.
      let stopped: { reason: unknown } | undefined;
      let abortExchange: ((reason: unknown) => void) | undefined;
      let resumption: AbortController | undefined;
      const stop = (reason: unknown) => {
        if (stopped) return;
        stopped = { reason };
        abortExchange?.(reason);
        resumption?.abort(reason);
        // In the legacy era closing a stream does not cancel: the server is told explicitly.
        if (session.era === 'legacy') {
          const notice = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id } };
          void post(session, notice).catch(() => {});
        }
      };
      const timer =
        timeoutMs === undefined ? undefined : setTimeout(() => stop(new ForwardTimeout(timeoutMs)), timeoutMs);
      const onCancel = () => stop(signal!.reason);
      signal?.addEventListener('abort', onCancel, { once: true });
      const events: EventHandlers = {
        onProgress: (progress) => {
          timer?.refresh();
          onProgress?.(progress);
        },
        answer,
        onLog,
      };
      try {
        let outcome: ForwardOutcome | StreamEnded | PlainAnswer;
        try {
          outcome = await exchange(
            headers ? { ...headers, ...headersFor(session, method, name) } : headersFor(session, method, name),
            JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta: meta } }),
            () => sseReader(id, session, events, { lastEventId: undefined, retryMs: undefined }),
            (abort) => (abortExchange = abort),
          );
        } catch (error) {
          if (stopped) throw stopped.reason;
          const code = (error as { code?: unknown }).code;
          if (typeof code === 'string' && NOT_SENT.has(code)) return { kind: 'fallback', reason: code };
          throw error;
        }
        if (stopped) throw stopped.reason;
        if (outcome.kind === 'ended') {
          if (session.era === 'legacy' && outcome.lastEventId !== undefined && outcome.error === undefined) onPause?.();
          resumption = new AbortController();
          return await resume(outcome, session, resumption.signal, (body, from) =>
            readResumed(body, sseReader(id, session, events, from)),
          ).catch((error: unknown) => {
            throw stopped ? stopped.reason : error;
          });
        }
        if (outcome.kind !== 'plain') return outcome;
        if (outcome.status === 404) return { kind: 'fallback', reason: 'session expired' };
        let message: JsonRpcMessage | undefined;
        try {
          message =
            outcome.type.includes('application/json') && outcome.text !== ''
              ? (JSON.parse(outcome.text) as JsonRpcMessage)
              : undefined;
        } catch {
          message = undefined;
        }
        if (message && (message.id === id || (message.id === null && isJsonRpcError(message.error)))) {
          return settle(message);
        }
        throw new ForwardError(`unexpected answer: HTTP ${outcome.status} ${outcome.type}`.trim());
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onCancel);
      }
    },
    close: () => pool.close(),
  };
}
