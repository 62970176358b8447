// Counting leases in a SQL store (SQLite or PostgreSQL), for requests in progress shared by every process on the
// store when no Redis is configured: one row per live lease with its expiry; taking one removes the key's expired
// rows, counts the rest and adds a row only below the limit, all under the key's lock, so that processes never
// overrun a limit together. Slower than Redis (a transaction per acquire and per release), and correct.
import { randomUUID } from 'node:crypto';
import type { Lease, Leases } from './coordination.js';

/** What a store provides: each step atomic, taking the lock on the key where it reads and then writes. */
export interface LeaseTable {
  /** Under the key's lock: deletes the expired rows of `key`; when fewer than `limit` remain, adds `id`. */
  acquire(key: string, id: string, limit: number, now: number, expiresAt: number): Promise<boolean>;
  /** Moves a live lease's expiry; false when it is gone or expired. */
  renew(id: string, now: number, expiresAt: number): Promise<boolean>;
  release(id: string): Promise<void>;
  count(key: string, now: number): Promise<number>;
}

export function createSqlLeases(table: LeaseTable, now: () => number = Date.now): Leases {
  return {
    async acquire(key, limit, ttlMs) {
      if (!(ttlMs > 0) || !Number.isFinite(ttlMs))
        throw new RangeError(`ttlMs must be a positive number, not ${ttlMs}`);
      if (limit <= 0) return undefined;
      const id = randomUUID();
      const time = now();
      if (!(await table.acquire(key, id, limit, time, time + ttlMs))) return undefined;
      let gone = false;
      const lease: Lease = {
        key,
        id,
        async renew() {
          if (gone) return false;
          const time = now();
          const live = await table.renew(id, time, time + ttlMs);
          if (!live) gone = true;
          return live;
        },
        async release() {
          if (gone) return;
          gone = true;
          await table.release(id);
        },
      };
      return lease;
    },
    count: (key) => table.count(key, now()),
  };
}
