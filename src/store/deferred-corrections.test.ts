// Corrections kept back and sent with the next batch of the same bucket, or on their own after a short delay.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { deferCorrections } from './deferred-corrections.js';
import { limitStoreOf } from './gcra.js';
import { createMemoryStore } from './memory/memory-store.js';
import type { LimitBatch } from './store.js';

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const tpm = (units: number) => ({ key: 't', units, limit: 100, periodMs: MINUTE });

/** A memory limit store that records every batch it is asked. */
function recording() {
  const real = createMemoryStore().limits;
  const batches: LimitBatch[] = [];
  return {
    batches,
    limits: limitStoreOf((batch) => {
      batches.push(batch);
      return real.takeAll(batch);
    }),
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('deferred corrections', () => {
  it('go with the next take of the same bucket, merged, in one call', async () => {
    const store = recording();
    const deferred = deferCorrections(store.limits, { now: () => T0 });
    await deferred.limits.take('t', 80, 100, MINUTE, T0);
    deferred.later(tpm(-30));
    deferred.later(tpm(-20));
    expect(store.batches).toHaveLength(1);
    // Another bucket's take leaves them waiting.
    await deferred.limits.take('r', 1, 10, MINUTE, T0);
    expect(store.batches[1]!.corrections ?? []).toEqual([]);
    const decision = await deferred.limits.take('t', 0, 100, MINUTE, T0);
    expect(store.batches).toHaveLength(3);
    expect(store.batches[2]!.corrections).toEqual([tpm(-50)]);
    expect(decision.remaining).toBe(70);
    await deferred.flush();
    expect(store.batches).toHaveLength(3);
  });

  it('are sent on their own after the delay when no take comes', async () => {
    vi.useFakeTimers();
    const store = recording();
    const deferred = deferCorrections(store.limits, { delayMs: 100, now: () => T0 });
    await deferred.limits.take('t', 100, 100, MINUTE, T0);
    deferred.later(tpm(-40));
    deferred.later({ key: 'u', units: 5, limit: 10, periodMs: MINUTE });
    await vi.advanceTimersByTimeAsync(99);
    expect(store.batches).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(store.batches).toHaveLength(2);
    expect(store.batches[1]).toEqual({
      takes: [],
      corrections: [tpm(-40), { key: 'u', units: 5, limit: 10, periodMs: MINUTE }],
      now: T0,
    });
    expect((await store.limits.take('t', 0, 100, MINUTE, T0)).remaining).toBe(40);
    expect((await store.limits.take('u', 0, 10, MINUTE, T0)).remaining).toBe(5);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('ignore a correction of nothing, and lose them quietly when the store is away', async () => {
    vi.useFakeTimers();
    let calls = 0;
    const deferred = deferCorrections(
      limitStoreOf(() => {
        calls++;
        return Promise.reject(new Error('away'));
      }),
      { now: () => T0 },
    );
    deferred.later(tpm(0));
    expect(vi.getTimerCount()).toBe(0);
    deferred.later(tpm(-3));
    await deferred.flush();
    expect(calls).toBe(1);
    await deferred.flush();
    expect(calls).toBe(1);
  });
});
