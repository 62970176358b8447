import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import type { CacheEntry, CacheStore } from '../../store/store.js';
import { createSseParser } from '../../wire/sse.js';
import { createResponseCache, fromSse, replayJson, replaySse, toSse } from './response-cache.js';

/** The smallest CacheStore: a map that honours expiry. */
function fakeStore(): CacheStore & { entries: Map<string, CacheEntry> } {
  const entries = new Map<string, CacheEntry>();
  return {
    entries,
    async get(key, now) {
      const entry = entries.get(key);
      return entry && entry.expiresAt > now ? entry : undefined;
    },
    async set(key, entry) {
      entries.set(key, entry);
    },
    async delete(key) {
      entries.delete(key);
    },
    async prune(now) {
      let count = 0;
      for (const [key, entry] of entries) {
        if (entry.expiresAt <= now) {
          entries.delete(key);
          count++;
        }
      }
      return count;
    },
  };
}

const textCompletion = {
  id: 'chatcmpl-1',
  object: 'chat.completion',
  created: 1700000000,
  model: 'gpt-test',
  choices: [
    {
      index: 0,
      message: { role: 'assistant', content: 'Hello, "world"!\nSecond line ✓', refusal: null },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: { prompt_tokens: 9, completion_tokens: 7, total_tokens: 16 },
  service_tier: 'default',
  system_fingerprint: 'fp_1',
};

const toolCompletion = {
  id: 'chatcmpl-2',
  object: 'chat.completion',
  created: 1700000001,
  model: 'gpt-test',
  choices: [
    {
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
        refusal: null,
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    },
  ],
  usage: { prompt_tokens: 20, completion_tokens: 12, total_tokens: 32 },
  system_fingerprint: 'fp_2',
};

const twoChoices = {
  id: 'chatcmpl-3',
  object: 'chat.completion',
  created: 1700000002,
  model: 'gpt-test',
  choices: [
    { index: 0, message: { role: 'assistant', content: 'one' }, finish_reason: 'stop' },
    { index: 1, message: { role: 'assistant', content: 'two, longer' }, finish_reason: 'length' },
  ],
  usage: { prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 },
};

function events(sse: string): unknown[] {
  return createSseParser()
    .push(sse)
    .map((e) => (e.data === '[DONE]' ? '[DONE]' : JSON.parse(e.data)));
}

describe('toSse / fromSse', () => {
  for (const [name, completion] of [
    ['text', textCompletion],
    ['tool calls', toolCompletion],
    ['n = 2 choices', twoChoices],
  ] as const) {
    it(`round-trips a chat.completion with ${name}`, () => {
      const sse = toSse(JSON.stringify(completion));
      expect(JSON.parse(fromSse(sse))).toEqual(completion);
    });
  }

  it('writes OpenAI chunks: role, content, finish, usage, [DONE]', () => {
    const list = events(toSse(JSON.stringify(textCompletion)));
    expect(list.at(-1)).toBe('[DONE]');
    const chunks = list.slice(0, -1) as Record<string, unknown>[];
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({
        id: 'chatcmpl-1',
        object: 'chat.completion.chunk',
        created: 1700000000,
        model: 'gpt-test',
        system_fingerprint: 'fp_1',
      });
    }
    expect(chunks[0]).toMatchObject({
      choices: [
        { index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null },
      ],
      usage: null,
    });
    expect(chunks[1]).toMatchObject({ choices: [{ delta: { content: textCompletion.choices[0]!.message.content } }] });
    expect(chunks.at(-2)).toMatchObject({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    expect(chunks.at(-1)).toEqual({
      id: 'chatcmpl-1',
      object: 'chat.completion.chunk',
      created: 1700000000,
      model: 'gpt-test',
      service_tier: 'default',
      system_fingerprint: 'fp_1',
      choices: [],
      usage: textCompletion.usage,
    });
  });

  it('streams tool calls as indexed deltas with id, name and arguments', () => {
    const chunks = events(toSse(JSON.stringify(toolCompletion))) as { choices?: { delta: unknown }[] }[];
    const toolDeltas = chunks.flatMap((c) =>
      (c.choices ?? []).map((choice) => choice.delta).filter((d) => (d as { tool_calls?: unknown }).tool_calls),
    );
    expect(toolDeltas).toEqual([
      { tool_calls: [{ index: 0, ...toolCompletion.choices[0]!.message.tool_calls[0] }] },
      { tool_calls: [{ index: 1, ...toolCompletion.choices[0]!.message.tool_calls[1] }] },
    ]);
  });

  it('leaves the usage out when asked, and has no usage: null then', () => {
    const sse = toSse(JSON.stringify(textCompletion), { includeUsage: false });
    expect(sse).not.toContain('"usage"');
    const back = JSON.parse(fromSse(sse)) as Record<string, unknown>;
    expect(back.usage).toBeUndefined();
    expect(back.choices).toEqual(textCompletion.choices);
  });

  it('joins a real, finely chunked OpenAI stream (interleaved choices, split arguments, logprobs)', () => {
    const env = '"id":"c","object":"chat.completion.chunk","created":5,"model":"m","system_fingerprint":"fp"';
    const lines = [
      `{${env},"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}`,
      `{${env},"choices":[{"index":1,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}`,
      `{${env},"choices":[{"index":0,"delta":{"content":"He"},"logprobs":{"content":[{"token":"He","logprob":-0.1}],"refusal":null},"finish_reason":null}],"usage":null}`,
      `{${env},"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\\"a\\""}}]},"logprobs":null,"finish_reason":null}],"usage":null}`,
      `{${env},"choices":[{"index":0,"delta":{"content":"llo"},"logprobs":{"content":[{"token":"llo","logprob":-0.2}],"refusal":null},"finish_reason":null}],"usage":null}`,
      `{${env},"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}`,
      `{${env},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}`,
      `{${env},"choices":[{"index":1,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}`,
      `{${env},"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`,
    ];
    const sse = `${lines.map((l) => `data: ${l}\n\n`).join(': keep-alive\n\n')}data: [DONE]\n\n`;
    expect(JSON.parse(fromSse(sse))).toEqual({
      id: 'c',
      object: 'chat.completion',
      created: 5,
      model: 'm',
      system_fingerprint: 'fp',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hello', refusal: null },
          logprobs: {
            content: [
              { token: 'He', logprob: -0.1 },
              { token: 'llo', logprob: -0.2 },
            ],
            refusal: null,
          },
          finish_reason: 'stop',
        },
        {
          index: 1,
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
          },
          logprobs: null,
          finish_reason: 'tool_calls',
        },
      ],
      usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    });
    // And back: the converted stream says the same.
    expect(JSON.parse(fromSse(toSse(fromSse(sse))))).toEqual(JSON.parse(fromSse(sse)));
  });

  it('round-trips refusals and unknown message fields', () => {
    const completion = {
      id: 'x',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: null, refusal: 'I cannot help with that.', annotations: [] },
          finish_reason: 'stop',
        },
      ],
    };
    expect(JSON.parse(fromSse(toSse(JSON.stringify(completion))))).toEqual(completion);
  });

  it('refuses what it cannot convert', () => {
    expect(() => toSse('{"object":"list","data":[]}')).toThrow();
    expect(() => toSse('not json')).toThrow();
    expect(() => fromSse('data: [DONE]\n\n')).toThrow();
    expect(() => fromSse('data: {"error":{"message":"boom"}}\n\n')).toThrow();
  });
});

describe('createResponseCache', () => {
  it('saves with the TTL and finds the entry until it expires', async () => {
    const store = fakeStore();
    let now = 1000;
    const cache = createResponseCache(store, { ttlMs: 500, now: () => now });
    await cache.save('k', '{"a":1}', 'json');
    expect(store.entries.get('k')).toEqual({ body: '{"a":1}', kind: 'json', createdAt: 1000, expiresAt: 1500 });
    expect(await cache.lookup('k')).toMatchObject({ body: '{"a":1}', kind: 'json' });
    now = 1500;
    expect(await cache.lookup('k')).toBeUndefined();
    expect(await cache.lookup('other')).toBeUndefined();
  });

  it('keeps only complete streams, and nothing too large', async () => {
    const store = fakeStore();
    const cache = createResponseCache(store, { ttlMs: 500, maxEntryBytes: 100 });
    await cache.save('broken', 'data: {"choices":[]}\n\n', 'sse');
    await cache.save('errored', 'data: {"choices":[]}\n\ndata: {"error":{"message":"x"}}\n\n', 'sse');
    await cache.save('big', `"${'é'.repeat(60)}"`, 'json');
    await cache.save('whole', 'data: {"choices":[]}\n\ndata: [DONE]\n\n', 'sse');
    expect([...store.entries.keys()]).toEqual(['whole']);
  });

  it('degrades to misses when the store fails', async () => {
    const errors: string[] = [];
    const failing: CacheStore = {
      get: () => Promise.reject(new Error('down')),
      set: () => Promise.reject(new Error('down')),
      delete: () => Promise.resolve(),
      prune: () => Promise.resolve(0),
    };
    const cache = createResponseCache(failing, { ttlMs: 500, onError: (_e, op) => errors.push(op) });
    expect(await cache.lookup('k')).toBeUndefined();
    await expect(cache.save('k', '{}', 'json')).resolves.toBeUndefined();
    expect(errors).toEqual(['lookup', 'save']);
  });
});

describe('replayJson / replaySse', () => {
  let close: (() => void) | undefined;
  afterEach(() => close?.());

  /** Serves one request with `handler` and returns what a client received. */
  async function serve(handler: (res: ServerResponse) => boolean) {
    const server = createServer((_req, res) => {
      if (!handler(res)) {
        res.writeHead(599);
        res.end();
      }
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    close = () => server.close();
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/`);
    return { status: response.status, headers: response.headers, text: await response.text() };
  }

  const jsonEntry: CacheEntry = { body: JSON.stringify(textCompletion), kind: 'json', createdAt: 0, expiresAt: 1 };
  const sseEntry: CacheEntry = {
    body: toSse(JSON.stringify(textCompletion)),
    kind: 'sse',
    createdAt: 0,
    expiresAt: 1,
  };

  it('replays a JSON entry as it was, marked as a hit', async () => {
    const got = await serve((res) => replayJson(res, jsonEntry, { 'x-request-id': 'r1' }));
    expect(got.status).toBe(200);
    expect(got.headers.get('content-type')).toBe('application/json');
    expect(got.headers.get('x-mcplex-cache')).toBe('hit');
    expect(got.headers.get('x-request-id')).toBe('r1');
    expect(got.text).toBe(jsonEntry.body);
  });

  it('answers a plain request from a saved stream', async () => {
    const got = await serve((res) => replayJson(res, sseEntry));
    expect(JSON.parse(got.text)).toEqual(textCompletion);
    expect(Number(got.headers.get('content-length'))).toBe(Buffer.byteLength(got.text));
  });

  it('answers a streamed request from a saved JSON answer, with usage only when asked', async () => {
    const withUsage = await serve((res) => replaySse(res, jsonEntry, {}, true));
    expect(withUsage.headers.get('content-type')).toBe('text/event-stream');
    expect(withUsage.headers.get('x-mcplex-cache')).toBe('hit');
    expect(withUsage.text).toBe(sseEntry.body);
    close?.();
    const without = await serve((res) => replaySse(res, jsonEntry));
    expect(without.text).not.toContain('"usage"');
    expect(JSON.parse(fromSse(without.text)).choices).toEqual(textCompletion.choices);
  });

  it('replays a saved stream byte for byte, or without its usage chunk when not asked for', async () => {
    const same = await serve((res) => replaySse(res, sseEntry, {}, true));
    expect(same.text).toBe(sseEntry.body);
    close?.();
    const stripped = await serve((res) => replaySse(res, sseEntry, {}, false));
    expect(stripped.text).not.toContain('"usage"');
    expect(stripped.text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  it('writes nothing and says so when an entry cannot be converted', async () => {
    const bad: CacheEntry = { body: '{"object":"list","data":[]}', kind: 'json', createdAt: 0, expiresAt: 1 };
    const got = await serve((res) => replaySse(res, bad));
    expect(got.status).toBe(599);
  });
});
