// Exponential backoff with jitter: reconnecting upstream servers, retrying LLM requests.

export interface BackoffOptions {
  initialDelay: number;
  maxDelay: number;
}

/** Delay before the given (0-based) attempt: a random point in [base/2, base], base doubling up to maxDelay. */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(options.maxDelay, options.initialDelay * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + (random() * base) / 2);
}
