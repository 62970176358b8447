// JSON in and out of HTTP handlers: one answer writer (and its JSON-RPC error form), and one parser for request
// bodies that must be an object.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isJsonContentType } from '@modelcontextprotocol/server';
import { McplexError, errorMessage } from '../errors.js';

/** The text and head of a JSON answer, for whatever writes it (a response here, an LLM sink elsewhere). */
export function jsonAnswer(
  body: unknown,
  headers: Record<string, string> = {},
): { text: string; headers: Record<string, string> } {
  const text = JSON.stringify(body);
  return {
    text,
    headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...headers },
  };
}

/** Writes a JSON answer, unless an answer already began (then there is nothing left to say on this response). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  if (res.headersSent) return;
  const answer = jsonAnswer(body, headers);
  res.writeHead(status, answer.headers);
  res.end(answer.text);
}

/**
 * A JSON-RPC error as the whole answer: for a request mcplex refuses before any MCP server sees it. `id` is the
 * request's when it is known, else null (as JSON-RPC asks when the request could not be read).
 */
export function sendJsonRpcError(
  res: ServerResponse,
  status: number,
  error: { code: number; message: string; data?: unknown },
  id: unknown = null,
): void {
  sendJson(res, status, { jsonrpc: '2.0', id, error });
}

/**
 * How deep a request body may nest. Deeper JSON is refused before anything reads it: code that walks a value
 * recursively (schema validation, serialisation, an upstream's parser) would run out of stack on it.
 */
export const MAX_JSON_DEPTH = 128;

/** Whether `value` nests objects and arrays deeper than `max` levels (walked without recursion). */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  // Two parallel stacks: no allocation per node on the hot path.
  const nodes: object[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop()!;
    const depth = depths.pop()!;
    if (depth > max) return true;
    const children: unknown[] = Array.isArray(node) ? node : Object.values(node);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) {
        nodes.push(child);
        depths.push(depth + 1);
      }
    }
  }
  return false;
}

/** Whether a parsed request body nests too deeply; a body shorter than the limit cannot, and is not walked. */
export function tooDeep(raw: { length: number }, body: unknown): boolean {
  return raw.length > MAX_JSON_DEPTH && nestedDeeperThan(body, MAX_JSON_DEPTH);
}

/** The refusal of a body nested too deeply, in words for any route's error shape. */
export const TOO_DEEP = `the request body nests deeper than ${MAX_JSON_DEPTH} levels`;

/** A request body that must be a JSON object; anything else is a 400 saying what is wrong. */
export function parseJsonObject(raw: Buffer | string): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (error) {
    throw new McplexError('LLM_BAD_REQUEST', `the request body is not valid JSON: ${errorMessage(error)}`, {});
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new McplexError('LLM_BAD_REQUEST', 'the request body must be a JSON object');
  }
  if (tooDeep(raw, body)) throw new McplexError('LLM_BAD_REQUEST', TOO_DEEP);
  return body as Record<string, unknown>;
}

/** A JSON request body must say so: anything else is refused with 415, as the MCP endpoint does. */
export function assertJsonContentType(req: IncomingMessage): void {
  if (!isJsonContentType(req.headers['content-type'])) {
    throw new McplexError('UNSUPPORTED_MEDIA_TYPE', 'Content-Type must be application/json');
  }
}

/**
 * The query of a request. Not through `new URL`: a request target in absolute form that is no valid URL would
 * make it throw, and no request line may fail mcplex.
 */
export function requestQuery(req: IncomingMessage): URLSearchParams {
  const url = req.url ?? '';
  const at = url.indexOf('?');
  return new URLSearchParams(at < 0 ? '' : url.slice(at + 1));
}

/** JSON text parsed, or undefined when it is not JSON (a backend's error text, say). */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
