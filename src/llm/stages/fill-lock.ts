// One backend call for identical cacheable requests on different replicas: the first to miss the shared cache takes
// the fill lock for its key (a lease, so a leader that dies frees it within the lease time); the others wait for
// its wake-up (or for the lock to lapse) and answer from the cache it filled. A follower that finds the cache still
// empty when the lock is gone (the answer was not cacheable, or the leader died) answers the request itself.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Coordination, Lease } from '../../store/coordination.js';
import { createLeaseKeeper } from '../../store/lease-keeper.js';
import type { CacheEntry } from '../../store/store.js';

export interface FillLockOptions {
  coordination: Pick<Coordination, 'acquire' | 'count' | 'publish' | 'subscribe'>;
  /** How long the lock outlives a leader that stopped renewing it. */
  ttlMs: number;
  /** How often a follower looks again without a wake-up. Default 250 ms. */
  pollMs?: number;
}

export interface FillLock {
  /**
   * The lock for `key`; `elsewhere` when another request holds it; undefined when the lock cannot be used now
   * (the coordination is unavailable): the request then goes on without it.
   */
  claim(key: string): Promise<Lease | 'elsewhere' | undefined>;
  /** Releases the lock (after the answer was saved, or was not to be) and wakes the followers. */
  release(key: string, lease: Lease): Promise<void>;
  /**
   * Waits until the leader of `key` saved its answer (`lookup` finds it) or the lock is gone; undefined then, or
   * when `gone()` says nobody waits any more.
   */
  wait(
    key: string,
    lookup: () => Promise<CacheEntry | undefined>,
    gone: () => boolean,
  ): Promise<CacheEntry | undefined>;
}

export function createFillLock(options: FillLockOptions): FillLock {
  const { coordination, ttlMs } = options;
  const pollMs = options.pollMs ?? 250;
  const keeper = createLeaseKeeper(ttlMs);
  const lockKey = (key: string) => `fill:${key}`;
  const topic = (key: string) => `filled:${key}`;
  return {
    async claim(key) {
      try {
        const lease = await coordination.acquire(lockKey(key), 1, ttlMs);
        if (lease === undefined) return 'elsewhere';
        keeper.hold(lease);
        return lease;
      } catch {
        return undefined;
      }
    },
    async release(key, lease) {
      keeper.letGo(lease);
      await coordination.publish(topic(key), '').catch(() => {});
    },
    async wait(key, lookup, gone) {
      let wake: () => void = () => {};
      const unsubscribe = await coordination.subscribe(topic(key), () => wake()).catch(() => undefined);
      // Without the wake-up the follower looks again on its own, every pollMs.
      try {
        for (;;) {
          const woken = new Promise<void>((resolve) => (wake = resolve));
          const entry = await lookup();
          if (entry || gone()) return entry;
          // The lock gone (or unknowable): the leader is done or dead; the cache says which.
          if ((await coordination.count(lockKey(key)).catch(() => 0)) === 0) return lookup();
          await Promise.race([woken, sleep(pollMs)]);
        }
      } finally {
        await unsubscribe?.();
      }
    },
  };
}
