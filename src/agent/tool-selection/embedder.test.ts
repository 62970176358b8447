import { createHash } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { createMemoryStore } from '../../store/memory/memory-store.js';
import type { CacheEntry, CacheStore } from '../../store/store.js';
import {
  createTextEmbedder,
  DEFAULT_EMBEDDING_MODEL,
  loadBundledEmbeddingModel,
  restartingModel,
  startEmbeddingWorker,
} from './embedder.js';
import type { EmbeddingModel, EmbeddingWorker } from './embedder.js';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const cosine = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0);
const norm = (v: number[]) => Math.hypot(...v);

/** A model whose vector of a text is its length and first character code (not normalised), recording each call. */
function fakeModel(): EmbeddingModel & { calls: string[][] } {
  const calls: string[][] = [];
  return {
    calls,
    async embed(texts) {
      calls.push([...texts]);
      await Promise.resolve();
      return texts.map((text) => [text.length, text.charCodeAt(0) || 0]);
    },
  };
}

describe('createTextEmbedder with the bundled model', () => {
  let model: EmbeddingModel;
  beforeAll(async () => {
    model = await loadBundledEmbeddingModel();
  });

  it('loads the model once per process', async () => {
    expect(await loadBundledEmbeddingModel()).toBe(model);
  });

  it('returns unit vectors that place texts by meaning', async () => {
    const embedder = createTextEmbedder({ loadModel: async () => model });
    const [forecast, rain, commit] = await embedder.embed([
      'get the weather forecast for a city',
      'will it rain in Bergen tomorrow?',
      'record changes to the git repository',
    ]);
    for (const vector of [forecast, rain, commit]) {
      expect(vector).toHaveLength(512);
      expect(norm(vector ?? [])).toBeCloseTo(1, 5);
    }
    expect(cosine(forecast ?? [], rain ?? [])).toBeGreaterThan(cosine(commit ?? [], rain ?? []));
  });

  it('computes off the event loop: the loop stays idle while a large batch is embedded', async () => {
    const embedder = createTextEmbedder({ loadModel: async () => model });
    const texts = Array.from({ length: 48 }, (_, i) => `tool number ${i} does task ${i * 7} on resource ${i * 13}`);
    const before = performance.eventLoopUtilization();
    const vectors = await embedder.embed(texts);
    const busy = performance.eventLoopUtilization(before).utilization;
    expect(vectors).toHaveLength(48);
    // On the event loop itself, the model would keep it busy nearly all along.
    expect(busy).toBeLessThan(0.5);
  });

  it('gives the same vector to the same text, alone or in a batch', async () => {
    const embedder = createTextEmbedder({ loadModel: async () => model, batchSize: 2 });
    const [alone] = await createTextEmbedder({ loadModel: async () => model }).embed(['read a file']);
    const batch = await embedder.embed(['write a file', 'list a directory', 'read a file']);
    expect(batch[2]?.length).toBe(512);
    batch[2]?.forEach((x, i) => expect(x).toBeCloseTo(alone?.[i] ?? NaN, 5));
  });
});

describe('createTextEmbedder', () => {
  it('does not load the model until the first text, and then only once', async () => {
    let loads = 0;
    const model = fakeModel();
    const embedder = createTextEmbedder({ loadModel: async () => (loads++, model) });
    expect(await embedder.embed([])).toEqual([]);
    expect(loads).toBe(0);
    await Promise.all([embedder.embed(['a']), embedder.embed(['b']), embedder.embed(['c'])]);
    expect(loads).toBe(1);
  });

  it('normalises the vectors and keeps the order of the texts', async () => {
    const embedder = createTextEmbedder({ loadModel: async () => fakeModel() });
    const vectors = await embedder.embed(['abc', 'a']);
    expect(vectors[0]?.[0]).toBeCloseTo(3 / Math.hypot(3, 97), 6);
    expect(vectors[1]?.[1]).toBeCloseTo(97 / Math.hypot(1, 97), 6);
    expect(vectors.map(norm).every((n) => Math.abs(n - 1) < 1e-6)).toBe(true);
  });

  it('sends the texts it has not seen in batches of batchSize, each distinct text once', async () => {
    const model = fakeModel();
    const embedder = createTextEmbedder({ loadModel: async () => model, batchSize: 16 });
    const texts = Array.from({ length: 40 }, (_, i) => `tool ${i}`);
    const vectors = await embedder.embed([...texts, 'tool 3', 'tool 3']);
    expect(model.calls.map((call) => call.length)).toEqual([16, 16, 8]);
    expect(model.calls.flat()).toEqual(texts);
    expect(vectors).toHaveLength(42);
    expect(vectors[41]).toEqual(vectors[3]);

    model.calls.length = 0;
    await embedder.embed(['tool 7', 'new one', 'tool 9']);
    expect(model.calls).toEqual([['new one']]);
  });

  it('shares one computation between concurrent callers asking for the same text', async () => {
    const model = fakeModel();
    const embedder = createTextEmbedder({ loadModel: async () => model });
    const [first, second] = await Promise.all([embedder.embed(['x', 'y']), embedder.embed(['y', 'z'])]);
    expect(model.calls.flat().sort()).toEqual(['x', 'y', 'z']);
    expect(second?.[0]).toEqual(first?.[1]);
  });

  it('stores each vector in the cache under toolemb:<model>:<sha256>, as JSON that lives ttlMs', async () => {
    const store = createMemoryStore();
    const embedder = createTextEmbedder({
      cache: store.cache,
      loadModel: async () => fakeModel(),
      ttlMs: 1000,
      now: () => 5000,
    });
    const [vector] = await embedder.embed(['read_file: Read a file']);
    const entry = await store.cache.get(`toolemb:${DEFAULT_EMBEDDING_MODEL}:${sha256('read_file: Read a file')}`, 5000);
    expect(entry).toMatchObject({ kind: 'json', createdAt: 5000, expiresAt: 6000 });
    const stored = JSON.parse(entry?.body ?? 'null') as number[];
    stored.forEach((x, i) => expect(x).toBeCloseTo(vector?.[i] ?? NaN, 7));
    await store.close();
  });

  it('reads vectors from the cache another embedder filled, calling the model only for new texts', async () => {
    const store = createMemoryStore();
    await createTextEmbedder({ cache: store.cache, loadModel: async () => fakeModel() }).embed(['a', 'bb']);
    const model = fakeModel();
    const embedder = createTextEmbedder({ cache: store.cache, loadModel: async () => model });
    const vectors = await embedder.embed(['bb', 'ccc', 'a']);
    expect(model.calls).toEqual([['ccc']]);
    expect(vectors[0]?.[0]).toBeCloseTo(2 / Math.hypot(2, 98), 6);
    await store.close();
  });

  it('keeps the vectors of different models apart in the cache', async () => {
    const store = createMemoryStore();
    await createTextEmbedder({ cache: store.cache, loadModel: async () => fakeModel(), model: 'one' }).embed(['a']);
    const model = fakeModel();
    await createTextEmbedder({ cache: store.cache, loadModel: async () => model, model: 'two' }).embed(['a']);
    expect(model.calls).toEqual([['a']]);
    await store.close();
  });

  it('recomputes a vector whose cache entry is not a vector', async () => {
    const store = createMemoryStore();
    const key = `toolemb:${DEFAULT_EMBEDDING_MODEL}:${sha256('a')}`;
    await store.cache.set(key, {
      body: '{"not":"a vector"}',
      kind: 'json',
      createdAt: 0,
      expiresAt: Date.now() + 60_000,
    });
    const model = fakeModel();
    const [vector] = await createTextEmbedder({ cache: store.cache, loadModel: async () => model }).embed(['a']);
    expect(model.calls).toEqual([['a']]);
    expect(vector).toHaveLength(2);
    await store.close();
  });

  it('still embeds when the cache store fails', async () => {
    const broken: CacheStore = {
      get: () => Promise.reject(new Error('disk I/O error')),
      set: (_key: string, _entry: CacheEntry) => Promise.reject(new Error('disk I/O error')),
      delete: () => Promise.resolve(),
      prune: () => Promise.resolve(0),
    };
    const vectors = await createTextEmbedder({ cache: broken, loadModel: async () => fakeModel() }).embed(['a']);
    expect(vectors).toHaveLength(1);
  });

  it('forgets the least recently used vectors past memoryEntries', async () => {
    const model = fakeModel();
    const embedder = createTextEmbedder({ loadModel: async () => model, memoryEntries: 2 });
    await embedder.embed(['a', 'b']);
    await embedder.embed(['a']);
    await embedder.embed(['c']);
    model.calls.length = 0;
    await embedder.embed(['a', 'b', 'c']);
    expect(model.calls).toEqual([['b']]);
  });

  it('rejects every call when the model fails to load, without loading it again', async () => {
    let loads = 0;
    const embedder = createTextEmbedder({
      loadModel: () => (loads++, Promise.reject(new Error('no weights'))),
    });
    await expect(embedder.embed(['a'])).rejects.toThrow('no weights');
    await expect(embedder.embed(['b'])).rejects.toThrow('no weights');
    expect(loads).toBe(1);
  });

  it('rejects when the model returns the wrong number of vectors, and recovers on the next call', async () => {
    let calls = 0;
    const embedder = createTextEmbedder({
      loadModel: async () => ({ embed: async (texts) => (calls++ === 0 ? [] : texts.map(() => [1, 0])) }),
    });
    await expect(embedder.embed(['a'])).rejects.toThrow('returned 0 vectors for 1 texts');
    expect(await embedder.embed(['a'])).toEqual([[1, 0]]);
  });

  it('refuses a batchSize or memoryEntries below 1', () => {
    expect(() => createTextEmbedder({ batchSize: 0 })).toThrow(RangeError);
    expect(() => createTextEmbedder({ memoryEntries: 0.5 })).toThrow(RangeError);
  });
});

describe('the embedding worker', () => {
  it('stops itself after its idle time, and the next call starts another that answers the same', async () => {
    const started: EmbeddingWorker[] = [];
    const model = await restartingModel(async () => {
      const worker = await startEmbeddingWorker({ idleMs: 300 });
      started.push(worker);
      return worker;
    });
    const [first] = await model.embed(['record changes to the git repository']);
    expect(started[0]!.stopped).toBe(false);
    for (let waited = 0; !started[0]!.stopped && waited < 10_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(started[0]!.stopped).toBe(true);
    const [again] = await model.embed(['record changes to the git repository']);
    expect(started).toHaveLength(2);
    expect(again!.length).toBe(first!.length);
    expect(again!.every((v, i) => Math.abs(v - first![i]!) < 1e-6)).toBe(true);
  }, 60_000);
});

describe('restartingModel', () => {
  /** Workers that answer with their own number, and can be stopped. */
  function workers() {
    const started: (EmbeddingWorker & { stop(): void })[] = [];
    const start = async () => {
      const number = started.length + 1;
      let stopped = false;
      const worker = {
        ask: async (texts: string[]) => {
          if (stopped) throw new Error('stopped');
          return texts.map(() => [number]);
        },
        get stopped() {
          return stopped;
        },
        stop: () => void (stopped = true),
      };
      started.push(worker);
      return worker;
    };
    return { started, start };
  }

  it('replaces a worker that stopped, once, however many calls arrive meanwhile', async () => {
    const { started, start } = workers();
    const model = await restartingModel(start);
    expect(await model.embed(['a'])).toEqual([[1]]);
    started[0]!.stop();
    const answers = await Promise.all([model.embed(['b']), model.embed(['c']), model.embed(['d'])]);
    expect(answers).toEqual([[[2]], [[2]], [[2]]]);
    expect(started).toHaveLength(2);
  });

  it('fails when the first worker cannot load, and starts no other', async () => {
    let starts = 0;
    const failing = async (): Promise<EmbeddingWorker> => {
      starts++;
      throw new Error('no model');
    };
    await expect(restartingModel(failing)).rejects.toThrow('no model');
    expect(starts).toBe(1);
  });
});
