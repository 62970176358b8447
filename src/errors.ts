// The one error family of mcplex: a stable string code, an HTTP status and an optional cause.
// Callers decide by `code`, never by message text; wire formats (JSON-RPC, OpenAI JSON) are produced at the edges.

export type McplexErrorCode =
  | 'LISTEN_REFUSED'
  | 'UNKNOWN_TOOL'
  | 'UNKNOWN_RESOURCE'
  | 'UNKNOWN_PROMPT'
  | 'UPSTREAM_UNAVAILABLE'
  | 'UPSTREAM_TIMEOUT'
  | 'UPSTREAM_ERROR'
  | 'INVALID_CURSOR'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'BAD_REQUEST'
  | 'LLM_BAD_REQUEST'
  | 'KEY_INVALID'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'RATE_LIMITED'
  | 'STORE_FAILED'
  | 'NOT_FOUND'
  | 'CONVERSATION_CONFLICT'
  | 'TOO_MANY_SUBSCRIPTIONS'
  | 'LLM_FAILED';

export class McplexError extends Error {
  readonly code: McplexErrorCode;
  readonly status: number;
  /** Details for the wire error (for example the `uri` of a resource that was not found). */
  readonly data: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: McplexErrorCode,
    message: string,
    options: { status?: number; cause?: unknown; data?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'McplexError';
    this.code = code;
    this.status = options.status ?? 500;
    this.data = options.data;
  }
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
