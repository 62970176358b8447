// The one contract every SessionDirectory must meet, as vitest blocks: each implementation's test file calls
// describeSessionsContract with a function that opens a fresh, empty directory within the bounds it is given. Time
// is passed to every call, so expiry is tested without waiting.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SessionBounds, SessionDirectory } from './sessions.js';

const T0 = 1_700_000_000_000;

const BOUNDS: SessionBounds = {
  max: 4,
  maxPerPrincipal: 2,
  idleMs: 60_000,
  pressureIdleMs: 1000,
  replayEvents: 5,
  replayBytes: 100,
  replayTotalBytes: 150,
};

export function describeSessionsContract(
  name: string,
  open: (bounds: SessionBounds) => Promise<SessionDirectory>,
): void {
  describe(`SessionDirectory contract: ${name}`, () => {
    const opened: SessionDirectory[] = [];
    const fresh = async (bounds: Partial<SessionBounds> = {}) => {
      const directory = await open({ ...BOUNDS, ...bounds });
      opened.push(directory);
      return directory;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((d) => d.close()));
    });

    it('keeps what a session was opened with, merges updates, and forgets it once ended', async () => {
      const d = await fresh();
      expect(await d.open({ id: 's1', principal: 'p', state: { version: '2025-11-25', caps: { a: [1] } } }, T0)).toBe(
        'opened',
      );
      const record = await d.touch('s1', T0 + 10);
      expect(record).toMatchObject({ id: 's1', principal: 'p', createdAt: T0, lastSeen: T0 + 10 });
      expect(record?.state).toEqual({ version: '2025-11-25', caps: { a: [1] } });
      expect(await d.update('s1', { logLevel: 'debug' })).toBe(true);
      expect((await d.touch('s1', T0 + 20))?.state).toEqual({
        version: '2025-11-25',
        caps: { a: [1] },
        logLevel: 'debug',
      });
      expect(await d.count(T0 + 20)).toBe(1);
      expect(await d.end('s1')).toBe(true);
      expect(await d.end('s1')).toBe(false);
      expect(await d.touch('s1', T0 + 30)).toBeUndefined();
      expect(await d.update('s1', { logLevel: 'info' })).toBe(false);
      expect(await d.touch('s1', T0 + 30)).toBeUndefined();
      expect(await d.touch('never-opened', T0)).toBeUndefined();
    });

    it('expires a session idle for idleMs, and a touch keeps it alive', async () => {
      const d = await fresh();
      await d.open({ id: 'kept', principal: 'p', state: {} }, T0);
      await d.open({ id: 'left', principal: 'p', state: {} }, T0);
      await d.touchAll(['kept'], T0 + 50_000);
      expect(await d.touch('left', T0 + 60_000)).toBeUndefined();
      expect(await d.touch('kept', T0 + 100_000)).toBeDefined();
      expect(await d.count(T0 + 100_000)).toBe(1);
    });

    it("caps a principal's sessions and all of them, ending idle ones first at a cap", async () => {
      const d = await fresh();
      expect(await d.open({ id: 'a1', principal: 'a', state: {} }, T0)).toBe('opened');
      expect(await d.open({ id: 'a2', principal: 'a', state: {} }, T0 + 900)).toBe('opened');
      expect(await d.open({ id: 'a3', principal: 'a', state: {} }, T0 + 950)).toBe('principal-full');
      // a1 has been idle past pressureIdleMs: it makes room; a2 has not.
      expect(await d.open({ id: 'a3', principal: 'a', state: {} }, T0 + 1500)).toBe('opened');
      expect(await d.touch('a1', T0 + 1500)).toBeUndefined();
      expect(await d.touch('a2', T0 + 1500)).toBeDefined();
      // The uncapped principal counts towards the total only.
      for (const id of ['k1', 'k2']) {
        expect(await d.open({ id, principal: 'anyone', state: {}, capped: false }, T0 + 1500)).toBe('opened');
      }
      expect(await d.open({ id: 'b1', principal: 'b', state: {} }, T0 + 1600)).toBe('full');
      expect(await d.count(T0 + 1600)).toBe(4);
    });

    it('keeps subscriptions per session up to a maximum, and none of a session that ended', async () => {
      const d = await fresh();
      await d.open({ id: 's', principal: 'p', state: {} }, T0);
      expect(await d.subscribe('s', 'file:///a', 2)).toBe('added');
      expect(await d.subscribe('s', 'file:///a', 2)).toBe('held');
      expect(await d.subscribe('s', 'file:///b', 2)).toBe('added');
      expect(await d.subscribe('s', 'file:///c', 2)).toBe('full');
      expect((await d.subscriptions('s')).sort()).toEqual(['file:///a', 'file:///b']);
      expect(await d.unsubscribe('s', 'file:///a')).toBe(true);
      expect(await d.unsubscribe('s', 'file:///a')).toBe(false);
      await d.end('s');
      expect(await d.subscriptions('s')).toEqual([]);
      expect(await d.subscribe('s', 'file:///a', 2)).toBe('gone');
    });

    it('replays the later events of the stream an event belongs to, and tails a stream after an event', async () => {
      const d = await fresh({ replayEvents: 50, replayBytes: 10_000, replayTotalBytes: 10_000 });
      await d.open({ id: 's', principal: 'p', state: {} }, T0);
      const [a1, b1, a2] = await d.append('s', [
        { stream: 'a', message: '{"n":1}' },
        { stream: 'b', message: '{"n":2}', tag: 'open' },
        { stream: 'a', message: '{"n":3}' },
      ]);
      const [a3] = await d.append('s', [{ stream: 'a', message: '{"n":4}' }]);
      expect(await d.after('s', a1!)).toEqual({
        stream: 'a',
        events: [
          { id: a2, stream: 'a', message: '{"n":3}' },
          { id: a3, stream: 'a', message: '{"n":4}' },
        ],
      });
      expect(await d.after('s', b1!)).toEqual({ stream: 'b', events: [] });
      expect((await d.streamAfter('s', 'b', undefined))[0]).toEqual({
        id: b1,
        stream: 'b',
        message: '{"n":2}',
        tag: 'open',
      });
      expect((await d.streamAfter('s', 'a', a2)).map((e) => e.message)).toEqual(['{"n":4}']);
      expect(await d.after('s', 'not-an-event')).toBeUndefined();
      expect(await d.after('other', a1!)).toBeUndefined();
    });

    it('keeps a session within its event count and size, and all of them within the total', async () => {
      const d = await fresh();
      await d.open({ id: 's', principal: 'p', state: {} }, T0);
      await d.open({ id: 't', principal: 'q', state: {} }, T0);
      const ids = await d.append(
        's',
        Array.from({ length: 7 }, (_, i) => ({ stream: 'a', message: `"${i}"` })),
      );
      // The newest five are kept.
      expect(await d.after('s', ids[1]!)).toBeUndefined();
      expect((await d.after('s', ids[2]!))?.events).toHaveLength(4);
      // Past the session's 100 characters, its oldest go.
      await d.append('s', [{ stream: 'a', message: 'x'.repeat(90) }]);
      expect(await d.after('s', ids[3]!)).toBeUndefined();
      expect((await d.after('s', ids[4]!))?.events).toHaveLength(3);
      // Past the total of 150, the oldest of any session go.
      const [t1] = await d.append('t', [{ stream: 'a', message: 'y'.repeat(40) }]);
      await d.append('t', [{ stream: 'a', message: 'z'.repeat(40) }]);
      expect(await d.logBytes()).toBeLessThanOrEqual(150);
      expect(await d.after('t', t1!)).toBeDefined();
      expect(await d.streamAfter('s', 'a', undefined)).toEqual([]);
    });

    it('keeps no event bigger than a session may hold, and refuses a resume from before it', async () => {
      const d = await fresh();
      await d.open({ id: 's', principal: 'p', state: {} }, T0);
      const [first] = await d.append('s', [{ stream: 'a', message: '"small"' }]);
      const [big] = await d.append('s', [{ stream: 'a', message: 'x'.repeat(101) }]);
      expect(big).toBeDefined();
      expect(await d.after('s', first!)).toBeUndefined();
      expect(await d.logBytes()).toBe(0);
    });

    it('gives back what an ended session held, and wakes watchers on each append', async () => {
      const d = await fresh({ replayEvents: 50, replayBytes: 10_000, replayTotalBytes: 10_000 });
      await d.open({ id: 's', principal: 'p', state: {} }, T0);
      let woken = 0;
      const stop = await d.watch('s', () => woken++);
      await d.append('s', [{ stream: 'a', message: '"1"' }]);
      await vi.waitFor(() => expect(woken).toBe(1), { timeout: 5000, interval: 5 });
      await d.append('s', [{ stream: 'a', message: '"2"' }]);
      await vi.waitFor(() => expect(woken).toBe(2), { timeout: 5000, interval: 5 });
      await stop();
      expect(await d.logBytes()).toBe(6);
      await d.end('s');
      expect(await d.logBytes()).toBe(0);
      expect(await d.append('s', [{ stream: 'a', message: '"3"' }])).toEqual([]);
      expect(await d.logBytes()).toBe(0);
    });
  });
}
