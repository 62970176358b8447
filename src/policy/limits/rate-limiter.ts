// Rate limits per principal: requests per minute and tokens per minute (GCRA buckets in the store, so replicas
// can share them), and requests in progress (leases of the coordination port, which expire, so that a holder that
// dies or never releases frees its slot). Answers carry OpenAI's x-ratelimit-* headers; a refusal says when to
// come back (Retry-After).
import type { Lease, Leases } from '../../store/coordination.js';
import { createLeaseKeeper } from '../../store/lease-keeper.js';
import { deferCorrections } from '../../store/deferred-corrections.js';
import type { KeyLimits, LimitStore, LimitTake, RateDecision } from '../../store/store.js';
import type { Principal } from '../auth/keys.js';

const MINUTE = 60_000;
const DEFAULT_LEASE_TTL_MS = 30_000;

export type Admission =
  | { ok: true; headers: Record<string, string>; release(actualTokens?: number): void }
  | { ok: false; headers: Record<string, string>; message: string; limit: 'requests' | 'tokens' | 'concurrency' };

export interface RateLimiter {
  /** Admits one request that is estimated to use `tokens` tokens (0 when tokens are not counted). */
  admit(principal: Principal, tokens: number): Promise<Admission>;
  /** Sends the token corrections still pending. */
  close(): Promise<void>;
}

/** OpenAI's duration format for reset headers: `1s`, `6m0s`, `120ms`. */
export function formatReset(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const seconds = Math.ceil(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  return `${Math.floor(seconds / 60)}m${seconds % 60}s`;
}

function limitHeaders(kind: 'requests' | 'tokens', limit: number, decision: RateDecision): Record<string, string> {
  return {
    [`x-ratelimit-limit-${kind}`]: String(limit),
    [`x-ratelimit-remaining-${kind}`]: String(Math.max(0, decision.remaining)),
    [`x-ratelimit-reset-${kind}`]: formatReset(decision.resetMs),
  };
}

function retryAfter(ms: number): Record<string, string> {
  return { 'retry-after': String(Math.max(1, Math.ceil(ms / 1000))), 'retry-after-ms': String(Math.ceil(ms)) };
}

export interface RateLimiterOptions {
  /** Where requests in progress hold their slots (one lease each, on `<principal id>:concurrent`). */
  leases: Leases;
  /**
   * How long a slot outlives its holder's last renewal, in milliseconds (default 30 s): a running request renews
   * its lease every third of it, so this is how long a slot stays taken after its holder died.
   */
  leaseTtlMs?: number;
  /** The clock of the rpm/tpm buckets. */
  now?: () => number;
}

export function createRateLimiter(store: LimitStore, options: RateLimiterOptions): RateLimiter {
  const { leases, leaseTtlMs = DEFAULT_LEASE_TTL_MS, now = Date.now } = options;
  if (!(leaseTtlMs > 0)) throw new RangeError(`leaseTtlMs must be positive, not ${leaseTtlMs}`);

  // The slots of requests running here stay taken while they run, and only while they run.
  const { hold, letGo } = createLeaseKeeper(leaseTtlMs);
  const corrections = deferCorrections(store, { now });
  const { limits } = corrections;

  return {
    async admit(principal, tokens) {
      const { rpm, tpm, maxConcurrent }: KeyLimits = principal.limits;
      const headers: Record<string, string> = {};
      if (rpm === undefined && tpm === undefined && maxConcurrent === undefined) {
        return { ok: true, headers, release: () => {} };
      }
      // The slot first: a request refused for concurrency is not charged against the per-minute budgets. Taking
      // it is one atomic step, so requests arriving together cannot all pass a check made before any of them
      // counted.
      let lease: Lease | undefined;
      if (maxConcurrent !== undefined) {
        lease = await leases.acquire(`${principal.id}:concurrent`, maxConcurrent, leaseTtlMs);
        if (lease === undefined) {
          return {
            ok: false,
            headers: { ...retryAfter(1000) },
            limit: 'concurrency',
            message: `Too many requests in progress for ${principal.name}: the limit is ${maxConcurrent} at a time`,
          };
        }
      }
      // Refused by a budget below (or failed), the request gives its slot back at once.
      let admitted = false;
      try {
        const rpmKey = `${principal.id}:rpm`;
        const tpmKey = `${principal.id}:tpm`;
        const cost = tpm !== undefined && tokens > 0 ? Math.min(tokens, tpm) : 0;
        // Both budgets in one atomic step (one round trip to a shared store), all or nothing: a request that never
        // ran counts against neither.
        const takes: LimitTake[] = [];
        if (rpm !== undefined) takes.push({ key: rpmKey, cost: 1, limit: rpm, periodMs: MINUTE });
        if (tpm !== undefined && cost > 0) takes.push({ key: tpmKey, cost, limit: tpm, periodMs: MINUTE });
        const decisions = await limits.takeAll({ takes, now: now() });
        const requests = rpm === undefined ? undefined : decisions[0];
        const tokenDecision = cost > 0 ? decisions[takes.length - 1] : undefined;
        if (requests) Object.assign(headers, limitHeaders('requests', rpm!, requests));
        if (tokenDecision) Object.assign(headers, limitHeaders('tokens', tpm!, tokenDecision));
        if (requests?.allowed === false || tokenDecision?.allowed === false) {
          // Room again when every refused budget has it.
          const waitMs = Math.max(...decisions.filter((d) => !d.allowed).map((d) => d.retryAfterMs));
          const byRequests = requests?.allowed === false;
          return {
            ok: false,
            headers: { ...headers, ...retryAfter(waitMs) },
            limit: byRequests ? 'requests' : 'tokens',
            message: byRequests
              ? `Rate limit reached for ${principal.name}: ${rpm} requests per minute`
              : `Rate limit reached for ${principal.name}: ${tpm} tokens per minute (this request needs about ${tokens})`,
          };
        }
        admitted = true;
        return admission(headers, lease, cost, tpmKey, tpm);
      } finally {
        if (!admitted) void lease?.release().catch(() => {});
      }
    },
    close: () => corrections.flush(),
  };

  function admission(
    headers: Record<string, string>,
    lease: Lease | undefined,
    taken: number,
    tpmKey: string,
    tpm: number | undefined,
  ): Admission {
    if (lease !== undefined) hold(lease);
    let released = false;
    return {
      ok: true,
      headers,
      release(actualTokens) {
        if (released) return;
        released = true;
        if (lease !== undefined) letGo(lease);
        if (tpm === undefined || actualTokens === undefined) return;
        // Correct the estimate: give back what was not used, take what was used beyond it (never refused). It goes
        // with the key's next request, or on its own shortly after.
        corrections.later({ key: tpmKey, units: actualTokens - taken, limit: tpm, periodMs: MINUTE });
      },
    };
  }
}

/** A request's token estimate before it runs: about four characters per token, plus the tokens it may produce. */
export function estimateTokens(body: Record<string, unknown>): number {
  let chars = 0;
  const messages = Array.isArray(body.messages) ? body.messages : [];
  for (const message of messages as { content?: unknown }[]) {
    const content = message?.content;
    if (typeof content === 'string') chars += content.length;
    else if (Array.isArray(content)) {
      for (const part of content as { text?: unknown }[]) if (typeof part?.text === 'string') chars += part.text.length;
    }
  }
  const input = body.input;
  if (typeof input === 'string') chars += input.length;
  else if (Array.isArray(input)) for (const item of input) if (typeof item === 'string') chars += item.length;
  const max = Number(body.max_completion_tokens ?? body.max_tokens ?? 0);
  const n = Number(body.n ?? 1);
  return Math.ceil(chars / 4) + (Number.isFinite(max) && max > 0 ? max : 0) * (Number.isFinite(n) && n > 0 ? n : 1);
}
