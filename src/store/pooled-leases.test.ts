// Slots of large limits kept for a moment after a release: fewer round trips, never more held than the limit,
// small limits free at once.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Leases } from './coordination.js';
import { createLocalCoordination } from './memory/local-coordination.js';
import { poolLeases } from './pooled-leases.js';

const TTL = 30_000;

/** Shared leases (in memory) that count the acquires and releases they are asked. */
function counted() {
  const real = createLocalCoordination();
  const calls = { acquire: 0, release: 0 };
  const leases: Leases = {
    async acquire(key, limit, ttlMs) {
      calls.acquire++;
      const lease = await real.acquire(key, limit, ttlMs);
      if (lease === undefined) return undefined;
      return {
        ...lease,
        renew: () => lease.renew(),
        release: () => {
          calls.release++;
          return lease.release();
        },
      };
    },
    count: (key) => real.count(key),
  };
  return { leases, calls, real };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('pooled leases', () => {
  it('reuses a released slot of a large limit for the next request here', async () => {
    const shared = counted();
    const pool = poolLeases(shared.leases);
    for (let i = 0; i < 20; i++) {
      const lease = await pool.leases.acquire('d', 256, TTL);
      expect(lease).toBeDefined();
      expect(await pool.leases.count('d')).toBe(1);
      await lease!.release();
      await lease!.release();
    }
    expect(shared.calls).toEqual({ acquire: 1, release: 0 });
    // Kept, it still counts as taken for everyone.
    expect(await shared.real.count('d')).toBe(1);
    await pool.close();
    expect(await shared.real.count('d')).toBe(0);
  });

  it('never holds more than the limit among processes, and keeps at most its share idle', async () => {
    const shared = counted();
    const a = poolLeases(shared.leases);
    const b = poolLeases(shared.leases);
    const held = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).leases.acquire('d', 32, TTL)));
    expect(held.filter(Boolean)).toHaveLength(32);
    expect(await shared.real.count('d')).toBe(32);
    // a releases its 16: it keeps 3 (10 % of 32), the rest are free for b at once.
    await Promise.all(held.filter((_, i) => i % 2 === 1).map((l) => l?.release()));
    expect(await shared.real.count('d')).toBe(16 + 3);
    const more = await Promise.all(Array.from({ length: 16 }, () => b.leases.acquire('d', 32, TTL)));
    expect(more.filter(Boolean)).toHaveLength(13);
    expect(await shared.real.count('d')).toBe(32);
    await a.close();
    await b.close();
  });

  it('releases kept slots after idleMs', async () => {
    vi.useFakeTimers();
    const shared = counted();
    const pool = poolLeases(shared.leases, { idleMs: 250 });
    const lease = await pool.leases.acquire('d', 64, TTL);
    await lease!.release();
    expect(await shared.real.count('d')).toBe(1);
    await vi.advanceTimersByTimeAsync(400);
    expect(await shared.real.count('d')).toBe(0);
    expect(shared.calls.release).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
    await pool.close();
  });

  it('frees a slot of a small limit at once', async () => {
    const shared = counted();
    const pool = poolLeases(shared.leases, { minLimit: 32 });
    const lease = await pool.leases.acquire('k', 4, TTL);
    await lease!.release();
    expect(await shared.real.count('k')).toBe(0);
    expect(shared.calls).toEqual({ acquire: 1, release: 1 });
    await pool.close();
  });

  it('does not reuse a kept slot near the end of its ttl: it takes a fresh one', async () => {
    let time = 1_000_000;
    const shared = counted();
    const pool = poolLeases(shared.leases, { idleMs: 60_000, now: () => time });
    const first = await pool.leases.acquire('d', 64, TTL);
    await first!.release();
    time += TTL / 2 + 1;
    const second = await pool.leases.acquire('d', 64, TTL);
    expect(shared.calls).toEqual({ acquire: 2, release: 1 });
    await second!.release();
    await pool.close();
  });
});
