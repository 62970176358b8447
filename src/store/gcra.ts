// The generic cell rate algorithm (GCRA) behind every LimitStore, as pure arithmetic on a small state, so that each
// store only has to read and write that state atomically.
//
// GCRA keeps one number per bucket, the theoretical arrival time (TAT): the bucket is full when TAT ≤ now, empty
// when TAT ≥ now + periodMs, and each unit taken moves TAT on by the emission interval periodMs / limit. A TAT held
// as one double in epoch milliseconds (≈1.7e12) loses ~1e-4 ms to rounding on every take, and the losses add up: at
// 17 per minute the 17th take of a burst is refused. So the state keeps TAT exactly, as an anchor time plus a count
// of units: TAT = at + units × periodMs / limit. Units are small numbers (whole ones for whole costs), so a burst
// adds without error, and time since the anchor is converted to units once per decision.

import type { LimitBatch, LimitStore, RateDecision } from './store.js';

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

/** A bucket after a batch: its state to keep (undefined: full again, nothing to keep) and whether it changed. */
export interface GcraWrite {
  key: string;
  state: GcraState | undefined;
  changed: boolean;
  /** The bucket's shape, as the batch gave it. */
  limit: number;
  periodMs: number;
}

export interface GcraBatchResult {
  /** One per take, in order. */
  decisions: RateDecision[];
  /** Every key of the batch once, in gcraBatchKeys' order. */
  writes: GcraWrite[];
}

/** The keys a batch touches, once each and sorted: the order stores lock them in, so batches cannot deadlock. */
export function gcraBatchKeys(batch: LimitBatch): string[] {
  const keys = new Set<string>();
  for (const correction of batch.corrections ?? []) keys.add(correction.key);
  for (const take of batch.takes) keys.add(take.key);
  return [...keys].sort();
}

/**
 * Decides a LimitStore.takeAll on the states of its keys as read (a key without state is a full bucket): the
 * corrections first, then the takes, all of them or none.
 */
export function gcraTakeAll(read: ReadonlyMap<string, GcraState | undefined>, batch: LimitBatch): GcraBatchResult {
  checkGcraBatch(batch);
  const { now } = batch;
  const states = new Map(read);
  const changed = new Set<string>();
  const shapes = new Map<string, { limit: number; periodMs: number }>();
  for (const { key, units, limit, periodMs } of batch.corrections ?? []) {
    const settled = settle(states.get(key), limit, periodMs, now);
    // Given back: never below nothing owed. Used beyond the estimate: never beyond an empty bucket.
    const owed = units < 0 ? Math.max(0, settled.units + units) : Math.min(settled.units + units, limit);
    states.set(key, { units: owed, at: settled.at });
    changed.add(key);
    shapes.set(key, { limit, periodMs });
  }
  const tentative = new Map(states);
  const decisions: RateDecision[] = [];
  let allowed = true;
  for (const { key, cost, limit, periodMs } of batch.takes) {
    const result = gcraTake(tentative.get(key), cost, limit, periodMs, now);
    decisions.push(result.decision);
    if (result.next === undefined) allowed = false;
    else tentative.set(key, result.next);
    shapes.set(key, { limit, periodMs });
  }
  if (allowed) {
    for (const { key } of batch.takes) {
      states.set(key, tentative.get(key));
      changed.add(key);
    }
  } else {
    // Nothing was taken: a bucket that had room says how it stands without the take.
    batch.takes.forEach(({ key, limit, periodMs }, i) => {
      if (decisions[i]!.allowed) decisions[i] = gcraTake(states.get(key), 0, limit, periodMs, now).decision;
    });
  }
  const writes = gcraBatchKeys(batch).map((key) => {
    const state = states.get(key);
    const { limit, periodMs } = shapes.get(key)!;
    const live = state !== undefined && gcraIsLive(state, limit, periodMs, now);
    return { key, state: live ? state : undefined, changed: changed.has(key), limit, periodMs };
  });
  return { decisions, writes };
}

/** A whole LimitStore from its one atomic step: a take or a refund on its own is a batch of one. */
export function limitStoreOf(takeAll: LimitStore['takeAll']): LimitStore {
  return {
    // An empty batch decides nothing: no need to ask the store.
    takeAll: (batch) => (batch.takes.length === 0 && !batch.corrections?.length ? Promise.resolve([]) : takeAll(batch)),
    async take(key, cost, limit, periodMs, now) {
      const [decision] = await takeAll({ takes: [{ key, cost, limit, periodMs }], now });
      return decision!;
    },
    async refund(key, amount, limit, periodMs, now) {
      checkGcraArguments('amount', amount, limit, periodMs, now);
      await takeAll({ takes: [], corrections: [{ key, units: -amount, limit, periodMs }], now });
    },
  };
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

/** checkGcraArguments for every part of a batch. */
export function checkGcraBatch(batch: LimitBatch): void {
  for (const { cost, limit, periodMs } of batch.takes) checkGcraArguments('cost', cost, limit, periodMs, batch.now);
  for (const { units, limit, periodMs } of batch.corrections ?? []) {
    checkGcraArguments('correction', Math.abs(units), limit, periodMs, batch.now);
  }
}
