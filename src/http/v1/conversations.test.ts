// /v1/conversations through a real HTTP server on 127.0.0.1, against the memory store and a SQLite file, and
// withConversation against the same stores.
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { McplexError } from '../../errors.js';
import type { Principal } from '../../policy/auth/keys.js';
import { createMemoryStore } from '../../store/memory/memory-store.js';
import { openSqliteStore } from '../../store/sqlite/sqlite-store.js';
import type { Store } from '../../store/store.js';
import { handleConversations, withConversation } from './conversations.js';
import type { ChatMessage } from '../../llm/types.js';

const MAX_BODY_BYTES = 64 * 1024;

let dir: string;
let counter = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mcplex-conversations-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const STORES: [string, () => Store][] = [
  ['memory', () => createMemoryStore()],
  [
    'sqlite',
    () => {
      counter += 1;
      return openSqliteStore(join(dir, `conversations-${counter}.db`));
    },
  ],
];

function principal(id: string): Principal {
  return { kind: 'key', id, name: id, scopes: {}, limits: {} };
}

interface Reply {
  status: number;
  headers: Headers;
  // Tests read whatever fields they expect; a wrong shape fails the assertion that reads it.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  body: any;
}

/** A server whose principal is the `x-principal` header (alice by default); 418 marks a path it did not take. */
async function serve(store: Store): Promise<{ server: Server; base: string }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0] ?? '/';
    const who = req.headers['x-principal'];
    handleConversations(
      req,
      res,
      path,
      principal(typeof who === 'string' ? who : 'alice'),
      store.conversations,
      MAX_BODY_BYTES,
    ).then(
      (handled) => {
        if (!handled) res.writeHead(418).end();
      },
      (error: unknown) => {
        res.writeHead(500).end(String(error));
      },
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

describe.each(STORES)('/v1/conversations over HTTP (%s store)', (_name, open) => {
  let store: Store;
  let server: Server;
  let base: string;

  beforeEach(async () => {
    store = open();
    ({ server, base } = await serve(store));
  });
  afterEach(async () => {
    server.closeAllConnections();
    server.close();
    await once(server, 'close');
    await store.close();
  });

  async function call(method: string, path: string, body?: unknown, as = 'alice'): Promise<Reply> {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { 'x-principal': as, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: text === '' ? undefined : JSON.parse(text) };
  }

  const user = (content: string) => ({ role: 'user', content });
  const assistant = (content: string) => ({ role: 'assistant', content });

  async function conversation(as = 'alice', body: unknown = {}): Promise<string> {
    const created = await call('POST', '/v1/conversations', body, as);
    expect(created.status).toBe(200);
    return created.body.id as string;
  }

  function expectError(reply: Reply, status: number, fields: { type?: string; code?: string | null; param?: string }) {
    expect(reply.status).toBe(status);
    expect(reply.body.error).toMatchObject(fields);
    expect(typeof reply.body.error.message).toBe('string');
  }

  it('creates a conversation and reads it back', async () => {
    const before = Math.floor(Date.now() / 1000);
    const created = await call('POST', '/v1/conversations', { metadata: { topic: 'demo' } });
    expect(created.status).toBe(200);
    expect(created.headers.get('content-type')).toBe('application/json');
    expect(created.body).toEqual({
      id: expect.stringMatching(/^conv_[0-9a-f]{32}$/),
      object: 'conversation',
      created_at: expect.any(Number),
      metadata: { topic: 'demo' },
      version: 0,
    });
    expect(created.body.created_at).toBeGreaterThanOrEqual(before);
    expect(created.body.created_at).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    const read = await call('GET', `/v1/conversations/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(created.body);
  });

  it('creates with initial items at version 1, and with an empty body', async () => {
    const created = await call('POST', '/v1/conversations', { items: [user('hi'), assistant('hello')] });
    expect(created.body).toMatchObject({ version: 1, metadata: {} });
    const items = await call('GET', `/v1/conversations/${created.body.id}/items?order=asc`);
    expect(items.body.data.map((i: { seq: number; message: unknown }) => [i.seq, i.message])).toEqual([
      [1, user('hi')],
      [2, assistant('hello')],
    ]);
    const bare = await fetch(`${base}/v1/conversations`, { method: 'POST' });
    expect(bare.status).toBe(200);
    expect(await bare.json()).toMatchObject({ object: 'conversation', metadata: {}, version: 0 });
  });

  it("lists the caller's own conversations, newest first, in pages", async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) ids.push(await conversation('alice', { metadata: { n: String(i) } }));
    const bobs = await conversation('bob');
    const first = await call('GET', '/v1/conversations?limit=2');
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ object: 'list', has_more: true, first_id: ids[2], last_id: ids[1] });
    expect(first.body.data.map((c: { id: string }) => c.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.data[0]).toMatchObject({ object: 'conversation', metadata: { n: '2' } });
    const second = await call('GET', `/v1/conversations?limit=2&after=${first.body.last_id}`);
    expect(second.body.data.map((c: { id: string }) => c.id)).toEqual([ids[0]]);
    expect(second.body.has_more).toBe(false);
    const all = await call('GET', '/v1/conversations');
    expect(all.body.data).toHaveLength(3);
    const bob = await call('GET', '/v1/conversations', undefined, 'bob');
    expect(bob.body.data.map((c: { id: string }) => c.id)).toEqual([bobs]);
    const carol = await call('GET', '/v1/conversations', undefined, 'carol');
    expect(carol.body).toEqual({ object: 'list', data: [], first_id: null, last_id: null, has_more: false });
  });

  it('another principal gets 404 for every route, exactly as for an unknown id, and changes nothing', async () => {
    const id = await conversation('alice');
    await call('POST', `/v1/conversations/${id}/items`, { items: [user('secret')] });
    const unknown = await call('GET', '/v1/conversations/conv_00000000000000000000000000000000', undefined, 'bob');
    expectError(unknown, 404, { type: 'not_found_error', code: 'conversation_not_found' });
    for (const [method, path, body] of [
      ['GET', `/v1/conversations/${id}`, undefined],
      ['DELETE', `/v1/conversations/${id}`, undefined],
      ['GET', `/v1/conversations/${id}/items`, undefined],
      ['POST', `/v1/conversations/${id}/items`, { items: [user('intruder')] }],
      ['POST', `/v1/conversations/${id}/items`, { items: [user('intruder')], expected_version: 1 }],
    ] as const) {
      const reply = await call(method, path, body, 'bob');
      expectError(reply, 404, { type: 'not_found_error', code: 'conversation_not_found' });
      expect(reply.body.error.message).toBe(unknown.body.error.message.replace(/conv_0+/, id));
    }
    const mine = await call('GET', `/v1/conversations/${id}/items`);
    expect(mine.body.data.map((i: { message: unknown }) => i.message)).toEqual([user('secret')]);
    expect((await call('GET', `/v1/conversations/${id}`)).body.version).toBe(1);
  });

  it('deletes a conversation once', async () => {
    const id = await conversation();
    await call('POST', `/v1/conversations/${id}/items`, { items: [user('x')] });
    const deleted = await call('DELETE', `/v1/conversations/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toEqual({ id, object: 'conversation.deleted', deleted: true });
    expectError(await call('GET', `/v1/conversations/${id}`), 404, { code: 'conversation_not_found' });
    expectError(await call('GET', `/v1/conversations/${id}/items`), 404, { code: 'conversation_not_found' });
    expectError(await call('DELETE', `/v1/conversations/${id}`), 404, { code: 'conversation_not_found' });
    expect((await call('GET', '/v1/conversations')).body.data).toEqual([]);
  });

  it('appends items and pages through them in either order, by item id or by seq', async () => {
    const id = await conversation();
    const first = await call('POST', `/v1/conversations/${id}/items`, {
      items: [{ role: 'system', content: 'be brief' }, user('q1'), assistant('a1'), user('q2'), assistant('a2')],
    });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ object: 'list', version: 1, has_more: false });
    expect(first.body.data.map((i: { seq: number }) => i.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(first.body.data[1]).toEqual({
      id: expect.stringMatching(/^item_[0-9a-f]{32}$/),
      object: 'conversation.item',
      type: 'message',
      seq: 2,
      role: 'user',
      message: user('q1'),
      created_at: expect.any(Number),
    });
    const toolTurn = [
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'ok' },
    ];
    const second = await call('POST', `/v1/conversations/${id}/items`, { items: toolTurn });
    expect(second.body.version).toBe(2);
    expect(second.body.data.map((i: { message: unknown }) => i.message)).toEqual(toolTurn);

    const seqs = (reply: Reply) => reply.body.data.map((i: { seq: number }) => i.seq);
    const newest = await call('GET', `/v1/conversations/${id}/items`);
    expect(seqs(newest)).toEqual([7, 6, 5, 4, 3, 2, 1]);
    let page = await call('GET', `/v1/conversations/${id}/items?order=asc&limit=3`);
    expect(seqs(page)).toEqual([1, 2, 3]);
    expect(page.body.has_more).toBe(true);
    page = await call('GET', `/v1/conversations/${id}/items?order=asc&limit=3&after=${page.body.last_id}`);
    expect(seqs(page)).toEqual([4, 5, 6]);
    expect(page.body.has_more).toBe(true);
    page = await call('GET', `/v1/conversations/${id}/items?order=asc&limit=3&after=${page.body.last_id}`);
    expect(seqs(page)).toEqual([7]);
    expect(page.body.has_more).toBe(false);
    page = await call('GET', `/v1/conversations/${id}/items?order=desc&limit=4&after=5`);
    expect(seqs(page)).toEqual([4, 3, 2, 1]);
    expect(page.body.has_more).toBe(false);
    expectError(await call('GET', `/v1/conversations/${id}/items?after=item_nope`), 400, { param: 'after' });
  });

  it('answers a stale expected_version with 409 conversation_version_conflict and writes nothing', async () => {
    const id = await conversation();
    const ok = await call('POST', `/v1/conversations/${id}/items`, { items: [user('one')], expected_version: 0 });
    expect(ok.body.version).toBe(1);
    const stale = await call('POST', `/v1/conversations/${id}/items`, {
      items: [user('two'), assistant('three')],
      expected_version: 0,
    });
    expectError(stale, 409, { type: 'invalid_request_error', code: 'conversation_version_conflict' });
    const items = await call('GET', `/v1/conversations/${id}/items`);
    expect(items.body.data.map((i: { message: unknown }) => i.message)).toEqual([user('one')]);
    expect((await call('GET', `/v1/conversations/${id}`)).body.version).toBe(1);
    const next = await call('POST', `/v1/conversations/${id}/items`, { items: [user('two')], expected_version: 1 });
    expect(next.status).toBe(200);
    expect(next.body.version).toBe(2);
  });

  it('refuses bad input with 400 in OpenAI shape, naming the field, and creates nothing', async () => {
    const id = await conversation();
    const post = (body: unknown) => call('POST', `/v1/conversations/${id}/items`, body);
    expectError(await post({ items: [user('ok'), { role: 'wizard', content: 'x' }] }), 400, {
      type: 'invalid_request_error',
      param: 'items[1].role',
    });
    expectError(await post({ items: [user('ok'), 'text'] }), 400, { param: 'items[1]' });
    expectError(await post({ items: [{ role: 'user' }] }), 400, { param: 'items[0].content' });
    expectError(await post({ items: [{ role: 'tool', content: 'x' }] }), 400, { param: 'items[0].tool_call_id' });
    expectError(await post({ items: [{ role: 'user', content: 5 }] }), 400, { param: 'items[0].content' });
    expectError(await post({ items: [] }), 400, { param: 'items' });
    expectError(await post({ items: user('x') }), 400, { param: 'items' });
    expectError(await post({}), 400, { param: 'items' });
    expectError(await post({ items: [user('x')], expected_version: -1 }), 400, { param: 'expected_version' });
    expectError(await post({ items: [user('x')], expected_version: '1' }), 400, { param: 'expected_version' });
    expectError(await post({ items: [user('x')], expectedVersion: 0 }), 400, { param: 'expectedVersion' });
    expectError(await post('{"items": ['), 400, { type: 'invalid_request_error' });
    expectError(await post('[]'), 400, { type: 'invalid_request_error' });
    for (const query of ['limit=0', 'limit=101', 'limit=abc', 'limit=1.5', 'limit=']) {
      expectError(await call('GET', `/v1/conversations/${id}/items?${query}`), 400, { param: 'limit' });
      expectError(await call('GET', `/v1/conversations?${query}`), 400, { param: 'limit' });
    }
    expectError(await call('GET', `/v1/conversations/${id}/items?order=up`), 400, { param: 'order' });
    expect((await call('GET', `/v1/conversations/${id}/items?limit=100`)).status).toBe(200);
    expect((await call('GET', `/v1/conversations/${id}`)).body.version).toBe(0);

    const create = (body: unknown) => call('POST', '/v1/conversations', body, 'dave');
    expectError(await create({ metadata: { a: 1 } }), 400, { param: 'metadata.a' });
    expectError(await create({ metadata: ['a'] }), 400, { param: 'metadata' });
    const many = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v']));
    expectError(await create({ metadata: many }), 400, { param: 'metadata' });
    expectError(await create({ metadata: { a: 'x'.repeat(513) } }), 400, { param: 'metadata.a' });
    expectError(await create({ items: [user('ok'), { role: 'nobody', content: 'x' }] }), 400, {
      param: 'items[1].role',
    });
    expectError(await create({ title: 'x' }), 400, { param: 'title' });
    expect((await call('GET', '/v1/conversations', undefined, 'dave')).body.data).toEqual([]);
  });

  it('refuses a body over the limit with 413', async () => {
    const id = await conversation();
    const reply = await call('POST', `/v1/conversations/${id}/items`, {
      items: [user('x'.repeat(MAX_BODY_BYTES))],
    });
    expectError(reply, 413, {});
    expect((await call('GET', `/v1/conversations/${id}`)).body.version).toBe(0);
  });

  it('leaves other paths to the caller; unknown sub-paths are 404, other methods 405', async () => {
    for (const path of ['/v1/conversationsx', '/v1/chat/completions', '/v1/conversation']) {
      expect((await fetch(`${base}${path}`)).status).toBe(418);
    }
    const id = await conversation();
    for (const path of ['/v1/conversations/', `/v1/conversations/${id}/nope`, `/v1/conversations/${id}/items/x`]) {
      expectError(await call('GET', path), 404, { type: 'invalid_request_error' });
    }
    const put = await call('PUT', `/v1/conversations/${id}`, {});
    expectError(put, 405, { type: 'invalid_request_error' });
    expect(put.headers.get('allow')).toBe('GET, DELETE');
    expect((await call('PATCH', '/v1/conversations')).headers.get('allow')).toBe('GET, POST');
    expect((await call('DELETE', `/v1/conversations/${id}/items`)).status).toBe(405);
  });

  it('30 concurrent POSTs of items: 30 versions, 60 items in order, none lost, duplicated or interleaved', async () => {
    const id = await conversation();
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        call('POST', `/v1/conversations/${id}/items`, { items: [user(`q${i}`), assistant(`a${i}`)] }),
      ),
    );
    expect(replies.map((r) => r.status)).toEqual(Array.from({ length: 30 }, () => 200));
    expect(replies.map((r) => r.body.version as number).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
    const all = await call('GET', `/v1/conversations/${id}/items?order=asc&limit=100`);
    const items = all.body.data as { id: string; seq: number; message: { content: string } }[];
    expect(items.map((i) => i.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    const contents = items.map((i) => i.message.content);
    expect(new Set(contents).size).toBe(60);
    for (let i = 0; i < 30; i += 1) {
      // Each request's pair is adjacent, and where its reply said it was.
      const at = contents.indexOf(`q${i}`);
      expect(contents[at + 1]).toBe(`a${i}`);
      expect(replies[i]?.body.data.map((item: { id: string }) => item.id)).toEqual([items[at]?.id, items[at + 1]?.id]);
    }
    expect((await call('GET', `/v1/conversations/${id}`)).body.version).toBe(30);
  });
});

describe.each(STORES)('withConversation (%s store)', (_name, open) => {
  let store: Store;
  beforeEach(() => {
    store = open();
  });
  afterEach(async () => {
    await store.close();
  });

  const alice = principal('alice');
  const user = (content: string): ChatMessage => ({ role: 'user', content });
  const assistant = (content: string): ChatMessage => ({ role: 'assistant', content });

  async function caught(run: () => Promise<unknown>): Promise<McplexError> {
    const error = await run().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(McplexError);
    return error as McplexError;
  }

  it('reads the history and commits the turn with its reply in one append', async () => {
    const { id } = await store.conversations.create('alice', {});
    await store.conversations.append(id, [{ role: 'system', content: 's' }, user('q1'), assistant('a1')]);
    const turn = await withConversation(store.conversations, alice, id, [user('q2')]);
    expect(turn.version).toBe(1);
    expect(turn.history).toEqual([{ role: 'system', content: 's' }, user('q1'), assistant('a1')]);
    expect(turn.messages).toEqual([...turn.history, user('q2')]);
    expect(await turn.commit([assistant('a2')])).toBe(2);
    const items = await store.conversations.items(id, { limit: 10, order: 'asc' });
    expect(items.map((i) => i.message.content)).toEqual(['s', 'q1', 'a1', 'q2', 'a2']);
    const next = await withConversation(store.conversations, alice, id, [user('q3')], { expectedVersion: 2 });
    expect(next.history).toHaveLength(5);
  });

  it('reads a history longer than one page', async () => {
    const { id } = await store.conversations.create('alice', {});
    for (let i = 0; i < 3; i += 1) {
      await store.conversations.append(
        id,
        Array.from({ length: 700 }, (_, j) => user(`m${i * 700 + j}`)),
      );
    }
    const turn = await withConversation(store.conversations, alice, id, [user('next')]);
    expect(turn.history.map((m) => m.content)).toEqual(Array.from({ length: 2100 }, (_, i) => `m${i}`));
    expect(turn.version).toBe(3);
  });

  it('a commit after someone else appended fails with 409 CONVERSATION_CONFLICT and writes nothing', async () => {
    const { id } = await store.conversations.create('alice', {});
    const turn = await withConversation(store.conversations, alice, id, [user('mine')]);
    const other = await withConversation(store.conversations, alice, id, [user('theirs')]);
    expect(await other.commit([assistant('for them')])).toBe(1);
    const error = await caught(() => turn.commit([assistant('for me')]));
    expect(error.code).toBe('CONVERSATION_CONFLICT');
    expect(error.status).toBe(409);
    expect(error.data).toMatchObject({ code: 'conversation_version_conflict' });
    const items = await store.conversations.items(id, { limit: 10, order: 'asc' });
    expect(items.map((i) => i.message.content)).toEqual(['theirs', 'for them']);
  });

  it('of many turns read at once, exactly one commits', async () => {
    const { id } = await store.conversations.create('alice', {});
    const turns = await Promise.all(
      Array.from({ length: 10 }, (_, i) => withConversation(store.conversations, alice, id, [user(`q${i}`)])),
    );
    const settled = await Promise.allSettled(turns.map((turn, i) => turn.commit([assistant(`a${i}`)])));
    expect(settled.filter((s) => s.status === 'fulfilled')).toHaveLength(1);
    for (const s of settled.filter((s) => s.status === 'rejected')) {
      expect(s.reason).toMatchObject({ code: 'CONVERSATION_CONFLICT', status: 409 });
    }
    expect(await store.conversations.items(id, { limit: 10, order: 'asc' })).toHaveLength(2);
  });

  it('an expected version the conversation has passed fails at once with 409', async () => {
    const { id } = await store.conversations.create('alice', {});
    await store.conversations.append(id, [user('q')]);
    const error = await caught(() =>
      withConversation(store.conversations, alice, id, [user('x')], { expectedVersion: 0 }),
    );
    expect(error).toMatchObject({ code: 'CONVERSATION_CONFLICT', status: 409 });
    expect(error.data).toMatchObject({ code: 'conversation_version_conflict', param: 'conversation_version' });
  });

  it("an unknown conversation, or someone else's, is 404 NOT_FOUND", async () => {
    const { id } = await store.conversations.create('bob', {});
    for (const conversationId of [id, 'conv_unknown']) {
      const error = await caught(() => withConversation(store.conversations, alice, conversationId, [user('x')]));
      expect(error).toMatchObject({ code: 'NOT_FOUND', status: 404 });
      expect(error.data).toMatchObject({ param: 'conversation' });
    }
  });

  it('a conversation deleted before the commit is 404 NOT_FOUND', async () => {
    const { id } = await store.conversations.create('alice', {});
    const turn = await withConversation(store.conversations, alice, id, [user('x')]);
    await store.conversations.delete(id);
    expect(await caught(() => turn.commit([assistant('y')]))).toMatchObject({ code: 'NOT_FOUND', status: 404 });
  });

  it('refuses bad new messages with 400 before reading anything', async () => {
    const { id } = await store.conversations.create('alice', {});
    const bad = [{ role: 'wizard', content: 'x' }] as unknown as ChatMessage[];
    expect(await caught(() => withConversation(store.conversations, alice, id, bad))).toMatchObject({
      code: 'LLM_BAD_REQUEST',
      status: 400,
      data: { param: 'messages[0].role' },
    });
    expect(await caught(() => withConversation(store.conversations, alice, id, []))).toMatchObject({ status: 400 });
    expect(
      await caught(() => withConversation(store.conversations, alice, id, [user('x')], { expectedVersion: -1 })),
    ).toMatchObject({ status: 400, data: { param: 'conversation_version' } });
  });
});
