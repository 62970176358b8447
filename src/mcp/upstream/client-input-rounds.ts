// The client side of 2026-07-28 input-required rounds: mcplex answers a server's questions on behalf of the
// downstream client of the call and retries the request, so that callers see only the final result.
import { isInputRequiredResult } from '@modelcontextprotocol/client';
import { McplexError } from '../../errors.js';
import type { DownstreamRelay } from './relays.js';

/** Input-required rounds one request may take before mcplex stops asking on a server's behalf. */
const MAX_INPUT_ROUNDS = 16;

export interface InputRoundsContext {
  serverKey: string;
  /** Whether the server speaks 2026-07-28 (only then may a first round carry answers nobody asked for). */
  modern: boolean;
  /** The client of this very call. */
  relay: DownstreamRelay | undefined;
  /** Answers a 2026-07-28 client sent without being asked, handed to the server with the first round. */
  inputResponses: Record<string, unknown> | undefined;
  /** Puts one question to `relay` under the key the server gave it. */
  answer: (method: string, params: unknown, relay: DownstreamRelay | undefined, key: string) => Promise<unknown>;
}

/**
 * A request that a 2026-07-28 server may answer with input-required results: each question goes to the client of
 * this very call under the key the server gave it, and the request is retried with the answers and the server's
 * requestState echoed exactly, on a new request each time.
 */
export async function runInputRounds<P extends object, R>(
  params: P,
  context: InputRoundsContext,
  send: (params: P) => Promise<R>,
): Promise<R> {
  const { inputResponses, modern, relay } = context;
  const unasked = inputResponses && modern ? { inputResponses } : {};
  let current = { ...params, ...unasked };
  for (let round = 1; ; round++) {
    const result = await send(current);
    if (!isInputRequiredResult(result)) return result;
    if (round >= MAX_INPUT_ROUNDS) {
      throw new McplexError(
        'UPSTREAM_ERROR',
        `server "${context.serverKey}" asked for input ${round} times in one request`,
        {},
      );
    }
    const answers: Record<string, unknown> = {};
    await Promise.all(
      Object.entries(result.inputRequests ?? {}).map(async ([key, question]) => {
        answers[key] = await context.answer(question.method, question.params, relay, key);
      }),
    );
    const { inputResponses: _asked, requestState: _state, ...rest } = params as Record<string, unknown>;
    const state = result.requestState === undefined ? {} : { requestState: result.requestState };
    current = { ...rest, inputResponses: answers, ...state } as P;
  }
}
