// How the console talks to mcplex: every path is relative to where the console is served (`<root>/ui/`), so a
// reverse proxy may put mcplex under any sub-path. The admin key travels in the Authorization header only (never in
// a URL or a cookie), which is also what keeps the console safe from cross-site request forgery.

const KEY_SLOT = 'mcplex.console.key';

/** The mcplex root this console belongs to, e.g. `https://host/tools/mcplex/`. */
export const root = new URL('../', location.href.split('#', 1)[0]);

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY_SLOT);
}

export function storeKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_SLOT);
  else sessionStorage.setItem(KEY_SLOT, key);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const key = storedKey();
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

/** Told when mcplex no longer takes the signed-in key (revoked, expired): the console signs out. */
export const SIGNED_OUT = 'mcplex:signed-out';

/** The message of an error answer (OpenAI's shape, JSON-RPC's, or mcplex's plain one). */
async function failure(res: Response): Promise<ApiError> {
  if (res.status === 401 && storedKey()) dispatchEvent(new CustomEvent(SIGNED_OUT));
  const text = await res.text();
  try {
    const body = JSON.parse(text) as { error?: { message?: string } | string };
    const message = typeof body.error === 'string' ? body.error : body.error?.message;
    if (message) return new ApiError(res.status, message);
  } catch {
    // Not JSON: the status says enough.
  }
  return new ApiError(res.status, `${res.status} ${res.statusText}`);
}

/** A JSON request to mcplex (`path` relative to its root, e.g. `admin/keys`). */
export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const res = await fetch(new URL(path, root), {
    method: init.method ?? 'GET',
    headers: headers(init.body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  if (!res.ok) throw await failure(res);
  return (await res.json()) as T;
}

/** Reads a `text/event-stream` body, calling `onEvent` per event (data lines joined), until it ends. */
async function readEvents(res: Response, onEvent: (event: string, data: string) => void): Promise<void> {
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  let event = 'message';
  let data: string[] = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end: number;
    while ((end = buffer.search(/\r\n|\r|\n/)) >= 0) {
      const line = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1));
      if (line === '') {
        if (data.length > 0) onEvent(event, data.join('\n'));
        event = 'message';
        data = [];
      } else if (line.startsWith('data:')) data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      else if (line.startsWith('event:')) event = line.slice(6).trim();
    }
  }
}

/**
 * Follows a server-sent event stream with the Authorization header (EventSource cannot send one), reconnecting
 * after a second when it drops, until `signal` aborts.
 */
export function followEvents(
  path: string,
  onEvent: (event: string, data: string) => void,
  onState: (connected: boolean) => void,
  signal: AbortSignal,
): void {
  const run = async () => {
    while (!signal.aborted) {
      try {
        const res = await fetch(new URL(path, root), { headers: headers({ accept: 'text/event-stream' }), signal });
        if (!res.ok) throw await failure(res);
        onState(true);
        await readEvents(res, onEvent);
      } catch (error) {
        // Dropped: shown as disconnected, tried again. Refused (the key no longer holds): given up.
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          onState(false);
          return;
        }
      }
      onState(false);
      if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  };
  void run();
}

const MODERN = '2026-07-28';
let rpcId = 0;

export interface JsonRpcError {
  code: number;
  message: string;
  data?: unknown;
}

/**
 * One MCP request to mcplex's own /mcp endpoint in the 2026-07-28 era (stateless: no session to set up), as any
 * MCP client sends it; answers as JSON or as an SSE stream are both read.
 */
export async function mcp<T>(method: string, params: Record<string, unknown> = {}, name?: string): Promise<T> {
  const id = ++rpcId;
  const body = {
    jsonrpc: '2.0',
    id,
    method,
    params: {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MODERN,
        'io.modelcontextprotocol/clientCapabilities': {},
        'io.modelcontextprotocol/clientInfo': { name: 'mcplex-console', version: '1' },
      },
    },
  };
  const res = await fetch(new URL('mcp', root), {
    method: 'POST',
    headers: headers({
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(name === undefined ? {} : { 'mcp-name': name }),
    }),
    body: JSON.stringify(body),
  });
  let message: { id?: unknown; result?: T; error?: JsonRpcError } | undefined;
  if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    await readEvents(res, (_event, data) => {
      const parsed = JSON.parse(data) as { id?: unknown };
      if (parsed.id === id) message = parsed as typeof message;
    });
  } else {
    const text = await res.text();
    try {
      message = JSON.parse(text) as typeof message;
    } catch {
      throw new ApiError(res.status, `${res.status} ${res.statusText}`);
    }
  }
  if (!message) throw new ApiError(res.status, 'the stream ended without an answer');
  if (message.error) throw new ApiError(res.status, `${message.error.message} (${message.error.code})`);
  return message.result as T;
}

/** A streamed chat completion: calls `onChunk` with each parsed chunk until `[DONE]`. */
export async function chatStream(
  body: Record<string, unknown>,
  onChunk: (chunk: Record<string, unknown>) => void,
  signal: AbortSignal,
): Promise<void> {
  const res = await fetch(new URL('v1/chat/completions', root), {
    method: 'POST',
    headers: headers({ 'content-type': 'application/json', accept: 'text/event-stream' }),
    body: JSON.stringify({ ...body, stream: true, stream_options: { include_usage: true } }),
    signal,
  });
  if (!res.ok) throw await failure(res);
  await readEvents(res, (_event, data) => {
    if (data === '[DONE]') return;
    const chunk = JSON.parse(data) as Record<string, unknown>;
    if (chunk.error) {
      const error = chunk.error as { message?: string };
      throw new ApiError(502, error.message ?? 'the stream failed');
    }
    onChunk(chunk);
  });
}

/** Milliseconds as a short duration: 850 ms, 12.3 s, 4 min. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60_000)} min`;
}

export function when(at: number | null | undefined): string {
  return at ? new Date(at).toLocaleString() : '—';
}
