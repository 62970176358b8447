// Responses that stay open for as long as the client wants (notification streams): marked where they are served,
// read by the graceful drain, which does not wait for them.
import type { ServerResponse } from 'node:http';

const openEnded = new WeakSet<ServerResponse>();

export function markOpenEnded(res: ServerResponse): void {
  openEnded.add(res);
}

export function isOpenEnded(res: ServerResponse): boolean {
  return openEnded.has(res);
}
