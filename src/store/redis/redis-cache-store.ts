// The response cache in Redis, shared by every replica: one hash per entry that Redis expires by itself, with the
// entry's own times kept beside the body so that whether it expired is judged by the caller's `now`.
import type { CacheEntry, CacheStore } from '../store.js';
import type { RedisConnection } from './redis-connection.js';

export interface RedisCacheStoreOptions {
  /** Put before every key. */
  prefix: string;
  /** Bodies larger than this many bytes (UTF-8) are not stored. Default 4 MiB. */
  maxEntryBytes?: number;
  /**
   * How long past its lifetime Redis keeps an entry before dropping it. Meanwhile `get` does not return it (the
   * caller's `now` decides) and `prune` can remove it and count it; it also covers a caller whose clock runs a
   * little behind the one that stored the entry. Default 5000 ms.
   */
  expiryGraceMs?: number;
}

/** How many keys one SCAN step of `prune` asks for. */
const SCAN_COUNT = 500;

// Replaces the entry whole (an overwrite never keeps a field of the old one), with its expiry, atomically.
const SET = `
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'body', ARGV[1], 'kind', ARGV[2], 'createdAt', ARGV[3], 'expiresAt', ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
`;

// Removes those of the keys (one SCAN step) that expired by ARGV[1] and counts them; reading and removing in one
// script, so that an entry another replica has just stored again is never removed.
const PRUNE = `
local now, removed = tonumber(ARGV[1]), 0
for _, key in ipairs(KEYS) do
  local expiresAt = redis.call('HGET', key, 'expiresAt')
  if expiresAt and tonumber(expiresAt) <= now then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
return removed
`;

interface CacheCommands {
  mcplexCacheSet(key: string, ...args: string[]): Promise<unknown>;
  mcplexCachePrune(count: number, ...keysThenNow: string[]): Promise<number>;
}

export function createRedisCacheStore(connection: RedisConnection, options: RedisCacheStoreOptions): CacheStore {
  const redis = connection.redis as RedisConnection['redis'] & CacheCommands;
  redis.defineCommand('mcplexCacheSet', { numberOfKeys: 1, lua: SET });
  // No fixed number of keys: each call names the keys of one SCAN step.
  redis.defineCommand('mcplexCachePrune', { lua: PRUNE });
  const maxEntryBytes = options.maxEntryBytes ?? 4 * 1024 * 1024;
  const grace = options.expiryGraceMs ?? 5000;
  const space = `${options.prefix}cache:`;
  const pattern = `${escapeGlob(space)}*`;

  const call = <T>(what: string, run: () => Promise<T>): Promise<T> => connection.call(what, run);

  return {
    async get(key, now) {
      const [body, kind, createdAt, expiresAt] = await call('read the cache', () =>
        redis.hmget(space + key, 'body', 'kind', 'createdAt', 'expiresAt'),
      );
      if (body == null || createdAt == null || expiresAt == null || (kind !== 'json' && kind !== 'sse')) {
        return undefined;
      }
      const entry: CacheEntry = { body, kind, createdAt: Number(createdAt), expiresAt: Number(expiresAt) };
      return entry.expiresAt > now ? entry : undefined;
    },

    async set(key, entry) {
      if (!Number.isFinite(entry.createdAt) || !Number.isFinite(entry.expiresAt)) {
        throw new RangeError(`a cache entry needs finite times, got ${entry.createdAt} and ${entry.expiresAt}`);
      }
      if (Buffer.byteLength(entry.body, 'utf8') > maxEntryBytes) {
        // Not stored; nor is an older entry under this key left to answer in its place.
        await call('write the cache', () => redis.del(space + key));
        return;
      }
      // Its lifetime as the caller measures it, so that Redis' clock need not agree with the caller's.
      const ttl = String(Math.max(0, Math.ceil(entry.expiresAt - entry.createdAt)) + grace);
      await call('write the cache', () =>
        redis.mcplexCacheSet(
          space + key,
          entry.body,
          entry.kind,
          String(entry.createdAt),
          String(entry.expiresAt),
          ttl,
        ),
      );
    },

    async delete(key) {
      await call('delete from the cache', () => redis.del(space + key));
    },

    async prune(now) {
      // Entries Redis has dropped by itself (a grace after they expired) are gone already and not counted.
      let removed = 0;
      let cursor = '0';
      do {
        const [next, keys] = await call('scan the cache', () =>
          redis.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT),
        );
        cursor = next;
        if (keys.length > 0) {
          removed += await call('prune the cache', () => redis.mcplexCachePrune(keys.length, ...keys, String(now)));
        }
      } while (cursor !== '0');
      return removed;
    },
  };
}

/** `text` as a SCAN pattern that matches exactly it. */
function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
