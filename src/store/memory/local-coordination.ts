// The coordination port inside one process: topics as sets of handlers, leases as expiry times per key. What one
// process needs, and the reference the contract suite holds network implementations to.
import type { Coordination, Lease, Unsubscribe } from '../coordination.js';

/** Above this many keys an acquire sweeps out keys whose leases have all expired, so idle keys do not pile up. */
const SWEEP_THRESHOLD = 10_000;

export interface LocalCoordinationOptions {
  /** The clock leases expire by (milliseconds); tests pass their own. */
  now?: () => number;
}

export function createLocalCoordination(options: LocalCoordinationOptions = {}): Coordination {
  const now = options.now ?? Date.now;
  const topics = new Map<string, Set<(message: string) => void>>();
  /** Per key, the expiry time of each live (or expired but not yet swept) lease, by id. */
  const leases = new Map<string, Map<string, number>>();
  let sweepAbove = SWEEP_THRESHOLD;
  let sequence = 0;
  let closed = false;

  /** The key's live leases, expired ones removed first (and the key forgotten when none is left). */
  function live(key: string, time: number): Map<string, number> | undefined {
    const held = leases.get(key);
    if (held === undefined) return undefined;
    for (const [id, expiresAt] of held) if (expiresAt <= time) held.delete(id);
    if (held.size > 0) return held;
    leases.delete(key);
    return undefined;
  }

  function sweep(time: number): void {
    if (leases.size <= sweepAbove) return;
    for (const key of [...leases.keys()]) live(key, time);
    // When most keys are still in use, wait for the map to double before sweeping again (amortised O(1)).
    sweepAbove = Math.max(SWEEP_THRESHOLD, leases.size * 2);
  }

  function lease(key: string, id: string, ttlMs: number): Lease {
    return {
      key,
      id,
      async renew() {
        const time = now();
        const held = live(key, time);
        if (held?.get(id) === undefined) return false;
        held.set(id, time + ttlMs);
        return true;
      },
      async release() {
        const held = leases.get(key);
        if (held === undefined || !held.delete(id)) return;
        if (held.size === 0) leases.delete(key);
      },
    };
  }

  return {
    async publish(topic, message) {
      const handlers = topics.get(topic);
      if (handlers === undefined) return;
      // A copy: a handler that subscribes or unsubscribes changes the next message's audience, not this one's.
      for (const handler of [...handlers]) {
        try {
          handler(message);
        } catch {
          // One subscriber's trouble is not the others'.
        }
      }
    },

    async subscribe(topic, handler): Promise<Unsubscribe> {
      if (closed) return async () => {};
      // A wrapper per subscription, so that the same handler subscribed twice is two subscriptions.
      const entry = (message: string) => handler(message);
      let handlers = topics.get(topic);
      if (handlers === undefined) topics.set(topic, (handlers = new Set()));
      handlers.add(entry);
      return async () => {
        const current = topics.get(topic);
        if (current === undefined || !current.delete(entry)) return;
        if (current.size === 0) topics.delete(topic);
      };
    },

    async acquire(key, limit, ttlMs) {
      if (!(ttlMs > 0)) throw new RangeError(`a lease needs a positive ttl, not ${ttlMs}`);
      if (closed || !(limit > 0)) return undefined;
      const time = now();
      const held = live(key, time);
      if (held !== undefined && held.size >= limit) return undefined;
      const id = String(++sequence);
      if (held === undefined) leases.set(key, new Map([[id, time + ttlMs]]));
      else held.set(id, time + ttlMs);
      sweep(time);
      return lease(key, id, ttlMs);
    },

    async count(key) {
      return live(key, now())?.size ?? 0;
    },

    async close() {
      closed = true;
      topics.clear();
      leases.clear();
    },
  };
}
