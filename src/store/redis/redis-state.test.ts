// Opening and closing the Redis state against the real server: everything it writes lives under its prefix, and a
// server that cannot be reached is reported at once, naming it without its password.
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { StoreError } from '../store.js';
import { redactUrl } from '../redact-url.js';
import { openRedisState } from './redis-state.js';
import { TEST_REDIS_URL, freePort, testNamespace } from './redis-test-support.js';

const T0 = 1_700_000_000_000;
const space = testNamespace();
afterAll(() => space.removeAll());

describe('Redis state', () => {
  it('keeps every key under its prefix', async () => {
    const prefix = space.fresh();
    const state = await openRedisState(TEST_REDIS_URL, { prefix });
    try {
      await state.limits.take('key-1:rpm', 1, 10, 60_000, T0);
      await state.cache.set('abc', { body: '{}', kind: 'json', createdAt: T0, expiresAt: T0 + 60_000 });
      await state.coordination.acquire('key-1:concurrent', 2, 30_000);
      expect(await space.keys(prefix)).toEqual([
        `${prefix}cache:abc`,
        `${prefix}lease:key-1:concurrent`,
        `${prefix}limit:key-1:rpm`,
      ]);
    } finally {
      await state.close();
    }
  });

  it('can be closed twice', async () => {
    const state = await openRedisState(TEST_REDIS_URL, { prefix: space.fresh() });
    await state.close();
    await state.close();
  });

  it('fails to open a server nobody listens on with OPEN_FAILED, naming it without its password', async () => {
    const secret = `pw${randomBytes(6).toString('hex')}`;
    const url = `redis://mcplex:${secret}@127.0.0.1:${await freePort()}/0`;
    const error = await openRedisState(url, { connectTimeoutMs: 1000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('OPEN_FAILED');
    expect((error as StoreError).message).toContain('127.0.0.1:');
    expect((error as StoreError).message).not.toContain(secret);
    expect(redactUrl(url)).not.toContain(secret);
  });

  it('refuses a URL that is not a Redis URL (OPEN_FAILED), without showing its password', async () => {
    await expect(openRedisState('postgres://u:hunter2@127.0.0.1/x')).rejects.toMatchObject({
      code: 'OPEN_FAILED',
      message: expect.not.stringContaining('hunter2'),
    });
    await expect(openRedisState('not a url')).rejects.toMatchObject({ code: 'OPEN_FAILED' });
  });
});
