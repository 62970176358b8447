// JSON in and out of HTTP handlers: one answer writer (and its JSON-RPC error form), and one parser for request
// bodies that must be an object.
import type { ServerResponse } from 'node:http';
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

/** A request body that must be a JSON object; anything else is a 400 saying what is wrong. */
export function parseJsonObject(raw: Buffer | string): Record<string, unknown> {
  let body: unknown;
  try {
    body = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (error) {
    throw new McplexError('LLM_BAD_REQUEST', `the request body is not valid JSON: ${errorMessage(error)}`, {
      status: 400,
    });
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new McplexError('LLM_BAD_REQUEST', 'the request body must be a JSON object', { status: 400 });
  }
  return body as Record<string, unknown>;
}

/** JSON text parsed, or undefined when it is not JSON (a backend's error text, say). */
export function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
