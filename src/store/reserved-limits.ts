// Large limits counted ahead: a process takes a little more than a request needs from a bucket in the shared store
// (Redis) and admits its next requests from what it holds, so that a busy key costs a round trip now and then
// rather than one per request. Held units were taken from the shared bucket, so every process together never
// grants more than the limit; what one process holds and does not use is at most `maxShare` of the limit, given
// back after `idleMs` without use, so the error is only ever a refusal a little early elsewhere. Limits below
// `minLimit` (rpm 10, say) are never counted ahead: every take goes to the store, and stays exact.
import type { LimitBatch, LimitCorrection, LimitStore, LimitTake, RateDecision } from './store.js';
import { checkGcraBatch, limitStoreOf } from './gcra.js';

export interface ReservationOptions {
  /** The smallest limit counted ahead. Default 1000. */
  minLimit?: number;
  /** The largest share of a limit one process holds ahead. Default 0.01 (1 %). */
  maxShare?: number;
  /** How much of this process's own use one refill covers, in milliseconds of its recent rate. Default 250. */
  aheadMs?: number;
  /** Units held and not used for this long go back to the shared bucket. Default 1000. */
  idleMs?: number;
  now?: () => number;
}

export interface ReservedLimits {
  readonly limits: LimitStore;
  /** Gives back everything held. */
  close(): Promise<void>;
}

/** What this process holds of one bucket. */
interface Held {
  limit: number;
  periodMs: number;
  /** Units taken from the shared bucket and not used yet. */
  units: number;
  /** The shared bucket's remaining at its last decision (what this process holds not counted). */
  remaining: number;
  /** Units used here since the last refill, and when that was: this process's rate. */
  used: number;
  since: number;
  lastUse: number;
  /** A refill under way: others wait for it rather than each asking the store. */
  refilling?: Promise<unknown>;
}

export function reserveAhead(store: LimitStore, options: ReservationOptions = {}): ReservedLimits {
  const { minLimit = 1000, maxShare = 0.01, aheadMs = 250, idleMs = 1000, now = Date.now } = options;
  const held = new Map<string, Held>();
  let sweeper: NodeJS.Timeout | undefined;

  const countedAhead = (t: { limit: number }) => t.limit >= minLimit && Math.floor(t.limit * maxShare) >= 1;
  const fits = (h: Held | undefined, t: LimitTake) =>
    h !== undefined && h.limit === t.limit && h.periodMs === t.periodMs && h.units >= t.cost;

  /** The decision for a take answered from what is held: the shared bucket's last word plus what is left here. */
  function localDecision(h: Held): RateDecision {
    const remaining = Math.min(h.limit, Math.floor(h.remaining + h.units));
    return {
      allowed: true,
      remaining,
      resetMs: Math.ceil(((h.limit - remaining) * h.periodMs) / h.limit),
      retryAfterMs: 0,
    };
  }

  /** How much more than its cost to take for `t`: this process's use over `aheadMs`, within its share. */
  function extraFor(t: LimitTake, time: number): number {
    if (!countedAhead(t)) return 0;
    const h = held.get(t.key);
    if (h === undefined || h.limit !== t.limit || h.periodMs !== t.periodMs) return 0;
    const rate = h.used / Math.max(1, time - h.since);
    const cap = Math.floor(t.limit * maxShare) - h.units;
    return Math.max(0, Math.min(cap, Math.ceil(rate * aheadMs)));
  }

  function use(h: Held, units: number, time: number): void {
    h.units -= units;
    h.used += units;
    h.lastUse = time;
  }

  /** Gives back what has not been used for `idleMs` (everything with `all`), in one batch. */
  async function giveBack(all: boolean): Promise<void> {
    const time = now();
    const corrections: LimitCorrection[] = [];
    for (const [key, h] of held) {
      if (!all && (time - h.lastUse < idleMs || h.refilling)) continue;
      held.delete(key);
      if (h.units > 0) corrections.push({ key, units: -h.units, limit: h.limit, periodMs: h.periodMs });
    }
    if (held.size === 0 && sweeper !== undefined) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
    // Best effort: a store that is away keeps them until its buckets refill.
    if (corrections.length > 0) await store.takeAll({ takes: [], corrections, now: time }).catch(() => {});
  }

  async function takeAll(batch: LimitBatch): Promise<RateDecision[]> {
    checkGcraBatch(batch);
    const time = batch.now;
    // Corrections of a bucket held here are made here: units given back are held for the next requests, units
    // used beyond an estimate come out of what is held when it is enough.
    const corrections: LimitCorrection[] = [];
    for (const c of batch.corrections ?? []) {
      const h = held.get(c.key);
      if (h !== undefined && h.limit === c.limit && h.periodMs === c.periodMs && (c.units < 0 || h.units >= c.units)) {
        h.units -= c.units;
      } else corrections.push(c);
    }
    // A take that must go to the store waits first for a refill of its bucket that is already under way.
    const waiting = batch.takes.map((t) => (fits(held.get(t.key), t) ? undefined : held.get(t.key)?.refilling));
    const refills = waiting.filter((p) => p !== undefined);
    if (refills.length > 0) await Promise.allSettled(refills);
    // What is answered here (the same bucket twice in one batch is left to the store).
    const mine = batch.takes.map((t) =>
      fits(held.get(t.key), t) && batch.takes.filter((o) => o.key === t.key).length === 1 ? held.get(t.key) : undefined,
    );
    if (corrections.length === 0 && mine.every((h) => h !== undefined)) {
      return batch.takes.map((t, i) => {
        use(mine[i]!, t.cost, time);
        return localDecision(mine[i]!);
      });
    }
    // Those answered here are set aside while the store decides the rest (all or nothing, as one batch).
    batch.takes.forEach((t, i) => mine[i] && use(mine[i], t.cost, time));
    const putBack = () => batch.takes.forEach((t, i) => mine[i] && use(mine[i], -t.cost, time));
    const remote = batch.takes.map((t, i) => ({ t, i })).filter(({ i }) => mine[i] === undefined);
    const extras = remote.map(({ t }) => extraFor(t, time));
    const ask = (withExtras: boolean, withCorrections: boolean) =>
      store.takeAll({
        now: time,
        takes: remote.map(({ t }, j) => ({ ...t, cost: t.cost + (withExtras ? extras[j]! : 0) })),
        corrections: withCorrections ? corrections : [],
      });
    let extra = extras.some((x) => x > 0);
    const refill = ask(extra, true);
    const refilled = remote.map(({ t }) => held.get(t.key)).filter((h) => h !== undefined);
    for (const h of refilled) h.refilling = refill;
    let decisions: RateDecision[];
    try {
      decisions = await refill;
      // Refused with the extra: the store is asked again for the request alone (near the limit, nothing ahead).
      if (extra && !decisions.every((d) => d.allowed)) {
        extra = false;
        decisions = await ask(false, false);
      }
    } catch (error) {
      putBack();
      throw error;
    } finally {
      for (const h of refilled) if (h.refilling === refill) delete h.refilling;
    }
    const allowed = decisions.every((d) => d.allowed);
    if (!allowed) putBack();
    const out = batch.takes.map((_, i) => (mine[i] ? localDecision(mine[i]) : undefined));
    remote.forEach(({ t, i }, j) => {
      const decision = decisions[j]!;
      let h = held.get(t.key);
      if (h !== undefined && (h.limit !== t.limit || h.periodMs !== t.periodMs)) {
        // The key's limit changed: what was held under the old one goes back.
        if (allowed && h.units > 0) {
          const back = { key: t.key, units: -h.units, limit: h.limit, periodMs: h.periodMs };
          void store.takeAll({ takes: [], corrections: [back], now: time }).catch(() => {});
        }
        h = undefined;
      }
      if (!allowed || !countedAhead(t)) {
        // The store's remaining does not count what is held here.
        out[i] = h ? { ...decision, remaining: Math.min(t.limit, Math.floor(decision.remaining + h.units)) } : decision;
        return;
      }
      if (h === undefined) {
        h = { limit: t.limit, periodMs: t.periodMs, units: 0, remaining: 0, used: 0, since: time, lastUse: time };
        held.set(t.key, h);
        sweeper ??= setInterval(() => void giveBack(false), idleMs / 2).unref();
      }
      if (extra) {
        // The rate is measured from one refill to the next.
        h.units += extras[j]!;
        h.used = 0;
        h.since = time;
      }
      h.used += t.cost;
      h.lastUse = time;
      h.remaining = decision.remaining;
      out[i] = localDecision(h);
    });
    return out as RateDecision[];
  }

  return { limits: limitStoreOf(takeAll), close: () => giveBack(true) };
}
