// What the Redis state does while Redis is away, on a redis-server of its own (killed and started again on the same
// port): every call fails promptly with StoreError UNAVAILABLE naming the server without its password, none waits
// for Redis to come back, and once it is back calls succeed again and subscriptions deliver again by themselves.
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { StoreError } from '../store.js';
import { openRedisState } from './redis-state.js';
import { freePort, startRedis, stopAllRedis, stopRedis } from './redis-test-support.js';

const PASSWORD = `pw${randomBytes(6).toString('hex')}`;
const T0 = 1_700_000_000_000;

afterAll(() => stopAllRedis());

describe('Redis state while Redis is away', () => {
  it('times a call out when Redis stops answering on an open connection, and answers again when it goes on', async () => {
    const port = await freePort();
    const server = await startRedis(port, PASSWORD);
    const state = await openRedisState(`redis://:${PASSWORD}@127.0.0.1:${port}/0`, {
      prefix: 'mcplex-hang:',
      commandTimeoutMs: 200,
    });
    try {
      expect((await state.limits.take('k', 1, 10, 60_000, T0)).allowed).toBe(true);
      // Stopped, not gone: the socket stays open and nothing answers, so only the deadline can end the call.
      server.kill('SIGSTOP');
      const error = await state.limits.take('k', 1, 10, 60_000, T0).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(StoreError);
      expect((error as StoreError).code).toBe('UNAVAILABLE');
      expect((error as StoreError).message).toMatch(/timed out/);
      server.kill('SIGCONT');
      expect((await state.limits.take('k', 1, 10, 60_000, T0)).allowed).toBe(true);
    } finally {
      server.kill('SIGCONT');
      await state.close();
      await stopRedis(server);
    }
  });

  it('fails every call promptly, then works again once Redis is back', async () => {
    const port = await freePort();
    const url = `redis://:${PASSWORD}@127.0.0.1:${port}/0`;
    let server = await startRedis(port, PASSWORD);
    const state = await openRedisState(url, { prefix: 'mcplex-outage:' });
    try {
      const got: string[] = [];
      await state.coordination.subscribe('wake', (m) => got.push(m));
      expect((await state.limits.take('k', 1, 10, 60_000, T0)).allowed).toBe(true);
      const lease = await state.coordination.acquire('c', 5, 30_000);
      expect(lease).toBeDefined();

      await stopRedis(server);
      const calls: [string, () => Promise<unknown>][] = [
        ['take', () => state.limits.take('k', 1, 10, 60_000, T0)],
        ['refund', () => state.limits.refund('k', 1, 10, 60_000, T0)],
        ['cache get', () => state.cache.get('x', T0)],
        ['cache set', () => state.cache.set('x', { body: '{}', kind: 'json', createdAt: T0, expiresAt: T0 + 1000 })],
        ['cache delete', () => state.cache.delete('x')],
        ['prune', () => state.cache.prune(T0)],
        ['publish', () => state.coordination.publish('wake', 'lost')],
        ['subscribe', () => state.coordination.subscribe('other', () => {})],
        ['acquire', () => state.coordination.acquire('c', 5, 30_000)],
        ['count', () => state.coordination.count('c')],
        ['renew', () => lease!.renew()],
        ['release', () => lease!.release()],
      ];
      // All at once and then each again: none of them may wait for Redis (the test's timeout would end it).
      for (const outcome of await Promise.allSettled(calls.map(([, call]) => call()))) {
        expectUnavailable(outcome, port);
      }
      for (const [name, call] of calls) expectUnavailable(await settle(call()), port, name);
      await expect(openRedisState(url, { connectTimeoutMs: 1000 })).rejects.toMatchObject({
        code: 'OPEN_FAILED',
        message: expect.not.stringContaining(PASSWORD),
      });

      server = await startRedis(port, PASSWORD);
      // Back within a bounded number of attempts (the connection retries in the background, at most 2 s apart).
      let attempts = 0;
      let back = false;
      while (!back && attempts < 60) {
        attempts += 1;
        back = await state.limits.take('k', 1, 10, 60_000, T0).then(
          () => true,
          () => false,
        );
        if (!back) await sleep(100);
      }
      expect(back).toBe(true);
      // The restarted server remembers nothing (no persistence), and every part works on it; the Lua scripts are
      // loaded again where needed.
      expect(await state.coordination.count('c')).toBe(0);
      expect(await state.coordination.acquire('c', 1, 30_000)).toBeDefined();
      await state.cache.set('x', { body: 'again', kind: 'json', createdAt: T0, expiresAt: T0 + 60_000 });
      expect((await state.cache.get('x', T0))?.body).toBe('again');
      // The subscription made before the outage delivers again once the subscriber connection is back.
      await vi.waitFor(
        async () => {
          await state.coordination.publish('wake', 'back');
          expect(got).toContain('back');
        },
        { timeout: 15_000, interval: 100 },
      );
      expect(got).not.toContain('lost');
    } finally {
      await state.close();
      await stopRedis(server);
    }
  });
});

function expectUnavailable(outcome: PromiseSettledResult<unknown>, port: number, name = ''): void {
  expect(outcome.status, name).toBe('rejected');
  const error = (outcome as PromiseRejectedResult).reason as StoreError;
  expect(error, name).toBeInstanceOf(StoreError);
  expect(error.code, name).toBe('UNAVAILABLE');
  expect(error.message, name).toContain(`127.0.0.1:${port}`);
  expect(error.message, name).not.toContain(PASSWORD);
}

function settle(promise: Promise<unknown>): Promise<PromiseSettledResult<unknown>> {
  return promise.then(
    (value) => ({ status: 'fulfilled', value }),
    (reason: unknown) => ({ status: 'rejected', reason }),
  );
}
