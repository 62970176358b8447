import { afterEach, describe, expect, it, vi } from 'vitest';
import { apportion, createEmbeddingBatcher } from './embedding-batcher.js';
import type { EmbeddingBatch } from './embedding-batcher.js';

/** A vector that can only have come from this input. */
const vectorOf = (input: string) => [input.length, ...Array.from(input, (c) => c.charCodeAt(0))];

interface Sent {
  model: string;
  inputs: string[];
  extra: Record<string, unknown>;
}

function fakeSend(options: { fail?: (sent: Sent) => unknown } = {}) {
  const sent: Sent[] = [];
  const send = async (model: string, inputs: string[], extra: Record<string, unknown>): Promise<EmbeddingBatch> => {
    const call = { model, inputs, extra };
    sent.push(call);
    await Promise.resolve();
    const error = options.fail?.(call);
    if (error !== undefined) throw error;
    return { vectors: inputs.map(vectorOf), promptTokens: inputs.reduce((n, input) => n + input.length, 0) };
  };
  return { sent, send };
}

describe('createEmbeddingBatcher', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends 200 concurrent single inputs in ceil(200/64) batches, each caller getting its own vector', async () => {
    const { sent, send } = fakeSend();
    const batcher = createEmbeddingBatcher({ windowMs: 5, maxInputs: 64, send });
    const inputs = Array.from({ length: 200 }, (_, i) => `text number ${i}`);
    const results = await Promise.all(inputs.map((input) => batcher.embed('emb', input, {})));
    expect(sent.length).toBeLessThanOrEqual(Math.ceil(200 / 64));
    expect(sent.every((s) => s.inputs.length <= 64)).toBe(true);
    // In order: the batches, joined, are the inputs as they arrived.
    expect(sent.flatMap((s) => s.inputs)).toEqual(inputs);
    results.forEach((result, i) => expect(result.vector).toEqual(vectorOf(inputs[i]!)));
    // Each caller's token share is its input's length here (tokens = characters in the fake).
    results.forEach((result, i) => expect(result.promptTokens).toBe(inputs[i]!.length));
    expect(batcher.pending).toBe(0);
  });

  it('never puts different models, or different options, in one batch; `user` does not split and is not sent', async () => {
    const { sent, send } = fakeSend();
    const batcher = createEmbeddingBatcher({ windowMs: 5, maxInputs: 64, send });
    const results = await Promise.all([
      batcher.embed('a', 'one', { user: 'u1' }),
      batcher.embed('b', 'two', {}),
      batcher.embed('a', 'three', { user: 'u2' }),
      batcher.embed('a', 'four', { dimensions: 8 }),
      batcher.embed('a', 'five', { encoding_format: 'float', dimensions: 8 }),
      batcher.embed('a', 'six', { dimensions: 8, encoding_format: 'float' }),
    ]);
    const batches = sent.map((s) => ({ model: s.model, inputs: s.inputs, extra: s.extra }));
    expect(batches).toHaveLength(4);
    expect(batches).toContainEqual({ model: 'a', inputs: ['one', 'three'], extra: {} });
    expect(batches).toContainEqual({ model: 'b', inputs: ['two'], extra: {} });
    expect(batches).toContainEqual({ model: 'a', inputs: ['four'], extra: { dimensions: 8 } });
    expect(batches).toContainEqual({
      model: 'a',
      inputs: ['five', 'six'],
      extra: { encoding_format: 'float', dimensions: 8 },
    });
    expect(results.map((r) => r.vector)).toEqual(['one', 'two', 'three', 'four', 'five', 'six'].map(vectorOf));
  });

  it('rejects every caller of a failed send with its error, and only them', async () => {
    const boom = new Error('backend down');
    const { send } = fakeSend({ fail: (s) => (s.model === 'bad' ? boom : undefined) });
    const batcher = createEmbeddingBatcher({ windowMs: 5, maxInputs: 64, send });
    const bad = [batcher.embed('bad', 'x', {}), batcher.embed('bad', 'y', {})];
    const good = batcher.embed('good', 'z', {});
    for (const result of await Promise.allSettled(bad)) {
      expect(result).toEqual({ status: 'rejected', reason: boom });
    }
    await expect(good).resolves.toEqual({ vector: vectorOf('z'), promptTokens: 1 });
  });

  it('rejects when send throws synchronously or returns the wrong number of vectors', async () => {
    const throwing = createEmbeddingBatcher({
      windowMs: 0,
      maxInputs: 8,
      send: () => {
        throw new Error('sync');
      },
    });
    await expect(throwing.embed('m', 'x', {})).rejects.toThrow('sync');
    const short = createEmbeddingBatcher({
      windowMs: 0,
      maxInputs: 8,
      send: async () => ({ vectors: [[1]], promptTokens: 2 }),
    });
    const results = await Promise.allSettled([short.embed('m', 'x', {}), short.embed('m', 'y', {})]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });

  it('sends a lone request once the window has passed, not before', async () => {
    vi.useFakeTimers();
    const { sent, send } = fakeSend();
    const batcher = createEmbeddingBatcher({ windowMs: 50, maxInputs: 64, send });
    const result = batcher.embed('m', 'alone', {});
    await vi.advanceTimersByTimeAsync(49);
    expect(sent).toHaveLength(0);
    expect(batcher.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sent).toHaveLength(1);
    await expect(result).resolves.toEqual({ vector: vectorOf('alone'), promptTokens: 5 });
  });

  it('sends a full batch at once, without waiting for the window, with one timer per batch', async () => {
    vi.useFakeTimers();
    const { sent, send } = fakeSend();
    const batcher = createEmbeddingBatcher({ windowMs: 1000, maxInputs: 4, send });
    const results = ['a', 'b', 'c', 'd', 'e'].map((input) => batcher.embed('m', input, {}));
    expect(vi.getTimerCount()).toBe(1); // The first batch's timer went with it; the second batch has one.
    await vi.advanceTimersByTimeAsync(0);
    expect(sent.map((s) => s.inputs)).toEqual([['a', 'b', 'c', 'd']]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent.map((s) => s.inputs)).toEqual([['a', 'b', 'c', 'd'], ['e']]);
    expect((await Promise.all(results)).map((r) => r.vector)).toEqual(['a', 'b', 'c', 'd', 'e'].map(vectorOf));
  });

  it('flush sends what is waiting', async () => {
    vi.useFakeTimers();
    const { sent, send } = fakeSend();
    const batcher = createEmbeddingBatcher({ windowMs: 60_000, maxInputs: 64, send });
    const result = batcher.embed('m', 'x', {});
    batcher.flush();
    expect(sent).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
    await expect(result).resolves.toMatchObject({ vector: vectorOf('x') });
  });

  it('gives each caller a whole share of the batch tokens, summing to the total', async () => {
    const batcher = createEmbeddingBatcher({
      windowMs: 1,
      maxInputs: 64,
      send: async (_model, inputs) => ({ vectors: inputs.map(() => 'AAAA'), promptTokens: 10 }),
    });
    const results = await Promise.all(['a', 'bb', 'ccc'].map((input) => batcher.embed('m', input, {})));
    expect(results.map((r) => r.promptTokens)).toEqual([2, 3, 5]);
    expect(results.map((r) => r.vector)).toEqual(['AAAA', 'AAAA', 'AAAA']);
  });
});

describe('apportion', () => {
  it('splits proportionally to length into integers that sum to the total', () => {
    expect(apportion(10, ['a', 'bb', 'ccc'])).toEqual([2, 3, 5]); // 1.67, 3.33, 5 → remainder to the largest fraction
    expect(apportion(7, ['aa', 'aa', 'aa'])).toEqual([3, 2, 2]);
    expect(apportion(0, ['a', 'b'])).toEqual([0, 0]);
    expect(apportion(5, ['', ''])).toEqual([3, 2]);
    expect(apportion(3, [])).toEqual([]);
    for (let total = 0; total < 50; total++) {
      const shares = apportion(total, ['x', 'yy', 'zzzzz', 'w'.repeat(11)]);
      expect(shares.reduce((a, b) => a + b, 0)).toBe(total);
      expect(shares.every((s) => Number.isInteger(s) && s >= 0)).toBe(true);
    }
  });
});
