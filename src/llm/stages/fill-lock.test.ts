import { describe, expect, it } from 'vitest';
import { createLocalCoordination } from '../../store/memory/local-coordination.js';
import type { CacheEntry } from '../../store/store.js';
import { createFillLock } from './fill-lock.js';

const entry: CacheEntry = { body: '{}', kind: 'json', createdAt: 0, expiresAt: Number.MAX_SAFE_INTEGER };

describe('the cache fill lock', () => {
  it('gives one request the lock and wakes the others with the saved entry when it is released', async () => {
    const coordination = createLocalCoordination();
    const lock = createFillLock({ coordination, ttlMs: 10_000, pollMs: 60_000 });
    const leader = await lock.claim('k');
    expect(leader).not.toBe('elsewhere');
    expect(await lock.claim('k')).toBe('elsewhere');
    const cache = new Map<string, CacheEntry>();
    const waiting = lock.wait(
      'k',
      async () => cache.get('k'),
      () => false,
    );
    cache.set('k', entry);
    // The wake-up, not the (minute-long) poll, brings the follower back.
    await lock.release('k', leader as Exclude<typeof leader, 'elsewhere' | undefined>);
    expect(await waiting).toBe(entry);
    await coordination.close();
  });

  it('lets a follower answer itself once a leader that died lets its lock lapse, with nothing saved', async () => {
    let now = 1_000_000;
    const coordination = createLocalCoordination({ now: () => now });
    const lock = createFillLock({ coordination, ttlMs: 1000, pollMs: 5 });
    // A leader in another process, which dies holding the lock: nobody renews it.
    expect(await coordination.acquire('fill:k', 1, 1000)).toBeDefined();
    const waiting = lock.wait(
      'k',
      async () => undefined,
      () => false,
    );
    now += 1001;
    expect(await waiting).toBeUndefined();
    expect(await lock.claim('k')).not.toBe('elsewhere');
    await coordination.close();
  });

  it('stops waiting when the client is gone, and goes on without the lock when the coordination fails', async () => {
    const coordination = createLocalCoordination();
    const lock = createFillLock({ coordination, ttlMs: 10_000, pollMs: 5 });
    await lock.claim('k');
    let gone = false;
    const waiting = lock.wait(
      'k',
      async () => undefined,
      () => gone,
    );
    gone = true;
    expect(await waiting).toBeUndefined();
    const broken = createFillLock({
      coordination: {
        acquire: () => Promise.reject(new Error('away')),
        count: () => Promise.reject(new Error('away')),
        publish: () => Promise.reject(new Error('away')),
        subscribe: () => Promise.reject(new Error('away')),
      },
      ttlMs: 1000,
      pollMs: 5,
    });
    expect(await broken.claim('k')).toBeUndefined();
    expect(
      await broken.wait(
        'k',
        async () => entry,
        () => false,
      ),
    ).toBe(entry);
    await coordination.close();
  });
});
