// The limits and the accounting of MCP calls that reach an upstream (tools/call, resources/read, prompts/get):
// a key's rpm and maxConcurrent count them as they count /v1 requests, a server's own limits protect it from
// every caller together, and each tool call is recorded in usage under `mcp:<server>/<tool>`.
import type { ServerResponse } from 'node:http';
import { addUpstreamTime } from '../../wire/upstream-time.js';
import { McplexError } from '../../errors.js';
import type { Principal } from '../auth/keys.js';
import type { UsageRecorder } from '../usage-recorder.js';
import type { Admission, RateLimiter } from './rate-limiter.js';

/** The MCP methods that reach an upstream, and so count against limits; lists and the rest are served locally. */
export const COUNTED_METHODS = ['tools/call', 'resources/read', 'prompts/get'] as const;
export type CountedMethod = (typeof COUNTED_METHODS)[number];

/** The usage "model" of a tool call: no LLM model may be named so (config/llm-schema.ts refuses the prefix). */
export const toolUsageName = (server: string, tool: string): string => `mcp:${server}/${tool}`;

export interface ServerCallLimits {
  /** Calls per minute to this server, from every caller together. */
  rpm?: number;
  /** Calls to this server in progress at once, from every caller together. */
  maxConcurrent?: number;
}

export interface McpCall {
  /** The upstream's key. */
  server: string;
  method: CountedMethod;
  /** The tool's or prompt's name, or the resource's URI, as the upstream knows it. */
  name: string;
}

export interface McpCallGuard {
  /**
   * Admits one call, or throws RATE_LIMITED saying which limit and when to come back. `keyLimits` is false for the
   * tool rounds of a tool-running chat: its model calls count against the key, and a round's tool calls, which
   * run together, would otherwise compete for the key's slots with each other.
   */
  admit(principal: Principal, call: McpCall, keyLimits?: boolean): Promise<McpCallTicket>;
}

/** A guard bound to one caller, as the aggregated server and the fast path hold it. */
export type AdmitCall = (call: McpCall) => Promise<McpCallTicket>;

/**
 * `admit` with each call's time at its upstream (admitted to done) noted against the HTTP response it answers, for
 * the overhead histogram.
 */
export function timedAdmit(admit: AdmitCall | undefined, res: ServerResponse): AdmitCall | undefined {
  if (admit === undefined) return undefined;
  return async (call) => {
    const ticket = await admit(call);
    const started = performance.now();
    return {
      done(outcome) {
        addUpstreamTime(res, performance.now() - started);
        ticket.done(outcome);
      },
    };
  };
}

/** Runs `run` once `admit` lets the call through, and ends the call's ticket when it settles. */
export async function admitted<T>(admit: AdmitCall | undefined, call: McpCall, run: () => Promise<T>): Promise<T> {
  if (admit === undefined) return run();
  const ticket = await admit(call);
  let outcome: 'ok' | 'error' | 'failed' = 'failed';
  try {
    const result = await run();
    outcome = (result as { isError?: unknown } | null)?.isError === true ? 'error' : 'ok';
    return result;
  } finally {
    ticket.done(outcome);
  }
}

/** How a call ended: answered, answered with the tool's own error, failed (an error answer), refused by a limit. */
export type McpCallOutcome = 'ok' | 'error' | 'failed' | 'refused';

export interface McpCallTicket {
  /** The call ended: its slots are free again and a tool call is counted. */
  done(outcome: Exclude<McpCallOutcome, 'refused'>): void;
}

export function createMcpCallLimits(options: {
  limiter: RateLimiter;
  usage: UsageRecorder;
  servers: Readonly<Record<string, ServerCallLimits | undefined>>;
  /** Told how each call ended and how long it took at its upstream (the metrics). */
  observe?: (call: McpCall, outcome: McpCallOutcome, upstreamMs: number | undefined, principal: Principal) => void;
}): McpCallGuard {
  const { limiter, usage, observe } = options;
  // Each server's limits as a principal of their own, apart from the `server:<key>` identity of its sampling.
  const serverPrincipals = new Map<string, Principal>();
  for (const [key, limits] of Object.entries(options.servers)) {
    if (limits?.rpm === undefined && limits?.maxConcurrent === undefined) continue;
    serverPrincipals.set(key, {
      kind: 'server',
      id: `mcp-server:${key}`,
      name: `MCP server "${key}"`,
      scopes: {},
      limits: {
        ...(limits.rpm === undefined ? {} : { rpm: limits.rpm }),
        ...(limits.maxConcurrent === undefined ? {} : { maxConcurrent: limits.maxConcurrent }),
      },
    });
  }

  return {
    async admit(principal, call, keyLimits = true) {
      let byKey: Admission | undefined;
      let byServer: Admission | undefined;
      try {
        if (keyLimits && limited(principal)) byKey = refusedOrAdmitted(await limiter.admit(principal, 0), 'key');
        const serverPrincipal = serverPrincipals.get(call.server);
        if (serverPrincipal !== undefined) {
          byServer = refusedOrAdmitted(await limiter.admit(serverPrincipal, 0), 'server');
        }
      } catch (error) {
        if (byKey?.ok) byKey.release();
        if (error instanceof McplexError && error.code === 'RATE_LIMITED')
          observe?.(call, 'refused', undefined, principal);
        throw error;
      }
      const started = performance.now();
      let ended = false;
      return {
        done(outcome) {
          if (ended) return;
          ended = true;
          if (byServer?.ok) byServer.release();
          if (byKey?.ok) byKey.release();
          if (call.method === 'tools/call') usage.add(principal.id, toolUsageName(call.server, call.name), 0, 0);
          observe?.(call, outcome, performance.now() - started, principal);
        },
      };
    },
  };
}

/** Whether a caller has limits of its own to count (most keys have none: nothing to ask the store). */
const limited = ({ limits }: Principal): boolean =>
  limits.rpm !== undefined || limits.tpm !== undefined || limits.maxConcurrent !== undefined;

function refusedOrAdmitted(admission: Admission, by: 'key' | 'server'): Admission {
  if (admission.ok) return admission;
  const retryAfterMs = Number(admission.headers['retry-after-ms'] ?? 1000);
  throw new McplexError('RATE_LIMITED', `${admission.message}; try again in ${Math.ceil(retryAfterMs / 1000)} s`, {
    data: { limit: admission.limit, by, retryAfterMs },
  });
}
