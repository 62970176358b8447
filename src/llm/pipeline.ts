// The LLM core's request pipeline: small stages composed around one request context, each doing its part before
// the next stage runs and, where it owes something afterwards (releasing a limit, saving an answer), after it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../policy/auth/keys.js';
import type { ModelRoute, RoutedRequest } from './router.js';
import type { Sink } from './sink.js';
import type { Usage } from './types.js';

/**
 * One LLM request on its way through the stages: what the router needs of it (the route, the validated body and
 * the client's own bytes of it, the model asked for, the request id, the arrival time from which mcplex's
 * overhead is measured) and what the stages add.
 */
export interface LlmContext extends Omit<RoutedRequest, 'primary' | 'sink'> {
  readonly principal: Principal;
  /**
   * Where the answer goes. A stage may put another sink in its place for the stages after it (the coalescing
   * stage writes into a flight that identical requests share); the sink also says when nobody waits any more
   * (`gone`, `onGone`), which aborts the backend call.
   */
  sink: Sink;
  /** Adds a header to the answer (limit headers, cache status); a no-op for callers inside mcplex. */
  setHeader(name: string, value: string): void;
  /** The HTTP exchange, when the answer goes to an HTTP client: cache replays and shared flights write to it. */
  readonly http?: { readonly req: IncomingMessage; readonly res: ServerResponse } | undefined;
  /** The model's route, once the gate admitted the request. */
  primary?: ModelRoute;
  /**
   * The key under which identical requests may share one answer, set by the cache stage for requests whose
   * answer depends on nothing else (the cache key and the delivery form).
   */
  shareKey?: string;
  /**
   * The whole answer as it went out, when a stage kept it (the coalescing flight keeps every byte for late
   * joiners): the cache stage saves it from here instead of keeping a second copy.
   */
  answer?: { readonly status: number; text(): string };
  /** The usage the backend reported; none for answers that cost nothing upstream. */
  usage?: Usage | undefined;
}

/** A stage: does its part and calls `next` to hand the request on, or answers it itself and does not. */
export type Stage = (ctx: LlmContext, next: () => Promise<void>) => Promise<void>;

/** The stages as one function, in the order given; a stage may run code after `next` resolves. */
export function compose(stages: readonly Stage[]): (ctx: LlmContext) => Promise<void> {
  return (ctx) => {
    const step = (index: number): Promise<void> => {
      const stage = stages[index];
      return stage ? stage(ctx, () => step(index + 1)) : Promise.resolve();
    };
    return step(0);
  };
}
