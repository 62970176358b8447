// The replica registry on Redis: one record per replica (`replica:<name>`, JSON, expiring) and a sorted set of the
// names by expiry (`replicas`), both written by one script on Redis' clock, so that replicas whose clocks disagree
// still agree on who is alive.
import type { ReplicaInfo, ReplicaRegistry } from '../replicas.js';
import { luaNow } from './redis-clock.js';
import type { RedisConnection } from './redis-connection.js';

// ARGV: 1 time (empty: Redis' clock), 2 prefix, 3 name, 4 record, 5 ttl
const BEAT = `${luaNow(1)}
redis.call('SET', ARGV[2] .. 'replica:' .. ARGV[3], ARGV[4], 'PX', ARGV[5])
redis.call('ZADD', ARGV[2] .. 'replicas', fmt(now + tonumber(ARGV[5])), ARGV[3])
return 1
`;

// ARGV: 1 time, 2 prefix
const LIST = `${luaNow(1)}
local set = ARGV[2] .. 'replicas'
redis.call('ZREMRANGEBYSCORE', set, '-inf', fmt(now))
local names = redis.call('ZRANGE', set, 0, -1)
local records = {}
for i, name in ipairs(names) do records[i] = redis.call('GET', ARGV[2] .. 'replica:' .. name) or '' end
return records
`;

interface ReplicaCommands {
  mcplexReplicaBeat(...args: string[]): Promise<number>;
  mcplexReplicaList(...args: string[]): Promise<string[]>;
}

export function createRedisReplicas(connection: RedisConnection, prefix: string): ReplicaRegistry {
  const redis = connection.redis as RedisConnection['redis'] & ReplicaCommands;
  redis.defineCommand('mcplexReplicaBeat', { numberOfKeys: 0, lua: BEAT });
  redis.defineCommand('mcplexReplicaList', { numberOfKeys: 0, lua: LIST });
  return {
    async beat(info, ttlMs) {
      await connection.call('renew the replica record', () =>
        redis.mcplexReplicaBeat('', prefix, info.name, JSON.stringify(info), String(ttlMs)),
      );
    },
    async list() {
      const records = await connection.call('list the replicas', () => redis.mcplexReplicaList('', prefix));
      return records
        .filter((record) => record !== '')
        .map((record) => JSON.parse(record) as ReplicaInfo)
        .sort((a, b) => a.name.localeCompare(b.name));
    },
    async leave(name) {
      await connection.call('remove the replica record', () =>
        redis.multi().del(`${prefix}replica:${name}`).zrem(`${prefix}replicas`, name).exec(),
      );
    },
  };
}
