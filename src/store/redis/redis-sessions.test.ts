// The session directory on the real Redis: the contract on the caller's clock (which it drives), and one directory
// seen from two connections as two replicas would.
import { afterAll, describe, expect, it } from 'vitest';
import { describeSessionsContract } from '../sessions-contract.js';
import { openRedisState } from './redis-state.js';
import { TEST_REDIS_URL, testNamespace } from './redis-test-support.js';

const space = testNamespace();
afterAll(() => space.removeAll());

describeSessionsContract('redis', async (bounds) => {
  const state = await openRedisState(TEST_REDIS_URL, { prefix: space.fresh(), clock: 'caller' });
  const sessions = state.sessions(bounds);
  return { ...sessions, close: () => state.close() };
});

describe('Redis sessions', () => {
  const bounds = {
    max: 100,
    maxPerPrincipal: 10,
    idleMs: 60_000,
    pressureIdleMs: 10_000,
    replayEvents: 10,
    replayBytes: 10_000,
    replayTotalBytes: 100_000,
  };

  it('are one directory for every replica: opened on one, used, tailed and ended on another', async () => {
    const prefix = space.fresh();
    const [a, b] = await Promise.all([
      openRedisState(TEST_REDIS_URL, { prefix }),
      openRedisState(TEST_REDIS_URL, { prefix }),
    ]);
    try {
      const [one, two] = [a.sessions(bounds), b.sessions(bounds)];
      expect(await one.open({ id: 'x', principal: 'p', state: { v: 1 } }, Date.now())).toBe('opened');
      let woken = 0;
      await two.watch('x', () => woken++);
      const [id] = await one.append('x', [{ stream: 'get', message: '{"m":1}' }]);
      await expect.poll(() => woken, { timeout: 5000, interval: 5 }).toBe(1);
      expect(await two.streamAfter('x', 'get', undefined)).toEqual([{ id, stream: 'get', message: '{"m":1}' }]);
      expect((await two.touch('x', Date.now()))?.state).toEqual({ v: 1 });
      expect(await two.end('x')).toBe(true);
      expect(await one.touch('x', Date.now())).toBeUndefined();
      // Nothing of the session is left but the total, back at zero.
      expect(await space.keys(prefix)).toEqual([`${prefix}events:bytes`]);
      expect(await one.logBytes()).toBe(0);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});
