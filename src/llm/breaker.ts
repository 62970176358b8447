// A circuit breaker per deployment: closed until `failures` consecutive failures, then open for `cooldownMs`,
// then half-open, letting one probe through; the probe's success closes it, its failure opens it again.

export type BreakerState = 'closed' | 'open' | 'half-open';

export interface Breaker {
  /** Whether a request may go to this deployment now (a half-open breaker admits one probe at a time). */
  available(): boolean;
  /** Takes the right to send: in half-open state only the first caller gets it. */
  acquire(): boolean;
  success(): void;
  failure(): void;
  readonly state: BreakerState;
}

export function createBreaker(options: { failures: number; cooldownMs: number }, now = () => Date.now()): Breaker {
  let state: BreakerState = 'closed';
  let consecutive = 0;
  let openedAt = 0;
  let probing = false;

  const current = (): BreakerState => {
    if (state === 'open' && now() - openedAt >= options.cooldownMs) {
      state = 'half-open';
      probing = false;
    }
    return state;
  };
  const open = () => {
    state = 'open';
    openedAt = now();
    probing = false;
  };

  return {
    available() {
      const s = current();
      return s === 'closed' || (s === 'half-open' && !probing);
    },
    acquire() {
      const s = current();
      if (s === 'closed') return true;
      if (s === 'half-open' && !probing) {
        probing = true;
        return true;
      }
      return false;
    },
    success() {
      consecutive = 0;
      state = 'closed';
      probing = false;
    },
    failure() {
      consecutive++;
      if (current() === 'half-open' || consecutive >= options.failures) open();
    },
    get state() {
      return current();
    },
  };
}
