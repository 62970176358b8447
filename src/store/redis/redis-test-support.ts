// What the Redis tests share: the server they run against (MCPLEX_TEST_REDIS, else the local one), a key prefix of
// their own per run so that runs and deployments can share that server, and removing everything under it after.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';

export const TEST_REDIS_URL = process.env.MCPLEX_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';

export interface TestNamespace {
  /** `mcplex-test-<random>:`, the prefix of everything this run writes. */
  readonly run: string;
  /** A prefix of its own under the run's, for a store that must start empty. */
  fresh(): string;
  /** Every key under `prefix` (default: the run's), sorted. */
  keys(prefix?: string): Promise<string[]>;
  /** Deletes every key under the run's prefix (SCAN + UNLINK) and closes the connection. */
  removeAll(): Promise<void>;
}

export function testNamespace(url: string = TEST_REDIS_URL): TestNamespace {
  const run = `mcplex-test-${randomBytes(6).toString('hex')}:`;
  let count = 0;
  // Fails rather than waits when Redis is not there: a test that needs Redis must fail without it, not hang.
  const redis = new Redis(url, { enableOfflineQueue: false, lazyConnect: true, maxRetriesPerRequest: 1 });
  redis.on('error', () => {});
  let connected: Promise<void> | undefined;
  const ready = () => (connected ??= redis.connect());

  async function keys(prefix = run): Promise<string[]> {
    await ready();
    const found = new Set<string>();
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(
        cursor,
        'MATCH',
        `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`,
        'COUNT',
        1000,
      );
      cursor = next;
      for (const key of batch) found.add(key);
    } while (cursor !== '0');
    return [...found].sort();
  }

  return {
    run,
    fresh: () => `${run}${++count}:`,
    keys,
    async removeAll() {
      try {
        const all = await keys();
        for (let i = 0; i < all.length; i += 500) await redis.unlink(...all.slice(i, i + 500));
      } finally {
        redis.disconnect();
      }
    },
  };
}
