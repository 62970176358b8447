// Whether PostgreSQL can be reached, as the store's callers and /readyz see it: a failure to reach the server (refused,
// reset, terminated by the server, a connect timeout) becomes McplexError STORE_UNAVAILABLE (503, the API's error
// shape) and marks the store unavailable until a query succeeds again; any other error is passed on as it is.
import { McplexError, errorMessage } from '../../errors.js';
import type { StoreHealth } from '../store.js';

/** Connection-level error codes: Node's socket errors and PostgreSQL's classes 08 (connection) and 57P (shutdown). */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND']);

export function isConnectionFailure(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === 'string' && (CONNECTION_CODES.has(code) || code.startsWith('08') || code.startsWith('57P'))) {
    return true;
  }
  const message = errorMessage(error);
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(
    message,
  );
}

export interface Availability {
  /** `error` as it should reach the caller, recording an outage when it is one. */
  fail(error: unknown): unknown;
  ok(): void;
  health(): StoreHealth;
}

export function createAvailability(what: string, now: () => number = Date.now): Availability {
  let health: StoreHealth = { state: 'ready', since: now() };
  return {
    fail(error) {
      if (error instanceof McplexError || !isConnectionFailure(error)) return error;
      const reason = errorMessage(error);
      if (health.state !== 'unavailable') health = { state: 'unavailable', lastError: reason, since: now() };
      return new McplexError('STORE_UNAVAILABLE', `${what} is unavailable: ${reason}`, { cause: error });
    },
    ok() {
      if (health.state !== 'ready') health = { state: 'ready', since: now() };
    },
    health: () => health,
  };
}
