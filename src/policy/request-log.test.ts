// The request log on the memory store: nothing is written until a flush, every entry carries the replica, the queue
// drops its oldest when full, a failed write is dropped and counted, and the timer writes on its own.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createMemoryStore } from '../store/memory/memory-store.js';
import type { RequestLogEntry, RequestLogStore, Store } from '../store/store.js';
import { createRequestLog, type RequestLog } from './request-log.js';

const T0 = 1_700_000_000_000;

function entry(target: string, overrides: Partial<Omit<RequestLogEntry, 'replica'>> = {}) {
  return {
    at: T0,
    route: 'chat',
    subject: 'k1',
    target,
    status: '200',
    latencyMs: 5,
    promptTokens: 1,
    completionTokens: 2,
    ...overrides,
  };
}

const targets = (page: { target: string }[]) => page.map((e) => e.target);

describe('request log', () => {
  let store: Store;
  let log: RequestLog | undefined;
  afterEach(async () => {
    vi.useRealTimers();
    await log?.close();
    await store?.close();
    log = undefined;
  });

  it('writes nothing until a flush, then every entry with the replica, newest first', async () => {
    store = createMemoryStore();
    log = createRequestLog(store.requests, { replica: 'r1', flushMs: 60_000 });
    log.add(entry('a'));
    log.add(entry('b', { subject: null, status: '502' }));
    expect(await store.requests.page({}, { limit: 10 })).toEqual([]);
    await log.flush();
    const page = await store.requests.page({}, { limit: 10 });
    expect(page.map(({ id: _id, ...rest }) => rest)).toEqual([
      { ...entry('b', { subject: null, status: '502' }), replica: 'r1' },
      { ...entry('a'), replica: 'r1' },
    ]);
    expect(log.dropped()).toBe(0);
  });

  it('page writes what is pending first, and passes the filter and page on', async () => {
    store = createMemoryStore();
    log = createRequestLog(store.requests, { replica: 'r1', flushMs: 60_000 });
    for (const t of ['a', 'b', 'c', 'd']) log.add(entry(t, { route: t === 'c' ? 'mcp' : 'chat' }));
    expect(targets(await log.page({ route: 'chat' }, { limit: 2 }))).toEqual(['d', 'b']);
    const [newest] = await log.page({}, { limit: 1 });
    expect(targets(await log.page({}, { limit: 10, before: newest!.id }))).toEqual(['c', 'b', 'a']);
  });

  it('keeps at most `keep` in the store', async () => {
    store = createMemoryStore();
    log = createRequestLog(store.requests, { replica: 'r1', keep: 3, flushMs: 60_000 });
    for (const t of ['a', 'b', 'c', 'd', 'e']) log.add(entry(t));
    await log.flush();
    log.add(entry('f'));
    expect(targets(await log.page({}, { limit: 10 }))).toEqual(['f', 'e', 'd']);
  });

  it('drops the oldest pending entries past maxPending, and counts them', async () => {
    store = createMemoryStore();
    log = createRequestLog(store.requests, { replica: 'r1', maxPending: 3, flushMs: 60_000 });
    for (const t of ['a', 'b', 'c', 'd', 'e']) log.add(entry(t));
    expect(log.dropped()).toBe(2);
    expect(targets(await log.page({}, { limit: 10 }))).toEqual(['e', 'd', 'c']);
  });

  it('drops a batch the store refuses, counts it, and goes on with the next', async () => {
    store = createMemoryStore();
    let failing = true;
    const flaky: RequestLogStore = {
      appendMany: (entries, keep) =>
        failing ? Promise.reject(new Error('store away')) : store.requests.appendMany(entries, keep),
      page: (filter, page) => store.requests.page(filter, page),
    };
    log = createRequestLog(flaky, { replica: 'r1', flushMs: 60_000 });
    log.add(entry('a'));
    log.add(entry('b'));
    await expect(log.flush()).rejects.toThrow('store away');
    expect(log.dropped()).toBe(2);
    log.add(entry('c'));
    // A page still answers with what the store holds when the write before it fails.
    expect(await log.page({}, { limit: 10 })).toEqual([]);
    expect(log.dropped()).toBe(3);
    failing = false;
    log.add(entry('d'));
    await log.flush();
    expect(targets(await log.page({}, { limit: 10 }))).toEqual(['d']);
  });

  it('writes on its timer, and a failing write there throws nowhere', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    store = createMemoryStore();
    let calls = 0;
    const counting: RequestLogStore = {
      appendMany: (entries, keep) => {
        calls += 1;
        return calls === 1 ? Promise.reject(new Error('store away')) : store.requests.appendMany(entries, keep);
      },
      page: (filter, page) => store.requests.page(filter, page),
    };
    log = createRequestLog(counting, { replica: 'r1', flushMs: 1000 });
    log.add(entry('lost'));
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(1);
    expect(log.dropped()).toBe(1);
    log.add(entry('kept'));
    await vi.advanceTimersByTimeAsync(999);
    expect(await store.requests.page({}, { limit: 10 })).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(targets(await store.requests.page({}, { limit: 10 }))).toEqual(['kept']);
    // Nothing pending: the timer writes nothing.
    await vi.advanceTimersByTimeAsync(5000);
    expect(calls).toBe(2);
  });

  it('keeps one write at a time: while the store hangs, ticks start no more writes and the queue stays bounded', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    store = createMemoryStore();
    let release: () => void = () => {};
    let calls = 0;
    const hanging: RequestLogStore = {
      appendMany: (entries, keep) => {
        calls += 1;
        if (calls > 1) return store.requests.appendMany(entries, keep);
        return new Promise<void>((resolve) => (release = resolve)).then(() => store.requests.appendMany(entries, keep));
      },
      page: (filter, page) => store.requests.page(filter, page),
    };
    log = createRequestLog(hanging, { replica: 'r1', flushMs: 1000, maxPending: 4 });
    log.add(entry('first'));
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls).toBe(1);
    for (let i = 0; i < 10; i += 1) {
      log.add(entry(`n${i}`));
      await vi.advanceTimersByTimeAsync(1000);
    }
    // Ten ticks while the first write hung: no second write, and at most maxPending entries waiting.
    expect(calls).toBe(1);
    expect(log.dropped()).toBeGreaterThanOrEqual(6);
    release();
    await log.flush();
    expect(calls).toBe(2);
    const kept = targets(await store.requests.page({}, { limit: 20 }));
    expect(kept[0]).toBe('n9');
    expect(kept.at(-1)).toBe('first');
    expect(kept.length).toBeLessThanOrEqual(5);
  });

  it('keeps no more than 256 characters of a client-given text', async () => {
    store = createMemoryStore();
    log = createRequestLog(store.requests, { replica: 'r1', flushMs: 60_000 });
    log.add(entry('m'.repeat(100_000), { subject: 's'.repeat(1000) }));
    const [logged] = await log.page({}, { limit: 1 });
    expect(logged!.target.length).toBe(256);
    expect(logged!.target.endsWith('…')).toBe(true);
    expect(logged!.subject!.length).toBe(256);
  });

  it('writes what is pending on close', async () => {
    store = createMemoryStore();
    const closing = createRequestLog(store.requests, { replica: 'r1', flushMs: 60_000 });
    closing.add(entry('a'));
    await closing.close();
    expect(targets(await store.requests.page({}, { limit: 10 }))).toEqual(['a']);
  });

  it('refuses options that make no sense (RangeError)', () => {
    store = createMemoryStore();
    for (const options of [{ keep: 0 }, { keep: 1.5 }, { flushMs: 0 }, { maxPending: 0 }, { maxPending: Number.NaN }]) {
      expect(() => createRequestLog(store.requests, { replica: 'r1', ...options }), JSON.stringify(options)).toThrow(
        RangeError,
      );
    }
  });
});
