// Shared fast state (Redis) that may go away: rate-limit counters and concurrency leases that fall back as the
// configuration says while it is unreachable (count in this process at a share of each limit, or refuse with 503),
// and its health as /readyz and /metrics show it. While it is away it is asked again at most once per probe
// interval, so requests do not each wait for a command timeout; the first call that succeeds restores it.
import { McplexError, errorMessage } from '../errors.js';
import type { Lease, Leases } from './coordination.js';
import { limitStoreOf } from './gcra.js';
import { StoreError, type LimitBatch, type LimitStore } from './store.js';

export interface SharedStateHealth {
  readonly state: 'ready' | 'unavailable';
  /** Why it is unavailable (no password in it). */
  readonly lastError?: string;
  /** Milliseconds since the epoch when the state last changed. */
  readonly since: number;
}

export interface FallbackOptions {
  /** `local`: count in `local` stores with each limit scaled by `localShare`; `refuse`: 503 SHARED_STATE_UNAVAILABLE. */
  mode: 'local' | 'refuse';
  localShare: number;
  /** Where limits are counted while the shared state is away. */
  localLimits: LimitStore;
  localLeases: Leases;
  /** How often the shared state is tried again while it is away. Default 1000 ms. */
  probeMs?: number;
  /** Why the shared state is unavailable from the start (it could not be reached then), if it is. */
  unavailableAtStart?: string;
  /** Told when the state changes. */
  onChange?: (health: SharedStateHealth) => void;
  now?: () => number;
}

export interface Fallbacks {
  /** `mode` overrides the configured one (a backend's budgets are counted here rather than refused). */
  limits(primary: LimitStore, mode?: 'local' | 'refuse'): LimitStore;
  /** `mode` overrides the configured one (a backend's slots are counted here rather than refused). */
  leases(primary: Leases, mode?: 'local' | 'refuse'): Leases;
  health(): SharedStateHealth;
}

const isUnavailable = (error: unknown) => error instanceof StoreError && error.code === 'UNAVAILABLE';

export function createFallbacks(options: FallbackOptions): Fallbacks {
  const now = options.now ?? Date.now;
  const probeMs = options.probeMs ?? 1000;
  let health: SharedStateHealth =
    options.unavailableAtStart === undefined
      ? { state: 'ready', since: now() }
      : { state: 'unavailable', lastError: options.unavailableAtStart, since: now() };
  let nextProbe = 0;

  function change(next: SharedStateHealth): void {
    health = next;
    options.onChange?.(next);
  }

  /** Runs `shared` unless it is away and not due for a probe; falls back (or refuses) when it is unavailable. */
  async function attempt<T>(
    shared: () => Promise<T>,
    local: () => Promise<T>,
    mode: 'local' | 'refuse' = options.mode,
  ): Promise<T> {
    if (health.state === 'unavailable' && now() < nextProbe) return fallback(local, mode);
    try {
      const result = await shared();
      if (health.state !== 'ready') change({ state: 'ready', since: now() });
      return result;
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      nextProbe = now() + probeMs;
      if (health.state !== 'unavailable')
        change({ state: 'unavailable', lastError: errorMessage(error), since: now() });
      return fallback(local, mode, error);
    }
  }

  function fallback<T>(local: () => Promise<T>, mode: 'local' | 'refuse', cause?: unknown): Promise<T> {
    if (mode === 'local') return local();
    throw new McplexError(
      'SHARED_STATE_UNAVAILABLE',
      `rate limits cannot be checked: the shared state is unavailable (${health.lastError ?? 'unreachable'})`,
      cause === undefined ? {} : { cause },
    );
  }

  const share = (limit: number) => Math.max(1, Math.floor(limit * options.localShare));

  return {
    limits(primary, mode) {
      const { localLimits } = options;
      // Counted here, each limit is this replica's share of it (and no take may cost more than the share).
      const local = (batch: LimitBatch): LimitBatch => ({
        now: batch.now,
        takes: batch.takes.map((t) => ({ ...t, cost: Math.min(t.cost, share(t.limit)), limit: share(t.limit) })),
        corrections: batch.corrections?.map((c) => ({ ...c, limit: share(c.limit) })),
      });
      return limitStoreOf((batch) =>
        attempt(
          () => primary.takeAll(batch),
          () => localLimits.takeAll(local(batch)),
          mode,
        ),
      );
    },
    leases(primary, mode) {
      const { localLeases } = options;
      return {
        acquire: (key, limit, ttlMs) =>
          attempt<Lease | undefined>(
            () => primary.acquire(key, limit, ttlMs),
            () => localLeases.acquire(key, share(limit), ttlMs),
            mode,
          ),
        count: (key) =>
          attempt(
            () => primary.count(key),
            () => localLeases.count(key),
            mode,
          ),
      };
    },
    health: () => health,
  };
}
