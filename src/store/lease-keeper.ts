// Keeps the leases of work running in this process alive: one timer (running only while any are held, and never
// keeping the process up) renews them all every third of their ttl, so that only a holder that is gone loses its
// slot. A renewal that finds its lease expired (the process stalled past the ttl) drops it; the work goes on.
import type { Lease } from './coordination.js';

export interface LeaseKeeper {
  /** Renews `lease` until it is let go. */
  hold(lease: Lease): void;
  /** Stops renewing `lease` and releases it. */
  letGo(lease: Lease): void;
}

export function createLeaseKeeper(ttlMs: number): LeaseKeeper {
  if (!(ttlMs > 0)) throw new RangeError(`a lease ttl must be positive, not ${ttlMs}`);
  const held = new Set<Lease>();
  let renewal: NodeJS.Timeout | undefined;
  function renewAll(): void {
    for (const lease of held) {
      void lease.renew().then(
        (live) => live || held.delete(lease),
        () => {},
      );
    }
  }
  return {
    hold(lease) {
      held.add(lease);
      renewal ??= setInterval(renewAll, Math.max(1, Math.floor(ttlMs / 3))).unref();
    },
    letGo(lease) {
      held.delete(lease);
      if (held.size === 0 && renewal !== undefined) {
        clearInterval(renewal);
        renewal = undefined;
      }
      void lease.release().catch(() => {});
    },
  };
}
