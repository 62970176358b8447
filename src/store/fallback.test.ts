import { describe, expect, it } from 'vitest';
import { McplexError } from '../errors.js';
import { createFallbacks } from './fallback.js';
import { limitStoreOf } from './gcra.js';
import type { SharedStateHealth } from './fallback.js';
import { createLocalCoordination } from './memory/local-coordination.js';
import { createMemoryStore } from './memory/memory-store.js';
import { StoreError, type LimitStore } from './store.js';

const T0 = 1_700_000_000_000;
const MINUTE = 60_000;

/** A shared limit store that can be switched off, counting how often it is asked. */
function switchable(): LimitStore & { up: boolean; calls: number } {
  const real = createMemoryStore().limits;
  const state = {
    up: true,
    calls: 0,
    ...limitStoreOf(async (batch) => {
      state.calls++;
      if (!state.up) throw new StoreError('UNAVAILABLE', 'Redis at redis://127.0.0.1:1/0 is away');
      return real.takeAll(batch);
    }),
  };
  return state;
}

function setup(mode: 'local' | 'refuse', localShare = 1) {
  let time = T0;
  const changes: SharedStateHealth['state'][] = [];
  const shared = switchable();
  const fallbacks = createFallbacks({
    mode,
    localShare,
    localLimits: createMemoryStore().limits,
    localLeases: createLocalCoordination(),
    probeMs: 1000,
    now: () => time,
    onChange: (health) => changes.push(health.state),
  });
  return { shared, limits: fallbacks.limits(shared), fallbacks, changes, advance: (ms: number) => (time += ms) };
}

describe('shared-state fallbacks', () => {
  it('counts in this process at the configured share of each limit while the shared store is away', async () => {
    const { shared, limits, fallbacks, changes } = setup('local', 0.3);
    expect((await limits.take('k', 1, 10, MINUTE, T0)).allowed).toBe(true);
    shared.up = false;
    const decisions = [];
    for (let i = 0; i < 5; i++) decisions.push(await limits.take('k', 1, 10, MINUTE, T0));
    // A share of 0.3 of 10 is 3 per replica.
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, false, false]);
    expect(fallbacks.health().state).toBe('unavailable');
    expect(fallbacks.health().lastError).toContain('redis://127.0.0.1:1/0');
    expect(changes).toEqual(['unavailable']);
  });

  it('asks the shared store again only once per probe interval, and is back on it when it answers', async () => {
    const { shared, limits, fallbacks, changes, advance } = setup('local');
    shared.up = false;
    await limits.take('k', 1, 10, MINUTE, T0);
    const asked = shared.calls;
    for (let i = 0; i < 20; i++) await limits.take('k', 1, 10, MINUTE, T0);
    expect(shared.calls).toBe(asked);
    shared.up = true;
    advance(1000);
    expect((await limits.take('k', 1, 10, MINUTE, T0)).allowed).toBe(true);
    expect(shared.calls).toBe(asked + 1);
    expect(fallbacks.health().state).toBe('ready');
    expect(changes).toEqual(['unavailable', 'ready']);
  });

  it('refuses with a 503 SHARED_STATE_UNAVAILABLE when so configured', async () => {
    const { shared, limits } = setup('refuse');
    shared.up = false;
    const error = await limits.take('k', 1, 10, MINUTE, T0).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(McplexError);
    expect((error as McplexError).code).toBe('SHARED_STATE_UNAVAILABLE');
    expect((error as McplexError).status).toBe(503);
  });

  it('passes on failures that are not the shared store being away', async () => {
    const { limits } = setup('local');
    await expect(limits.take('k', 0.5, 0, MINUTE, T0)).rejects.toThrow(RangeError);
  });

  it('hands out local leases at the share of the limit while the shared leases are away', async () => {
    const local = createLocalCoordination();
    const fallbacks = createFallbacks({
      mode: 'local',
      localShare: 0.5,
      localLimits: createMemoryStore().limits,
      localLeases: local,
    });
    const away = {
      acquire: () => Promise.reject(new StoreError('UNAVAILABLE', 'away')),
      count: () => Promise.reject(new StoreError('UNAVAILABLE', 'away')),
    };
    const leases = fallbacks.leases(away);
    const got = await Promise.all([1, 2, 3].map(() => leases.acquire('k', 4, 10_000)));
    expect(got.filter(Boolean)).toHaveLength(2);
    expect(await leases.count('k')).toBe(2);
    await local.close();
  });
});
