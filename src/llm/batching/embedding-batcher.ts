// Micro-batching of embeddings: single inputs for the same model and options that arrive within a short window go
// upstream as one request, and each caller gets back its own vector and its share of the prompt tokens.

export interface EmbeddingBatch {
  /** One vector per input, in the order of the inputs (floats, or base64 under `encoding_format: base64`). */
  vectors: (number[] | string)[];
  promptTokens: number;
}

export interface EmbeddingBatcherOptions {
  /** How long the first input of a batch waits for company. 0 sends on the next turn of the event loop. */
  windowMs: number;
  /** The most inputs in one upstream request; a batch that reaches it is sent at once. */
  maxInputs: number;
  /** The upstream call: `extra` is the request's other fields (dimensions, encoding_format, …), `user` removed. */
  send: (model: string, inputs: string[], extra: Record<string, unknown>) => Promise<EmbeddingBatch>;
}

export interface EmbeddedInput {
  vector: number[] | string;
  /** This input's share of the batch's prompt tokens. */
  promptTokens: number;
}

export interface EmbeddingBatcher {
  /**
   * Embeds one input, batched with others for the same model and `extra` (its `user` excepted: callers of
   * different users share batches, and no `user` goes upstream). Rejects with the error of the batch's send.
   */
  embed(model: string, input: string, extra: Record<string, unknown>): Promise<EmbeddedInput>;
  /** Sends every waiting batch now (for shutdown). */
  flush(): void;
  /** Inputs waiting for their window to close. */
  readonly pending: number;
}

interface Waiter {
  input: string;
  resolve: (value: EmbeddedInput) => void;
  reject: (error: unknown) => void;
}

interface Batch {
  group: string;
  model: string;
  extra: Record<string, unknown>;
  waiters: Waiter[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

export function createEmbeddingBatcher(options: EmbeddingBatcherOptions): EmbeddingBatcher {
  const { windowMs, send } = options;
  const maxInputs = Math.max(1, Math.floor(options.maxInputs));
  const open = new Map<string, Batch>();
  let pending = 0;

  function close(batch: Batch): void {
    if (open.get(batch.group) === batch) open.delete(batch.group);
    if (batch.timer !== undefined) clearTimeout(batch.timer);
    batch.timer = undefined;
    pending -= batch.waiters.length;
    for (let start = 0; start < batch.waiters.length; start += maxInputs) {
      dispatch(batch, batch.waiters.slice(start, start + maxInputs));
    }
  }

  function dispatch(batch: Batch, waiters: Waiter[]): void {
    const inputs = waiters.map((w) => w.input);
    let result: Promise<EmbeddingBatch>;
    try {
      result = send(batch.model, inputs, batch.extra);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      ({ vectors, promptTokens }) => {
        if (!Array.isArray(vectors) || vectors.length !== inputs.length) {
          const error = new Error(
            `the embeddings backend returned ${Array.isArray(vectors) ? vectors.length : 'no'} vectors for ${inputs.length} inputs`,
          );
          for (const w of waiters) w.reject(error);
          return;
        }
        const shares = apportion(promptTokens, inputs);
        for (let i = 0; i < waiters.length; i++) {
          waiters[i]!.resolve({ vector: vectors[i]!, promptTokens: shares[i]! });
        }
      },
      (error: unknown) => {
        for (const w of waiters) w.reject(error);
      },
    );
  }

  return {
    embed(model, input, extra) {
      return new Promise<EmbeddedInput>((resolve, reject) => {
        const { user: _user, ...rest } = extra;
        const group = groupKey(model, rest);
        let batch = open.get(group);
        if (batch === undefined) {
          batch = { group, model, extra: rest, waiters: [], timer: undefined };
          open.set(group, batch);
          const opened = batch;
          // One timer per batch, not per input.
          batch.timer = setTimeout(() => close(opened), windowMs);
        }
        batch.waiters.push({ input, resolve, reject });
        pending++;
        if (batch.waiters.length >= maxInputs) close(batch);
      });
    },
    flush() {
      for (const batch of [...open.values()]) close(batch);
    },
    get pending() {
      return pending;
    },
  };
}

/**
 * The batch a request belongs to: its model and its other options. Keys are sorted at the top level (where
 * requests differ); nested values are compared as serialised, which at worst splits what could have been shared.
 */
function groupKey(model: string, extra: Record<string, unknown>): string {
  const names = Object.keys(extra).sort();
  let key = JSON.stringify(model);
  for (const name of names) {
    const value = extra[name];
    if (value !== undefined) key += `\u0000${name}=${JSON.stringify(value)}`;
  }
  return key;
}

/**
 * Splits `total` into integers summing to it, proportional to each input's length (largest remainder; ties go
 * to the earlier input). Inputs of no length all weigh the same.
 */
export function apportion(total: number, inputs: readonly string[]): number[] {
  const count = inputs.length;
  if (count === 0) return [];
  const whole = Math.max(0, Math.round(Number.isFinite(total) ? total : 0));
  let weightSum = 0;
  for (const input of inputs) weightSum += input.length;
  const weight = weightSum === 0 ? () => 1 : (i: number) => inputs[i]!.length;
  const sum = weightSum === 0 ? count : weightSum;
  const shares = new Array<number>(count);
  const remainders = new Array<number>(count);
  let given = 0;
  for (let i = 0; i < count; i++) {
    const exact = (whole * weight(i)) / sum;
    const floor = Math.floor(exact);
    shares[i] = floor;
    remainders[i] = exact - floor;
    given += floor;
  }
  let left = whole - given;
  if (left > 0) {
    const order = Array.from({ length: count }, (_, i) => i).sort((a, b) => remainders[b]! - remainders[a]! || a - b);
    for (let k = 0; left > 0; k = (k + 1) % count, left--) {
      const at = order[k]!;
      shares[at] = shares[at]! + 1;
    }
  }
  return shares;
}
