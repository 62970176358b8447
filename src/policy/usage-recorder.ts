// Usage accounting: requests and tokens per subject (API key or MCP server identity) and model. Counts gather in
// memory and reach the store once a second (and on close), so the request path never waits for a write.
import type { UsageBucket, UsageFilter, UsageSeriesFilter, UsageStore, UsageTotal } from '../store/store.js';

export interface UsageRecorder {
  add(subject: string, model: string, promptTokens: number, completionTokens: number): void;
  /** Writes what has gathered; totals read after it include everything added before. */
  flush(): Promise<void>;
  totals(filter?: UsageFilter): Promise<UsageTotal[]>;
  /** Totals per time bucket (see UsageStore.series), including everything added before the call. */
  series(filter: UsageSeriesFilter): Promise<UsageBucket[]>;
  close(): Promise<void>;
}

export function createUsageRecorder(store: UsageStore, options: { flushMs?: number } = {}): UsageRecorder {
  let pending = new Map<
    string,
    { subject: string; model: string; requests: number; prompt: number; completion: number }
  >();
  let writing: Promise<void> = Promise.resolve();

  /** Adds counts to what is pending (new usage, or a batch that could not be written and waits for the next try). */
  function addPending(subject: string, model: string, requests: number, prompt: number, completion: number): void {
    const key = `${subject}\0${model}`;
    const entry = pending.get(key);
    if (entry) {
      entry.requests += requests;
      entry.prompt += prompt;
      entry.completion += completion;
    } else pending.set(key, { subject, model, requests, prompt, completion });
  }

  async function flush(): Promise<void> {
    const batch = pending;
    if (batch.size === 0) return writing;
    pending = new Map();
    const at = Date.now();
    writing = writing.then(async () => {
      try {
        await store.recordMany(
          [...batch.values()].map((entry) => ({
            subject: entry.subject,
            model: entry.model,
            requests: entry.requests,
            promptTokens: entry.prompt,
            completionTokens: entry.completion,
            at,
          })),
        );
      } catch (error) {
        // Nothing counted is lost while the store is away: the batch waits for the next flush, merged with what
        // arrives meanwhile (its time is then that flush's).
        for (const e of batch.values()) addPending(e.subject, e.model, e.requests, e.prompt, e.completion);
        throw error;
      }
    });
    const written = writing;
    // One failed write must not fail every later flush chained on it.
    writing = writing.catch(() => {});
    await written;
  }

  const timer = setInterval(() => void flush().catch(() => {}), options.flushMs ?? 1000);
  timer.unref();

  return {
    add(subject, model, promptTokens, completionTokens) {
      addPending(subject, model, 1, promptTokens, completionTokens);
    },
    flush,
    async totals(filter) {
      await flush();
      return store.totals(filter);
    },
    async series(filter) {
      await flush();
      return store.series(filter);
    },
    async close() {
      clearInterval(timer);
      // What cannot be written now (the store is away) is lost with the process; shutting down goes on.
      await flush().catch(() => {});
    },
  };
}
