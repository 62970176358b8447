// Usage accounting: requests and tokens per subject (API key or MCP server identity) and model. Counts gather in
// memory and reach the store once a second (and on close), so the request path never waits for a write.
import type { UsageFilter, UsageStore, UsageTotal } from '../store/store.js';

export interface UsageRecorder {
  add(subject: string, model: string, promptTokens: number, completionTokens: number): void;
  /** Writes what has gathered; totals read after it include everything added before. */
  flush(): Promise<void>;
  totals(filter?: UsageFilter): Promise<UsageTotal[]>;
  close(): Promise<void>;
}

export function createUsageRecorder(store: UsageStore, options: { flushMs?: number } = {}): UsageRecorder {
  let pending = new Map<
    string,
    { subject: string; model: string; requests: number; prompt: number; completion: number }
  >();
  let writing: Promise<void> = Promise.resolve();

  async function flush(): Promise<void> {
    const batch = pending;
    pending = new Map();
    const at = Date.now();
    writing = writing.then(() =>
      store.recordMany(
        [...batch.values()].map((entry) => ({
          subject: entry.subject,
          model: entry.model,
          requests: entry.requests,
          promptTokens: entry.prompt,
          completionTokens: entry.completion,
          at,
        })),
      ),
    );
    await writing;
  }

  const timer = setInterval(() => void flush().catch(() => {}), options.flushMs ?? 1000);
  timer.unref();

  return {
    add(subject, model, promptTokens, completionTokens) {
      const key = `${subject}\0${model}`;
      const entry = pending.get(key);
      if (entry) {
        entry.requests++;
        entry.prompt += promptTokens;
        entry.completion += completionTokens;
      } else pending.set(key, { subject, model, requests: 1, prompt: promptTokens, completion: completionTokens });
    },
    flush,
    async totals(filter) {
      await flush();
      return store.totals(filter);
    },
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
