// The fast state that many replicas share, on one Redis: rate-limit buckets, the response cache and coordination
// (topics and leases), every key and channel under one prefix so that deployments and test runs can share a server.
import type { Coordination } from '../coordination.js';
import type { CacheStore, LimitStore } from '../store.js';
import type { RedisClock } from './redis-clock.js';
import { createRedisCacheStore } from './redis-cache-store.js';
import { connectRedis, type RedisConnection, type RedisConnectionOptions } from './redis-connection.js';
import { createRedisCoordination } from './redis-coordination.js';
import { createRedisLimitStore } from './redis-limit-store.js';
import { createRedisSessions } from './redis-sessions.js';
import { createRedisReplicas } from './redis-replicas.js';
import type { ReplicaRegistry } from '../replicas.js';
import type { SessionBounds, SessionDirectory } from '../sessions.js';

export interface RedisStateOptions extends RedisConnectionOptions {
  /** Put before every key and channel. Default `mcplex:`. */
  prefix?: string;
  /**
   * Whose clock rate limits and leases run by. Default 'server' (Redis' TIME: replicas whose clocks disagree still
   * agree); 'caller' takes the `now` passed to the limits and `now()` for leases, as tests that drive time need.
   */
  clock?: RedisClock;
  /** The clock leases expire by with clock 'caller'. Default Date.now. */
  now?: () => number;
  /** Cache bodies larger than this many bytes are not stored. Default 4 MiB. */
  maxCacheEntryBytes?: number;
  /** How long past its expiry Redis keeps a cache entry before dropping it by itself. Default 5000 ms. */
  cacheExpiryGraceMs?: number;
}

export interface RedisState {
  readonly limits: LimitStore;
  readonly cache: CacheStore;
  readonly coordination: Coordination;
  /** Which replicas are alive. */
  readonly replicas: ReplicaRegistry;
  /** The MCP session directory on this Redis, within `bounds`. */
  sessions(bounds: SessionBounds): SessionDirectory;
  /** Why Redis cannot be used now (the connections keep trying), or undefined while it can. */
  down(): string | undefined;
  /** Closes both connections; harmless when called again. */
  close(): Promise<void>;
}

/**
 * Connects to the Redis at `url` (two connections: commands, and the subscriber that pub/sub needs for itself).
 * Throws StoreError OPEN_FAILED, naming the server without its password, when it cannot be reached (unless
 * `requireConnection` is false: then it opens unready and keeps trying). Once open, a
 * call made while Redis is away fails at once or within the command timeout (StoreError UNAVAILABLE), and the
 * connections come back by themselves when Redis does.
 */
export async function openRedisState(url: string, options: RedisStateOptions = {}): Promise<RedisState> {
  const prefix = options.prefix ?? 'mcplex:';
  const commands = await connectRedis(url, options);
  let subscriber: RedisConnection;
  try {
    subscriber = await connectRedis(url, options);
  } catch (error) {
    await commands.close();
    throw error;
  }
  const clock = options.clock ?? 'server';
  const coordination = createRedisCoordination(commands, subscriber, { prefix, clock, now: options.now });
  let closing: Promise<void> | undefined;
  return {
    limits: createRedisLimitStore(commands, { prefix, clock }),
    cache: createRedisCacheStore(commands, {
      prefix,
      maxEntryBytes: options.maxCacheEntryBytes,
      expiryGraceMs: options.cacheExpiryGraceMs,
    }),
    coordination,
    sessions: (bounds) => createRedisSessions(commands, coordination, { prefix, clock, bounds }),
    replicas: createRedisReplicas(commands, prefix),
    down: () => commands.down() ?? subscriber.down(),
    close() {
      closing ??= Promise.all([coordination.close(), commands.close()]).then(() => undefined);
      return closing;
    },
  };
}
