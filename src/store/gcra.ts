// The generic cell rate algorithm (GCRA) behind every LimitStore, as pure arithmetic on a small state, so that each
// store only has to read and write that state atomically.
//
// GCRA keeps one number per bucket, the theoretical arrival time (TAT): the bucket is full when TAT ≤ now, empty
// when TAT ≥ now + periodMs, and each unit taken moves TAT on by the emission interval periodMs / limit. A TAT held
// as one double in epoch milliseconds (≈1.7e12) loses ~1e-4 ms to rounding on every take, and the losses add up: at
// 17 per minute the 17th take of a burst is refused. So the state keeps TAT exactly, as an anchor time plus a count
// of units: TAT = at + units × periodMs / limit. Units are small numbers (whole ones for whole costs), so a burst
// adds without error, and time since the anchor is converted to units once per decision.

import type { RateDecision } from './store.js';

export interface GcraState {
  /** Units owed as of `at`; TAT = at + units × periodMs / limit. */
  units: number;
  /** Milliseconds since the epoch: the `now` of the last change. */
  at: number;
}

/**
 * Tolerance, in milliseconds of TAT, for rounding in the conversion between time and units and in the caller's
 * clock (a refill moment such as now + 1000/3 ms cannot be written exactly as an epoch double).
 */
const SLACK_MS = 1e-3;

export interface GcraTake {
  decision: RateDecision;
  /** The state to store when the take is allowed; undefined when refused (nothing may change). */
  next: GcraState | undefined;
}

/** Decides a take of `cost` units from a bucket of `limit` units refilled over `periodMs` (undefined: full). */
export function gcraTake(
  state: GcraState | undefined,
  cost: number,
  limit: number,
  periodMs: number,
  now: number,
): GcraTake {
  checkGcraArguments('cost', cost, limit, periodMs, now);
  const interval = periodMs / limit;
  const { units, at } = settle(state, limit, periodMs, now);
  const wanted = units + cost;
  // GCRA allows the take when the new TAT is at most one period ahead of now, i.e. when `wanted` fits in `limit`.
  const excessMs = (wanted - limit) * interval;
  if (excessMs <= SLACK_MS) {
    return { decision: describe(true, wanted, 0, interval, limit), next: { units: wanted, at } };
  }
  return { decision: describe(false, units, excessMs, interval, limit), next: undefined };
}

/**
 * The state after giving back `amount` units taken earlier, or undefined when the bucket is then full (nothing
 * need be stored). Never below zero units owed, so a refund cannot fill the bucket beyond `limit`.
 */
export function gcraRefund(
  state: GcraState | undefined,
  amount: number,
  limit: number,
  periodMs: number,
  now: number,
): GcraState | undefined {
  checkGcraArguments('amount', amount, limit, periodMs, now);
  if (state === undefined) return undefined;
  const { units, at } = settle(state, limit, periodMs, now);
  const next = { units: Math.max(0, units - amount), at };
  return gcraIsLive(next, limit, periodMs, now) ? next : undefined;
}

/** Whether a state still says anything at `now` (a bucket that has refilled is the same as no state). */
export function gcraIsLive(state: GcraState, limit: number, periodMs: number, now: number): boolean {
  return settle(state, limit, periodMs, now).units * (periodMs / limit) > SLACK_MS;
}

/** The units still owed at `now`. A clock behind the anchor (another process's) counts as the anchor's time. */
function settle(state: GcraState | undefined, limit: number, periodMs: number, now: number): GcraState {
  if (state === undefined) return { units: 0, at: now };
  if (now <= state.at) return state;
  return { units: Math.max(0, state.units - ((now - state.at) * limit) / periodMs), at: now };
}

function describe(allowed: boolean, owed: number, excessMs: number, interval: number, limit: number): RateDecision {
  const slackUnits = SLACK_MS / interval;
  return {
    allowed,
    remaining: Math.min(limit, Math.max(0, Math.floor(limit - owed + slackUnits))),
    resetMs: Math.max(0, Math.ceil(owed * interval - SLACK_MS)),
    retryAfterMs: allowed ? 0 : Math.max(0, Math.ceil(excessMs - SLACK_MS)),
  };
}

/** The RangeErrors every LimitStore gives for arguments that make no sense, before it touches any state. */
export function checkGcraArguments(name: string, units: number, limit: number, periodMs: number, now: number): void {
  if (!Number.isFinite(units) || units < 0) throw new RangeError(`rate limit ${name} must be ≥ 0, got ${units}`);
  if (!Number.isFinite(limit) || limit <= 0) throw new RangeError(`rate limit must be > 0, got ${limit}`);
  if (!Number.isFinite(periodMs) || periodMs <= 0) {
    throw new RangeError(`rate limit period must be > 0 ms, got ${periodMs}`);
  }
  if (!Number.isFinite(now)) throw new RangeError(`rate limit clock must be a finite time, got ${now}`);
}
