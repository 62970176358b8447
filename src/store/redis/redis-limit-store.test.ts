// Rate limits in Redis against the real server: the limit part of the Store contract (on the caller's clock, which
// the contract drives), the Lua GCRA decision for decision against gcra.ts, and what only Redis' own clock gives:
// callers whose clocks disagree sharing one bucket exactly, and keys that vanish when their bucket is full again.
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { gcraBatchKeys, gcraIsLive, gcraRefund, gcraTake, gcraTakeAll, type GcraState } from '../gcra.js';
import { describeLimitContract } from '../store-contract.js';
import { CALLER_CLOCK_GRACE_MS, type RedisClock } from './redis-clock.js';
import { openRedisState, type RedisState } from './redis-state.js';
import { TEST_REDIS_URL, testNamespace } from './redis-test-support.js';

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const space = testNamespace();
afterAll(() => space.removeAll());

describeLimitContract('redis', () => openRedisState(TEST_REDIS_URL, { prefix: space.fresh(), clock: 'caller' }));

/** `n` states on one prefix, each with connections of its own, as `n` replicas would hold. */
async function replicas(n: number, clock: RedisClock): Promise<{ states: RedisState[]; prefix: string }> {
  const prefix = space.fresh();
  const states = await Promise.all(Array.from({ length: n }, () => openRedisState(TEST_REDIS_URL, { prefix, clock })));
  return { states, prefix };
}

describe('Redis limit store', () => {
  it('decides exactly as gcra.ts does, take for take and refund for refund', async () => {
    const { states } = await replicas(1, 'caller');
    const store = states[0]!.limits;
    let bucket = 0;
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.integer({ min: 1, max: 10_000 }),
          fc.constantFrom(1, 1000, MINUTE, 3_600_000, 1234.5),
          fc.array(
            fc.record({
              refund: fc.boolean(),
              // Costs whole and not, up to past the limit; steps of time down to fractions of a millisecond.
              cost: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.double({ min: 0, max: 2, noNaN: true })),
              step: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.5, noNaN: true })),
            }),
            { minLength: 1, maxLength: 25 },
          ),
          async (limit, periodMs, ops) => {
            const key = `b${++bucket}`;
            // What the store holds by gcra.ts: a state while it counts, nothing once the bucket is full.
            let held: GcraState | undefined;
            let now = T0 + 0.5;
            for (const op of ops) {
              now += op.step * periodMs;
              const units = (op.cost * limit) / 10;
              if (op.refund) {
                held = gcraRefund(held, units, limit, periodMs, now);
                await store.refund(key, units, limit, periodMs, now);
                continue;
              }
              const expected = gcraTake(held, units, limit, periodMs, now);
              if (expected.next !== undefined) {
                held = gcraIsLive(expected.next, limit, periodMs, now) ? expected.next : undefined;
              }
              expect(await store.take(key, units, limit, periodMs, now)).toEqual(expected.decision);
            }
          },
        ),
        { numRuns: 60 },
      );
    } finally {
      await states[0]!.close();
    }
  });

  it('decides batches exactly as gcra.ts does: several buckets, corrections first, all or nothing', async () => {
    const { states } = await replicas(1, 'caller');
    const store = states[0]!.limits;
    let run = 0;
    const bucket = fc.constantFrom('a', 'b', 'c');
    const shape = fc.record({
      limit: fc.integer({ min: 1, max: 1000 }),
      periodMs: fc.constantFrom(1000, MINUTE, 1234.5),
    });
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.dictionary(bucket, shape, { minKeys: 3, maxKeys: 3 }),
          fc.array(
            fc.record({
              takes: fc.array(fc.record({ key: bucket, share: fc.double({ min: 0, max: 1.2, noNaN: true }) }), {
                maxLength: 3,
              }),
              corrections: fc.array(
                fc.record({ key: bucket, share: fc.double({ min: -1.5, max: 1.5, noNaN: true }) }),
                { maxLength: 2 },
              ),
              step: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.3, noNaN: true })),
            }),
            { minLength: 1, maxLength: 15 },
          ),
          async (shapes, batches) => {
            const prefix = `r${++run}:`;
            // What the store holds by gcra.ts: a state while a bucket counts, nothing once it is full.
            const held = new Map<string, GcraState | undefined>();
            let now = T0 + 0.5;
            for (const { takes, corrections, step } of batches) {
              now += step * MINUTE;
              const part = ({ key, share }: { key: string; share: number }) => ({
                key: prefix + key,
                limit: shapes[key]!.limit,
                periodMs: shapes[key]!.periodMs,
                units: share * shapes[key]!.limit,
              });
              const batch = {
                now,
                takes: takes.map(part).map(({ units, ...rest }) => ({ ...rest, cost: Math.abs(units) })),
                corrections: corrections.map(part),
              };
              const expected = gcraTakeAll(new Map(gcraBatchKeys(batch).map((k) => [k, held.get(k)])), batch);
              for (const { key, state } of expected.writes) held.set(key, state);
              expect(await store.takeAll(batch)).toEqual(expected.decisions);
            }
          },
        ),
        { numRuns: 60 },
      );
    } finally {
      await states[0]!.close();
    }
  });

  it("on Redis' clock, grants a bucket of 10 exactly 10 times among 30 takes from three replicas whose clocks disagree wildly", async () => {
    const { states } = await replicas(3, 'server');
    try {
      // Years apart, and one before the epoch: with the caller's clock each would see a bucket refilled long ago.
      const clocks = [T0, T0 + 400 * 24 * 3_600_000, -5 * MINUTE];
      const decisions = await Promise.all(
        Array.from({ length: 30 }, (_, i) => states[i % 3]!.limits.take('k:rph', 1, 10, HOUR, clocks[i % 3]!)),
      );
      expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
      const refused = decisions.filter((d) => !d.allowed);
      expect(refused.every((d) => d.retryAfterMs > 0 && d.remaining === 0)).toBe(true);
      // A refund from any of them gives back to the same bucket.
      await states[1]!.limits.refund('k:rph', 2, 10, HOUR, 0);
      const after = await Promise.all([0, 1, 2].map((i) => states[i]!.limits.take('k:rph', 1, 10, HOUR, clocks[i]!)));
      expect(after.filter((d) => d.allowed)).toHaveLength(2);
    } finally {
      await Promise.all(states.map((s) => s.close()));
    }
  });

  it("on Redis' clock, a bucket's key expires when the bucket is full again, and a refused take does not keep it", async () => {
    const { states, prefix } = await replicas(1, 'server');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const store = states[0]!.limits;
      // 10 per minute: one take is full again 6 s later (the key lives no longer, and it is there meanwhile).
      await store.take('one', 1, 10, MINUTE, 0);
      const ttl = await redis.pttl(`${prefix}limit:one`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(6001);
      // 10 per 200 ms: after two takes the bucket is full again 40 ms later, and its key goes.
      await store.take('short', 2, 10, 200, 0);
      expect(await redis.pttl(`${prefix}limit:short`)).toBeLessThanOrEqual(41);
      await vi.waitFor(async () => expect(await redis.exists(`${prefix}limit:short`)).toBe(0), {
        timeout: 5000,
        interval: 10,
      });
      // Refill has made the bucket whole again: all 10 are there.
      const decisions = [];
      for (let i = 0; i < 12; i += 1) decisions.push(await store.take('short', 1, 10, MINUTE, 0));
      expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
      expect(await redis.pttl(`${prefix}limit:short`)).toBeGreaterThan(0);
      expect(await redis.pttl(`${prefix}limit:short`)).toBeLessThanOrEqual(MINUTE + 1);
      // A take that asks for nothing of a full bucket stores nothing.
      await store.take('untouched', 0, 10, MINUTE, 0);
      expect(await redis.exists(`${prefix}limit:untouched`)).toBe(0);
    } finally {
      redis.disconnect();
      await states[0]!.close();
    }
  });

  it("on the caller's clock, keeps a bucket's key a grace longer than its arithmetic says", async () => {
    const { states, prefix } = await replicas(1, 'caller');
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await states[0]!.limits.take('k', 1, 10, 1000, T0);
      const ttl = await redis.pttl(`${prefix}limit:k`);
      expect(ttl).toBeGreaterThan(CALLER_CLOCK_GRACE_MS);
      expect(ttl).toBeLessThanOrEqual(CALLER_CLOCK_GRACE_MS + 101);
    } finally {
      redis.disconnect();
      await states[0]!.close();
    }
  });
});
