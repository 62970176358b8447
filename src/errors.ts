// The one error family of mcplex and its registry: each code has one HTTP status, one JSON-RPC code (/mcp) and one
// OpenAI error type (/v1, /admin). Callers decide by `code`, never by message text; each wire's shape is produced
// in one place from this table (toWireError for JSON-RPC, toOpenAiError for OpenAI's JSON).

/** OpenAI's error types. */
export type OpenAiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error';

export interface ErrorSpec {
  status: number;
  /** The JSON-RPC error code on /mcp. */
  rpc: number;
  openai: OpenAiErrorType;
}

const spec = (status: number, rpc: number, openai: OpenAiErrorType): ErrorSpec => ({ status, rpc, openai });

export const ERRORS = {
  LISTEN_REFUSED: spec(500, -32603, 'server_error'),
  UNKNOWN_TOOL: spec(404, -32602, 'not_found_error'),
  UNKNOWN_RESOURCE: spec(404, -32002, 'not_found_error'),
  UNKNOWN_PROMPT: spec(404, -32602, 'not_found_error'),
  UPSTREAM_UNAVAILABLE: spec(503, -32603, 'server_error'),
  UPSTREAM_TIMEOUT: spec(504, -32603, 'server_error'),
  UPSTREAM_ERROR: spec(502, -32603, 'server_error'),
  INVALID_CURSOR: spec(400, -32602, 'invalid_request_error'),
  BODY_TOO_LARGE: spec(413, -32600, 'invalid_request_error'),
  UNSUPPORTED_MEDIA_TYPE: spec(415, -32000, 'invalid_request_error'),
  BAD_REQUEST: spec(400, -32600, 'invalid_request_error'),
  LLM_BAD_REQUEST: spec(400, -32602, 'invalid_request_error'),
  KEY_INVALID: spec(400, -32602, 'invalid_request_error'),
  KEY_EXISTS: spec(409, -32602, 'invalid_request_error'),
  STORE_FAILED: spec(500, -32603, 'server_error'),
  /** The store's server (PostgreSQL) cannot be reached: the request may be tried again later. */
  STORE_UNAVAILABLE: spec(503, -32603, 'server_error'),
  /** Redis (limits, leases) is unreachable and the configuration says to refuse rather than count locally. */
  SHARED_STATE_UNAVAILABLE: spec(503, -32603, 'server_error'),
  NOT_FOUND: spec(404, -32602, 'not_found_error'),
  CONVERSATION_CONFLICT: spec(409, -32602, 'invalid_request_error'),
  TOO_MANY_SUBSCRIPTIONS: spec(400, -32602, 'invalid_request_error'),
  /** An MCP call over a key's or a server's limits; `data.retryAfterMs` says when to come back. */
  RATE_LIMITED: spec(429, -32029, 'rate_limit_error'),
  /** A backend's own failure, passed on with the backend's status (`upstreamStatus`), else 502. */
  LLM_FAILED: spec(502, -32603, 'server_error'),
} as const satisfies Record<string, ErrorSpec>;

export type McplexErrorCode = keyof typeof ERRORS;

export class McplexError extends Error {
  readonly code: McplexErrorCode;
  readonly status: number;
  /** Details for the wire error (for example the `uri` of a resource that was not found). */
  readonly data: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: McplexErrorCode,
    message: string,
    options: {
      cause?: unknown;
      data?: Record<string, unknown>;
      /** LLM_FAILED only: the status the backend answered, which the caller gets as it is. */
      upstreamStatus?: number;
    } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'McplexError';
    this.code = code;
    this.status = code === 'LLM_FAILED' && options.upstreamStatus ? options.upstreamStatus : ERRORS[code].status;
    this.data = options.data;
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
