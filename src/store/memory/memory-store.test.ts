// The memory store: the shared Store contract, then its own byte-bounded LRU cache.
import { describe, expect, it } from 'vitest';
import type { CacheEntry } from '../store.js';
import { describeStoreContract } from '../store-contract.js';
import { describeLeaseContract } from '../coordination-contract.js';
import { createMemoryStore } from './memory-store.js';

describeStoreContract('memory', async () => createMemoryStore());
describeLeaseContract('memory store leases', async (now) => {
  const store = createMemoryStore({ now });
  return { leases: store.leases, close: () => store.close() };
});

const T0 = 1_700_000_000_000;

/** An entry whose key plus body is exactly `bytes` UTF-8 bytes for a one-byte key. */
function sized(bytes: number): CacheEntry {
  return { body: 'x'.repeat(bytes - 1), kind: 'json', createdAt: T0, expiresAt: T0 + 60_000 };
}

describe('memory store cache bound', () => {
  it('evicts the least recently used entries once maxCacheBytes would be exceeded', async () => {
    const store = createMemoryStore({ maxCacheBytes: 100 });
    await store.cache.set('a', sized(30));
    await store.cache.set('b', sized(30));
    await store.cache.set('c', sized(30));
    // Reading `a` makes `b` the least recently used.
    expect(await store.cache.get('a', T0)).toBeDefined();
    await store.cache.set('d', sized(30));
    expect(await store.cache.get('b', T0)).toBeUndefined();
    for (const key of ['a', 'c', 'd']) expect(await store.cache.get(key, T0)).toBeDefined();
    // Now `a`, `c`, `d` were read in that order: a 60-byte entry must push out `a` and `c`.
    await store.cache.set('e', sized(60));
    expect(await store.cache.get('a', T0)).toBeUndefined();
    expect(await store.cache.get('c', T0)).toBeUndefined();
    expect(await store.cache.get('d', T0)).toBeDefined();
    expect(await store.cache.get('e', T0)).toBeDefined();
    await store.close();
  });

  it('counts UTF-8 bytes, not characters', async () => {
    const store = createMemoryStore({ maxCacheBytes: 21 });
    // 1 + 2 × 10 = 21 bytes for ten characters of body.
    await store.cache.set('a', { ...sized(2), body: 'é'.repeat(10) });
    await store.cache.set('b', sized(1));
    expect(await store.cache.get('a', T0)).toBeUndefined();
    expect(await store.cache.get('b', T0)).toBeDefined();
  });

  it('an overwrite replaces the old size instead of adding to it', async () => {
    const store = createMemoryStore({ maxCacheBytes: 100 });
    await store.cache.set('a', sized(40));
    for (let i = 0; i < 50; i += 1) await store.cache.set('b', sized(60));
    expect(await store.cache.get('a', T0)).toBeDefined();
    expect(await store.cache.get('b', T0)).toBeDefined();
  });

  it('does not store an entry larger than the whole cache, and keeps the others', async () => {
    const store = createMemoryStore({ maxCacheBytes: 100 });
    await store.cache.set('a', sized(50));
    await store.cache.set('big', { ...sized(50), body: 'x'.repeat(101) });
    expect(await store.cache.get('big', T0)).toBeUndefined();
    expect(await store.cache.get('a', T0)).toBeDefined();
  });

  it('frees the space of deleted, expired and pruned entries', async () => {
    const store = createMemoryStore({ maxCacheBytes: 90 });
    await store.cache.set('a', { ...sized(30), expiresAt: T0 + 1 });
    await store.cache.set('b', { ...sized(30), expiresAt: T0 + 1 });
    await store.cache.set('c', sized(30));
    await store.cache.delete('c');
    expect(await store.cache.get('a', T0 + 1)).toBeUndefined();
    expect(await store.cache.prune(T0 + 1)).toBe(1);
    await store.cache.set('x', sized(30));
    await store.cache.set('y', sized(30));
    await store.cache.set('z', sized(30));
    for (const key of ['x', 'y', 'z']) expect(await store.cache.get(key, T0)).toBeDefined();
  });

  it('refuses a negative bound', () => {
    expect(() => createMemoryStore({ maxCacheBytes: -1 })).toThrow(RangeError);
  });
});

describe('memory store limits', () => {
  it('sweeping out refilled buckets never forgets one still in use', async () => {
    const store = createMemoryStore();
    for (let i = 0; i < 6000; i += 1) await store.limits.take(`idle-${i}`, 5, 5, 1000, T0);
    // Past 10 000 buckets a write sweeps; by T0 + 2000 the idle ones are full again and may go.
    for (let i = 0; i < 6000; i += 1) await store.limits.take(`busy-${i}`, 5, 5, 60_000, T0 + 2000);
    for (const i of [0, 2999, 4500, 5999]) {
      expect((await store.limits.take(`busy-${i}`, 1, 5, 60_000, T0 + 2000)).allowed).toBe(false);
      expect((await store.limits.take(`idle-${i}`, 1, 5, 1000, T0 + 2000)).remaining).toBe(4);
    }
    await store.close();
  });
});
