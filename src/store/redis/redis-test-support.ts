// What the Redis tests share: the server they run against (MCPLEX_TEST_REDIS, else the local one), a key prefix of
// their own per run so that runs and deployments can share that server, and removing everything under it after.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
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

const REDIS_SERVER = '/usr/bin/redis-server';
const children = new Set<ChildProcess>();

/**
 * A redis-server of the test's own on `port` (with `password` when given), without persistence, resolved once it
 * accepts connections: for tests that stop Redis under a running mcplex.
 */
export function startRedis(port: number, password?: string): Promise<ChildProcess> {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  if (password !== undefined) args.push('--requirepass', password);
  const child = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  return new Promise((resolve, reject) => {
    let output = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('Ready to accept connections')) resolve(child);
    });
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code} before it was ready:\n${output}`)));
  });
}

/** Kills a redis-server started by startRedis (as a crash would) and waits until it is gone. */
export async function stopRedis(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  children.delete(child);
}

/** Kills every redis-server startRedis started that is still running. */
export function stopAllRedis(): void {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
}

/** A TCP port that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject()));
    });
  });
}
