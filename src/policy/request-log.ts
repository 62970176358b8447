// The log of recent requests the console shows: entries gather in memory and reach the store about once a second, so
// the request path never waits for a write. It is best effort: what cannot be written is dropped, and counted.
import type { LoggedRequest, RequestLogEntry, RequestLogFilter, RequestLogStore } from '../store/store.js';

export interface RequestLogOptions {
  /** This replica's name, written with every entry. */
  replica: string;
  /** How many entries the store keeps (across replicas sharing it). Default 10,000. */
  keep?: number;
  /** How often pending entries are written. Default 1000 ms. */
  flushMs?: number;
  /** Most entries waiting for a write; past it the oldest are dropped. Default 2,000. */
  maxPending?: number;
}

export interface RequestLog {
  /** Queues one entry; never waits and never throws. */
  add(entry: Omit<RequestLogEntry, 'replica'>): void;
  /** Writes what is pending; a page read after it includes everything added before. Rejects when the write fails. */
  flush(): Promise<void>;
  /** The newest entries that match, newest first (RequestLogStore.page), after writing what is pending. */
  page(filter: RequestLogFilter, page: { limit: number; before?: number }): Promise<LoggedRequest[]>;
  /** Entries lost so far: pushed out of a full queue, or in a write that failed. */
  dropped(): number;
  /** Stops the timer and writes what is pending (a failure is dropped like any other). */
  close(): Promise<void>;
}

export function createRequestLog(store: RequestLogStore, options: RequestLogOptions): RequestLog {
  const keep = options.keep ?? 10_000;
  const flushMs = options.flushMs ?? 1000;
  const maxPending = options.maxPending ?? 2_000;
  if (!Number.isInteger(keep) || keep < 1) throw new RangeError(`keep must be a whole number ≥ 1, got ${keep}`);
  if (!Number.isFinite(flushMs) || flushMs <= 0) throw new RangeError(`flushMs must be a number > 0, got ${flushMs}`);
  if (!Number.isInteger(maxPending) || maxPending < 1) {
    throw new RangeError(`maxPending must be a whole number ≥ 1, got ${maxPending}`);
  }
  const { replica } = options;
  let pending: RequestLogEntry[] = [];
  let dropped = 0;
  // Writes run one after another, so ids follow the order entries were added in.
  let writing: Promise<void> = Promise.resolve();

  function flush(): Promise<void> {
    const batch = pending;
    if (batch.length === 0) return writing;
    pending = [];
    const written = writing.then(() =>
      store.appendMany(batch, keep).catch((error: unknown) => {
        // Kept for no retry: a log that waits for the store would grow without bound while it is away.
        dropped += batch.length;
        throw error;
      }),
    );
    // One failed write must not fail every later flush chained on it.
    writing = written.catch(() => {});
    return written;
  }

  const timer = setInterval(() => void flush().catch(() => {}), flushMs);
  timer.unref();

  return {
    add(entry) {
      if (pending.length >= maxPending) {
        pending.shift();
        dropped += 1;
      }
      pending.push({ ...entry, replica });
    },
    flush,
    async page(filter, page) {
      // A failed write is already counted; the entries the store does hold are still worth showing.
      await flush().catch(() => {});
      return store.page(filter, page);
    },
    dropped: () => dropped,
    async close() {
      clearInterval(timer);
      await flush().catch(() => {});
    },
  };
}
