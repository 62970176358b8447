import { describe, expect, it } from 'vitest';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { createReplayBuffer } from './event-store.js';

const message = (text: string): JSONRPCMessage => ({ jsonrpc: '2.0', id: 1, result: { text } });
const size = (text: string) => JSON.stringify(message(text)).length;

async function replayed(store: ReturnType<ReturnType<typeof createReplayBuffer>['forSession']>, after: string) {
  const sent: string[] = [];
  await store.replayEventsAfter(after, {
    send: async (_id, m) => void sent.push((m as unknown as { result: { text: string } }).result.text),
  });
  return sent;
}

describe('the replay buffer', () => {
  it('replays the later events of the same stream, in order', async () => {
    const store = createReplayBuffer({ maxEvents: 10, maxBytes: 10_000, maxTotalBytes: 100_000 }).forSession();
    const first = await store.storeEvent('s1', message('a'));
    await store.storeEvent('s2', message('other stream'));
    await store.storeEvent('s1', message('b'));
    await store.storeEvent('s1', message('c'));
    expect(await replayed(store, first)).toEqual(['b', 'c']);
    expect(await store.getStreamIdForEventId!(first)).toBe('s1');
  });

  // The buffer once kept a session's newest event whatever its size: one 4 MB answer in each of about a hundred
  // sessions exhausted a 512 MB heap.
  it('regression: keeps no event bigger than the per-session bound, and forgets older ones past it', async () => {
    const buffer = createReplayBuffer({ maxEvents: 10, maxBytes: 1000, maxTotalBytes: 100_000 });
    const store = buffer.forSession();
    const small = await store.storeEvent('s', message('x'.repeat(400)));
    const z = await store.storeEvent('s', message('z'.repeat(400)));
    await store.storeEvent('s', message('w'.repeat(400)));
    expect(store.has(small)).toBe(false);
    expect(store.has(z)).toBe(true);
    expect(buffer.bytes()).toBeLessThanOrEqual(1000);
    await expect(replayed(store, small)).rejects.toThrow(/unknown or too old/);
    const huge = await store.storeEvent('s', message('y'.repeat(4000)));
    expect(store.has(huge)).toBe(false);
    expect(buffer.bytes()).toBe(0);
  });

  it('refuses a resume from before an event too big to keep, instead of skipping it', async () => {
    const buffer = createReplayBuffer({ maxEvents: 10, maxBytes: 1000, maxTotalBytes: 100_000 });
    const store = buffer.forSession();
    const priming = await store.storeEvent('call', message(''));
    const other = await store.storeEvent('other', message('kept'));
    await store.storeEvent('call', message('y'.repeat(4000)));
    const after = await store.storeEvent('call', message('after'));
    // The stream's events before the big one are gone: a resume from them gets "unknown" (a 400 on /mcp).
    expect(store.has(priming)).toBe(false);
    expect(store.has(other)).toBe(true);
    expect(await replayed(store, after)).toEqual([]);
    expect(buffer.bytes()).toBe(size('kept') + size('after'));
  });

  it('keeps nothing once the session ended', async () => {
    const buffer = createReplayBuffer({ maxEvents: 10, maxBytes: 1000, maxTotalBytes: 100_000 });
    const store = buffer.forSession();
    store.clear();
    const late = await store.storeEvent('s', message('late'));
    expect(store.has(late)).toBe(false);
    expect(buffer.bytes()).toBe(0);
  });

  it('keeps all sessions together under the total, dropping the oldest events of any session first', async () => {
    const buffer = createReplayBuffer({ maxEvents: 200, maxBytes: 10_000, maxTotalBytes: 50_000 });
    const text = 'p'.repeat(9000);
    const stores = Array.from({ length: 100 }, () => buffer.forSession());
    const ids: string[] = [];
    for (const store of stores) ids.push(await store.storeEvent('s', message(text)));
    expect(buffer.bytes()).toBeLessThanOrEqual(50_000);
    const kept = stores.map((store, i) => store.has(ids[i]!));
    // The newest sessions keep theirs; the oldest lost theirs.
    expect(kept.slice(-5)).toEqual([true, true, true, true, true]);
    expect(kept.slice(0, 90).some(Boolean)).toBe(false);
  });

  it('counts the events per session, and clear() gives back what a session held', async () => {
    const buffer = createReplayBuffer({ maxEvents: 3, maxBytes: 10_000, maxTotalBytes: 100_000 });
    const one = buffer.forSession();
    const two = buffer.forSession();
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await one.storeEvent('s', message(String(i))));
    const theirs = await two.storeEvent('s', message('two'));
    expect(ids.map((id) => one.has(id))).toEqual([false, false, true, true, true]);
    // Another session's event is unknown to this one.
    expect(one.has(theirs)).toBe(false);
    expect(await one.getStreamIdForEventId!(theirs)).toBeUndefined();
    one.clear();
    expect(buffer.bytes()).toBe(size('two'));
    two.clear();
    expect(buffer.bytes()).toBe(0);
  });
});
