// Whether a request failed because its client went away (closed or reset its connection): that is not an error
// of mcplex, and a flood of such requests must not be a flood of error lines.
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Decided by the client's own connection, never by the error alone: an upstream's reset carries the same codes
 * (ECONNRESET, EPIPE) and is a failure to report.
 */
export function isClientAbort(req: IncomingMessage, res: ServerResponse): boolean {
  return req.socket.destroyed || (res.destroyed && !res.writableFinished);
}
