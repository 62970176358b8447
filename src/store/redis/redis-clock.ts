// Whose clock the state kept in Redis runs by, and the Lua that reads it: Redis' own `TIME` (the same for every
// replica, whatever their clocks say) or a time the caller passes (tests, which drive time themselves).

/** 'server': Redis' `TIME`; 'caller': the time passed with each call. */
export type RedisClock = 'server' | 'caller';

/**
 * How much longer a key outlives its own arithmetic when the caller's clock decides: Redis expires keys by its
 * clock, and a caller's clock that runs slow (or a test's, which stands still) must not see state that still counts
 * vanish. By Redis' clock a key expires exactly when its state stops counting.
 */
export const CALLER_CLOCK_GRACE_MS = 60_000;

/**
 * Lua that sets `now` (milliseconds, a double) from ARGV[n]: the caller's time, or Redis' `TIME` when that argument
 * is empty. Also defines `fmt`, the 17 significant digits that read back as the very double written.
 */
export function luaNow(n: number): string {
  return `
local function fmt(x) return string.format('%.17g', x) end
local now
if ARGV[${n}] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
else
  now = tonumber(ARGV[${n}])
end
`;
}

/** The ARGV that luaNow reads: empty for Redis' clock, else the caller's time as the shortest exact text. */
export function nowArgument(clock: RedisClock, now: number): string {
  return clock === 'server' ? '' : String(now);
}
