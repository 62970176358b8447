// The session directory on Redis, shared by every replica. Under the prefix:
//   session:<id>          hash: principal, createdAt, lastSeen, capped, bytes, and one `s:<name>` field per state
//                         entry (JSON); expires idleMs after its last touch
//   session:<id>:subs     set of subscribed URIs; session:<id>:log  stream of events (s: stream, m: message,
//                         n: size, t: tag), both expiring with the session
//   sessions, sessions:of:<principal>   sorted sets of ids by lastSeen, for the caps and for idle eviction
//   events, events:bytes  every kept event of every log by time (member "<id> <event id> <size>") and their size,
//                         for the total bound
// Each change is one Lua script, by Redis' clock unless the caller's is asked for; a script computes its keys from
// the prefix, so they are not Redis Cluster safe (one Redis, or a primary with replicas). Wake-ups are published on
// the coordination port's channel `session:<id>`.
import type { Coordination, Unsubscribe } from '../coordination.js';
import type {
  EventAppend,
  NewSession,
  OpenOutcome,
  SessionBounds,
  SessionDirectory,
  SessionEvent,
  SessionRecord,
  SubscribeOutcome,
} from '../sessions.js';
import { CALLER_CLOCK_GRACE_MS, luaNow, nowArgument, type RedisClock } from './redis-clock.js';
import type { RedisConnection } from './redis-connection.js';

export interface RedisSessionsOptions {
  prefix: string;
  clock?: RedisClock;
  bounds: SessionBounds;
}

// ARGV[1] prefix, ARGV[2] time (luaNow). Helpers every script shares.
const COMMON = `${luaNow(2)}
local P = ARGV[1]
local function field(flat, name)
  for i = 1, #flat, 2 do if flat[i] == name then return flat[i + 1] end end
  return nil
end
local function forget(id)
  local s = P .. 'session:' .. id
  local principal = redis.call('HGET', s, 'principal')
  for _, e in ipairs(redis.call('XRANGE', s .. ':log', '-', '+')) do
    local size = field(e[2], 'n')
    if size then
      redis.call('ZREM', P .. 'events', id .. ' ' .. e[1] .. ' ' .. size)
      redis.call('DECRBY', P .. 'events:bytes', size)
    end
  end
  local existed = redis.call('DEL', s)
  redis.call('DEL', s .. ':subs', s .. ':log')
  redis.call('ZREM', P .. 'sessions', id)
  if principal then redis.call('ZREM', P .. 'sessions:of:' .. principal, id) end
  return existed
end
local function evictIdle(set, cutoff)
  local ids = redis.call('ZRANGEBYSCORE', set, '-inf', '(' .. fmt(cutoff), 'LIMIT', 0, 1000)
  for _, id in ipairs(ids) do forget(id) end
  return #ids
end
`;

// ARGV: 3 id, 4 principal, 5 capped, 6 idleMs, 7 pressureIdleMs, 8 max, 9 maxPerPrincipal, 10 ttl, 11.. state pairs
const OPEN = `${COMMON}
local id, principal, capped = ARGV[3], ARGV[4], ARGV[5] == '1'
local idle, pressure = tonumber(ARGV[6]), tonumber(ARGV[7])
local all = P .. 'sessions'
redis.call('ZREMRANGEBYSCORE', all, '-inf', fmt(now - idle))
if capped then
  local own = P .. 'sessions:of:' .. principal
  redis.call('ZREMRANGEBYSCORE', own, '-inf', fmt(now - idle))
  if redis.call('ZCARD', own) >= tonumber(ARGV[9]) and evictIdle(own, now - pressure) == 0 then
    return 'principal-full'
  end
end
if redis.call('ZCARD', all) >= tonumber(ARGV[8]) and evictIdle(all, now - pressure) == 0 then return 'full' end
local s = P .. 'session:' .. id
redis.call('HSET', s, 'principal', principal, 'createdAt', fmt(now), 'lastSeen', fmt(now), 'capped', ARGV[5], 'bytes', 0)
for i = 11, #ARGV, 2 do redis.call('HSET', s, 's:' .. ARGV[i], ARGV[i + 1]) end
redis.call('PEXPIRE', s, ARGV[10])
redis.call('ZADD', all, fmt(now), id)
if capped then redis.call('ZADD', P .. 'sessions:of:' .. principal, fmt(now), id) end
return 'opened'
`;

// ARGV: 3 idleMs, 4 ttl, 5 1 = return the record, 6.. ids
const TOUCH = `${COMMON}
local idle = tonumber(ARGV[3])
local found = false
for i = 6, #ARGV do
  local id = ARGV[i]
  local s = P .. 'session:' .. id
  local flat = redis.call('HGETALL', s)
  local last = tonumber(field(flat, 'lastSeen'))
  if last and last + idle <= now then
    forget(id)
  elseif last then
    if now > last then
      redis.call('HSET', s, 'lastSeen', fmt(now))
      redis.call('ZADD', P .. 'sessions', fmt(now), id)
      if field(flat, 'capped') == '1' then
        redis.call('ZADD', P .. 'sessions:of:' .. field(flat, 'principal'), fmt(now), id)
      end
      for j = 1, #flat, 2 do if flat[j] == 'lastSeen' then flat[j + 1] = fmt(now) end end
    end
    redis.call('PEXPIRE', s, ARGV[4])
    redis.call('PEXPIRE', s .. ':subs', ARGV[4])
    redis.call('PEXPIRE', s .. ':log', ARGV[4])
    if ARGV[5] == '1' then found = flat end
  end
end
return found
`;

// ARGV: 3 idleMs
const COUNT = `${COMMON}
redis.call('ZREMRANGEBYSCORE', P .. 'sessions', '-inf', fmt(now - tonumber(ARGV[3])))
return redis.call('ZCARD', P .. 'sessions')
`;

// ARGV: 3 id
const END = `${COMMON}
return forget(ARGV[3])
`;

// ARGV: 3 id, 4 uri, 5 max
const SUBSCRIBE = `${COMMON}
local s = P .. 'session:' .. ARGV[3]
if redis.call('EXISTS', s) == 0 then return 'gone' end
local subs = s .. ':subs'
if redis.call('SISMEMBER', subs, ARGV[4]) == 1 then return 'held' end
if redis.call('SCARD', subs) >= tonumber(ARGV[5]) then return 'full' end
redis.call('SADD', subs, ARGV[4])
redis.call('PEXPIRE', subs, redis.call('PTTL', s))
return 'added'
`;

// ARGV: 3 id, 4 replayEvents, 5 replayBytes, 6 replayTotalBytes, 7 channel, 8.. stream/message/tag triples
const APPEND = `${COMMON}
local id = ARGV[3]
local s = P .. 'session:' .. id
local log = s .. ':log'
local maxEvents, maxBytes, maxTotal = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local ids = {}
if redis.call('EXISTS', s) == 0 then return ids end
local function drop(entry)
  local size = tonumber(field(entry[2], 'n'))
  redis.call('XDEL', log, entry[1])
  redis.call('ZREM', P .. 'events', id .. ' ' .. entry[1] .. ' ' .. size)
  redis.call('DECRBY', P .. 'events:bytes', size)
  redis.call('HINCRBY', s, 'bytes', -size)
end
for i = 8, #ARGV, 3 do
  local stream, message, tag = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local size = #message
  if size > maxBytes or size > maxTotal then
    for _, e in ipairs(redis.call('XRANGE', log, '-', '+')) do
      if field(e[2], 's') == stream then drop(e) end
    end
    local skipped = redis.call('XADD', log, '*', 's', stream, 'm', '', 'n', 0)
    redis.call('XDEL', log, skipped)
    ids[#ids + 1] = skipped
  else
    local eid = redis.call('XADD', log, '*', 's', stream, 'm', message, 'n', size, 't', tag)
    ids[#ids + 1] = eid
    redis.call('HINCRBY', s, 'bytes', size)
    redis.call('INCRBY', P .. 'events:bytes', size)
    redis.call('ZADD', P .. 'events', fmt(now), id .. ' ' .. eid .. ' ' .. size)
    while redis.call('XLEN', log) > maxEvents or tonumber(redis.call('HGET', s, 'bytes')) > maxBytes do
      drop(redis.call('XRANGE', log, '-', '+', 'COUNT', 1)[1])
    end
    while tonumber(redis.call('GET', P .. 'events:bytes') or '0') > maxTotal do
      local oldest = redis.call('ZRANGE', P .. 'events', 0, 0)[1]
      if not oldest then break end
      local owner, event, n = string.match(oldest, '^(%S+) (%S+) (%S+)$')
      redis.call('ZREM', P .. 'events', oldest)
      redis.call('DECRBY', P .. 'events:bytes', n)
      local ownerKey = P .. 'session:' .. owner
      if redis.call('XDEL', ownerKey .. ':log', event) == 1 then redis.call('HINCRBY', ownerKey, 'bytes', -n) end
    end
  end
end
redis.call('PEXPIRE', log, redis.call('PTTL', s))
redis.call('PUBLISH', ARGV[7], '')
return ids
`;

interface SessionCommands {
  mcplexSessionOpen(...args: string[]): Promise<OpenOutcome>;
  mcplexSessionTouch(...args: string[]): Promise<string[] | null>;
  mcplexSessionCount(...args: string[]): Promise<number>;
  mcplexSessionEnd(...args: string[]): Promise<number>;
  mcplexSessionSubscribe(...args: string[]): Promise<SubscribeOutcome>;
  mcplexSessionAppend(...args: string[]): Promise<string[]>;
}

/** A Redis stream entry id ("<ms>-<seq>"): anything else from a client is not an event of any log. */
function isEventId(id: string): boolean {
  const dash = id.indexOf('-');
  if (dash <= 0 || dash === id.length - 1 || id.length > 42) return false;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (i !== dash && (c < 48 || c > 57)) return false;
  }
  return true;
}

function recordOf(id: string, flat: string[]): SessionRecord {
  const state: Record<string, unknown> = {};
  const fields = new Map<string, string>();
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!;
    if (name.startsWith('s:')) state[name.slice(2)] = JSON.parse(flat[i + 1]!);
    else fields.set(name, flat[i + 1]!);
  }
  return {
    id,
    principal: fields.get('principal')!,
    state,
    createdAt: Number(fields.get('createdAt')),
    lastSeen: Number(fields.get('lastSeen')),
  };
}

type Entry = [id: string, fields: string[]];

function eventOf([id, flat]: Entry): SessionEvent {
  const fields = new Map<string, string>();
  for (let i = 0; i < flat.length; i += 2) fields.set(flat[i]!, flat[i + 1]!);
  const tag = fields.get('t');
  return { id, stream: fields.get('s')!, message: fields.get('m')!, ...(tag ? { tag } : {}) };
}

function statePairs(state: Record<string, unknown>): string[] {
  const pairs: string[] = [];
  for (const [name, value] of Object.entries(state)) {
    if (value !== undefined) pairs.push(name, JSON.stringify(value));
  }
  return pairs;
}

export function createRedisSessions(
  connection: RedisConnection,
  coordination: Coordination,
  options: RedisSessionsOptions,
): SessionDirectory {
  const redis = connection.redis as RedisConnection['redis'] & SessionCommands;
  for (const [name, lua] of [
    ['mcplexSessionOpen', OPEN],
    ['mcplexSessionTouch', TOUCH],
    ['mcplexSessionCount', COUNT],
    ['mcplexSessionEnd', END],
    ['mcplexSessionSubscribe', SUBSCRIBE],
    ['mcplexSessionAppend', APPEND],
  ] as const) {
    redis.defineCommand(name, { numberOfKeys: 0, lua });
  }
  const { prefix, bounds } = options;
  const clock = options.clock ?? 'server';
  const time = (now: number) => nowArgument(clock, now);
  // Redis expires keys by its own clock: a caller's clock (tests) is given the grace its arithmetic needs.
  const ttl = String(bounds.idleMs + (clock === 'server' ? 0 : CALLER_CLOCK_GRACE_MS));
  const key = (id: string) => `${prefix}session:${id}`;
  const call = <T>(what: string, run: () => Promise<T>) => connection.call(what, run);
  const topic = (id: string) => `session:${id}`;

  return {
    async open(session: NewSession, now) {
      const capped = session.capped ?? true;
      return call('open a session', () =>
        redis.mcplexSessionOpen(
          prefix,
          time(now),
          session.id,
          session.principal,
          capped ? '1' : '0',
          String(bounds.idleMs),
          String(bounds.pressureIdleMs),
          String(bounds.max),
          String(bounds.maxPerPrincipal),
          ttl,
          ...statePairs(session.state),
        ),
      );
    },
    async touch(id, now) {
      const flat = await call('read a session', () =>
        redis.mcplexSessionTouch(prefix, time(now), String(bounds.idleMs), ttl, '1', id),
      );
      return flat ? recordOf(id, flat) : undefined;
    },
    async touchAll(ids, now) {
      if (ids.length === 0) return;
      await call('touch sessions', () =>
        redis.mcplexSessionTouch(prefix, time(now), String(bounds.idleMs), ttl, '0', ...ids),
      );
    },
    async update(id, patch) {
      const pairs = statePairs(patch);
      const fields: string[] = [];
      for (let i = 0; i < pairs.length; i += 2) fields.push(`s:${pairs[i]}`, pairs[i + 1]!);
      // HSET only on a live session: a session ended meanwhile must not come back as a bare hash.
      const script = `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if #ARGV > 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 1`;
      const done = await call('update a session', () => redis.eval(script, 1, key(id), ...fields));
      return done === 1;
    },
    async end(id) {
      return (await call('end a session', () => redis.mcplexSessionEnd(prefix, '', id))) === 1;
    },
    async count(now) {
      return call('count sessions', () => redis.mcplexSessionCount(prefix, time(now), String(bounds.idleMs)));
    },
    async subscribe(id, uri, max) {
      return call('subscribe a session', () => redis.mcplexSessionSubscribe(prefix, '', id, uri, String(max)));
    },
    async unsubscribe(id, uri) {
      return (await call('unsubscribe a session', () => redis.srem(`${key(id)}:subs`, uri))) === 1;
    },
    async subscriptions(id) {
      return call('read subscriptions', () => redis.smembers(`${key(id)}:subs`));
    },
    async append(id, events: readonly EventAppend[]) {
      if (events.length === 0) return [];
      const args: string[] = [];
      for (const event of events) args.push(event.stream, event.message, event.tag ?? '');
      return call('append session events', () =>
        redis.mcplexSessionAppend(
          prefix,
          '',
          id,
          String(bounds.replayEvents),
          String(bounds.replayBytes),
          String(bounds.replayTotalBytes),
          `${prefix}topic:${topic(id)}`,
          ...args,
        ),
      );
    },
    async after(id, eventId) {
      if (!isEventId(eventId)) return undefined;
      const log = `${key(id)}:log`;
      const [at, later] = await call('read session events', async () => {
        const results = await redis.multi().xrange(log, eventId, eventId).xrange(log, `(${eventId}`, '+').exec();
        return (results ?? []).map(([error, value]) => {
          if (error) throw error;
          return value as Entry[];
        });
      });
      const first = at?.[0];
      if (!first) return undefined;
      const stream = eventOf(first).stream;
      return { stream, events: (later ?? []).map(eventOf).filter((event) => event.stream === stream) };
    },
    async streamAfter(id, stream, eventId) {
      if (eventId !== undefined && !isEventId(eventId)) return [];
      const entries = (await call('read session events', () =>
        redis.xrange(`${key(id)}:log`, eventId === undefined ? '-' : `(${eventId}`, '+'),
      )) as Entry[];
      return entries.map(eventOf).filter((event) => event.stream === stream);
    },
    async watch(id, wake): Promise<Unsubscribe> {
      return coordination.subscribe(topic(id), () => wake());
    },
    async logBytes() {
      return Number((await call('read the log size', () => redis.get(`${prefix}events:bytes`))) ?? 0);
    },
    async close() {},
  };
}
