// The limiter's requests in progress, held as expiring leases of the coordination port, and how they combine with
// the per-minute budgets. The leases expire by an injected clock; the renewal timer runs on fake timers, so that a
// holder whose timers stop firing stands for a process that died.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Principal } from '../auth/keys.js';
import type { KeyLimits, LimitBatch, LimitStore } from '../../store/store.js';
import { limitStoreOf } from '../../store/gcra.js';
import { createMemoryStore } from '../../store/memory/memory-store.js';
import { createLocalCoordination } from '../../store/memory/local-coordination.js';
import type { Coordination } from '../../store/coordination.js';
import { createRateLimiter } from './rate-limiter.js';
import type { Admission, RateLimiter } from './rate-limiter.js';

const T0 = 1_700_000_000_000;
const TTL = 30_000;

function principal(limits: KeyLimits): Principal {
  return { kind: 'key', id: 'k1', name: 'alpha', scopes: {}, limits };
}

function admitted(admission: Admission): Extract<Admission, { ok: true }> {
  if (!admission.ok) throw new Error(`refused (${admission.limit}): ${admission.message}`);
  return admission;
}

describe('rate limiter: requests in progress', () => {
  let time: number;
  let coordination: Coordination;
  let counters: LimitStore;
  let limiter: RateLimiter;
  const replica = () => createRateLimiter(counters, { leases: coordination, leaseTtlMs: TTL, now: () => time });

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    time = T0;
    coordination = createLocalCoordination({ now: () => time });
    counters = createMemoryStore().limits;
    limiter = replica();
  });
  afterEach(async () => {
    vi.useRealTimers();
    await coordination.close();
  });

  /** Time passing in a live process: the clock moves and due timers (the renewals) fire. */
  async function pass(ms: number): Promise<void> {
    for (let left = ms; left > 0; left -= 1000) {
      time += Math.min(1000, left);
      await vi.advanceTimersByTimeAsync(Math.min(1000, left));
    }
  }

  it('refuses past the limit with the concurrency message and Retry-After, and a release frees one slot', async () => {
    const p = principal({ maxConcurrent: 2 });
    const first = admitted(await limiter.admit(p, 0));
    admitted(await limiter.admit(p, 0));
    const refused = await limiter.admit(p, 0);
    expect(refused).toEqual({
      ok: false,
      headers: { 'retry-after': '1', 'retry-after-ms': '1000' },
      limit: 'concurrency',
      message: 'Too many requests in progress for alpha: the limit is 2 at a time',
    });
    first.release();
    first.release();
    admitted(await limiter.admit(p, 0));
    // Releasing twice freed one slot, not two.
    expect((await limiter.admit(p, 0)).ok).toBe(false);
    expect(await coordination.count('k1:concurrent')).toBe(2);
  });

  it('admits one of two requests arriving together at a limit of one (regression: both passed the check while the first awaited its rpm take)', async () => {
    const p = principal({ maxConcurrent: 1, rpm: 100 });
    const results = await Promise.all([limiter.admit(p, 0), limiter.admit(p, 0), limiter.admit(p, 0)]);
    expect(results.map((r) => (r.ok ? 'ok' : r.limit)).sort()).toEqual(['concurrency', 'concurrency', 'ok']);
  });

  it('frees the slot of a holder that never releases (a process that died) once the ttl has passed', async () => {
    const p = principal({ maxConcurrent: 1 });
    const other = replica();
    admitted(await limiter.admit(p, 0));
    // The holder's process is gone: its renewal timer never fires again, only the clock moves.
    time += TTL - 1;
    expect((await other.admit(p, 0)).ok).toBe(false);
    time += 1;
    admitted(await other.admit(p, 0));
  });

  it('keeps the slot of a long request that is still running, renewing it, until it is released', async () => {
    const p = principal({ maxConcurrent: 1 });
    const other = replica();
    const running = admitted(await limiter.admit(p, 0));
    await pass(TTL * 3);
    expect((await other.admit(p, 0)).ok).toBe(false);
    running.release();
    admitted(await other.admit(p, 0));
  });

  it('stops renewing once released, so a slot taken after it is not held by the released request', async () => {
    const p = principal({ maxConcurrent: 1 });
    const done = admitted(await limiter.admit(p, 0));
    done.release();
    expect(vi.getTimerCount()).toBe(0);
    const next = admitted(await limiter.admit(p, 0));
    await pass(TTL * 2);
    next.release();
    expect(await coordination.count('k1:concurrent')).toBe(0);
  });

  it('renews every running request on one timer, which stops once none is left', async () => {
    const p = principal({ maxConcurrent: 3 });
    const running = [await limiter.admit(p, 0), await limiter.admit(p, 0), await limiter.admit(p, 0)].map(admitted);
    expect(vi.getTimerCount()).toBe(1);
    await pass(TTL * 2);
    expect(await coordination.count('k1:concurrent')).toBe(3);
    running[0]!.release();
    running[1]!.release();
    expect(vi.getTimerCount()).toBe(1);
    running[2]!.release();
    expect(vi.getTimerCount()).toBe(0);
    expect(await coordination.count('k1:concurrent')).toBe(0);
  });

  it('shares the limit between replicas on one coordination', async () => {
    const p = principal({ maxConcurrent: 2 });
    const other = replica();
    admitted(await limiter.admit(p, 0));
    admitted(await other.admit(p, 0));
    expect((await limiter.admit(p, 0)).ok).toBe(false);
    expect((await other.admit(p, 0)).ok).toBe(false);
  });

  it('does not charge requests refused for concurrency against the requests per minute', async () => {
    const p = principal({ maxConcurrent: 1, rpm: 3 });
    const first = admitted(await limiter.admit(p, 0));
    expect(first.headers['x-ratelimit-remaining-requests']).toBe('2');
    for (let i = 0; i < 5; i++) expect(await limiter.admit(p, 0)).toMatchObject({ ok: false, limit: 'concurrency' });
    first.release();
    const second = admitted(await limiter.admit(p, 0));
    expect(second.headers['x-ratelimit-remaining-requests']).toBe('1');
    second.release();
    admitted(await limiter.admit(p, 0)).release();
    expect(await limiter.admit(p, 0)).toMatchObject({ ok: false, limit: 'requests' });
  });

  it('gives the slot back when the request is refused by a per-minute budget', async () => {
    const p = principal({ maxConcurrent: 2, rpm: 2, tpm: 10 });
    const holder = admitted(await limiter.admit(p, 10));
    expect(await limiter.admit(p, 5)).toMatchObject({ ok: false, limit: 'tokens' });
    expect(await coordination.count('k1:concurrent')).toBe(1);
    holder.release();
    // The refused request was not charged a request either: this one is the second of two per minute.
    admitted(await limiter.admit(p, 0)).release();
    for (let i = 0; i < 3; i++) expect(await limiter.admit(p, 0)).toMatchObject({ ok: false, limit: 'requests' });
    expect(await coordination.count('k1:concurrent')).toBe(0);
  });

  it('gives the slot back when the counters fail', async () => {
    const failing: LimitStore = limitStoreOf(() => Promise.reject(new Error('store is away')));
    const broken = createRateLimiter(failing, { leases: coordination, leaseTtlMs: TTL, now: () => time });
    await expect(broken.admit(principal({ maxConcurrent: 1, rpm: 5 }), 0)).rejects.toThrow('store is away');
    expect(await coordination.count('k1:concurrent')).toBe(0);
  });

  it('asks the store once per request: both budgets in one batch, the token correction with the next one', async () => {
    const batches: LimitBatch[] = [];
    const counting = limitStoreOf((batch) => {
      batches.push(batch);
      return counters.takeAll(batch);
    });
    const counted = createRateLimiter(counting, { leases: coordination, leaseTtlMs: TTL, now: () => time });
    const p = principal({ rpm: 10, tpm: 1000 });
    const first = admitted(await counted.admit(p, 300));
    expect(first.headers).toMatchObject({
      'x-ratelimit-remaining-requests': '9',
      'x-ratelimit-remaining-tokens': '700',
    });
    first.release(100);
    expect(batches).toHaveLength(1);
    const second = admitted(await counted.admit(p, 300));
    expect(batches).toHaveLength(2);
    expect(batches[1]!.corrections).toEqual([{ key: 'k1:tpm', units: -200, limit: 1000, periodMs: 60_000 }]);
    // 100 used by the first, 300 estimated for the second.
    expect(second.headers).toMatchObject({
      'x-ratelimit-remaining-requests': '8',
      'x-ratelimit-remaining-tokens': '600',
    });
    second.release(900);
    await counted.close();
    expect(batches).toHaveLength(3);
    expect((await counters.take('k1:tpm', 0, 1000, 60_000, time)).remaining).toBe(0);
  });

  it('refuses by whichever budget is short, charging neither', async () => {
    const p = principal({ rpm: 10, tpm: 1000 });
    admitted(await limiter.admit(p, 800));
    const refused = await limiter.admit(p, 300);
    expect(refused).toMatchObject({ ok: false, limit: 'tokens' });
    expect(refused.headers).toMatchObject({
      'x-ratelimit-remaining-requests': '9',
      'x-ratelimit-remaining-tokens': '200',
    });
    for (let i = 0; i < 9; i++) admitted(await limiter.admit(p, 10));
    const byRequests = await limiter.admit(p, 10);
    expect(byRequests).toMatchObject({ ok: false, limit: 'requests' });
    expect(byRequests.headers['retry-after']).toBe('6');
  });

  it('takes no lease when the key has no concurrency limit', async () => {
    admitted(await limiter.admit(principal({ rpm: 5 }), 0));
    expect(await coordination.count('k1:concurrent')).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses a lease ttl that is not positive', () => {
    expect(() => createRateLimiter(counters, { leases: coordination, leaseTtlMs: 0 })).toThrow(RangeError);
  });
});
