// Large limits counted ahead of the shared store: fewer round trips, never more granted than the limit, held units
// given back when unused, small limits exact.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { limitStoreOf } from './gcra.js';
import { createMemoryStore } from './memory/memory-store.js';
import { reserveAhead } from './reserved-limits.js';
import type { LimitBatch, LimitStore } from './store.js';

const T0 = 1_700_000_000_000;
// A period long enough that nothing refills while a test runs.
const MINUTE = 1e12;

/** A shared limit store (memory) that records every batch it is asked. */
function shared(real: LimitStore = createMemoryStore().limits) {
  const batches: LimitBatch[] = [];
  return {
    real,
    batches,
    limits: limitStoreOf((batch) => {
      batches.push(batch);
      return real.takeAll(batch);
    }),
  };
}

const owed = async (store: LimitStore, key: string, limit: number, now: number) =>
  limit - (await store.take(key, 0, limit, MINUTE, now)).remaining;

afterEach(() => {
  vi.useRealTimers();
});

describe('limits counted ahead', () => {
  it('asks the store for every take of a small limit, exactly', async () => {
    const store = shared();
    const reserved = reserveAhead(store.limits, { minLimit: 1000 });
    const decisions = [];
    for (let i = 0; i < 15; i++) decisions.push(await reserved.limits.take('k', 1, 10, MINUTE, T0 + i));
    expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
    expect(store.batches).toHaveLength(15);
    await reserved.close();
  });

  it('answers most takes of a large limit from what it holds, and the shared bucket has paid for each', async () => {
    const store = shared();
    let time = T0;
    const reserved = reserveAhead(store.limits, { now: () => time });
    for (let i = 0; i < 2000; i++) {
      const decision = await reserved.limits.take('k', 1, 1_000_000, MINUTE, (time += 0.5));
      expect(decision.allowed).toBe(true);
      // What the shared bucket counts covers everything granted here.
      if (i % 250 === 0) expect(await owed(store.real, 'k', 1_000_000, time)).toBeGreaterThanOrEqual(i + 1 - 1);
    }
    expect(store.batches.length).toBeLessThan(100);
    // At most its share (1 %) held ahead.
    const before = await owed(store.real, 'k', 1_000_000, time);
    expect(before).toBeLessThanOrEqual(2000 + 10_000);
    await reserved.close();
    // Closed, it gives back what it did not use: the bucket counts what was granted (refilling aside).
    expect(await owed(store.real, 'k', 1_000_000, time)).toBeLessThanOrEqual(2000);
    expect(await owed(store.real, 'k', 1_000_000, time)).toBeGreaterThan(1900);
  });

  it('holds at most its share of the limit ahead, however fast it is used', async () => {
    const store = shared();
    const time = T0;
    const reserved = reserveAhead(store.limits, { now: () => time });
    for (let granted = 1; granted <= 5000; granted++) {
      expect((await reserved.limits.take('k', 1, 100_000, MINUTE, time)).allowed).toBe(true);
      const held = (await owed(store.real, 'k', 100_000, time)) - granted;
      expect(held).toBeGreaterThanOrEqual(0);
      expect(held).toBeLessThanOrEqual(1000);
    }
    await reserved.close();
  });

  it('never grants more than the limit among processes sharing one bucket', async () => {
    const store = shared();
    let time = T0;
    const replicas = [0, 1, 2].map(() => reserveAhead(store.limits, { now: () => time }));
    let granted = 0;
    // 6,000 takes of 1 from a bucket of 5,000 at one moment (no refill), spread over three processes.
    for (let i = 0; i < 6000; i++) {
      const decision = await replicas[i % 3]!.limits.take('k', 1, 5000, MINUTE, time);
      if (decision.allowed) granted++;
      time += 1e-6;
    }
    expect(granted).toBeLessThanOrEqual(5000);
    // What one holds and has not used yet is at most 1 % of the limit each.
    expect(granted).toBeGreaterThanOrEqual(5000 - 3 * 50);
    for (const r of replicas) await r.close();
    let after = 0;
    for (let i = 0; i < 200; i++) if ((await store.limits.take('k', 1, 5000, MINUTE, time)).allowed) after++;
    expect(granted + after).toBe(5000);
  });

  it('near the limit asks for the request alone when the extra does not fit', async () => {
    const store = shared();
    let time = T0;
    const reserved = reserveAhead(store.limits, { now: () => time });
    for (let i = 0; i < 20; i++) await reserved.limits.take('k', 10, 1000, MINUTE, (time += 1));
    // Someone else takes almost all the rest.
    const left = 1000 - (await owed(store.real, 'k', 1000, time));
    await store.real.take('k', left - 10, 1000, MINUTE, time);
    let granted = 0;
    for (let i = 0; i < 5; i++) if ((await reserved.limits.take('k', 10, 1000, MINUTE, time)).allowed) granted++;
    await reserved.close();
    expect(await owed(store.real, 'k', 1000, time)).toBe(1000);
    expect(granted).toBeGreaterThanOrEqual(1);
  });

  it('gives back units not used for idleMs', async () => {
    vi.useFakeTimers({ now: T0 });
    const store = shared();
    const reserved = reserveAhead(store.limits, { idleMs: 1000 });
    for (let i = 0; i < 50; i++) {
      await reserved.limits.take('k', 1, 100_000, MINUTE, Date.now());
      vi.advanceTimersByTime(1);
    }
    expect(await owed(store.real, 'k', 100_000, Date.now())).toBeGreaterThan(50);
    await vi.advanceTimersByTimeAsync(1600);
    expect(await owed(store.real, 'k', 100_000, Date.now())).toBeLessThanOrEqual(50);
    expect(vi.getTimerCount()).toBe(0);
    await reserved.close();
  });

  it('makes corrections of a held bucket here, and sends the others on', async () => {
    const store = shared();
    let time = T0;
    const reserved = reserveAhead(store.limits, { now: () => time });
    for (let i = 0; i < 10; i++) await reserved.limits.take('t', 100, 1_000_000, MINUTE, (time += 1));
    const asked = store.batches.length;
    const before = await owed(store.real, 't', 1_000_000, time);
    await reserved.limits.takeAll({
      takes: [],
      corrections: [{ key: 't', units: -300, limit: 1_000_000, periodMs: MINUTE }],
      now: time,
    });
    expect(store.batches.length).toBe(asked);
    await reserved.limits.refund('other', 5, 1000, MINUTE, time);
    expect(store.batches.length).toBe(asked + 1);
    await reserved.close();
    // The 300 given back were held and went back with the rest.
    expect(await owed(store.real, 't', 1_000_000, time)).toBeLessThanOrEqual(before - 300);
  });

  it('keeps nothing taken when the store fails, and rethrows', async () => {
    const real = createMemoryStore().limits;
    let up = true;
    const flaky = limitStoreOf((batch) => (up ? real.takeAll(batch) : Promise.reject(new Error('away'))));
    let time = T0;
    const reserved = reserveAhead(flaky, { now: () => time });
    const both = (now: number) =>
      reserved.limits.takeAll({
        takes: [
          { key: 'big', cost: 1, limit: 100_000, periodMs: MINUTE },
          { key: 'small', cost: 1, limit: 10, periodMs: MINUTE },
        ],
        now,
      });
    for (let i = 0; i < 5; i++) await both((time += 1));
    up = false;
    await expect(both((time += 1))).rejects.toThrow('away');
    up = true;
    // The failed batch took nothing from what is held: the held units go back whole.
    await reserved.close();
    expect(await owed(real, 'big', 100_000, time)).toBe(5);
  });
});
