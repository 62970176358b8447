// Picks the deployment for the next attempt: weighted random, least in flight, or latency-aware (peak-EWMA cost
// with the power of two random choices). Only deployments whose breaker admits a request and that are below
// their concurrency limit are candidates.
import type { Breaker } from './breaker.js';

export type Strategy = 'weighted' | 'least-in-flight' | 'latency';

export interface Candidate {
  readonly weight: number;
  readonly maxConcurrent: number;
  readonly inFlight: number;
  readonly breaker: Breaker;
  /** Peak-EWMA latency estimate in ms (0 before the first response). */
  cost(now: number): number;
}

export function pickDeployment<T extends Candidate>(
  deployments: readonly T[],
  strategy: Strategy,
  exclude: ReadonlySet<T>,
  random: () => number = Math.random,
): T | undefined {
  const eligible: T[] = [];
  for (const d of deployments) {
    if (!exclude.has(d) && d.inFlight < d.maxConcurrent && d.breaker.available()) eligible.push(d);
  }
  if (eligible.length <= 1) return eligible[0];
  switch (strategy) {
    case 'weighted': {
      let total = 0;
      for (const d of eligible) total += d.weight;
      let point = random() * total;
      for (const d of eligible) {
        point -= d.weight;
        if (point < 0) return d;
      }
      return eligible[eligible.length - 1];
    }
    case 'least-in-flight': {
      let best: T[] = [];
      let bestLoad = Infinity;
      for (const d of eligible) {
        const load = d.inFlight / d.weight;
        if (load < bestLoad) {
          bestLoad = load;
          best = [d];
        } else if (load === bestLoad) best.push(d);
      }
      return best[Math.floor(random() * best.length)];
    }
    case 'latency': {
      // Two distinct random candidates; the cheaper one wins (ties go to the first).
      const i = Math.floor(random() * eligible.length);
      let j = Math.floor(random() * (eligible.length - 1));
      if (j >= i) j++;
      const a = eligible[i]!;
      const b = eligible[j]!;
      const now = performance.now();
      return b.cost(now) < a.cost(now) ? b : a;
    }
  }
}

/**
 * Peak-EWMA: the estimate jumps up to any slower observation at once and decays towards faster ones with time
 * constant `tauMs`; the cost multiplies it by the requests already waiting, so a busy backend looks slower.
 */
export class PeakEwma {
  private value = 0;
  private stamp = 0;

  constructor(private readonly tauMs = 10_000) {}

  observe(rttMs: number, now: number): void {
    if (rttMs > this.value) {
      this.value = rttMs;
    } else {
      const weight = Math.exp(-(now - this.stamp) / this.tauMs);
      this.value = this.value * weight + rttMs * (1 - weight);
    }
    this.stamp = now;
  }

  estimate(): number {
    return this.value;
  }
}
