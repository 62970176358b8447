// Rate-limit buckets in Redis: the GCRA of gcra.ts as one Lua script per decision, so that every replica takes from
// the same bucket atomically in one round trip, by Redis' own clock unless the caller's is asked for.
import { checkGcraArguments } from '../gcra.js';
import type { LimitStore, RateDecision } from '../store.js';
import { CALLER_CLOCK_GRACE_MS, luaNow, nowArgument, type RedisClock } from './redis-clock.js';
import type { RedisConnection } from './redis-connection.js';

export interface RedisLimitStoreOptions {
  /** Put before every key. */
  prefix: string;
  /** Default 'server': replicas whose clocks disagree still share one bucket exactly. */
  clock?: RedisClock;
}

// The state is gcra.ts' own: a hash of `units` owed as of `at` (TAT = at + units × periodMs / limit), written with
// 17 significant digits so that it reads back as the very double it was. The arithmetic below is gcra.ts' line for
// line, in the same order of operations, so that Lua's doubles give the results JavaScript's would.
const PRELUDE = `${luaNow(4)}
local SLACK_MS = 1e-3
local cost, limit, period, grace = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[5])
local interval = period / limit
local stored = redis.call('HMGET', KEYS[1], 'units', 'at')
local units, at = 0, now
if stored[1] then
  units, at = tonumber(stored[1]), tonumber(stored[2])
  -- A clock behind the anchor (another caller's) counts as the anchor's time.
  if now > at then
    units = math.max(0, units - ((now - at) * limit) / period)
    at = now
  end
end
-- Keeps the state while it still owes anything, with the key expiring when the bucket is full again (1 ms more
-- for the whole milliseconds Redis expires by); a full bucket is the same as no key.
local function save(owed)
  if owed * interval > SLACK_MS then
    redis.call('HSET', KEYS[1], 'units', fmt(owed), 'at', fmt(at))
    redis.call('PEXPIRE', KEYS[1], fmt(math.ceil(at - now + owed * interval) + 1 + grace))
  else
    redis.call('DEL', KEYS[1])
  end
end
`;

const TAKE = `${PRELUDE}
local function describe(allowed, owed, excess)
  local slackUnits = SLACK_MS / interval
  local retry = 0
  if allowed == 0 then retry = math.max(0, math.ceil(excess - SLACK_MS)) end
  return {
    allowed,
    fmt(math.min(limit, math.max(0, math.floor(limit - owed + slackUnits)))),
    fmt(math.max(0, math.ceil(owed * interval - SLACK_MS))),
    fmt(retry),
  }
end
local wanted = units + cost
local excess = (wanted - limit) * interval
if excess <= SLACK_MS then
  save(wanted)
  return describe(1, wanted, 0)
end
return describe(0, units, excess)
`;

const REFUND = `${PRELUDE}
if not stored[1] then return 0 end
save(math.max(0, units - cost))
return 1
`;

interface GcraCommands {
  mcplexGcraTake(key: string, ...args: string[]): Promise<[number, string, string, string]>;
  mcplexGcraRefund(key: string, ...args: string[]): Promise<number>;
}

export function createRedisLimitStore(connection: RedisConnection, options: RedisLimitStoreOptions): LimitStore {
  const redis = connection.redis as RedisConnection['redis'] & GcraCommands;
  // defineCommand sends EVALSHA and loads the script on NOSCRIPT (a restarted or failed-over Redis).
  redis.defineCommand('mcplexGcraTake', { numberOfKeys: 1, lua: TAKE });
  redis.defineCommand('mcplexGcraRefund', { numberOfKeys: 1, lua: REFUND });
  const clock = options.clock ?? 'server';
  const grace = String(clock === 'server' ? 0 : CALLER_CLOCK_GRACE_MS);
  const keyOf = (key: string) => `${options.prefix}limit:${key}`;
  // String(x) is the shortest text that reads back as x: Lua's tonumber gets the caller's doubles exactly.
  const args = (units: number, limit: number, periodMs: number, now: number) => [
    String(units),
    String(limit),
    String(periodMs),
    nowArgument(clock, now),
    grace,
  ];

  return {
    async take(key, cost, limit, periodMs, now): Promise<RateDecision> {
      checkGcraArguments('cost', cost, limit, periodMs, now);
      const reply = await connection.call('take from a rate limit', () =>
        redis.mcplexGcraTake(keyOf(key), ...args(cost, limit, periodMs, now)),
      );
      return {
        allowed: reply[0] === 1,
        remaining: Number(reply[1]),
        resetMs: Number(reply[2]),
        retryAfterMs: Number(reply[3]),
      };
    },

    async refund(key, amount, limit, periodMs, now) {
      checkGcraArguments('amount', amount, limit, periodMs, now);
      await connection.call('refund to a rate limit', () =>
        redis.mcplexGcraRefund(keyOf(key), ...args(amount, limit, periodMs, now)),
      );
    },
  };
}
