// Rate-limit buckets in Redis: gcra.ts' takeAll as one Lua script per batch, so that every replica takes from the
// same buckets atomically in one round trip, by Redis' own clock unless the caller's is asked for.
import { checkGcraBatch, gcraBatchKeys, limitStoreOf } from '../gcra.js';
import type { LimitStore } from '../store.js';
import { luaNow, nowArgument, CALLER_CLOCK_GRACE_MS, type RedisClock } from './redis-clock.js';
import type { RedisConnection } from './redis-connection.js';

export interface RedisLimitStoreOptions {
  /** Put before every key. */
  prefix: string;
  /** Default 'server': replicas whose clocks disagree still share one bucket exactly. */
  clock?: RedisClock;
}

// Each bucket's state is gcra.ts' own: a hash of `units` owed as of `at` (TAT = at + units × periodMs / limit),
// written with 17 significant digits so that it reads back as the very double it was. The arithmetic below is
// gcra.ts' line for line, in the same order of operations, so that Lua's doubles give the results JavaScript's
// would. KEYS are the batch's buckets; ARGV: the time, the expiry grace, the numbers of corrections and of takes,
// then four values for each (the KEYS index, the units, the limit, the period).
const TAKE_ALL = `${luaNow(1)}
local SLACK_MS = 1e-3
local grace = tonumber(ARGV[2])
local corrections, takes = tonumber(ARGV[3]), tonumber(ARGV[4])
local units, at, limits, periods, changed = {}, {}, {}, {}, {}
for i = 1, #KEYS do
  local stored = redis.call('HMGET', KEYS[i], 'units', 'at')
  if stored[1] then units[i], at[i] = tonumber(stored[1]), tonumber(stored[2]) end
end
-- The units still owed now; no state is a full bucket. A clock behind the anchor (another caller's) counts as the
-- anchor's time.
local function settle(u, a, limit, period)
  if u == nil then return 0, now end
  if now > a then return math.max(0, u - ((now - a) * limit) / period), now end
  return u, a
end
local function describe(allowed, owed, excess, limit, interval)
  local retry = 0
  if allowed == 0 then retry = math.max(0, math.ceil(excess - SLACK_MS)) end
  return {
    allowed,
    fmt(math.min(limit, math.max(0, math.floor(limit - owed + SLACK_MS / interval)))),
    fmt(math.max(0, math.ceil(owed * interval - SLACK_MS))),
    fmt(retry),
  }
end
local p = 5
for _ = 1, corrections do
  local i, delta, limit, period = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3])
  p = p + 4
  local u, a = settle(units[i], at[i], limit, period)
  if delta < 0 then u = math.max(0, u + delta) else u = math.min(u + delta, limit) end
  units[i], at[i], limits[i], periods[i], changed[i] = u, a, limit, period, true
end
local tentativeUnits, tentativeAt = {}, {}
for i = 1, #KEYS do tentativeUnits[i], tentativeAt[i] = units[i], at[i] end
local replies, taken, allowed = {}, {}, true
for t = 1, takes do
  local i, cost, limit, period = tonumber(ARGV[p]), tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2]), tonumber(ARGV[p + 3])
  p = p + 4
  local interval = period / limit
  local u, a = settle(tentativeUnits[i], tentativeAt[i], limit, period)
  local wanted = u + cost
  local excess = (wanted - limit) * interval
  if excess <= SLACK_MS then
    tentativeUnits[i], tentativeAt[i] = wanted, a
    replies[t] = describe(1, wanted, 0, limit, interval)
  else
    allowed = false
    replies[t] = describe(0, u, excess, limit, interval)
  end
  limits[i], periods[i], taken[t] = limit, period, i
end
for t = 1, takes do
  local i = taken[t]
  if allowed then
    units[i], at[i], changed[i] = tentativeUnits[i], tentativeAt[i], true
  elseif replies[t][1] == 1 then
    -- Nothing was taken: a bucket that had room says how it stands without the take.
    local u = settle(units[i], at[i], limits[i], periods[i])
    replies[t] = describe(1, u, 0, limits[i], periods[i] / limits[i])
  end
end
-- A bucket keeps its state while it still owes anything, the key expiring when it is full again (1 ms more for the
-- whole milliseconds Redis expires by); a full bucket is the same as no key.
for i = 1, #KEYS do
  if changed[i] then
    local interval = periods[i] / limits[i]
    if units[i] * interval > SLACK_MS then
      redis.call('HSET', KEYS[i], 'units', fmt(units[i]), 'at', fmt(at[i]))
      redis.call('PEXPIRE', KEYS[i], fmt(math.ceil(at[i] - now + units[i] * interval) + 1 + grace))
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
local flat = {}
for t = 1, takes do for j = 1, 4 do flat[#flat + 1] = replies[t][j] end end
return flat
`;

interface GcraCommands {
  mcplexGcraTakeAll(numberOfKeys: number, ...keysAndArgs: string[]): Promise<(number | string)[]>;
}

export function createRedisLimitStore(connection: RedisConnection, options: RedisLimitStoreOptions): LimitStore {
  const redis = connection.redis as RedisConnection['redis'] & GcraCommands;
  // defineCommand sends EVALSHA and loads the script on NOSCRIPT (a restarted or failed-over Redis).
  redis.defineCommand('mcplexGcraTakeAll', { lua: TAKE_ALL });
  const clock = options.clock ?? 'server';
  const grace = String(clock === 'server' ? 0 : CALLER_CLOCK_GRACE_MS);

  return limitStoreOf(async (batch) => {
    checkGcraBatch(batch);
    const keys = gcraBatchKeys(batch);
    const index = new Map(keys.map((key, i) => [key, String(i + 1)]));
    const corrections = batch.corrections ?? [];
    // String(x) is the shortest text that reads back as x: Lua's tonumber gets the caller's doubles exactly.
    const args = [nowArgument(clock, batch.now), grace, String(corrections.length), String(batch.takes.length)];
    for (const c of corrections) args.push(index.get(c.key)!, String(c.units), String(c.limit), String(c.periodMs));
    for (const t of batch.takes) args.push(index.get(t.key)!, String(t.cost), String(t.limit), String(t.periodMs));
    const reply = await connection.call('take from rate limits', () =>
      redis.mcplexGcraTakeAll(keys.length, ...keys.map((key) => `${options.prefix}limit:${key}`), ...args),
    );
    return batch.takes.map((_, t) => ({
      allowed: reply[4 * t] === 1,
      remaining: Number(reply[4 * t + 1]),
      resetMs: Number(reply[4 * t + 2]),
      retryAfterMs: Number(reply[4 * t + 3]),
    }));
  });
}
