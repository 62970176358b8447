// The fast path to a Streamable HTTP upstream: forwards one JSON-RPC request over a pooled keep-alive
// connection (undici) on the session the SDK client negotiated, and reads the answer from a JSON body or an
// SSE stream. Anything it does not handle (an expired session, input-required results) is reported as
// `fallback`, and the caller takes the SDK client path, which covers the whole protocol.
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

export interface HttpForwarder {
  call(
    method: string,
    params: Record<string, unknown>,
    options: { session: ForwardSession; signal: AbortSignal; name?: string; onProgress?: (progress: unknown) => void },
  ): Promise<ForwardOutcome>;
  close(): Promise<void>;
}

export interface HttpForwarderOptions {
  url: string;
  headers: Readonly<Record<string, string>>;
  /** Answers a request the server sends on the response stream (roots, sampling, elicitation). */
  answerServerRequest: (method: string, params: unknown) => Promise<unknown>;
  connections?: number;
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

function progressTokenFor(id: number): string {
  return `mcplex-${id}`;
}

export function createHttpForwarder(options: HttpForwarderOptions): HttpForwarder {
  const url = new URL(options.url);
  const pool = new Pool(url.origin, {
    connections: options.connections ?? 64,
    keepAliveTimeout: 30_000,
  });
  const path = `${url.pathname}${url.search}`;
  let nextId = 1;

  function headersFor(session: ForwardSession, method: string, name: string | undefined): Record<string, string> {
    const headers: Record<string, string> = {
      ...options.headers,
      'content-type': 'application/json',
      accept: ACCEPT,
      'mcp-protocol-version': session.protocolVersion,
    };
    if (session.sessionId !== undefined) headers['mcp-session-id'] = session.sessionId;
    if (session.era === 'modern') {
      headers['mcp-method'] = method;
      if (name !== undefined) headers['mcp-name'] = name;
    }
    return headers;
  }

  /** Sends the answer to a server-to-client request back to the server (legacy era, same session). */
  async function reply(session: ForwardSession, message: JsonRpcMessage): Promise<void> {
    let answer: JsonRpcMessage;
    try {
      answer = {
        jsonrpc: '2.0',
        id: message.id,
        result: (await options.answerServerRequest(message.method!, message.params)) as Record<string, unknown>,
      };
    } catch (error) {
      const code = typeof (error as { code?: unknown }).code === 'number' ? (error as { code: number }).code : -32603;
      answer = {
        jsonrpc: '2.0',
        id: message.id,
        error: { code, message: error instanceof Error ? error.message : String(error) },
      };
    }
    const response = await pool.request({
      method: 'POST',
      path,
      headers: headersFor(session, 'response', undefined),
      body: JSON.stringify(answer),
    });
    await response.body.dump();
  }

  async function readSse(
    body: Dispatcher.ResponseData['body'],
    id: number,
    session: ForwardSession,
    onProgress: ((progress: unknown) => void) | undefined,
  ): Promise<ForwardOutcome> {
    let buffer = '';
    body.setEncoding('utf8');
    for await (const chunk of body as AsyncIterable<string>) {
      buffer += chunk;
      let boundary: number;
      while ((boundary = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const event = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + (buffer[boundary] === '\r' ? 4 : 2));
        const data = event
          .split(/\r?\n/)
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(line[5] === ' ' ? 6 : 5))
          .join('\n');
        if (data === '') continue;
        const message = JSON.parse(data) as JsonRpcMessage;
        if (message.id === id && (message.result !== undefined || message.error !== undefined)) {
          // The server ends the stream after the response; drain it so the connection goes back to the pool.
          void body.dump().catch(() => {});
          return settle(message);
        }
        if (message.method !== undefined && message.id !== undefined && message.id !== null) {
          void reply(session, message).catch(() => {});
        }
        if (message.method === 'notifications/progress' && onProgress) {
          const params = message.params as { progressToken?: unknown } | undefined;
          if (params?.progressToken === progressTokenFor(id)) onProgress(params);
        }
        // Other notifications for this request (logging) are not relayed on the fast path.
      }
    }
    return { kind: 'fallback', reason: 'stream ended without a response' };
  }

  function settle(message: JsonRpcMessage): ForwardOutcome {
    if (message.error) return { kind: 'error', error: message.error };
    const result = message.result ?? {};
    if (result.resultType !== undefined && result.resultType !== 'complete') {
      return { kind: 'fallback', reason: `result type ${String(result.resultType)}` };
    }
    return { kind: 'result', result };
  }

  return {
    async call(method, params, { session, signal, name, onProgress }) {
      const id = nextId++;
      // A progress token lets the server report progress, which keeps a long call inside its timeout.
      const meta = {
        ...(params._meta as Record<string, unknown> | undefined),
        ...(onProgress ? { progressToken: progressTokenFor(id) } : {}),
        ...(session.era === 'modern' ? session.envelope : undefined),
      };
      const sent = Object.keys(meta).length === 0 ? params : { ...params, _meta: meta };
      const response = await pool.request({
        method: 'POST',
        path,
        headers: headersFor(session, method, name),
        body: JSON.stringify({ jsonrpc: '2.0', id, method, params: sent }),
        signal,
      });
      const type = String(response.headers['content-type'] ?? '');
      if (response.statusCode === 404) {
        await response.body.dump();
        return { kind: 'fallback', reason: 'session expired' };
      }
      if (type.includes('text/event-stream')) return readSse(response.body, id, session, onProgress);
      const text = await response.body.text();
      if (type.includes('application/json') && text !== '') {
        const message = JSON.parse(text) as JsonRpcMessage;
        if (message.id === id || message.error) return settle(message);
      }
      return { kind: 'fallback', reason: `unexpected answer: HTTP ${response.statusCode} ${type}` };
    },
    close: () => pool.close(),
  };
}
