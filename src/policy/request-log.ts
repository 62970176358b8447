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

/** The most characters of a text field the log keeps. */
export const MAX_LOGGED_TEXT = 256;

const clip = (text: string): string =>
  text.length > MAX_LOGGED_TEXT ? `${text.slice(0, MAX_LOGGED_TEXT - 1)}…` : text;

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
  // One write at a time (ids then follow the order entries were added in); a tick that finds one in progress
  // leaves the entries pending, where maxPending bounds them, so a store that hangs costs no more memory.
  let writing: Promise<void> | undefined;

  function write(): Promise<void> {
    const batch = pending;
    pending = [];
    const written = store.appendMany(batch, keep).catch((error: unknown) => {
      // Kept for no retry: a log that waits for the store would grow without bound while it is away.
      dropped += batch.length;
      throw error;
    });
    writing = written.then(
      () => {
        writing = undefined;
      },
      () => {
        writing = undefined;
      },
    );
    return written;
  }

  async function flush(): Promise<void> {
    while (writing) await writing;
    if (pending.length > 0) await write();
  }

  const timer = setInterval(() => {
    if (!writing && pending.length > 0) void write().catch(() => {});
  }, flushMs);
  timer.unref();

  return {
    add(entry) {
      if (pending.length >= maxPending) {
        // The newest are kept; half the queue goes at once, so that a full queue costs one copy per half of it
        // rather than a shift per entry.
        const cut = Math.ceil(maxPending / 2);
        pending = pending.slice(cut);
        dropped += cut;
      }
      pending.push({
        ...entry,
        // A model name or a resource URI is the client's text: the log keeps no more of it than a page shows.
        route: clip(entry.route),
        target: clip(entry.target),
        status: clip(entry.status),
        subject: entry.subject === null ? null : clip(entry.subject),
        replica,
      });
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
