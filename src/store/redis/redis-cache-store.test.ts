// The response cache in Redis against the real server: the cache part of the Store contract, then what only Redis
// shows: entries shared between connections, the size cap, entries Redis drops by itself, and prune staying inside
// its own prefix.
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it, vi } from 'vitest';
import type { CacheEntry } from '../store.js';
import { describeCacheContract } from '../store-contract.js';
import { openRedisState } from './redis-state.js';
import { TEST_REDIS_URL, testNamespace } from './redis-test-support.js';

const T0 = 1_700_000_000_000;
const space = testNamespace();
afterAll(() => space.removeAll());

describeCacheContract('redis', () => openRedisState(TEST_REDIS_URL, { prefix: space.fresh() }));

const entry = (body: string, lifetime = 60_000): CacheEntry => ({
  body,
  kind: 'json',
  createdAt: T0,
  expiresAt: T0 + lifetime,
});

describe('Redis cache store', () => {
  it('serves an entry set through one connection to another', async () => {
    const prefix = space.fresh();
    const [a, b] = await Promise.all([1, 2].map(() => openRedisState(TEST_REDIS_URL, { prefix })));
    try {
      await a!.cache.set('k', entry('{"shared":true}'));
      expect(await b!.cache.get('k', T0)).toEqual(entry('{"shared":true}'));
      await b!.cache.delete('k');
      expect(await a!.cache.get('k', T0)).toBeUndefined();
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('does not store a body over the size cap (in UTF-8 bytes), and drops an older entry under that key', async () => {
    const state = await openRedisState(TEST_REDIS_URL, { prefix: space.fresh(), maxCacheEntryBytes: 10 });
    try {
      await state.cache.set('fits', entry('0123456789'));
      expect((await state.cache.get('fits', T0))?.body).toBe('0123456789');
      // Six characters, twelve bytes.
      await state.cache.set('wide', entry('éééééé'));
      expect(await state.cache.get('wide', T0)).toBeUndefined();
      await state.cache.set('fits', entry('01234567890'));
      expect(await state.cache.get('fits', T0)).toBeUndefined();
    } finally {
      await state.close();
    }
  });

  it('lets Redis drop an entry by itself once its lifetime and the grace have passed', async () => {
    const prefix = space.fresh();
    const state = await openRedisState(TEST_REDIS_URL, { prefix, cacheExpiryGraceMs: 20 });
    const redis = new Redis(TEST_REDIS_URL);
    try {
      await state.cache.set('short', entry('x', 30));
      await state.cache.set('long', entry('y'));
      expect(await redis.pttl(`${prefix}cache:short`)).toBeLessThanOrEqual(50);
      const ttl = await redis.pttl(`${prefix}cache:long`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(60_020);
      await vi.waitFor(async () => expect(await redis.exists(`${prefix}cache:short`)).toBe(0), {
        timeout: 5000,
        interval: 10,
      });
      expect(await space.keys(prefix)).toEqual([`${prefix}cache:long`]);
    } finally {
      redis.disconnect();
      await state.close();
    }
  });

  it('prunes only under its own prefix', async () => {
    const [mine, theirs] = await Promise.all(
      [space.fresh(), space.fresh()].map((prefix) => openRedisState(TEST_REDIS_URL, { prefix })),
    );
    try {
      await mine!.cache.set('k', entry('a', 10));
      await theirs!.cache.set('k', entry('b', 10));
      expect(await mine!.cache.prune(T0 + 10)).toBe(1);
      expect((await theirs!.cache.get('k', T0))?.body).toBe('b');
      expect(await theirs!.cache.prune(T0 + 10)).toBe(1);
    } finally {
      await Promise.all([mine!.close(), theirs!.close()]);
    }
  });
});
