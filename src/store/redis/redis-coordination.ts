// The coordination port on Redis, for many replicas: topics as Redis channels (on a connection of their own, as
// Redis requires of a subscriber), leases as one sorted set per key (member: lease id, score: expiry) changed only
// by Lua scripts, so that counting and adding is one atomic step, by Redis' clock unless the caller's is asked for.
import { randomUUID } from 'node:crypto';
import type { Coordination, Lease, Unsubscribe } from '../coordination.js';
import { CALLER_CLOCK_GRACE_MS, luaNow, nowArgument, type RedisClock } from './redis-clock.js';
import type { RedisConnection } from './redis-connection.js';

export interface RedisCoordinationOptions {
  /** Put before every key and channel. */
  prefix: string;
  /** Default 'server'. With 'caller', leases expire by `now`. */
  clock?: RedisClock;
  /** The clock leases expire by when `clock` is 'caller' (milliseconds). Default Date.now. */
  now?: () => number;
}

// After a change, the key lives as long as its longest lease (so that a key whose holders all died goes away).
// ARGV[1] is the time (luaNow), ARGV[2] the grace of the caller's clock.
const KEEP = `
local function keep()
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', KEYS[1], fmt(math.ceil(tonumber(last[2]) - now) + 1 + tonumber(ARGV[2])))
  end
end
`;

// A lease is live while its expiry is after now; expired ones are removed before anything is counted.
const ACQUIRE = `${luaNow(1)}${KEEP}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], fmt(now + tonumber(ARGV[5])), ARGV[3])
keep()
return 1
`;

const RENEW = `${luaNow(1)}${KEEP}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', fmt(now))
if not redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], 'XX', fmt(now + tonumber(ARGV[4])), ARGV[3])
keep()
return 1
`;

const COUNT = `${luaNow(1)}
return redis.call('ZCOUNT', KEYS[1], '(' .. fmt(now), '+inf')
`;

interface LeaseCommands {
  mcplexLeaseAcquire(key: string, ...args: string[]): Promise<number>;
  mcplexLeaseRenew(key: string, ...args: string[]): Promise<number>;
  mcplexLeaseCount(key: string, now: string): Promise<number>;
}

/** The handlers of one channel, and the SUBSCRIBE that makes it live (every subscriber waits for it). */
interface Channel {
  handlers: Set<(message: string) => void>;
  live: Promise<unknown>;
}

/**
 * Coordination on `connection` (for publishing and leases; shared with other users, left open by close) and
 * `subscriber` (this instance's own, closed by close).
 */
export function createRedisCoordination(
  connection: RedisConnection,
  subscriber: RedisConnection,
  options: RedisCoordinationOptions,
): Coordination {
  const redis = connection.redis as RedisConnection['redis'] & LeaseCommands;
  redis.defineCommand('mcplexLeaseAcquire', { numberOfKeys: 1, lua: ACQUIRE });
  redis.defineCommand('mcplexLeaseRenew', { numberOfKeys: 1, lua: RENEW });
  redis.defineCommand('mcplexLeaseCount', { numberOfKeys: 1, lua: COUNT });
  const clock = options.clock ?? 'server';
  const now = options.now ?? Date.now;
  const time = () => nowArgument(clock, clock === 'server' ? 0 : now());
  const grace = String(clock === 'server' ? 0 : CALLER_CLOCK_GRACE_MS);
  const leaseKey = (key: string) => `${options.prefix}lease:${key}`;
  const channelOf = (topic: string) => `${options.prefix}topic:${topic}`;
  const channels = new Map<string, Channel>();
  let closed = false;

  subscriber.redis.on('message', (channel: string, message: string) => {
    const current = channels.get(channel);
    if (current === undefined) return;
    // A copy: a handler that subscribes or unsubscribes changes the next message's audience, not this one's.
    for (const handler of [...current.handlers]) {
      try {
        handler(message);
      } catch {
        // One subscriber's trouble is not the others'.
      }
    }
  });

  const call = <T>(what: string, run: () => Promise<T>): Promise<T> => connection.call(what, run);

  /** Drops one handler; the channel's last one unsubscribes it (in order with any later SUBSCRIBE on it). */
  function drop(channel: string, entry: (message: string) => void): boolean {
    const current = channels.get(channel);
    if (current === undefined || !current.handlers.delete(entry)) return false;
    if (current.handlers.size > 0) return false;
    channels.delete(channel);
    return true;
  }

  function lease(key: string, id: string, ttl: string): Lease {
    return {
      key,
      id,
      async renew() {
        if (closed) return false;
        const renewed = await call('renew a lease', () =>
          redis.mcplexLeaseRenew(leaseKey(key), time(), grace, id, ttl),
        );
        return renewed === 1;
      },
      async release() {
        if (closed) return;
        await call('release a lease', () => redis.zrem(leaseKey(key), id));
      },
    };
  }

  return {
    async publish(topic, message) {
      if (closed) return;
      await call('publish a message', () => redis.publish(channelOf(topic), message));
    },

    async subscribe(topic, handler): Promise<Unsubscribe> {
      if (closed) return async () => {};
      const channel = channelOf(topic);
      // A wrapper per subscription, so that the same handler subscribed twice is two subscriptions.
      const entry = (message: string) => handler(message);
      let current = channels.get(channel);
      if (current === undefined) {
        current = {
          handlers: new Set(),
          live: subscriber.call(`subscribe to ${topic}`, () => subscriber.redis.subscribe(channel)),
        };
        channels.set(channel, current);
      }
      current.handlers.add(entry);
      try {
        await current.live;
      } catch (error) {
        if (drop(channel, entry)) await subscriber.redis.unsubscribe(channel).catch(() => {});
        throw subscriber.failure(`subscribe to ${topic}`, error);
      }
      let done = false;
      return async () => {
        if (done) return;
        done = true;
        if (!drop(channel, entry) || closed) return;
        // Not delivering any more is what counts, and that holds already; Redis forgets a channel of a lost
        // connection by itself.
        await subscriber.redis.unsubscribe(channel).catch(() => {});
      };
    },

    async acquire(key, limit, ttlMs) {
      if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) {
        throw new RangeError(`a lease needs a positive, finite ttl, not ${ttlMs}`);
      }
      if (closed || !(limit > 0)) return undefined;
      const id = randomUUID();
      const ttl = String(ttlMs);
      const granted = await call('acquire a lease', () =>
        redis.mcplexLeaseAcquire(leaseKey(key), time(), grace, id, String(limit), ttl),
      );
      return granted === 1 ? lease(key, id, ttl) : undefined;
    },

    async count(key) {
      if (closed) return 0;
      return call('count leases', () => redis.mcplexLeaseCount(leaseKey(key), time()));
    },

    async close() {
      closed = true;
      channels.clear();
      await subscriber.close();
    },
  };
}
