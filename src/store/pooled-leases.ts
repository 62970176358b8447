// Slots of large limits kept for a moment: a lease released by a request of this process stays taken for up to
// `idleMs`, and the next request for the same key here reuses it instead of a round trip to the shared store
// (Redis) for each acquire and release. Every kept lease is a real slot of the shared count, so all processes
// together never hold more than the limit; what one process keeps idle is at most `maxIdleShare` of the limit, for
// at most `idleMs`. Limits below `minLimit` (a key's maxConcurrent 4, say) are never kept: a slot released is free
// for every process at once.
import type { Lease, Leases } from './coordination.js';

export interface LeasePoolOptions {
  /** The smallest limit whose slots are kept. Default 32. */
  minLimit?: number;
  /** How long a released slot is kept for the next request here. Default 250 ms. */
  idleMs?: number;
  /** The largest share of a limit kept idle. Default 0.1. */
  maxIdleShare?: number;
  now?: () => number;
}

export interface PooledLeases {
  readonly leases: Leases;
  /** Releases every kept slot. */
  close(): Promise<void>;
}

interface Kept {
  lease: Lease;
  ttlMs: number;
  /** When the shared store last set its expiry (acquired or renewed). */
  renewedAt: number;
  /** When it was released here (for the idle sweep). */
  idleSince: number;
}

export function poolLeases(shared: Leases, options: LeasePoolOptions = {}): PooledLeases {
  const { minLimit = 32, idleMs = 250, maxIdleShare = 0.1, now = Date.now } = options;
  const idle = new Map<string, Kept[]>();
  let sweeper: NodeJS.Timeout | undefined;
  let closed = false;

  function drop(kept: Kept): void {
    void kept.lease.release().catch(() => {});
  }

  /** Releases the slots kept longer than idleMs. */
  function sweep(): void {
    const time = now();
    for (const [key, list] of idle) {
      const keep = list.filter((k) => time - k.idleSince < idleMs);
      for (const k of list) if (!keep.includes(k)) drop(k);
      if (keep.length > 0) idle.set(key, keep);
      else idle.delete(key);
    }
    if (idle.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  }

  /** The lease a request holds: renewals go to the shared store, the release keeps the slot here for a while. */
  function handOut(kept: Kept, limit: number): Lease {
    let released = false;
    return {
      key: kept.lease.key,
      id: kept.lease.id,
      async renew() {
        if (released) return false;
        const live = await kept.lease.renew();
        if (live) kept.renewedAt = now();
        return live;
      },
      async release() {
        if (released) return;
        released = true;
        const list = idle.get(kept.lease.key) ?? [];
        if (closed || list.length >= Math.max(1, Math.floor(limit * maxIdleShare))) {
          await kept.lease.release();
          return;
        }
        kept.idleSince = now();
        list.push(kept);
        idle.set(kept.lease.key, list);
        sweeper ??= setInterval(sweep, Math.max(1, Math.floor(idleMs / 2))).unref();
      },
    };
  }

  return {
    leases: {
      async acquire(key, limit, ttlMs) {
        if (limit < minLimit || closed) return shared.acquire(key, limit, ttlMs);
        const list = idle.get(key);
        while (list !== undefined && list.length > 0) {
          const kept = list.pop()!;
          if (list.length === 0) idle.delete(key);
          // A slot reused must have most of its ttl left; one close to expiring goes back and a fresh one is taken.
          if (kept.ttlMs === ttlMs && now() - kept.renewedAt < ttlMs / 2) return handOut(kept, limit);
          drop(kept);
        }
        const lease = await shared.acquire(key, limit, ttlMs);
        if (lease === undefined) return undefined;
        return handOut({ lease, ttlMs, renewedAt: now(), idleSince: 0 }, limit);
      },
      count: (key) => shared.count(key),
    },
    async close() {
      closed = true;
      const all = [...idle.values()].flat();
      idle.clear();
      if (sweeper !== undefined) clearInterval(sweeper);
      sweeper = undefined;
      await Promise.all(all.map((k) => k.lease.release().catch(() => {})));
    },
  };
}
