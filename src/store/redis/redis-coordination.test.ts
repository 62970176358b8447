// Coordination on Redis against the real server: the Coordination contract (on the caller's clock, which the
// contract drives), then what only separate connections show: messages and leases shared between replicas, leases
// that expire by Redis' clock, and subscriptions that end and start again in quick succession.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { Coordination } from '../coordination.js';
import { describeCoordinationContract } from '../coordination-contract.js';
import { openRedisState, type RedisState } from './redis-state.js';
import { TEST_REDIS_URL, testNamespace } from './redis-test-support.js';

const space = testNamespace();
afterAll(() => space.removeAll());

describeCoordinationContract('redis', async (now): Promise<Coordination> => {
  const state = await openRedisState(TEST_REDIS_URL, { prefix: space.fresh(), clock: 'caller', now });
  // The contract closes what it opened: here the whole state, commands connection included.
  return { ...state.coordination, close: () => state.close() };
});

async function replicas(n: number): Promise<{ states: RedisState[]; prefix: string }> {
  const prefix = space.fresh();
  return {
    states: await Promise.all(Array.from({ length: n }, () => openRedisState(TEST_REDIS_URL, { prefix }))),
    prefix,
  };
}

const arrived = (got: string[], message: string) =>
  vi.waitFor(() => expect(got).toContain(message), { timeout: 5000, interval: 5 });

describe('Redis coordination', () => {
  it("delivers a message published by one replica to every other replica's subscribers", async () => {
    const { states } = await replicas(3);
    try {
      const got: string[][] = [[], [], []];
      await Promise.all(states.map((s, i) => s.coordination.subscribe('catalog', (m) => got[i]!.push(m))));
      await states[0]!.coordination.publish('catalog', 'changed ü');
      for (const box of got) await arrived(box, 'changed ü');
      expect(got).toEqual([['changed ü'], ['changed ü'], ['changed ü']]);
    } finally {
      await Promise.all(states.map((s) => s.close()));
    }
  });

  it('grants exactly 10 of 30 concurrent acquires from three replicas, and a release on one frees a slot for another', async () => {
    const { states } = await replicas(3);
    try {
      const leases = await Promise.all(
        Array.from({ length: 30 }, (_, i) => states[i % 3]!.coordination.acquire('k:concurrent', 10, 30_000)),
      );
      const held = leases.filter((lease) => lease !== undefined);
      expect(held).toHaveLength(10);
      expect(new Set(held.map((lease) => lease.id)).size).toBe(10);
      expect(await states[2]!.coordination.count('k:concurrent')).toBe(10);
      await held[0]!.release();
      expect(await states[1]!.coordination.count('k:concurrent')).toBe(9);
      expect(await states[2]!.coordination.acquire('k:concurrent', 10, 30_000)).toBeDefined();
      expect(await states[0]!.coordination.acquire('k:concurrent', 10, 30_000)).toBeUndefined();
    } finally {
      await Promise.all(states.map((s) => s.close()));
    }
  });

  it("on Redis' clock, frees the slot of a lease never released, and the key goes with its last lease", async () => {
    const { states, prefix } = await replicas(1);
    const redis = new Redis(TEST_REDIS_URL);
    try {
      const coordination = states[0]!.coordination;
      await coordination.acquire('long', 1, 30_000);
      const ttl = await redis.pttl(`${prefix}lease:long`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(30_001);
      const lease = await coordination.acquire('k', 1, 50);
      expect(lease).toBeDefined();
      expect(await redis.pttl(`${prefix}lease:k`)).toBeLessThanOrEqual(51);
      await vi.waitFor(async () => expect(await coordination.count('k')).toBe(0), { timeout: 5000, interval: 5 });
      expect(await lease!.renew()).toBe(false);
      await vi.waitFor(async () => expect(await redis.exists(`${prefix}lease:k`)).toBe(0), {
        timeout: 5000,
        interval: 5,
      });
      expect(await coordination.acquire('k', 1, 30_000)).toBeDefined();
    } finally {
      redis.disconnect();
      await states[0]!.close();
    }
  });

  it('keeps exactly the subscriptions that are left when subscribing and unsubscribing in quick succession', async () => {
    const { states } = await replicas(2);
    const [listener, sender] = [states[0]!.coordination, states[1]!.coordination];
    try {
      const got: string[] = [];
      for (let i = 0; i < 5; i += 1) {
        const unsubscribe = await listener.subscribe('t', (m) => got.push(`gone ${m}`));
        // Not awaited: the next SUBSCRIBE goes out right behind this UNSUBSCRIBE.
        void unsubscribe();
      }
      await listener.subscribe('t', (m) => got.push(m));
      await sender.publish('t', 'one');
      await sender.publish('t', 'fence');
      await arrived(got, 'fence');
      expect(got).toEqual(['one', 'fence']);
    } finally {
      await Promise.all(states.map((s) => s.close()));
    }
  });

  it('names its channels under the prefix', async () => {
    const { states, prefix } = await replicas(1);
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await states[0]!.coordination.subscribe('wake', () => {});
      expect(await redis.pubsub('CHANNELS', `${prefix}*`)).toEqual([`${prefix}topic:wake`]);
    } finally {
      redis.disconnect();
      await states[0]!.close();
    }
  });
});
