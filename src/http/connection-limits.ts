// A cap on open connections, in all and optionally per client address: a flood of connections that never send
// anything must not use up the process's file descriptors or memory. Behind a load balancer every client shares
// the balancer's address, so the per-address cap is off unless configured.
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

export interface ConnectionLimits {
  max: number;
  perAddress?: number;
}

const REFUSAL = (reason: string) => {
  const body = JSON.stringify({ error: { code: 'TOO_MANY_CONNECTIONS', message: reason } });
  return (
    'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: application/json\r\n' +
    `retry-after: 1\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  );
};

export interface ConnectionCount {
  /** Connections open now (refused ones aside). */
  open(): number;
  /** Whether this connection was refused: a request on it, parsed meanwhile, must not be served. */
  refused(socket: Socket): boolean;
}

/** Refuses connections past the limits with a 503 and closes them. */
export function limitConnections(server: Server, limits: ConnectionLimits): ConnectionCount {
  let open = 0;
  const perAddress = new Map<string, number>();
  const refused = new WeakSet<Socket>();
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? '';
    const fromAddress = perAddress.get(address) ?? 0;
    const reason =
      open >= limits.max
        ? `too many open connections (${limits.max}); try again later`
        : limits.perAddress !== undefined && fromAddress >= limits.perAddress
          ? `too many open connections from this address (${limits.perAddress}); close some first`
          : undefined;
    if (reason !== undefined) {
      // Answered without reading the request: whatever it is, it is not served.
      refused.add(socket);
      socket.end(REFUSAL(reason));
      return;
    }
    open++;
    if (limits.perAddress !== undefined) perAddress.set(address, fromAddress + 1);
    socket.once('close', () => {
      open--;
      if (limits.perAddress === undefined) return;
      const left = (perAddress.get(address) ?? 1) - 1;
      if (left > 0) perAddress.set(address, left);
      else perAddress.delete(address);
    });
  });
  return { open: () => open, refused: (socket) => refused.has(socket) };
}
