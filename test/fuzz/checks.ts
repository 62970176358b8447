// The properties every answer of mcplex must have, whatever it was sent: no 5xx but a declared upstream failure,
// the route's error shape, a client error for bad input, and a valid key accepted in every form HTTP allows.
import { MAX_JSON_DEPTH, nestedDeeperThan } from '../../src/wire/json.js';

/** What the runner sent, with the placeholders filled in. */
export interface SentRequest {
  route: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  /** Why it is bad input, including what only the run knows (no valid key, a body over the limit). */
  bad: readonly string[];
  /** It carried a valid key in one of the forms RFC 9110 allows (keys mode only). */
  validKey: boolean;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export type PropertyName =
  | 'no-5xx'
  | 'no-internal-error'
  | 'error-shape'
  | 'bad-input-rejected'
  | 'valid-key-accepted'
  | 'answers-in-time'
  | 'answers-at-all'
  | 'healthy-after-batch'
  | 'upstream-ready-after-batch'
  | 'heap-returns-to-baseline';

export interface Violation {
  property: PropertyName;
  /** What was wrong, for people. */
  detail: string;
  /** The HTTP status and JSON-RPC code involved: with the property and route, what tells findings apart. */
  code: string;
}

type Family = 'mcp' | 'v1' | 'admin' | 'other';

/**
 * The generator's labels that still hold for the request as sent. A label travels with a generated value, but
 * the value may not survive into the body as JSON reads it (a repeated key keeps only the last value; shrinking
 * removes parts), and a "modern" request without a modern MCP-Protocol-Version is a legacy one to the server.
 */
export function confirmedBad(labels: readonly string[], headers: Record<string, string>, body: string | undefined) {
  let parsed: unknown;
  let parses = body !== undefined;
  try {
    if (body !== undefined) parsed = JSON.parse(body);
  } catch {
    parses = false;
  }
  // An initialize without a modern MCP-Protocol-Version is a plain 2025-era initialize, whatever its _meta holds:
  // the modern era's rules (envelope, headers) do not apply to it.
  const modern = headers['mcp-protocol-version'] === '2026-07-28';
  const legacyInitialize = !modern && (parsed as { method?: unknown } | undefined)?.method === 'initialize';
  return labels.filter((label) => {
    if (label.startsWith('malformed JSON')) return body !== undefined && !parses;
    if (/^nesting \d+ deep$/.test(label)) return parses && nestedDeeperThan(parsed, MAX_JSON_DEPTH);
    if (label.includes('is not in modern')) return modern;
    if (legacyInitialize && /envelope|MCP-Protocol-Version|Mcp-Method|Mcp-Name/.test(label)) return false;
    return true;
  });
}

export function family(path: string): Family {
  const pathname = path.split('?', 1)[0] ?? path;
  if (pathname === '/mcp') return 'mcp';
  if (pathname.startsWith('/v1/')) return 'v1';
  if (pathname.startsWith('/admin/')) return 'admin';
  return 'other';
}

/**
 * JSON-RPC error codes that say "your request was wrong": parse error, invalid request, method not found, invalid
 * params, resource not found (MCP), and mcplex's Mcp-Param-* header mismatch (-32020).
 */
const CLIENT_CODES: ReadonlySet<number> = new Set([-32700, -32600, -32601, -32602, -32002, -32020]);

/**
 * A declared upstream failure, the only 5xx (and the only JSON-RPC internal error) an answer may carry. Kept narrow
 * on purpose, so that a local bug cannot hide behind it:
 * - /v1: HTTP 502, 503 or 504 whose OpenAI error has type `server_error` and code `upstream_error` or `timeout`:
 *   the router's own words for an LLM backend it could not reach or that did not answer in time.
 * - /mcp: JSON-RPC error -32603 whose `data.code` is `UPSTREAM_UNAVAILABLE` (the MCP server is down or
 *   reconnecting) or `UPSTREAM_TIMEOUT` (it did not answer within its call timeout), at any HTTP status below 500.
 * Not included: `UPSTREAM_ERROR` ("server X failed: <local exception>"), which mcplex also raises when its own
 * forwarding throws, and anything without those markers, whatever its message says.
 */
export function declaredUpstreamFailure(route: Family, status: number, messages: readonly unknown[]): boolean {
  if (route === 'v1') {
    if (status !== 502 && status !== 503 && status !== 504) return false;
    const error = openAiErrorOf(messages[0]);
    return error?.type === 'server_error' && (error.code === 'upstream_error' || error.code === 'timeout');
  }
  if (route === 'mcp') {
    return status < 500 && messages.every((m) => upstreamMcpError(m));
  }
  return false;
}

function upstreamMcpError(message: unknown): boolean {
  const error = jsonRpcErrorOf(message);
  if (!error || error.code !== -32603) return false;
  const code = (error.data as { code?: unknown } | undefined)?.code;
  return code === 'UPSTREAM_UNAVAILABLE' || code === 'UPSTREAM_TIMEOUT';
}

interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonRpcErrorOf(message: unknown): JsonRpcErrorObject | undefined {
  if (!isObject(message) || !isObject(message.error)) return undefined;
  return message.error as unknown as JsonRpcErrorObject;
}

/** `{jsonrpc: '2.0', error: {code: integer, message: string}, id: string | number | null}` */
function jsonRpcErrorShape(message: unknown): string | undefined {
  if (!isObject(message)) return 'not an object';
  if (message.jsonrpc !== '2.0') return 'jsonrpc is not "2.0"';
  if (!('id' in message)) return 'no id';
  const id = message.id;
  if (id !== null && typeof id !== 'string' && typeof id !== 'number') return 'id is not a string, number or null';
  const error = message.error;
  if (!isObject(error)) return 'error is not an object';
  if (typeof error.code !== 'number' || !Number.isInteger(error.code)) return 'error.code is not an integer';
  if (typeof error.message !== 'string') return 'error.message is not a string';
  return undefined;
}

function openAiErrorOf(
  body: unknown,
): { message?: unknown; type?: unknown; code?: unknown; param?: unknown } | undefined {
  if (!isObject(body) || !isObject(body.error)) return undefined;
  return body.error;
}

/** `{error: {message: string, type: string, param?: string | null, code?: string | null}}` (OpenAI's shape). */
function openAiErrorShape(body: unknown): string | undefined {
  const error = openAiErrorOf(body);
  if (!error) return 'no error object';
  if (typeof error.message !== 'string') return 'error.message is not a string';
  if (typeof error.type !== 'string') return 'error.type is not a string';
  for (const key of ['param', 'code'] as const) {
    const value = error[key];
    if (value !== undefined && value !== null && typeof value !== 'string') return `error.${key} is not a string`;
  }
  return undefined;
}

function header(answer: Answer, name: string): string {
  const value = answer.headers[name];
  return (Array.isArray(value) ? value[0] : value) ?? '';
}

/** The JSON messages of an answer: the body, or each SSE `data:` line that holds JSON. Undefined: not JSON. */
export function messagesOf(answer: Answer): unknown[] | undefined {
  if (header(answer, 'content-type').includes('text/event-stream')) {
    const messages: unknown[] = [];
    for (const line of answer.body.split('\n')) {
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (!data.startsWith('{') && !data.startsWith('[')) continue;
      try {
        messages.push(JSON.parse(data));
      } catch {
        // A stream cut short by the reader (open-ended streams) may end in half an event.
      }
    }
    return messages.flat();
  }
  if (answer.body === '') return [];
  try {
    const parsed: unknown = JSON.parse(answer.body);
    return Array.isArray(parsed) ? parsed : [parsed];
  } catch {
    return undefined;
  }
}

/** An error's message, or what a raw zod issue list in it is about (the list itself is long and all alike). */
function describeMessage(error: JsonRpcErrorObject | undefined): string {
  const message = String(error?.message);
  if (!message.trimStart().startsWith('[')) return message;
  try {
    const issues = JSON.parse(message) as { path?: unknown[]; code?: unknown }[];
    const paths = issues.map((issue) => `${(issue.path ?? []).join('.')} (${String(issue.code)})`);
    return `a raw zod issue list: ${paths.join(', ')}`;
  } catch {
    return message;
  }
}

function errorCodes(messages: readonly unknown[]): number[] {
  return messages.map((m) => jsonRpcErrorOf(m)?.code).filter((c): c is number => typeof c === 'number');
}

/** Every property of one answer; an empty list is a pass. */
export function checkAnswer(request: SentRequest, answer: Answer): Violation[] {
  const violations: Violation[] = [];
  const route = family(request.path);
  const { status } = answer;
  const messages = messagesOf(answer);
  const codes = messages ? errorCodes(messages) : [];
  const code = `${status}${codes.length > 0 ? ` ${codes.join(',')}` : ''}`;
  const add = (property: PropertyName, detail: string) => violations.push({ property, detail, code });

  if (status >= 500 && !declaredUpstreamFailure(route, status, messages ?? [])) {
    add('no-5xx', `HTTP ${status}`);
  }
  if (route === 'mcp' && messages) {
    const internal = messages.filter((m) => jsonRpcErrorOf(m)?.code === -32603 && !upstreamMcpError(m));
    if (internal.length > 0)
      add('no-internal-error', `JSON-RPC -32603: ${describeMessage(jsonRpcErrorOf(internal[0]))}`);
  }

  // HEAD answers have no body to check; 1xx-3xx bodies are the route's business.
  if (request.method !== 'HEAD') {
    const shape = shapeProblem(route, answer, messages);
    if (shape) add('error-shape', shape);
  }

  if (request.bad.length > 0 && !clientError(route, status, messages)) {
    add('bad-input-rejected', `bad input (${request.bad.join('; ')}) answered ${code}`);
  }
  if (request.validKey && status === 401) add('valid-key-accepted', 'a valid key was refused with 401');
  return violations;
}

function shapeProblem(route: Family, answer: Answer, messages: unknown[] | undefined): string | undefined {
  const { status } = answer;
  if (route === 'mcp') {
    if (status >= 400) {
      if (!messages) return `HTTP ${status} with a body that is not JSON`;
      if (messages.length === 0) return `HTTP ${status} with no JSON-RPC error`;
    }
    for (const message of messages ?? []) {
      if (status < 400 && !(isObject(message) && 'error' in message)) continue;
      const problem = jsonRpcErrorShape(message);
      if (problem) return `not a JSON-RPC error object (${problem})`;
    }
    return undefined;
  }
  if (route === 'v1' || route === 'admin') {
    if (status >= 400) {
      if (!messages || messages.length !== 1) return `HTTP ${status} without an OpenAI error body`;
      const problem = openAiErrorShape(messages[0]);
      if (!problem) return undefined;
      const jsonRpc = jsonRpcErrorShape(messages[0]) === undefined ? ', a JSON-RPC error instead' : '';
      return `not an OpenAI error (${problem}${jsonRpc})`;
    }
    // A stream that fails after it began ends with an error event, in the same shape.
    for (const message of header(answer, 'content-type').includes('text/event-stream') ? (messages ?? []) : []) {
      if (!(isObject(message) && 'error' in message)) continue;
      const problem = openAiErrorShape(message);
      if (problem) return `stream error event not in OpenAI's shape (${problem})`;
    }
    return undefined;
  }
  // Other paths answer errors as `{error: {code, message}}` (the 404 route) or a JSON-RPC error (the Host guard).
  if (status >= 400) {
    const body = messages?.[0];
    const error = isObject(body) && isObject(body.error) ? body.error : undefined;
    if (typeof error?.message !== 'string') return `HTTP ${status} without an error message`;
  }
  return undefined;
}

/** A 4xx, or on /mcp a JSON-RPC error with a client code and no result beside it. */
function clientError(route: Family, status: number, messages: unknown[] | undefined): boolean {
  if (status >= 400 && status < 500) return true;
  if (route !== 'mcp' || status >= 300 || !messages || messages.length === 0) return false;
  return (
    messages.every((m) => {
      const error = jsonRpcErrorOf(m);
      if (error) return CLIENT_CODES.has(error.code);
      // Notifications on an SSE answer (progress, log messages) come beside the answer; only the answer counts.
      return isObject(m) && !('result' in m) && !('error' in m);
    }) && messages.some((m) => jsonRpcErrorOf(m) !== undefined)
  );
}

/** A message without ids, digits, quoted names and long hex: what tells two findings of one bug apart. */
export function normalise(text: string): string {
  return text
    .replace(/"[^"]*"/g, '"…"')
    .replace(/[0-9a-f]{8}-[0-9a-f-]{27}/gi, 'UUID')
    .replace(/\d+/g, 'N')
    .slice(0, 100);
}
