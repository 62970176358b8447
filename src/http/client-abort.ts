// Whether a request failed because its client went away (closed the connection, reset it): that is not an error
// of mcplex, and a flood of such requests must not be a flood of error lines.
import type { IncomingMessage } from 'node:http';

const CLIENT_GONE = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE']);

export function isClientAbort(req: IncomingMessage, error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CLIENT_GONE.has(code)) return true;
  if (error instanceof Error && error.message === 'aborted') return true;
  return req.socket.destroyed;
}
