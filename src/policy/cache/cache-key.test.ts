import { describe, expect, it } from 'vitest';
import { cacheKey, cacheable } from './cache-key.js';

const chat = (extra: Record<string, unknown> = {}) => ({
  model: 'gpt',
  messages: [{ role: 'user', content: 'hi' }],
  temperature: 0,
  ...extra,
});

describe('cacheKey', () => {
  it('is a SHA-256 hex digest', () => {
    expect(cacheKey('chat', chat(), '')).toMatch(/^[0-9a-f]{64}$/);
  });

  it('does not depend on key order, at any depth', () => {
    const a = { model: 'gpt', temperature: 0, messages: [{ role: 'user', content: 'hi' }], tools: [{ a: 1, b: 2 }] };
    const b = { tools: [{ b: 2, a: 1 }], messages: [{ content: 'hi', role: 'user' }], temperature: 0, model: 'gpt' };
    expect(cacheKey('chat', a, 'ns')).toBe(cacheKey('chat', b, 'ns'));
  });

  it('gives a streamed and a plain request for the same content the same key', () => {
    const plain = cacheKey('chat', chat(), 'ns');
    expect(cacheKey('chat', chat({ stream: true, stream_options: { include_usage: true } }), 'ns')).toBe(plain);
    expect(cacheKey('chat', chat({ stream: false }), 'ns')).toBe(plain);
  });

  it('ignores who asks and delivery options, and nulls at the top level', () => {
    const plain = cacheKey('chat', chat(), 'ns');
    const noisy = chat({
      user: 'u1',
      metadata: { a: 'b' },
      store: true,
      service_tier: 'flex',
      safety_identifier: 'x',
      prompt_cache_key: 'k',
      seed: null,
      n: null,
    });
    expect(cacheKey('chat', noisy, 'ns')).toBe(plain);
  });

  it('separates what changes the answer', () => {
    const plain = cacheKey('chat', chat(), 'ns');
    for (const change of [
      { model: 'other' },
      { messages: [{ role: 'user', content: 'hello' }] },
      { temperature: 0.1 },
      { seed: 1 },
      { n: 2 },
      { max_tokens: 5 },
      { tools: [] },
      { response_format: { type: 'json_object' } },
      { some_unknown_field: true },
    ]) {
      expect(cacheKey('chat', chat(change), 'ns'), JSON.stringify(change)).not.toBe(plain);
    }
  });

  it('separates namespaces and routes, without ambiguity at the seam', () => {
    const body = { model: 'e', input: 'x' };
    expect(cacheKey('embeddings', body, 'a')).not.toBe(cacheKey('embeddings', body, 'b'));
    expect(cacheKey('embeddings', body, 'a')).not.toBe(cacheKey('chat', body, 'a'));
    expect(cacheKey('chat', body, 'a:embeddings')).not.toBe(cacheKey('embeddings', body, 'a'));
  });

  it('tells apart values that a careless encoding would merge', () => {
    const key = (input: unknown) => cacheKey('embeddings', { model: 'e', input }, '');
    const values = [
      'ab',
      ['a', 'b'],
      ['ab'],
      ['a', '', 'b'],
      '1',
      1,
      true,
      'true',
      [null],
      [],
      {},
      { a: 'b' },
      ['a', 'b', 'c'],
      [['a'], 'b'],
      '\ud800',
      '\udc00',
      's1:a',
    ];
    expect(new Set(values.map(key)).size).toBe(values.length);
  });

  it('treats undefined like JSON does: left out of objects, null in arrays', () => {
    const body = (input: unknown) => ({ model: 'e', input, extra: { a: 1, b: undefined } });
    expect(cacheKey('embeddings', body([1, undefined]), '')).toBe(
      cacheKey('embeddings', { model: 'e', input: [1, null], extra: { a: 1 } }, ''),
    );
  });

  it('keeps array order', () => {
    expect(cacheKey('embeddings', { model: 'e', input: ['a', 'b'] }, '')).not.toBe(
      cacheKey('embeddings', { model: 'e', input: ['b', 'a'] }, ''),
    );
  });
});

describe('cacheable', () => {
  it('takes deterministic chat requests: temperature 0, or a seed', () => {
    expect(cacheable(chat(), {})).toBe('yes');
    expect(cacheable(chat({ temperature: 0.7 }), {})).toBe('no');
    expect(cacheable(chat({ temperature: undefined }), {})).toBe('no');
    expect(cacheable(chat({ temperature: 0.7, seed: 42 }), {})).toBe('yes');
    expect(cacheable(chat({ temperature: undefined, seed: 42 }), {})).toBe('yes');
  });

  it('never calls n > 1 at a temperature above 0 deterministic, seed or not', () => {
    expect(cacheable(chat({ temperature: 0.7, seed: 42, n: 2 }), {})).toBe('no');
    expect(cacheable(chat({ temperature: undefined, seed: 42, n: 3 }), {})).toBe('no');
    expect(cacheable(chat({ temperature: 0, n: 2 }), {})).toBe('yes');
    expect(cacheable(chat({ temperature: 0.7, n: 2 }), { 'x-mcplex-cache': 'force' })).toBe('yes');
  });

  it('takes every embeddings request', () => {
    expect(cacheable({ model: 'e', input: 'x' }, {})).toBe('yes');
    expect(cacheable({ model: 'e', input: 'x', temperature: 1 }, {}, 'embeddings')).toBe('yes');
  });

  it('lets the client force or bypass the cache', () => {
    expect(cacheable(chat({ temperature: 1 }), { 'x-mcplex-cache': 'force' })).toBe('yes');
    expect(cacheable(chat({ temperature: 1 }), { 'x-mcplex-cache': ' Force ' })).toBe('yes');
    expect(cacheable(chat(), { 'x-mcplex-cache': 'bypass' })).toBe('bypass');
    expect(cacheable({ model: 'e', input: 'x' }, { 'x-mcplex-cache': ['bypass'] })).toBe('bypass');
    expect(cacheable(chat(), { 'cache-control': 'no-cache' })).toBe('bypass');
    expect(cacheable(chat(), { 'cache-control': 'max-age=0, No-Store' })).toBe('bypass');
    expect(cacheable(chat(), { 'cache-control': 'max-age=60' })).toBe('yes');
    expect(cacheable(chat(), { 'x-mcplex-cache': 'unknown' })).toBe('yes');
  });

  it('lets x-mcplex-cache win over cache-control', () => {
    expect(cacheable(chat({ temperature: 1 }), { 'x-mcplex-cache': 'force', 'cache-control': 'no-cache' })).toBe('yes');
  });
});
