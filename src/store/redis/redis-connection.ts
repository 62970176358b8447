// Redis connections that never make a request wait long while Redis is away: no offline queue, a command timeout,
// one retry per command, reconnection in the background; and every failure names the server without its password.
import { Redis } from 'ioredis';
import { redactUrl } from '../redact-url.js';
import { StoreError } from '../store.js';

export interface RedisConnectionOptions {
  /** How long a command may wait for its answer before it fails. Default 500 ms. */
  commandTimeoutMs?: number;
  /** How long opening the connection may take. Default 2000 ms. */
  connectTimeoutMs?: number;
  /** The longest pause between reconnection attempts (they back off exponentially up to it). Default 2000 ms. */
  maxReconnectDelayMs?: number;
  /**
   * false: a server that cannot be reached at first does not fail the open; the connection is returned unready,
   * its calls fail as UNAVAILABLE, and it keeps trying in the background. Default true.
   */
  requireConnection?: boolean;
}

/** One open connection and how to report what goes wrong on it. */
export interface RedisConnection {
  readonly redis: Redis;
  /** The server's URL with its password masked, for messages. */
  readonly where: string;
  /** A failed call as StoreError UNAVAILABLE, saying what was being done and why it failed, password masked. */
  failure(what: string, error: unknown): StoreError;
  /**
   * Runs one command with the command timeout, its failure reported as `failure(what, …)`. The deadline is kept
   * by one timer per connection rather than one per command (ioredis' own commandTimeout costs a timer each, about
   * half the client's CPU per command here).
   */
  call<T>(what: string, run: () => Promise<T>): Promise<T>;
  /** Why the connection is down, or undefined while it is up. */
  down(): string | undefined;
  /** Closes the connection (waiting for answers in flight when Redis is there); harmless when called again. */
  close(): Promise<void>;
}

/**
 * Opens a connection to `url` (`redis://` or `rediss://`) and waits until it is ready. Throws StoreError OPEN_FAILED
 * when the URL is not a Redis URL or the server cannot be reached in time; nothing is left running then.
 */
export async function connectRedis(url: string, options: RedisConnectionOptions = {}): Promise<RedisConnection> {
  const where = redactUrl(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new StoreError('OPEN_FAILED', `"${where}" is not a valid Redis URL (redis://host:port/db)`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new StoreError('OPEN_FAILED', `"${where}" is not a Redis URL: it must start with redis:// or rediss://`);
  }
  const secrets = [parsed.password, safeDecode(parsed.password)].filter((s) => s !== '');
  const mask = (text: string) => secrets.reduce((out, secret) => out.split(secret).join('***'), text);
  const maxDelay = options.maxReconnectDelayMs ?? 2000;
  const redis = new Redis(url, {
    lazyConnect: true,
    // Without these a call made while Redis is away waits for it to come back, and so does the request behind it.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    retryStrategy: (attempt) => Math.min(50 * 2 ** attempt, maxDelay),
  });
  // Why the connection is down, for the messages of the calls that fail meanwhile (ioredis' own only say "not
  // writeable"); listening also keeps ioredis from printing every failed reconnection attempt.
  let lastError: string | undefined;
  redis.on('error', (error: Error) => {
    lastError = mask(error.message);
  });
  redis.on('ready', () => {
    lastError = undefined;
  });
  let ready = false;
  redis.on('ready', () => (ready = true));
  redis.on('close', () => (ready = false));
  try {
    await redis.connect();
  } catch (error) {
    const reason = lastError ?? mask(messageOf(error));
    lastError = reason;
    if (options.requireConnection !== false) {
      redis.disconnect();
      throw new StoreError('OPEN_FAILED', `cannot connect to Redis at ${where}: ${reason}`, { cause: error });
    }
  }
  let closing: Promise<void> | undefined;
  const timeoutMs = options.commandTimeoutMs ?? 500;
  /** Commands waiting for their answer, with when they time out. */
  const pending = new Set<{ at: number; fail: (error: Error) => void }>();
  const watchdog = setInterval(
    () => {
      const now = Date.now();
      for (const entry of pending) {
        if (entry.at > now) continue;
        pending.delete(entry);
        entry.fail(new Error(`the command timed out after ${timeoutMs} ms`));
      }
    },
    Math.max(10, Math.floor(timeoutMs / 5)),
  ).unref();
  function failure(what: string, error: unknown): StoreError {
    if (error instanceof StoreError) return error;
    const reason = mask(messageOf(error));
    const down = lastError === undefined || reason.includes(lastError) ? '' : ` (${lastError})`;
    return new StoreError('UNAVAILABLE', `Redis at ${where} failed to ${what}: ${reason}${down}`, { cause: error });
  }
  return {
    redis,
    where,
    failure,
    call(what, run) {
      return new Promise((resolve, reject) => {
        const entry = { at: Date.now() + timeoutMs, fail: (error: Error) => reject(failure(what, error)) };
        pending.add(entry);
        let started: Promise<unknown>;
        try {
          started = run();
        } catch (error) {
          pending.delete(entry);
          reject(failure(what, error));
          return;
        }
        started.then(
          (value) => {
            if (pending.delete(entry)) resolve(value as never);
          },
          (error: unknown) => {
            if (pending.delete(entry)) reject(failure(what, error));
          },
        );
      });
    },
    down: () => (ready ? undefined : `Redis at ${where} is unreachable: ${lastError ?? 'not connected'}`),
    close() {
      clearInterval(watchdog);
      closing ??= redis.quit().then(
        () => undefined,
        () => redis.disconnect(),
      );
      return closing;
    },
  };
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
