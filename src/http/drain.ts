// Graceful shutdown of the HTTP listener: no new connections, the requests in progress run to their end (up to a
// deadline), and every response from then on asks its client to reconnect, so that a load balancer can move the
// traffic to another replica without cutting a tool call or a streamed answer in the middle.
import type { Server, ServerResponse } from 'node:http';
import { isOpenEnded } from '../wire/open-ended.js';

export interface Drain {
  /** Counts `res` as in progress until it closes. */
  track(res: ServerResponse): void;
  /**
   * Stops accepting connections and resolves once no tracked response is in progress (open-ended ones aside), or
   * after `timeoutMs`; true when everything finished in time.
   */
  drain(timeoutMs: number): Promise<boolean>;
}

export function createDrain(server: Server): Drain {
  const inProgress = new Set<ServerResponse>();
  let draining = false;
  let check: (() => void) | undefined;
  const settled = () => [...inProgress].every((res) => isOpenEnded(res));
  return {
    track(res) {
      // A client that keeps its connection would keep talking to a replica on its way out.
      if (draining && !res.headersSent) res.setHeader('connection', 'close');
      inProgress.add(res);
      res.once('close', () => {
        inProgress.delete(res);
        check?.();
      });
    },
    drain(timeoutMs) {
      draining = true;
      // Answers not begun yet close their connection after them, so that no client sends another request on a
      // socket about to be closed (an answer already under way cannot say so any more).
      for (const res of inProgress) if (!res.headersSent) res.setHeader('connection', 'close');
      // Notification streams end now: their clients reconnect (after the stream's `retry`) to another replica,
      // and the session goes on there.
      for (const res of inProgress) if (isOpenEnded(res) && res.headersSent) res.end();
      server.close();
      server.closeIdleConnections();
      if (settled()) return Promise.resolve(true);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          check = undefined;
          resolve(false);
        }, timeoutMs);
        timer.unref();
        check = () => {
          // A finished response leaves its connection idle: close it now rather than at the deadline.
          server.closeIdleConnections();
          if (!settled()) return;
          clearTimeout(timer);
          check = undefined;
          resolve(true);
        };
      });
    },
  };
}
