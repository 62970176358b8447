// The one contract every Coordination implementation must meet, as vitest blocks: each implementation's test file
// calls describeCoordinationContract with a function that opens a fresh instance on the clock it is given (leases
// expire by that clock, so that expiry is tested without waiting). Delivery may lag `publish` over a network, so
// the checks wait for a message to arrive; a message published after another on the same topic set is a fence:
// once it arrived, anything published before it that was going to arrive has arrived too.

import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Coordination, Leases } from './coordination.js';

/** A realistic clock value, so that the arithmetic is what it will be in production. */
const T0 = 1_700_000_000_000;
const TTL = 30_000;

export function describeCoordinationContract(name: string, open: (now: () => number) => Promise<Coordination>): void {
  describe(`Coordination contract: ${name}`, () => {
    let coordination: Coordination;
    let time: number;
    beforeEach(async () => {
      time = T0;
      coordination = await open(() => time);
    });
    afterEach(async () => {
      await coordination.close();
    });

    /** A handler that writes down what it gets. */
    function inbox(): { got: string[]; handler: (message: string) => void } {
      const got: string[] = [];
      return { got, handler: (message) => got.push(message) };
    }

    const arrived = (box: { got: string[] }, message: string) =>
      vi.waitFor(() => expect(box.got).toContain(message), { timeout: 5000, interval: 5 });

    describe('publish/subscribe', () => {
      it('delivers each message to every subscriber of its topic, in order, and to no other topic', async () => {
        const a1 = inbox();
        const a2 = inbox();
        const b = inbox();
        await coordination.subscribe('topic-a', a1.handler);
        await coordination.subscribe('topic-a', a2.handler);
        await coordination.subscribe('topic-b', b.handler);
        await coordination.publish('topic-a', 'one');
        await coordination.publish('topic-a', 'two ü');
        await coordination.publish('topic-b', 'fence');
        await arrived(b, 'fence');
        await arrived(a1, 'two ü');
        await arrived(a2, 'two ü');
        expect(a1.got).toEqual(['one', 'two ü']);
        expect(a2.got).toEqual(['one', 'two ü']);
        expect(b.got).toEqual(['fence']);
      });

      it('stops delivering to a subscriber once it unsubscribed, and only to that one; unsubscribing twice is harmless', async () => {
        const gone = inbox();
        const stays = inbox();
        const unsubscribe = await coordination.subscribe('topic', gone.handler);
        await coordination.subscribe('topic', stays.handler);
        await coordination.publish('topic', 'before');
        await arrived(gone, 'before');
        await unsubscribe();
        await unsubscribe();
        await coordination.publish('topic', 'after');
        await arrived(stays, 'after');
        expect(gone.got).toEqual(['before']);
        expect(stays.got).toEqual(['before', 'after']);
      });

      it('gives the same handler subscribed twice each message twice, until each subscription ends', async () => {
        const box = inbox();
        const first = await coordination.subscribe('topic', box.handler);
        await coordination.subscribe('topic', box.handler);
        await coordination.publish('topic', 'm');
        await vi.waitFor(() => expect(box.got).toEqual(['m', 'm']), { timeout: 5000, interval: 5 });
        await first();
        await coordination.publish('topic', 'n');
        await arrived(box, 'n');
        expect(box.got).toEqual(['m', 'm', 'n']);
      });

      it('does not deliver what was published before the subscription', async () => {
        await coordination.publish('topic', 'early');
        const box = inbox();
        await coordination.subscribe('topic', box.handler);
        await coordination.publish('topic', 'fence');
        await arrived(box, 'fence');
        expect(box.got).toEqual(['fence']);
      });

      it('goes on delivering to the others when a handler throws', async () => {
        const box = inbox();
        await coordination.subscribe('topic', () => {
          throw new Error('bad subscriber');
        });
        await coordination.subscribe('topic', box.handler);
        await coordination.publish('topic', 'one');
        await coordination.publish('topic', 'two');
        await arrived(box, 'two');
        expect(box.got).toEqual(['one', 'two']);
      });

      it('publishes to a topic nobody listens to without complaint', async () => {
        await expect(coordination.publish('nobody', 'x')).resolves.toBeUndefined();
      });
    });

    describe('leases', () =>
      leaseTests(
        () => coordination,
        (ms) => (time += ms),
      ));
  });
}

/**
 * The lease part of the contract alone, for a Leases that is not a whole Coordination (a store's): `open` makes a
 * fresh one on the clock it is given, and `close` ends it.
 */
export function describeLeaseContract(
  name: string,
  open: (now: () => number) => Promise<{ leases: Leases; close(): Promise<void> }>,
): void {
  describe(`Lease contract: ${name}`, () => {
    let opened: { leases: Leases; close(): Promise<void> };
    let time: number;
    beforeEach(async () => {
      time = T0;
      opened = await open(() => time);
    });
    afterEach(async () => {
      await opened.close();
    });
    leaseTests(
      () => opened.leases,
      (ms) => (time += ms),
    );
  });
}

/** Every check of leases, on `subject()`, whose clock `tick` moves on. */
function leaseTests(subject: () => Leases, tick: (ms: number) => void): void {
  it('grants up to the limit and refuses past it', async () => {
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await subject().acquire('k', 3, TTL));
    expect(held.every((lease) => lease !== undefined)).toBe(true);
    expect(new Set(held.map((lease) => lease?.id)).size).toBe(3);
    expect(held[0]?.key).toBe('k');
    expect(await subject().acquire('k', 3, TTL)).toBeUndefined();
    expect(await subject().count('k')).toBe(3);
  });

  it('admits nothing at a limit of 0 and refuses a ttl that is not positive', async () => {
    expect(await subject().acquire('k', 0, TTL)).toBeUndefined();
    expect(await subject().count('k')).toBe(0);
    await expect(subject().acquire('k', 1, 0)).rejects.toThrow(RangeError);
  });

  it('frees a slot on release', async () => {
    const first = await subject().acquire('k', 1, TTL);
    expect(await subject().acquire('k', 1, TTL)).toBeUndefined();
    await first!.release();
    expect(await subject().count('k')).toBe(0);
    expect(await subject().acquire('k', 1, TTL)).toBeDefined();
  });

  it('frees only one slot when a lease is released twice', async () => {
    const a = await subject().acquire('k', 2, TTL);
    await subject().acquire('k', 2, TTL);
    await a!.release();
    await a!.release();
    expect(await subject().count('k')).toBe(1);
    expect(await subject().acquire('k', 2, TTL)).toBeDefined();
    expect(await subject().acquire('k', 2, TTL)).toBeUndefined();
  });

  it('frees the slot of a lease never released once its ttl has passed', async () => {
    await subject().acquire('k', 1, TTL);
    tick(TTL - 1);
    expect(await subject().acquire('k', 1, TTL)).toBeUndefined();
    expect(await subject().count('k')).toBe(1);
    tick(1);
    expect(await subject().count('k')).toBe(0);
    expect(await subject().acquire('k', 1, TTL)).toBeDefined();
  });

  it('keeps a lease that is renewed alive past its original ttl', async () => {
    const lease = await subject().acquire('k', 1, TTL);
    for (let i = 0; i < 5; i++) {
      tick(TTL / 2);
      expect(await lease!.renew()).toBe(true);
    }
    // Two and a half ttls after it was taken, it still holds the slot...
    expect(await subject().acquire('k', 1, TTL)).toBeUndefined();
    // ...until a full ttl passes without a renewal.
    tick(TTL);
    expect(await subject().acquire('k', 1, TTL)).toBeDefined();
  });

  it('does not bring back a lease that expired or was released: renew says false and takes no slot', async () => {
    const expired = await subject().acquire('k', 1, TTL);
    tick(TTL);
    const next = await subject().acquire('k', 1, TTL);
    expect(next).toBeDefined();
    expect(await expired!.renew()).toBe(false);
    expect(await subject().count('k')).toBe(1);
    // Releasing the expired lease does not free the slot its successor holds.
    await expired!.release();
    expect(await subject().count('k')).toBe(1);
    await next!.release();
    expect(await next!.renew()).toBe(false);
    expect(await subject().count('k')).toBe(0);
  });

  it('keeps keys independent', async () => {
    const a = await subject().acquire('a', 1, TTL);
    expect(await subject().acquire('a', 1, TTL)).toBeUndefined();
    expect(await subject().acquire('b', 1, TTL)).toBeDefined();
    expect(await subject().count('b')).toBe(1);
    await a!.release();
    expect(await subject().count('a')).toBe(0);
    expect(await subject().count('b')).toBe(1);
  });

  it('counts leases with different ttls on one key, each expiring by its own', async () => {
    await subject().acquire('k', 2, TTL);
    await subject().acquire('k', 2, TTL * 2);
    tick(TTL);
    expect(await subject().count('k')).toBe(1);
    tick(TTL);
    expect(await subject().count('k')).toBe(0);
  });
}
