// The one contract every Store implementation must meet, as vitest blocks: each implementation's test file calls
// describeStoreContract with a function that opens a fresh, empty store. An implementation of only some parts (a
// Redis cache and limits) runs those parts alone: describeCacheContract, describeLimitContract.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  StoreError,
  type ApiKeyRecord,
  type CacheEntry,
  type ConversationItem,
  type LoggedRequest,
  type RequestLogEntry,
  type RequestLogFilter,
  type Store,
} from './store.js';

/** A realistic clock value, so that floating-point error is what it will be in production. */
const T0 = 1_700_000_000_000;
const MINUTE = 60_000;

export function describeStoreContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    describe('keys', () => {
      it('returns a created key as it was given, and undefined for an unknown id', async () => {
        const record = key('k1', 'alpha', { expiresAt: T0 + MINUTE });
        await store.keys.create(record);
        expect(await store.keys.get('k1')).toEqual(record);
        expect(await store.keys.get('nope')).toBeUndefined();
      });

      it('round-trips scopes and limits exactly', async () => {
        const full = key('full', 'full', {
          scopes: {
            models: ['gpt-4o', 'claude-sonnet', 'alias/ü'],
            servers: ['files', 'memory'],
            tools: ['files__*', 'memory__read_?'],
            admin: true,
          },
          limits: { rpm: 60, tpm: 100_000, maxConcurrent: 4 },
        });
        const empty = key('empty', 'empty', { scopes: {}, limits: {} });
        const partial = key('partial', 'partial', { scopes: { models: [], admin: false }, limits: { tpm: 5 } });
        for (const record of [full, empty, partial]) await store.keys.create(record);
        expect(await store.keys.get('full')).toEqual(full);
        expect(await store.keys.get('empty')).toEqual(empty);
        expect(await store.keys.get('partial')).toEqual(partial);
        expect((await store.keys.get('partial'))?.scopes.models).toEqual([]);
      });

      it('keeps its own copy: changing a record given or returned changes nothing stored', async () => {
        const record = key('k1', 'alpha', { scopes: { models: ['a'] } });
        await store.keys.create(record);
        record.scopes.models?.push('b');
        record.name = 'changed';
        const got = await store.keys.get('k1');
        got?.scopes.models?.push('c');
        expect(await store.keys.get('k1')).toEqual(key('k1', 'alpha', { scopes: { models: ['a'] } }));
      });

      it('refuses a second key with the same id or the same name (DUPLICATE) and changes nothing', async () => {
        await store.keys.create(key('k1', 'alpha'));
        await expectStoreError(store.keys.create(key('k1', 'beta')), 'DUPLICATE');
        await expectStoreError(store.keys.create(key('k2', 'alpha')), 'DUPLICATE');
        expect(await store.keys.list()).toEqual([key('k1', 'alpha')]);
        expect(await store.keys.get('k2')).toBeUndefined();
        await store.keys.create(key('k2', 'beta'));
        expect((await store.keys.list()).map((k) => k.id)).toEqual(['k1', 'k2']);
      });

      it('lists every key oldest first, revoked ones included, creation order breaking ties', async () => {
        await store.keys.create(key('c', 'c', { createdAt: T0 + 2 }));
        await store.keys.create(key('a', 'a', { createdAt: T0 }));
        await store.keys.create(key('b2', 'b2', { createdAt: T0 + 1 }));
        await store.keys.create(key('b1', 'b1', { createdAt: T0 + 1 }));
        await store.keys.revoke('a', T0 + 10);
        const listed = await store.keys.list();
        expect(listed.map((k) => k.id)).toEqual(['a', 'b2', 'b1', 'c']);
        expect(listed[0]?.revokedAt).toBe(T0 + 10);
      });

      it('lists nothing when there are no keys', async () => {
        expect(await store.keys.list()).toEqual([]);
      });

      it('revokes once: true and the time recorded, then false with the first time kept', async () => {
        await store.keys.create(key('k1', 'alpha'));
        expect(await store.keys.revoke('k1', T0 + 5)).toBe(true);
        expect((await store.keys.get('k1'))?.revokedAt).toBe(T0 + 5);
        expect(await store.keys.revoke('k1', T0 + 9)).toBe(false);
        expect((await store.keys.get('k1'))?.revokedAt).toBe(T0 + 5);
      });

      it('revoking an unknown key returns false', async () => {
        expect(await store.keys.revoke('ghost', T0)).toBe(false);
      });

      it('stores a key created already revoked as revoked', async () => {
        await store.keys.create(key('old', 'old', { revokedAt: T0 - 1 }));
        expect(await store.keys.revoke('old', T0)).toBe(false);
        expect((await store.keys.get('old'))?.revokedAt).toBe(T0 - 1);
      });
    });

    describe('usage', () => {
      async function seed(): Promise<void> {
        await store.usage.record(use('k2', 'gpt', T0, 1, 10, 5));
        await store.usage.record(use('k1', 'gpt', T0 + 1, 1, 100, 50));
        await store.usage.record(use('k1', 'claude', T0 + 2, 1, 7, 3));
        await store.usage.record(use('k1', 'gpt', T0 + 3, 2, 1000, 500));
        await store.usage.record(use('server:files', 'gpt', T0 + 4, 1, 1, 1));
      }

      it('totals every entry per subject and model, sorted by subject then model', async () => {
        await seed();
        expect(await store.usage.totals()).toEqual([
          total('k1', 'claude', 1, 7, 3),
          total('k1', 'gpt', 3, 1100, 550),
          total('k2', 'gpt', 1, 10, 5),
          total('server:files', 'gpt', 1, 1, 1),
        ]);
        expect(await store.usage.totals({})).toEqual(await store.usage.totals());
      });

      it('returns no totals when nothing matches', async () => {
        expect(await store.usage.totals()).toEqual([]);
        await seed();
        expect(await store.usage.totals({ subject: 'nobody' })).toEqual([]);
      });

      it('filters by subject and by model', async () => {
        await seed();
        expect(await store.usage.totals({ subject: 'k1' })).toEqual([
          total('k1', 'claude', 1, 7, 3),
          total('k1', 'gpt', 3, 1100, 550),
        ]);
        expect(await store.usage.totals({ model: 'gpt' })).toEqual([
          total('k1', 'gpt', 3, 1100, 550),
          total('k2', 'gpt', 1, 10, 5),
          total('server:files', 'gpt', 1, 1, 1),
        ]);
        expect(await store.usage.totals({ subject: 'k1', model: 'gpt' })).toEqual([total('k1', 'gpt', 3, 1100, 550)]);
      });

      it('filters by time: since inclusive, until exclusive', async () => {
        await seed();
        expect(await store.usage.totals({ since: T0 + 1, until: T0 + 3 })).toEqual([
          total('k1', 'claude', 1, 7, 3),
          total('k1', 'gpt', 1, 100, 50),
        ]);
        expect(await store.usage.totals({ since: T0 + 3 })).toEqual([
          total('k1', 'gpt', 2, 1000, 500),
          total('server:files', 'gpt', 1, 1, 1),
        ]);
        expect(await store.usage.totals({ until: T0 + 1 })).toEqual([total('k2', 'gpt', 1, 10, 5)]);
        expect(await store.usage.totals({ since: T0 + 2, until: T0 + 2 })).toEqual([]);
        expect(await store.usage.totals({ subject: 'k1', model: 'gpt', since: T0 + 2, until: T0 + 4 })).toEqual([
          total('k1', 'gpt', 2, 1000, 500),
        ]);
      });

      it('sums exactly over many entries and large numbers', async () => {
        for (let i = 0; i < 500; i += 1) await store.usage.record(use('k', 'm', T0 + i, 1, 1_234_567, 7_654_321));
        await store.usage.record(use('k', 'm', T0, 0, 2 ** 40, 2 ** 41));
        expect(await store.usage.totals()).toEqual([
          total('k', 'm', 500, 500 * 1_234_567 + 2 ** 40, 500 * 7_654_321 + 2 ** 41),
        ]);
      });

      it('stays exact to the millisecond for ranges that start, end or lie inside any hour', async () => {
        const HOUR = 3_600_000;
        const base = Math.floor(T0 / HOUR) * HOUR;
        // One entry every 20 minutes over five hours, each worth its index in prompt tokens, in two batches.
        const all = Array.from({ length: 15 }, (_, i) => use('k', 'm', base + i * 20 * MINUTE + 7, 1, i, 0));
        await store.usage.recordMany(all.slice(0, 8));
        for (const entry of all.slice(8)) await store.usage.record(entry);
        const expected = (since?: number, until?: number) => {
          const picked = all.filter(
            (e) => (since === undefined || e.at >= since) && (until === undefined || e.at < until),
          );
          return picked.length === 0
            ? []
            : [
                total(
                  'k',
                  'm',
                  picked.length,
                  picked.reduce((n, e) => n + e.promptTokens, 0),
                  0,
                ),
              ];
        };
        const bounds = [undefined, base, base + 7, base + 8, base + HOUR, base + HOUR + 7, base + 90 * MINUTE];
        const ends = [
          undefined,
          base + 2 * HOUR,
          base + 2 * HOUR + 7,
          base + 2 * HOUR + 8,
          base + 4 * HOUR + 1,
          base + 10,
        ];
        for (const since of bounds) {
          for (const until of ends) {
            const filter = { ...(since === undefined ? {} : { since }), ...(until === undefined ? {} : { until }) };
            expect(await store.usage.totals(filter), JSON.stringify(filter)).toEqual(expected(since, until));
          }
        }
      });

      it('records a batch in one call as if each entry were recorded on its own', async () => {
        await store.usage.recordMany([]);
        expect(await store.usage.totals()).toEqual([]);
        const batch = Array.from({ length: 12_001 }, (_, i) => use(i % 2 ? 'k1' : 'k2', 'gpt', T0 + i, 1, 3, 2));
        await store.usage.recordMany(batch);
        expect(await store.usage.totals()).toEqual([
          total('k1', 'gpt', 6000, 18_000, 12_000),
          total('k2', 'gpt', 6001, 18_003, 12_002),
        ]);
        expect(await store.usage.totals({ since: T0 + 12_000 })).toEqual([total('k2', 'gpt', 1, 3, 2)]);
        // The store kept its own copies.
        batch[0]!.requests = 1000;
        expect((await store.usage.totals({ subject: 'k2', until: T0 + 1 }))[0]?.requests).toBe(1);
      });

      it('orders names by UTF-16 code units in every implementation', async () => {
        // UTF-8 byte order would put the emoji after U+FFFD; code-unit order puts it before.
        for (const subject of ['b', 'a\uFFFD', 'a\u{1F600}', 'B', 'a']) await store.usage.record(use(subject, 'm', T0));
        await store.usage.record(use('a', 'z', T0));
        await store.usage.record(use('a', 'Z', T0));
        const order = (await store.usage.totals()).map((t) => `${t.subject}|${t.model}`);
        expect(order).toEqual(['B|m', 'a|Z', 'a|m', 'a|z', 'a\u{1F600}|m', 'a\uFFFD|m', 'b|m']);
      });
    });

    describe('usage series', () => {
      const HOUR = 3_600_000;
      const DAY = 24 * HOUR;
      /** A whole hour (and, at T0, a whole two hours) just before T0. */
      const base = Math.floor(T0 / HOUR) * HOUR;

      it('sums per bucket, subject and model, only buckets with entries, sorted by start, subject, model', async () => {
        await store.usage.record(use('k1', 'gpt', base + 3 * MINUTE + 5, 1, 7, 1));
        await store.usage.record(use('k2', 'gpt', base + 10, 1, 10, 5));
        await store.usage.recordMany([
          use('k1', 'gpt', base + MINUTE - 1, 2, 100, 50),
          use('k1', 'gpt', base + 20, 1, 1, 1),
          use('k1', 'claude', base + MINUTE, 1, 3, 3),
          use('a\uFFFD', 'm', base + MINUTE + 1),
          use('a\u{1F600}', 'm', base + MINUTE + 2),
        ]);
        expect(await store.usage.series({ since: base, until: base + 10 * MINUTE, bucketMs: MINUTE })).toEqual([
          bucket(base, 'k1', 'gpt', 3, 101, 51),
          bucket(base, 'k2', 'gpt', 1, 10, 5),
          bucket(base + MINUTE, 'a\u{1F600}', 'm', 1, 0, 0),
          bucket(base + MINUTE, 'a\uFFFD', 'm', 1, 0, 0),
          bucket(base + MINUTE, 'k1', 'claude', 1, 3, 3),
          bucket(base + 3 * MINUTE, 'k1', 'gpt', 1, 7, 1),
        ]);
      });

      it('since is inclusive and until exclusive; a bucket cut by since still starts at its whole multiple', async () => {
        for (const at of [base + 29_999, base + 30_000, base + 2 * MINUTE - 1, base + 2 * MINUTE]) {
          await store.usage.record(use('k', 'm', at, 1, at - base, 0));
        }
        expect(await store.usage.series({ since: base + 30_000, until: base + 2 * MINUTE, bucketMs: MINUTE })).toEqual([
          bucket(base, 'k', 'm', 1, 30_000, 0),
          bucket(base + MINUTE, 'k', 'm', 1, 2 * MINUTE - 1, 0),
        ]);
        expect(await store.usage.series({ since: base, until: base + 30_000, bucketMs: MINUTE })).toEqual([
          bucket(base, 'k', 'm', 1, 29_999, 0),
        ]);
      });

      it('filters by subject and by model', async () => {
        await store.usage.recordMany([
          use('k1', 'gpt', base + 1, 1, 1, 0),
          use('k1', 'claude', base + 2, 1, 2, 0),
          use('k2', 'gpt', base + 3, 1, 4, 0),
          use('k2', 'gpt', base + HOUR + 3, 1, 8, 0),
        ]);
        const range = { since: base, until: base + 2 * HOUR, bucketMs: HOUR };
        expect(await store.usage.series({ ...range, subject: 'k1' })).toEqual([
          bucket(base, 'k1', 'claude', 1, 2, 0),
          bucket(base, 'k1', 'gpt', 1, 1, 0),
        ]);
        expect(await store.usage.series({ ...range, model: 'gpt' })).toEqual([
          bucket(base, 'k1', 'gpt', 1, 1, 0),
          bucket(base, 'k2', 'gpt', 1, 4, 0),
          bucket(base + HOUR, 'k2', 'gpt', 1, 8, 0),
        ]);
        expect(await store.usage.series({ ...range, subject: 'k2', model: 'gpt' })).toEqual([
          bucket(base, 'k2', 'gpt', 1, 4, 0),
          bucket(base + HOUR, 'k2', 'gpt', 1, 8, 0),
        ]);
      });

      it('stays exact for any bucket size and any range, whole hours or partial ones at either end', async () => {
        // One entry every 20 minutes over five hours (a day boundary falls two hours after base), in two batches.
        const all = Array.from({ length: 15 }, (_, i) =>
          use(i % 2 ? 'k1' : 'k2', i % 3 ? 'gpt' : 'claude', base + i * 20 * MINUTE + 7, 1, i + 1, 2 * i),
        );
        await store.usage.recordMany(all.slice(0, 8));
        for (const entry of all.slice(8)) await store.usage.record(entry);
        const expected = (since: number, until: number, bucketMs: number) => {
          const sums = new Map<string, ReturnType<typeof bucket>>();
          for (const e of all) {
            if (e.at < since || e.at >= until) continue;
            const at = Math.floor(e.at / bucketMs) * bucketMs;
            const group = `${at}|${e.subject}|${e.model}`;
            const sum = sums.get(group) ?? bucket(at, e.subject, e.model, 0, 0, 0);
            sum.requests += e.requests;
            sum.promptTokens += e.promptTokens;
            sum.completionTokens += e.completionTokens;
            sums.set(group, sum);
          }
          return [...sums.values()].sort(
            (a, b) =>
              a.at - b.at ||
              (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0) ||
              (a.model < b.model ? -1 : 1),
          );
        };
        const starts = [base, base + 7, base + 8, base + HOUR, base + HOUR + 7, base + 90 * MINUTE, base + 10];
        const ends = [base + 2 * HOUR, base + 2 * HOUR + 7, base + 2 * HOUR + 8, base + 4 * HOUR + 1, base + 5 * HOUR];
        for (const bucketMs of [15 * MINUTE, HOUR, 90 * MINUTE, 2 * HOUR, DAY]) {
          for (const since of starts) {
            for (const until of ends) {
              const filter = { since, until, bucketMs };
              const label = JSON.stringify({ since: since - base, until: until - base, bucketMs });
              expect(await store.usage.series(filter), label).toEqual(expected(since, until, bucketMs));
            }
          }
        }
        // The check above must not pass for want of data: the whole range in day buckets holds every entry.
        const days = await store.usage.series({ since: base, until: base + 5 * HOUR, bucketMs: DAY });
        expect(days.reduce((n, b) => n + b.requests, 0)).toBe(15);
        expect(new Set(days.map((b) => b.at)).size).toBe(2);
      });

      it('returns nothing when nothing matches', async () => {
        const range = { since: base, until: base + HOUR, bucketMs: MINUTE };
        expect(await store.usage.series(range)).toEqual([]);
        await store.usage.record(use('k', 'm', base + 5));
        expect(await store.usage.series({ ...range, subject: 'nobody' })).toEqual([]);
        expect(await store.usage.series({ ...range, model: 'nothing' })).toEqual([]);
        expect(await store.usage.series({ ...range, since: base + 6 })).toEqual([]);
        expect(await store.usage.series({ ...range, until: base + 5 })).toEqual([]);
        expect(await store.usage.series({ ...range, since: base + 5, until: base + 5 })).toEqual([]);
        expect(await store.usage.series(range)).toEqual([bucket(base, 'k', 'm', 1, 0, 0)]);
      });

      it('refuses a bucket below a second or not whole, and a range of more than 2,000 buckets (RangeError)', async () => {
        await store.usage.record(use('k', 'm', T0));
        const ok = { since: T0, until: T0 + 1000, bucketMs: 1000 };
        for (const bucketMs of [999, 0, -1000, 1000.5, Number.NaN, Number.POSITIVE_INFINITY]) {
          await expect(store.usage.series({ ...ok, bucketMs }), String(bucketMs)).rejects.toThrow(RangeError);
        }
        await expect(store.usage.series({ ...ok, until: T0 + 2001 * 1000 })).rejects.toThrow(RangeError);
        await expect(store.usage.series({ ...ok, until: T0 + 2000 * HOUR + 1, bucketMs: HOUR })).rejects.toThrow(
          RangeError,
        );
        await expect(store.usage.series({ ...ok, since: Number.NaN })).rejects.toThrow(RangeError);
        expect(await store.usage.series({ ...ok, until: T0 + 2000 * 1000 })).toEqual([bucket(T0, 'k', 'm', 1, 0, 0)]);
        expect(await store.usage.series(ok)).toEqual([bucket(T0, 'k', 'm', 1, 0, 0)]);
      });
    });

    cacheTests(() => store);
    limitTests(() => store);

    describe('conversations', () => {
      const user = (text: string) => ({ role: 'user', content: text });
      const texts = (items: ConversationItem[]) => items.map((item) => item.message.content);

      it('creates an empty conversation at version 0 and returns it as created; undefined for an unknown id', async () => {
        const before = Date.now();
        const created = await store.conversations.create('owner-a', { topic: 'tests', ü: 'ß' });
        const after = Date.now();
        expect(created.id).toMatch(/^conv_[0-9a-f]{32}$/);
        expect(created).toMatchObject({ owner: 'owner-a', metadata: { topic: 'tests', ü: 'ß' }, version: 0 });
        expect(created.createdAt).toBeGreaterThanOrEqual(before);
        expect(created.createdAt).toBeLessThanOrEqual(after);
        expect(await store.conversations.get(created.id)).toEqual(created);
        expect(await store.conversations.get('conv_nope')).toBeUndefined();
        expect(await store.conversations.items(created.id, { limit: 10, order: 'asc' })).toEqual([]);
        const other = await store.conversations.create('owner-a', {});
        expect(other.id).not.toBe(created.id);
      });

      it('keeps its own copies of metadata and messages', async () => {
        const metadata = { a: '1' };
        const { id } = await store.conversations.create('o', metadata);
        metadata.a = 'changed';
        (await store.conversations.get(id))!.metadata.a = 'changed too';
        const message = { role: 'user', content: [{ type: 'text', text: 'hi' }] };
        const { items } = await store.conversations.append(id, [message]);
        message.content[0]!.text = 'changed';
        (items[0]!.message.content as { text: string }[])[0]!.text = 'changed too';
        expect((await store.conversations.get(id))?.metadata).toEqual({ a: '1' });
        const [stored] = await store.conversations.items(id, { limit: 1, order: 'asc' });
        expect(stored?.message).toEqual({ role: 'user', content: [{ type: 'text', text: 'hi' }] });
      });

      it('appends messages in order with consecutive seqs, one version per append, round-tripping each', async () => {
        const { id } = await store.conversations.create('o', {});
        const assistant = {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }],
        };
        const tool = { role: 'tool', tool_call_id: 'call_1', content: 'résultat 👋' };
        const first = await store.conversations.append(id, [{ role: 'system', content: 'be brief' }, user('hi')]);
        expect(first.version).toBe(1);
        expect(first.items.map((i) => [i.seq, i.role, i.conversationId])).toEqual([
          [1, 'system', id],
          [2, 'user', id],
        ]);
        const second = await store.conversations.append(id, [assistant, tool, { role: 'developer', content: 'd' }]);
        expect(second.version).toBe(2);
        expect(second.items.map((i) => i.seq)).toEqual([3, 4, 5]);
        expect(second.items[0]?.message).toEqual(assistant);
        expect(second.items[1]?.message).toEqual(tool);
        const all = await store.conversations.items(id, { limit: 100, order: 'asc' });
        expect(all).toEqual([...first.items, ...second.items]);
        expect(new Set(all.map((i) => i.id)).size).toBe(5);
        for (const item of all) expect(item.id).toMatch(/^item_[0-9a-f]{32}$/);
        expect((await store.conversations.get(id))?.version).toBe(2);
        expect(await store.conversations.item(id, all[3]!.id)).toEqual(all[3]);
      });

      it('pages items by seq in either order', async () => {
        const { id } = await store.conversations.create('o', {});
        for (let i = 1; i <= 7; i += 1) await store.conversations.append(id, [user(`m${i}`)]);
        const page = (after: number | undefined, order: 'asc' | 'desc') =>
          store.conversations
            .items(id, { limit: 3, order, ...(after === undefined ? {} : { after }) })
            .then((items) => items.map((item) => item.seq));
        expect(await page(undefined, 'asc')).toEqual([1, 2, 3]);
        expect(await page(3, 'asc')).toEqual([4, 5, 6]);
        expect(await page(6, 'asc')).toEqual([7]);
        expect(await page(7, 'asc')).toEqual([]);
        expect(await page(100, 'asc')).toEqual([]);
        expect(await page(undefined, 'desc')).toEqual([7, 6, 5]);
        expect(await page(5, 'desc')).toEqual([4, 3, 2]);
        expect(await page(2, 'desc')).toEqual([1]);
        expect(await page(1, 'desc')).toEqual([]);
        expect(await page(100, 'desc')).toEqual([7, 6, 5]);
        expect(texts(await store.conversations.items(id, { limit: 100, order: 'desc' }))).toEqual([
          'm7',
          'm6',
          'm5',
          'm4',
          'm3',
          'm2',
          'm1',
        ]);
        expect(await store.conversations.items('conv_unknown', { limit: 3, order: 'asc' })).toEqual([]);
      });

      it('finds an item only in its own conversation', async () => {
        const a = await store.conversations.create('o', {});
        const b = await store.conversations.create('o', {});
        const { items } = await store.conversations.append(a.id, [user('x')]);
        expect((await store.conversations.item(a.id, items[0]!.id))?.seq).toBe(1);
        expect(await store.conversations.item(b.id, items[0]!.id)).toBeUndefined();
        expect(await store.conversations.item(a.id, 'item_nope')).toBeUndefined();
      });

      it("lists only the owner's conversations, newest first, creation order breaking ties, in pages", async () => {
        const ids: string[] = [];
        for (let i = 0; i < 5; i += 1) {
          ids.push((await store.conversations.create('alice', { i: String(i) })).id);
          await store.conversations.create('bob', {});
        }
        const newest = [...ids].reverse();
        const all = await store.conversations.list('alice', { limit: 100 });
        expect(all.map((c) => c.id)).toEqual(newest);
        expect(all.every((c) => c.owner === 'alice')).toBe(true);
        const first = await store.conversations.list('alice', { limit: 2 });
        expect(first.map((c) => c.id)).toEqual(newest.slice(0, 2));
        const second = await store.conversations.list('alice', { limit: 2, after: first[1]!.id });
        expect(second.map((c) => c.id)).toEqual(newest.slice(2, 4));
        const third = await store.conversations.list('alice', { limit: 2, after: second[1]!.id });
        expect(third.map((c) => c.id)).toEqual(newest.slice(4));
        expect(await store.conversations.list('alice', { limit: 2, after: third[0]!.id })).toEqual([]);
        // A cursor that is not one of the owner's conversations gives nothing, rather than someone else's order.
        const bobs = await store.conversations.list('bob', { limit: 1 });
        expect(await store.conversations.list('alice', { limit: 2, after: bobs[0]!.id })).toEqual([]);
        expect(await store.conversations.list('alice', { limit: 2, after: 'conv_unknown' })).toEqual([]);
        expect(await store.conversations.list('carol', { limit: 10 })).toEqual([]);
      });

      it('deletes a conversation with its items, once, leaving the others alone', async () => {
        const gone = await store.conversations.create('o', {});
        const kept = await store.conversations.create('o', {});
        const { items } = await store.conversations.append(gone.id, [user('a'), user('b')]);
        await store.conversations.append(kept.id, [user('c')]);
        expect(await store.conversations.delete(gone.id)).toBe(true);
        expect(await store.conversations.delete(gone.id)).toBe(false);
        expect(await store.conversations.get(gone.id)).toBeUndefined();
        expect(await store.conversations.items(gone.id, { limit: 10, order: 'asc' })).toEqual([]);
        expect(await store.conversations.item(gone.id, items[0]!.id)).toBeUndefined();
        await expectStoreError(store.conversations.append(gone.id, [user('late')]), 'NOT_FOUND');
        expect((await store.conversations.list('o', { limit: 10 })).map((c) => c.id)).toEqual([kept.id]);
        expect(texts(await store.conversations.items(kept.id, { limit: 10, order: 'asc' }))).toEqual(['c']);
        expect(await store.conversations.delete('conv_unknown')).toBe(false);
      });

      it('appending to an unknown conversation is NOT_FOUND', async () => {
        await expectStoreError(store.conversations.append('conv_unknown', [user('x')]), 'NOT_FOUND');
        await expectStoreError(store.conversations.append('conv_unknown', [user('x')], 0), 'NOT_FOUND');
      });

      it('a stale expectedVersion is CONFLICT and writes nothing; the current one appends', async () => {
        const { id } = await store.conversations.create('o', {});
        expect((await store.conversations.append(id, [user('one')], 0)).version).toBe(1);
        await expectStoreError(store.conversations.append(id, [user('stale'), user('stale too')], 0), 'CONFLICT');
        await expectStoreError(store.conversations.append(id, [user('ahead')], 2), 'CONFLICT');
        expect((await store.conversations.get(id))?.version).toBe(1);
        expect(texts(await store.conversations.items(id, { limit: 10, order: 'asc' }))).toEqual(['one']);
        const next = await store.conversations.append(id, [user('two')], 1);
        expect(next.version).toBe(2);
        expect(next.items.map((i) => i.seq)).toEqual([2]);
      });

      it('refuses bad arguments before writing anything', async () => {
        const { id } = await store.conversations.create('o', {});
        await expect(store.conversations.append(id, [])).rejects.toThrow(TypeError);
        await expect(store.conversations.append(id, [user('ok'), { role: 'wizard', content: 'x' }])).rejects.toThrow(
          TypeError,
        );
        await expect(store.conversations.append(id, [user('ok'), { content: 'no role' }])).rejects.toThrow(TypeError);
        await expect(
          store.conversations.append(id, [user('ok'), null as unknown as Record<string, unknown>]),
        ).rejects.toThrow(TypeError);
        await expect(store.conversations.append(id, [user('ok')], -1)).rejects.toThrow(RangeError);
        await expect(store.conversations.append(id, [user('ok')], 0.5)).rejects.toThrow(RangeError);
        await expect(store.conversations.items(id, { limit: 0, order: 'asc' })).rejects.toThrow(RangeError);
        await expect(store.conversations.items(id, { limit: 1, after: -1, order: 'asc' })).rejects.toThrow(RangeError);
        await expect(store.conversations.list('o', { limit: 1.5 })).rejects.toThrow(RangeError);
        expect(await store.conversations.get(id)).toMatchObject({ version: 0 });
        expect(await store.conversations.items(id, { limit: 10, order: 'asc' })).toEqual([]);
      });

      it('50 concurrent appends: 50 items, seq 1..50 with no gap or duplicate, version 50', async () => {
        const { id } = await store.conversations.create('o', {});
        const results = await Promise.all(
          Array.from({ length: 50 }, (_, i) => store.conversations.append(id, [user(`m${i}`)])),
        );
        expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual(range(1, 50));
        const items = await store.conversations.items(id, { limit: 100, order: 'asc' });
        expect(items.map((i) => i.seq)).toEqual(range(1, 50));
        expect(new Set(texts(items))).toEqual(new Set(range(0, 49).map((i) => `m${i}`)));
        // Each caller was told the seq its message really got.
        for (const result of results) {
          expect(items[result.items[0]!.seq - 1]?.id).toBe(result.items[0]?.id);
        }
        expect((await store.conversations.get(id))?.version).toBe(50);
      });

      it('20 concurrent appends expecting version 0: exactly one succeeds, 19 are CONFLICT', async () => {
        const { id } = await store.conversations.create('o', {});
        const settled = await Promise.allSettled(
          Array.from({ length: 20 }, (_, i) => store.conversations.append(id, [user(`m${i}`), user(`r${i}`)], 0)),
        );
        const won = settled.filter((s) => s.status === 'fulfilled');
        const lost = settled.filter((s) => s.status === 'rejected');
        expect(won).toHaveLength(1);
        expect(lost).toHaveLength(19);
        for (const s of lost) expect((s.reason as StoreError).code).toBe('CONFLICT');
        const items = await store.conversations.items(id, { limit: 100, order: 'asc' });
        expect(items.map((i) => i.seq)).toEqual([1, 2]);
        expect(items).toEqual(won[0]?.value.items);
        expect((await store.conversations.get(id))?.version).toBe(1);
      });
    });

    describe('request log', () => {
      const all = { limit: 500 };
      /** The entries of a page without their ids, to compare with what was appended. */
      const bare = (page: LoggedRequest[]) => page.map(({ id: _id, ...entry }) => entry);
      const targets = (page: LoggedRequest[]) => page.map((entry) => entry.target);

      it('pages an empty log as empty', async () => {
        expect(await store.requests.page({}, all)).toEqual([]);
        expect(await store.requests.page({ route: 'chat', since: T0 }, { limit: 1, before: 10 })).toEqual([]);
      });

      it('appends in order: ids increase, newest first, every field as it was given', async () => {
        const first = [
          request({ target: 'a', at: T0 + 30, subject: null, latencyMs: 12.75 }),
          request({ target: 'b', at: T0 + 20, route: 'mcp', status: 'ok', subject: 'server:files' }),
          request({ target: 'files/rëad 👋', at: T0 + 10, promptTokens: 2 ** 40, completionTokens: 2 ** 41 }),
        ];
        const second = [request({ target: 'd', at: T0, replica: 'replica-2' }), request({ target: 'e', at: T0 })];
        await store.requests.appendMany(first, 100);
        await store.requests.appendMany(second, 100);
        const page = await store.requests.page({}, all);
        // Newest is the last appended, whatever its `at` says.
        expect(bare(page)).toEqual([...first, ...second].reverse());
        const ids = page.map((entry) => entry.id);
        for (const id of ids) expect(Number.isSafeInteger(id)).toBe(true);
        expect([...ids].sort((a, b) => b - a)).toEqual(ids);
        expect(new Set(ids).size).toBe(5);
        expect(typeof page[0]!.at).toBe('number');
        expect(typeof page[2]!.promptTokens).toBe('number');
      });

      it('keeps its own copies', async () => {
        const entry = request({ target: 'a' });
        await store.requests.appendMany([entry], 10);
        entry.target = 'changed';
        const [got] = await store.requests.page({}, all);
        got!.target = 'changed too';
        expect(targets(await store.requests.page({}, all))).toEqual(['a']);
      });

      it('filters by route, subject, target, status and time (since inclusive, until exclusive), combined', async () => {
        await store.requests.appendMany(
          [
            request({ target: 't1', at: T0, route: 'chat', subject: 'k1', status: '200' }),
            request({ target: 't2', at: T0 + 1, route: 'chat', subject: 'k2', status: '429' }),
            request({ target: 't3', at: T0 + 2, route: 'mcp', subject: 'k1', status: 'ok' }),
            request({ target: 't4', at: T0 + 3, route: 'embeddings', subject: null, status: '200' }),
            request({ target: 't1', at: T0 + 4, route: 'chat', subject: 'k1', status: '502' }),
          ],
          100,
        );
        const found = async (filter: RequestLogFilter) =>
          (await store.requests.page(filter, all)).map((e) => `${e.target}@${e.at - T0}`);
        expect(await found({ route: 'chat' })).toEqual(['t1@4', 't2@1', 't1@0']);
        expect(await found({ subject: 'k1' })).toEqual(['t1@4', 't3@2', 't1@0']);
        expect(await found({ target: 't1' })).toEqual(['t1@4', 't1@0']);
        expect(await found({ status: '200' })).toEqual(['t4@3', 't1@0']);
        expect(await found({ since: T0 + 1, until: T0 + 3 })).toEqual(['t3@2', 't2@1']);
        expect(await found({ since: T0 + 3 })).toEqual(['t1@4', 't4@3']);
        expect(await found({ until: T0 + 1 })).toEqual(['t1@0']);
        expect(await found({ route: 'chat', subject: 'k1', status: '502', since: T0, until: T0 + 5 })).toEqual([
          't1@4',
        ]);
        expect(await found({ route: 'chat', status: 'ok' })).toEqual([]);
        expect(await found({ subject: 'nobody' })).toEqual([]);
        expect(await found({ since: T0 + 2, until: T0 + 2 })).toEqual([]);
      });

      it('pages with `before` across pages, with and without a filter', async () => {
        await store.requests.appendMany(
          range(1, 7).map((i) => request({ target: `t${i}`, route: i % 2 ? 'chat' : 'mcp' })),
          100,
        );
        const pages: string[][] = [];
        let before: number | undefined;
        // Bounded, so that a `before` that does not move the cursor fails here rather than hanging.
        for (let n = 0; n < 5; n += 1) {
          const page = await store.requests.page({}, before === undefined ? { limit: 3 } : { limit: 3, before });
          if (page.length === 0) break;
          pages.push(targets(page));
          before = page.at(-1)!.id;
        }
        expect(pages).toEqual([['t7', 't6', 't5'], ['t4', 't3', 't2'], ['t1']]);
        const newest = (await store.requests.page({}, { limit: 1 }))[0]!;
        expect(targets(await store.requests.page({}, { limit: 2, before: newest.id + 1000 }))).toEqual(['t7', 't6']);
        expect(targets(await store.requests.page({}, { limit: 2, before: newest.id }))).toEqual(['t6', 't5']);
        const chat = await store.requests.page({ route: 'chat' }, { limit: 2 });
        expect(targets(chat)).toEqual(['t7', 't5']);
        const rest = await store.requests.page({ route: 'chat' }, { limit: 2, before: chat[1]!.id });
        expect(targets(rest)).toEqual(['t3', 't1']);
        expect(await store.requests.page({ route: 'chat' }, { limit: 2, before: rest[1]!.id })).toEqual([]);
      });

      it('keeps at most `keep` after each append, the newest, whatever their route', async () => {
        const batch = (from: number, to: number) =>
          range(from, to).map((i) => request({ target: `t${i}`, route: i % 2 ? 'chat' : 'mcp' }));
        await store.requests.appendMany(batch(1, 5), 3);
        expect(targets(await store.requests.page({}, all))).toEqual(['t5', 't4', 't3']);
        const before = (await store.requests.page({}, all))[0]!.id;
        await store.requests.appendMany(batch(6, 7), 3);
        const kept = await store.requests.page({}, all);
        expect(targets(kept)).toEqual(['t7', 't6', 't5']);
        // Ids go on growing past the pruned ones.
        expect(kept[1]!.id).toBeGreaterThan(before);
        await store.requests.appendMany(batch(8, 8), 10);
        expect(targets(await store.requests.page({}, all))).toEqual(['t8', 't7', 't6', 't5']);
        expect(targets(await store.requests.page({ route: 'mcp' }, all))).toEqual(['t8', 't6']);
        // A smaller keep applies at once, even to an empty append.
        await store.requests.appendMany([], 1);
        expect(targets(await store.requests.page({}, all))).toEqual(['t8']);
      });

      it('keeps exactly `keep` of a batch larger than a page, readable page by page', async () => {
        await store.requests.appendMany(
          range(1, 1200).map((i) => request({ target: `t${i}` })),
          1000,
        );
        const first = await store.requests.page({}, all);
        const second = await store.requests.page({}, { limit: 500, before: first.at(-1)!.id });
        const third = await store.requests.page({}, { limit: 500, before: second.at(-1)!.id });
        expect(first).toHaveLength(500);
        expect(second).toHaveLength(500);
        expect(third).toEqual([]);
        expect(first[0]!.target).toBe('t1200');
        expect(second.at(-1)!.target).toBe('t201');
      });

      it('gives every entry of concurrent appends its own id', async () => {
        await Promise.all(
          range(0, 9).map((n) =>
            store.requests.appendMany(
              range(0, 4).map((i) => request({ target: `b${n}-${i}` })),
              1000,
            ),
          ),
        );
        const page = await store.requests.page({}, all);
        expect(page).toHaveLength(50);
        expect(new Set(page.map((e) => e.id)).size).toBe(50);
        // Within a batch, ids follow the order of its entries (concurrent batches may interleave in PostgreSQL).
        for (const n of range(0, 9)) {
          const ids = range(0, 4).map((i) => page.find((e) => e.target === `b${n}-${i}`)!.id);
          expect([...ids].sort((a, b) => a - b)).toEqual(ids);
        }
      });

      it('refuses a keep or a page that makes no sense (RangeError) and changes nothing', async () => {
        await store.requests.appendMany([request({ target: 'kept' })], 10);
        for (const keep of [0, -1, 1.5, Number.NaN]) {
          await expect(store.requests.appendMany([request({ target: 'refused' })], keep), String(keep)).rejects.toThrow(
            RangeError,
          );
        }
        for (const limit of [0, -1, 501, 1.5, Number.NaN]) {
          await expect(store.requests.page({}, { limit }), String(limit)).rejects.toThrow(RangeError);
        }
        await expect(store.requests.page({}, { limit: 1, before: 1.5 })).rejects.toThrow(RangeError);
        await expect(store.requests.page({ since: Number.NaN }, { limit: 1 })).rejects.toThrow(RangeError);
        expect(targets(await store.requests.page({}, { limit: 1 }))).toEqual(['kept']);
        expect(targets(await store.requests.page({}, { limit: 500 }))).toEqual(['kept']);
      });
    });

    describe('credentials', () => {
      const tokens = (principal: string, upstream: string, issuer: string, sealed = `sealed ${principal}`) => ({
        kind: 'tokens' as const,
        principal,
        upstream,
        issuer,
        sealed,
        updatedAt: T0,
        expiresAt: undefined,
      });

      it('keeps each credential under its whole key and replaces it on a second put', async () => {
        const alice = tokens('user:alice', 'github', 'https://as.example');
        const bob = tokens('user:bob', 'github', 'https://as.example');
        const otherIssuer = tokens('user:alice', 'github', 'https://other.example', 'other');
        for (const r of [alice, bob, otherIssuer]) await store.credentials.put(r);
        expect(await store.credentials.get(alice, T0)).toEqual(alice);
        expect(await store.credentials.get(bob, T0)).toEqual(bob);
        expect(await store.credentials.get({ ...alice, kind: 'client' }, T0)).toBeUndefined();
        const replaced = { ...alice, sealed: 'newer', updatedAt: T0 + MINUTE };
        await store.credentials.put(replaced);
        expect(await store.credentials.get(alice, T0)).toEqual(replaced);
        expect(await store.credentials.get(otherIssuer, T0)).toEqual(otherIssuer);
      });

      it('hides what has expired, hands a state to one taker only, and prunes what expired', async () => {
        const flow = {
          ...tokens('user:alice', 'github', 'state-1'),
          kind: 'flow' as const,
          expiresAt: T0 + MINUTE,
        };
        await store.credentials.put(flow);
        expect(await store.credentials.get(flow, T0 + MINUTE)).toBeUndefined();
        expect(await store.credentials.take(flow, T0 + MINUTE)).toBeUndefined();
        expect(await store.credentials.get(flow, T0)).toEqual(flow);
        const [first, second] = await Promise.all([store.credentials.take(flow, T0), store.credentials.take(flow, T0)]);
        expect([first, second].filter(Boolean)).toEqual([flow]);
        await store.credentials.put({ ...flow, issuer: 'state-2' });
        await store.credentials.put(tokens('user:alice', 'github', 'https://as.example'));
        expect(await store.credentials.prune(T0 + MINUTE)).toBe(1);
        expect(await store.credentials.list('flow', undefined, T0)).toEqual([]);
        expect(await store.credentials.list('tokens', undefined, T0 + 10 * MINUTE)).toHaveLength(1);
      });

      it("lists a kind in order, everyone's or one principal's, and revokes a connection but not the client", async () => {
        const records = [
          tokens('user:bob', 'linear', 'https://b.example'),
          tokens('user:alice', 'linear', 'https://a.example'),
          tokens('user:alice', 'github', 'https://a.example'),
          tokens('user:bob', 'github', 'https://a.example'),
        ];
        for (const r of records) await store.credentials.put(r);
        const client = { ...tokens('', 'github', 'https://a.example', 'client'), kind: 'client' as const };
        await store.credentials.put(client);
        const keys = (list: { principal: string; upstream: string; issuer: string }[]) =>
          list.map((r) => `${r.upstream} ${r.issuer} ${r.principal}`);
        expect(keys(await store.credentials.list('tokens', undefined, T0))).toEqual([
          'github https://a.example user:alice',
          'github https://a.example user:bob',
          'linear https://a.example user:alice',
          'linear https://b.example user:bob',
        ]);
        expect(keys(await store.credentials.list('tokens', 'user:alice', T0))).toEqual([
          'github https://a.example user:alice',
          'linear https://a.example user:alice',
        ]);
        expect(await store.credentials.deleteConnection('user:bob', 'github')).toBe(1);
        expect(await store.credentials.deleteConnection('', 'github')).toBe(0);
        expect(await store.credentials.get(client, T0)).toEqual(client);
        expect(keys(await store.credentials.list('tokens', 'user:bob', T0))).toEqual([
          'linear https://b.example user:bob',
        ]);
        expect(await store.credentials.delete(records[0]!)).toBe(true);
        expect(await store.credentials.delete(records[0]!)).toBe(false);
      });

      it('refuses a key no caller should make, and an unsealed value', async () => {
        await expect(store.credentials.put({ ...tokens('p', 'u', 'i'), sealed: '' })).rejects.toThrow(TypeError);
        await expect(store.credentials.put({ ...tokens('p', 'u', 'i'), kind: 'other' as 'tokens' })).rejects.toThrow(
          TypeError,
        );
        await expect(store.credentials.get({ ...tokens('p', '', 'i') }, T0)).rejects.toThrow(TypeError);
        await expect(store.credentials.get({ ...tokens('p', 'u', 'x'.repeat(3000)) }, T0)).rejects.toThrow(TypeError);
      });
    });

    describe('close', () => {
      it('can be called twice', async () => {
        await store.close();
        await store.close();
        store = await open();
      });
    });
  });
}

/** The cache part of the contract alone, for an implementation that holds only the cache. */
export function describeCacheContract(name: string, open: () => Promise<Pick<Store, 'cache' | 'close'>>): void {
  describe(`Cache contract: ${name}`, () => {
    let store: Pick<Store, 'cache' | 'close'>;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });
    cacheTests(() => store);
  });
}

/** The rate-limit part of the contract alone, for an implementation that holds only the limits. */
export function describeLimitContract(name: string, open: () => Promise<Pick<Store, 'limits' | 'close'>>): void {
  describe(`Limit contract: ${name}`, () => {
    let store: Pick<Store, 'limits' | 'close'>;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });
    limitTests(() => store);
  });
}

function cacheTests(current: () => Pick<Store, 'cache'>): void {
  describe('cache', () => {
    let store: Pick<Store, 'cache'>;
    beforeEach(() => {
      store = current();
    });

    it('returns what was set, and undefined for a key never set', async () => {
      const entry = cached('{"id":"chatcmpl-1","choices":[]}', 'json', T0, T0 + MINUTE);
      await store.cache.set('k', entry);
      expect(await store.cache.get('k', T0)).toEqual(entry);
      expect(await store.cache.get('other', T0)).toBeUndefined();
    });

    it('keeps an SSE body byte for byte', async () => {
      const body = 'data: {"delta":"héllo 👋"}\n\n: keep-alive\r\n\ndata: [DONE]\n\n';
      await store.cache.set('s', cached(body, 'sse', T0, T0 + MINUTE));
      expect(await store.cache.get('s', T0 + 1)).toEqual(cached(body, 'sse', T0, T0 + MINUTE));
    });

    it('never returns an entry at or after its expiry, judged by the now argument', async () => {
      await store.cache.set('k', cached('x', 'json', T0, T0 + 1000));
      expect(await store.cache.get('k', T0 + 999)).toBeDefined();
      expect(await store.cache.get('k', T0 + 1000)).toBeUndefined();
      expect(await store.cache.get('k', T0 + 5000)).toBeUndefined();
    });

    it('overwrites an entry under the same key', async () => {
      await store.cache.set('k', cached('first', 'json', T0, T0 + 1000));
      await store.cache.set('k', cached('second', 'sse', T0 + 10, T0 + 5000));
      expect(await store.cache.get('k', T0 + 2000)).toEqual(cached('second', 'sse', T0 + 10, T0 + 5000));
    });

    it('an overwrite can bring an expired entry back', async () => {
      await store.cache.set('k', cached('old', 'json', T0, T0 + 10));
      expect(await store.cache.get('k', T0 + 20)).toBeUndefined();
      await store.cache.set('k', cached('new', 'json', T0 + 20, T0 + 100));
      expect((await store.cache.get('k', T0 + 20))?.body).toBe('new');
    });

    it('deletes an entry; deleting an absent one is fine', async () => {
      await store.cache.set('k', cached('x', 'json', T0, T0 + MINUTE));
      await store.cache.set('keep', cached('y', 'json', T0, T0 + MINUTE));
      await store.cache.delete('k');
      await store.cache.delete('never-there');
      expect(await store.cache.get('k', T0)).toBeUndefined();
      expect((await store.cache.get('keep', T0))?.body).toBe('y');
    });

    it('prunes exactly the expired entries and reports how many', async () => {
      await store.cache.set('a', cached('a', 'json', T0, T0 + 10));
      await store.cache.set('b', cached('b', 'sse', T0, T0 + 20));
      await store.cache.set('c', cached('c', 'json', T0, T0 + 30));
      expect(await store.cache.prune(T0)).toBe(0);
      expect(await store.cache.prune(T0 + 20)).toBe(2);
      expect(await store.cache.prune(T0 + 20)).toBe(0);
      expect((await store.cache.get('c', T0 + 20))?.body).toBe('c');
      expect(await store.cache.prune(T0 + 1000)).toBe(1);
      expect(await store.cache.get('c', T0)).toBeUndefined();
    });
  });
}

function limitTests(current: () => Pick<Store, 'limits'>): void {
  describe('limits', () => {
    let store: Pick<Store, 'limits'>;
    beforeEach(() => {
      store = current();
    });

    it('allows a burst of exactly `limit`, counting remaining down to 0', async () => {
      const decisions = [];
      for (let i = 0; i < 15; i += 1) decisions.push(await store.limits.take('k', 1, 10, MINUTE, T0));
      expect(decisions.filter((d) => d.allowed)).toHaveLength(10);
      expect(decisions.slice(0, 10).every((d) => d.allowed)).toBe(true);
      expect(decisions.map((d) => d.remaining)).toEqual([9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0]);
      expect(decisions.slice(0, 10).every((d) => d.retryAfterMs === 0)).toBe(true);
    });

    it('reports resetMs as the time until the bucket is full again', async () => {
      const first = await store.limits.take('k', 1, 10, MINUTE, T0);
      expect(first.resetMs).toBeCloseTo(6000, -1);
      for (let i = 0; i < 9; i += 1) await store.limits.take('k', 1, 10, MINUTE, T0);
      const refused = await store.limits.take('k', 1, 10, MINUTE, T0);
      expect(refused.resetMs).toBeCloseTo(MINUTE, -1);
      const later = await store.limits.take('k', 0, 10, MINUTE, T0 + 15_000);
      expect(later.resetMs).toBeCloseTo(45_000, -1);
    });

    it('refuses the 11th take with retryAfterMs of one emission interval, and a refusal changes nothing', async () => {
      for (let i = 0; i < 10; i += 1) await store.limits.take('k', 1, 10, MINUTE, T0);
      const eleventh = await store.limits.take('k', 1, 10, MINUTE, T0);
      expect(eleventh.allowed).toBe(false);
      expect(eleventh.remaining).toBe(0);
      expect(eleventh.retryAfterMs).toBeGreaterThanOrEqual(5999);
      expect(eleventh.retryAfterMs).toBeLessThanOrEqual(6001);
      // Many more refusals must not push the wait further out.
      for (let i = 0; i < 20; i += 1) await store.limits.take('k', 1, 10, MINUTE, T0 + 1000);
      const waited = await store.limits.take('k', 1, 10, MINUTE, T0 + 3000);
      expect(waited.allowed).toBe(false);
      expect(waited.retryAfterMs).toBeGreaterThanOrEqual(2999);
      expect(waited.retryAfterMs).toBeLessThanOrEqual(3001);
    });

    it('allows one more after periodMs/limit, and then refuses again', async () => {
      for (let i = 0; i < 10; i += 1) await store.limits.take('k', 1, 10, MINUTE, T0);
      expect((await store.limits.take('k', 1, 10, MINUTE, T0 + 5999)).allowed).toBe(false);
      const next = await store.limits.take('k', 1, 10, MINUTE, T0 + 6000);
      expect(next).toMatchObject({ allowed: true, remaining: 0, retryAfterMs: 0 });
      const after = await store.limits.take('k', 1, 10, MINUTE, T0 + 6000);
      expect(after.allowed).toBe(false);
      expect(after.retryAfterMs).toBeGreaterThanOrEqual(5999);
      expect(after.retryAfterMs).toBeLessThanOrEqual(6001);
    });

    it('refills in proportion to time: half a period gives back half the bucket, a full period all of it', async () => {
      for (let i = 0; i < 10; i += 1) await store.limits.take('k', 1, 10, MINUTE, T0);
      expect(await countAllowed(store, 'k', 10, MINUTE, T0 + 30_000, 20)).toBe(5);
      expect(await countAllowed(store, 'k', 10, MINUTE, T0 + 30_000 + 10 * MINUTE, 20)).toBe(10);
    });

    it('takes a cost of several units at once, refusing what does not fit without changing anything', async () => {
      expect(await store.limits.take('k', 4, 10, MINUTE, T0)).toMatchObject({ allowed: true, remaining: 6 });
      expect(await store.limits.take('k', 4, 10, MINUTE, T0)).toMatchObject({ allowed: true, remaining: 2 });
      const refused = await store.limits.take('k', 3, 10, MINUTE, T0);
      expect(refused).toMatchObject({ allowed: false, remaining: 2 });
      expect(refused.retryAfterMs).toBeGreaterThanOrEqual(5999);
      expect(refused.retryAfterMs).toBeLessThanOrEqual(6001);
      expect(await store.limits.take('k', 2, 10, MINUTE, T0)).toMatchObject({ allowed: true, remaining: 0 });
    });

    it('counts tokens: 1000 per minute at 250 each allows exactly four', async () => {
      expect(await countAllowed(store, 'tpm', 1000, MINUTE, T0, 10, 250)).toBe(4);
    });

    it('never allows a cost above the limit', async () => {
      const decision = await store.limits.take('k', 11, 10, MINUTE, T0);
      expect(decision.allowed).toBe(false);
      expect(decision.remaining).toBe(10);
      expect(decision.retryAfterMs).toBeGreaterThan(0);
      expect(await countAllowed(store, 'k', 10, MINUTE, T0, 15)).toBe(10);
    });

    it('a take of cost 0 reports the state without taking anything', async () => {
      expect(await store.limits.take('k', 0, 10, MINUTE, T0)).toEqual({
        allowed: true,
        remaining: 10,
        resetMs: 0,
        retryAfterMs: 0,
      });
      await store.limits.take('k', 3, 10, MINUTE, T0);
      expect(await store.limits.take('k', 0, 10, MINUTE, T0)).toMatchObject({ allowed: true, remaining: 7 });
      expect(await countAllowed(store, 'k', 10, MINUTE, T0, 15)).toBe(7);
    });

    it('handles an emission interval that is not a whole number of milliseconds', async () => {
      const decisions = [];
      for (let i = 0; i < 5; i += 1) decisions.push(await store.limits.take('k', 1, 3, 1000, T0 + 0.5));
      expect(decisions.map((d) => [d.allowed, d.remaining])).toEqual([
        [true, 2],
        [true, 1],
        [true, 0],
        [false, 0],
        [false, 0],
      ]);
      expect((await store.limits.take('k', 1, 3, 1000, T0 + 0.5 + 1000 / 3)).allowed).toBe(true);
      expect((await store.limits.take('k', 1, 3, 1000, T0 + 0.5 + 1000 / 3)).allowed).toBe(false);
    });

    it('is exact at limits whose emission interval a double cannot hold (no rounding drift over a burst)', async () => {
      // Regression: a TAT kept as one epoch double drifted by ~1e-4 ms a take, refusing the 17th of 17 per minute.
      for (const [limit, periodMs] of [
        [7, 1000],
        [17, MINUTE],
        [90, MINUTE],
        [600, 1000],
        [7000, 1000],
      ] as const) {
        const bucket = `${limit}/${periodMs}`;
        expect(await countAllowed(store, bucket, limit, periodMs, T0, limit + 2), bucket).toBe(limit);
        for (let units = 1; units <= 3; units += 1) {
          const at = T0 + (units * periodMs) / limit;
          expect(await countAllowed(store, bucket, limit, periodMs, at, 3), `${bucket} +${units}`).toBe(1);
        }
      }
    });

    it('refund gives units back', async () => {
      for (let i = 0; i < 10; i += 1) await store.limits.take('k', 1, 10, MINUTE, T0);
      await store.limits.refund('k', 3, 10, MINUTE, T0);
      expect(await countAllowed(store, 'k', 10, MINUTE, T0, 10)).toBe(3);
    });

    it('refund never fills the bucket beyond the limit', async () => {
      await store.limits.take('k', 2, 10, MINUTE, T0);
      await store.limits.refund('k', 100, 10, MINUTE, T0);
      expect((await store.limits.take('k', 1, 10, MINUTE, T0)).remaining).toBe(9);
      expect(await countAllowed(store, 'k', 10, MINUTE, T0, 20)).toBe(9);
    });

    it('refund of a bucket never used, or already full again, changes nothing', async () => {
      await store.limits.refund('fresh', 5, 10, MINUTE, T0);
      expect(await countAllowed(store, 'fresh', 10, MINUTE, T0, 15)).toBe(10);
      await store.limits.take('old', 10, 10, MINUTE, T0);
      await store.limits.refund('old', 5, 10, MINUTE, T0 + 2 * MINUTE);
      expect(await countAllowed(store, 'old', 10, MINUTE, T0 + 2 * MINUTE, 15)).toBe(10);
    });

    it('keeps separate keys independent', async () => {
      expect(await countAllowed(store, 'a', 10, MINUTE, T0, 15)).toBe(10);
      expect(await countAllowed(store, 'b', 10, MINUTE, T0, 15)).toBe(10);
      await store.limits.refund('b', 10, 10, MINUTE, T0);
      expect((await store.limits.take('a', 1, 10, MINUTE, T0)).allowed).toBe(false);
    });

    it('takes from several buckets all at once or not at all', async () => {
      const both = (tokens: number) =>
        store.limits.takeAll({
          takes: [
            { key: 'r', cost: 1, limit: 10, periodMs: MINUTE },
            { key: 't', cost: tokens, limit: 100, periodMs: MINUTE },
          ],
          now: T0,
        });
      expect(await both(60)).toMatchObject([
        { allowed: true, remaining: 9 },
        { allowed: true, remaining: 40 },
      ]);
      // The token bucket has 40 left: refused, and the request bucket, which had room, keeps its unit.
      const refused = await both(50);
      expect(refused).toMatchObject([
        { allowed: true, remaining: 9, retryAfterMs: 0 },
        { allowed: false, remaining: 40 },
      ]);
      expect(refused[1]!.retryAfterMs).toBe(6000);
      expect(await both(40)).toMatchObject([
        { allowed: true, remaining: 8 },
        { allowed: true, remaining: 0 },
      ]);
      expect(await store.limits.takeAll({ takes: [], now: T0 })).toEqual([]);
    });

    it('applies corrections first, whatever the takes decide', async () => {
      await store.limits.take('t', 100, 100, MINUTE, T0);
      // 30 given back; the take of 50 is refused, the correction stays.
      const refused = await store.limits.takeAll({
        takes: [{ key: 't', cost: 50, limit: 100, periodMs: MINUTE }],
        corrections: [{ key: 't', units: -30, limit: 100, periodMs: MINUTE }],
        now: T0,
      });
      expect(refused).toMatchObject([{ allowed: false, remaining: 30 }]);
      expect((await store.limits.take('t', 0, 100, MINUTE, T0)).remaining).toBe(30);
      // Used beyond the estimate: charged without a refusal, never beyond an empty bucket.
      await store.limits.takeAll({
        takes: [],
        corrections: [{ key: 't', units: 500, limit: 100, periodMs: MINUTE }],
        now: T0,
      });
      expect((await store.limits.take('t', 0, 100, MINUTE, T0)).remaining).toBe(0);
      await store.limits.refund('t', 1, 100, MINUTE, T0);
      expect(await countAllowed(store, 't', 100, MINUTE, T0, 3)).toBe(1);
      // Given back beyond what is owed: the bucket is full, no more.
      await store.limits.takeAll({
        takes: [],
        corrections: [{ key: 'u', units: -5, limit: 10, periodMs: MINUTE }],
        now: T0,
      });
      expect(await countAllowed(store, 'u', 10, MINUTE, T0, 12)).toBe(10);
    });

    it('changes nothing when any part of a batch makes no sense', async () => {
      await expect(
        store.limits.takeAll({
          takes: [{ key: 'k', cost: 5, limit: 10, periodMs: MINUTE }],
          corrections: [{ key: 'k', units: Number.NaN, limit: 10, periodMs: MINUTE }],
          now: T0,
        }),
      ).rejects.toThrow(RangeError);
      await expect(
        store.limits.takeAll({
          takes: [
            { key: 'k', cost: 5, limit: 10, periodMs: MINUTE },
            { key: 'j', cost: 1, limit: 10, periodMs: -1 },
          ],
          now: T0,
        }),
      ).rejects.toThrow(RangeError);
      expect(await countAllowed(store, 'k', 10, MINUTE, T0, 12)).toBe(10);
    });

    it('rejects a limit, period or cost that makes no sense', async () => {
      await expect(store.limits.take('k', 1, 0, MINUTE, T0)).rejects.toThrow(RangeError);
      await expect(store.limits.take('k', 1, 10, 0, T0)).rejects.toThrow(RangeError);
      await expect(store.limits.take('k', -1, 10, MINUTE, T0)).rejects.toThrow(RangeError);
      await expect(store.limits.take('k', Number.NaN, 10, MINUTE, T0)).rejects.toThrow(RangeError);
      await expect(store.limits.refund('k', -1, 10, MINUTE, T0)).rejects.toThrow(RangeError);
      expect(await countAllowed(store, 'k', 10, MINUTE, T0, 15)).toBe(10);
    });
  });
}

async function countAllowed(
  store: Pick<Store, 'limits'>,
  key: string,
  limit: number,
  periodMs: number,
  now: number,
  attempts: number,
  cost = 1,
): Promise<number> {
  let allowed = 0;
  for (let i = 0; i < attempts; i += 1) {
    if ((await store.limits.take(key, cost, limit, periodMs, now)).allowed) allowed += 1;
  }
  return allowed;
}

async function expectStoreError(promise: Promise<unknown>, code: StoreError['code']): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(StoreError);
  expect((error as StoreError).code).toBe(code);
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

function key(id: string, name: string, overrides: Partial<ApiKeyRecord> = {}): ApiKeyRecord {
  return {
    id,
    name,
    secretHash: 'ab'.repeat(32),
    scopes: { models: ['gpt-4o'] },
    limits: { rpm: 60 },
    createdAt: T0,
    expiresAt: null,
    revokedAt: null,
    ...overrides,
  };
}

function use(subject: string, model: string, at: number, requests = 1, promptTokens = 0, completionTokens = 0) {
  return { subject, model, at, requests, promptTokens, completionTokens };
}

function total(subject: string, model: string, requests: number, promptTokens: number, completionTokens: number) {
  return { subject, model, requests, promptTokens, completionTokens };
}

function bucket(
  at: number,
  subject: string,
  model: string,
  requests: number,
  promptTokens: number,
  completionTokens: number,
) {
  return { at, subject, model, requests, promptTokens, completionTokens };
}

function request(overrides: Partial<RequestLogEntry> = {}): RequestLogEntry {
  return {
    at: T0,
    route: 'chat',
    subject: 'k1',
    target: 'gpt-4o',
    status: '200',
    latencyMs: 42,
    promptTokens: 10,
    completionTokens: 5,
    replica: 'replica-1',
    ...overrides,
  };
}

function cached(body: string, kind: CacheEntry['kind'], createdAt: number, expiresAt: number): CacheEntry {
  return { body, kind, createdAt, expiresAt };
}
