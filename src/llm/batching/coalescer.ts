// Request coalescing: identical requests in flight at the same time share one upstream call. The first (the
// leader) writes the upstream response into a Flight; the Flight hands the very same status, headers and chunks
// to every subscriber, replaying what was already written to those who join late, then relaying live.
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';

export type FlightChunk = string | Uint8Array;

export type FlightState = 'open' | 'ended' | 'failed';

/**
 * One upstream response broadcast to many waiters. Chunks are kept (by reference, never copied) for late joiners
 * until the flight is dropped; callbacks run synchronously inside head/write/end/fail and subscribe.
 */
export class Flight {
  status: number | undefined;
  headers: OutgoingHttpHeaders | undefined;
  state: FlightState = 'open';
  error: unknown;
  /** Every body chunk written so far, in order: the exact bytes each subscriber received. */
  readonly chunks: FlightChunk[] = [];
  private readonly subscribers = new Set<Subscriber>();
  private readonly doneListeners: (() => void)[] = [];
  private stakes = 0;
  private gone = false;
  private controller: AbortController | undefined;

  /**
   * True once every stake is gone while the flight was still open: every subscriber unsubscribed (clients
   * disconnected) and the leader released its hold. Nobody will read the answer: the upstream may be aborted.
   */
  get abandoned(): boolean {
    return this.gone;
  }

  /** Aborted when the flight is abandoned: hand it to the upstream request. */
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.gone && !this.controller.signal.aborted) this.controller.abort(abandonedError());
    return this.controller.signal;
  }

  get settled(): boolean {
    return this.state !== 'open';
  }

  /**
   * The body written so far as UTF-8 text, joined as bytes first so that a character split across two chunks
   * survives (for saving a finished answer in the cache; it copies, so it is not for the request path).
   */
  text(): string {
    if (this.chunks.every((chunk) => typeof chunk === 'string')) return this.chunks.join('');
    return Buffer.concat(this.chunks.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk))).toString(
      'utf8',
    );
  }

  /** The response's status and headers; once (later calls are ignored). */
  head(status: number, headers: OutgoingHttpHeaders = {}): void {
    if (this.state !== 'open' || this.status !== undefined) return;
    this.status = status;
    this.headers = headers;
    for (const s of this.subscribers) {
      try {
        s.onHead(status, headers);
      } catch {
        this.drop(s);
      }
    }
  }

  /** A body chunk, kept and relayed as is. Ignored after the flight settled. */
  write(chunk: FlightChunk): void {
    if (this.state !== 'open') return;
    if (this.status === undefined) this.head(200);
    this.chunks.push(chunk);
    for (const s of this.subscribers) {
      try {
        s.onChunk(chunk);
      } catch {
        this.drop(s);
      }
    }
  }

  /** The response is complete. */
  end(): void {
    if (this.state !== 'open') return;
    if (this.status === undefined) this.head(200);
    this.state = 'ended';
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    for (const s of subscribers) {
      try {
        s.onEnd();
      } catch {
        // One subscriber's trouble is not the others'.
      }
    }
    this.settle();
  }

  /** The response cannot be completed: subscribers learn it (before or after the head went out). */
  fail(error: unknown): void {
    if (this.state !== 'open') return;
    this.state = 'failed';
    this.error = error;
    const subscribers = [...this.subscribers];
    this.subscribers.clear();
    for (const s of subscribers) {
      try {
        s.onError(error);
      } catch {
        // One subscriber's trouble is not the others'.
      }
    }
    this.settle();
  }

  /**
   * Replays what was written so far (head, chunks, and the end or the failure when settled), then relays live.
   * A subscriber holds a stake in the flight until it unsubscribes (see `abandoned`); the returned function
   * unsubscribes, once, and is harmless after the flight settled.
   */
  subscribe(
    onHead: (status: number, headers: OutgoingHttpHeaders) => void,
    onChunk: (chunk: FlightChunk) => void,
    onEnd: () => void,
    onError: (error: unknown) => void,
  ): () => void {
    if (this.status !== undefined) onHead(this.status, this.headers ?? {});
    // Index loop: a chunk written by a callback during the replay is picked up too, in order.
    for (let i = 0; i < this.chunks.length; i++) onChunk(this.chunks[i]!);
    if (this.state === 'ended') {
      onEnd();
      return noop;
    }
    if (this.state === 'failed') {
      onError(this.error);
      return noop;
    }
    const subscriber: Subscriber = { onHead, onChunk, onEnd, onError, release: this.hold() };
    this.subscribers.add(subscriber);
    return () => this.drop(subscriber);
  }

  /**
   * A stake in the flight that is not a subscription: the leader takes one for its own client when it writes that
   * client's response itself. Returns the release, which works once.
   */
  hold(): () => void {
    this.stakes++;
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      if (--this.stakes === 0 && this.state === 'open') this.abandon();
    };
  }

  /**
   * Sends the flight to a client: its head (with `extraHeaders` on top), every chunk, then the end. A failure
   * before the head becomes a 502 OpenAI error; after it, the connection is cut (a half answer must not look
   * whole). The client disconnecting unsubscribes it, leaving the others be.
   */
  pipe(res: ServerResponse, extraHeaders?: OutgoingHttpHeaders): void {
    if (res.destroyed || res.writableEnded) return;
    let unsubscribe: (() => void) | undefined;
    let done = false;
    const onClose = () => {
      done = true;
      unsubscribe?.();
    };
    res.once('close', onClose);
    const finish = () => {
      done = true;
      res.off('close', onClose);
    };
    const unsub = this.subscribe(
      (status, headers) => {
        if (!res.headersSent) res.writeHead(status, extraHeaders ? { ...headers, ...extraHeaders } : headers);
      },
      (chunk) => {
        // Someone else may have ended this response (a timeout): writing after the end would emit an error.
        if (!res.writableEnded) res.write(chunk);
      },
      () => {
        finish();
        if (!res.writableEnded) res.end();
      },
      (error) => {
        finish();
        if (res.writableEnded) return;
        if (res.headersSent) {
          res.destroy();
          return;
        }
        const body = JSON.stringify({
          error: {
            message: `the shared upstream request failed: ${error instanceof Error ? error.message : String(error)}`,
            type: 'server_error',
            param: null,
            code: 'upstream_error',
          },
        });
        res.writeHead(502, {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          ...extraHeaders,
        });
        res.end(body);
      },
    );
    if (done) unsub();
    else unsubscribe = unsub;
  }

  /**
   * Runs once the flight ends, fails or is abandoned, whichever comes first (at once when one already happened):
   * the moment its key is free. Look at `state` and `abandoned` to tell which. Not a stake.
   */
  onDone(listener: () => void): void {
    if (this.state !== 'open' || this.gone) listener();
    else this.doneListeners.push(listener);
  }

  /** Unsubscribes; a subscriber whose callback threw is dropped too, so that one bad client cannot stop the rest. */
  private drop(subscriber: Subscriber): void {
    if (this.subscribers.delete(subscriber)) subscriber.release();
  }

  private settle(): void {
    for (const listener of this.doneListeners.splice(0)) listener();
  }

  private abandon(): void {
    this.gone = true;
    this.controller?.abort(abandonedError());
    // Nobody waits for the answer any more: a later request must not join a flight about to be cut.
    this.settle();
  }
}

interface Subscriber {
  onHead(status: number, headers: OutgoingHttpHeaders): void;
  onChunk(chunk: FlightChunk): void;
  onEnd(): void;
  onError(error: unknown): void;
  release(): void;
}

function noop(): void {}

function abandonedError(): Error {
  const error = new Error('every client of the coalesced request went away');
  error.name = 'AbortError';
  return error;
}

export interface Coalescer<K extends string = string> {
  /**
   * The flight for `key`: the open one when there is one (`leader: false`), else a new one from `start()`
   * (`leader: true`, and the caller must drive it to `end()` or `fail()`). The key is free again as soon as the
   * flight settles or is abandoned.
   */
  join(key: K, start: () => Flight): { flight: Flight; leader: boolean };
  /** The open flight for `key`, if any. */
  get(key: K): Flight | undefined;
  /** How many flights are open. */
  readonly size: number;
}

export function createFlight(): Flight {
  return new Flight();
}

export function createCoalescer<K extends string = string>(): Coalescer<K> {
  const flights = new Map<K, Flight>();
  return {
    join(key, start) {
      const open = flights.get(key);
      if (open !== undefined) return { flight: open, leader: false };
      const flight = start();
      if (flight.settled || flight.abandoned) return { flight, leader: true };
      flights.set(key, flight);
      flight.onDone(() => {
        if (flights.get(key) === flight) flights.delete(key);
      });
      return { flight, leader: true };
    },
    get: (key) => flights.get(key),
    get size() {
      return flights.size;
    },
  };
}
