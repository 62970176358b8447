// The coordination port: what replicas of mcplex need to act together beyond the store's records, in two small
// parts, messages on topics (publish/subscribe) and counting leases that expire. Everything is keyed by strings
// and carries strings, nothing relies on sharing an object, and time is the implementation's own clock, so a
// network implementation (Redis, PostgreSQL) can meet the same contract (coordination-contract.ts).

/** Stops one subscription; harmless when called again. */
export type Unsubscribe = () => Promise<void>;

/**
 * Messages on named topics, at most once: a subscriber gets what is published after its subscription is live,
 * possibly later than `publish` resolves (over a network) and never what was published while it was away. Anything
 * that must not be lost needs a record in the store, with a message only as the wake-up.
 */
export interface PubSub {
  /** Sends `message` to every live subscriber of `topic` (none is fine). */
  publish(topic: string, message: string): Promise<void>;
  /**
   * Calls `handler` with each message published on `topic` from the moment the returned promise resolves. A handler
   * that throws does not stop delivery to the others.
   */
  subscribe(topic: string, handler: (message: string) => void): Promise<Unsubscribe>;
}

/** One of at most `limit` slots under a key, held until released or until it expires. */
export interface Lease {
  readonly key: string;
  /** Unique among the leases of every key; what a network implementation stores. */
  readonly id: string;
  /**
   * Moves the expiry to a full ttl from now. False when the lease had already expired or was released: it counted
   * for nothing since, and its slot may be someone else's.
   */
  renew(): Promise<boolean>;
  /** Gives the slot back; harmless when called again or after the lease expired. */
  release(): Promise<void>;
}

/**
 * Counting leases: at most `limit` live leases per key, each expiring `ttlMs` after it was taken or last renewed,
 * so that a holder that dies (a replica killed mid-request) frees its slot within the ttl without releasing it.
 */
export interface Leases {
  /**
   * A new lease on `key`, or undefined when `limit` live leases on it are held already (a `limit` ≤ 0 admits none).
   * A `ttlMs` that is not positive is a RangeError.
   */
  acquire(key: string, limit: number, ttlMs: number): Promise<Lease | undefined>;
  /** How many live leases `key` has. */
  count(key: string): Promise<number>;
}

export interface Coordination extends PubSub, Leases {
  /** Stops delivery to every subscriber and drops this instance's connections; leases left are left to expire. */
  close(): Promise<void>;
}

/**
 * A subscription that lasts as long as its owner: when the coordination cannot subscribe now (Redis away at
 * start-up) it tries again every `retryMs` until it can. Messages published before then are missed, as with any
 * subscription that is not live yet. The returned function stops the subscription, or the trying.
 */
export function subscribeForGood(
  pubsub: PubSub,
  topic: string,
  handler: (message: string) => void,
  retryMs = 1000,
): Unsubscribe {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let unsubscribe: Unsubscribe | undefined;
  const attempt = () => {
    timer = undefined;
    pubsub.subscribe(topic, handler).then(
      (done) => {
        if (stopped) void done();
        else unsubscribe = done;
      },
      () => {
        if (!stopped) timer = setTimeout(attempt, retryMs).unref();
      },
    );
  };
  attempt();
  return async () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
    await unsubscribe?.();
  };
}
