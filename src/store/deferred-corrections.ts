// Corrections to rate-limit buckets that need not be made at once (a request's token estimate corrected once it
// has run): kept here, merged per bucket, and sent with the next batch that takes from the same bucket, or within
// `delayMs` when none comes. On a shared store that is one round trip per request instead of two; this process
// sees its own corrections before its next decision, other processes within `delayMs`.
import type { LimitCorrection, LimitStore } from './store.js';
import { limitStoreOf } from './gcra.js';

export interface DeferredCorrections {
  /** The store, with the pending corrections of a batch's buckets sent along with it. */
  readonly limits: LimitStore;
  /** Queues a correction (merged with any pending one of the same bucket). */
  later(correction: LimitCorrection): void;
  /** Sends every pending correction now. */
  flush(): Promise<void>;
}

export function deferCorrections(
  store: LimitStore,
  options: { delayMs?: number; now?: () => number } = {},
): DeferredCorrections {
  const { delayMs = 100, now = Date.now } = options;
  const pending = new Map<string, LimitCorrection>();
  let timer: NodeJS.Timeout | undefined;

  function drain(keys?: Iterable<string>): LimitCorrection[] {
    const out: LimitCorrection[] = [];
    for (const key of keys ?? [...pending.keys()]) {
      const correction = pending.get(key);
      if (correction === undefined) continue;
      pending.delete(key);
      out.push(correction);
    }
    return out;
  }

  async function flush(): Promise<void> {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const corrections = drain();
    // Best effort: a store that is away loses them (the bucket refills within its period anyway).
    if (corrections.length > 0) await store.takeAll({ takes: [], corrections, now: now() }).catch(() => {});
  }

  return {
    limits: limitStoreOf(async (batch) => {
      const carried = drain(batch.takes.map((t) => t.key));
      if (carried.length === 0) return store.takeAll(batch);
      return store.takeAll({ ...batch, corrections: [...carried, ...(batch.corrections ?? [])] });
    }),
    later(correction) {
      if (correction.units === 0 || !Number.isFinite(correction.units)) return;
      const queued = pending.get(correction.key);
      pending.set(correction.key, queued ? { ...correction, units: queued.units + correction.units } : correction);
      // One timer for everything pending; corrections carried by a batch before it fires leave it nothing to do.
      timer ??= setTimeout(() => void flush(), delayMs).unref();
    },
    flush,
  };
}
