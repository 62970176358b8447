// Server-to-client requests for 2026-07-28 clients: while an upstream call waits for an answer (elicitation,
// sampling, roots), mcplex returns an input-required result carrying the questions and an integrity-protected
// requestState; the client's retry delivers the answers to the waiting upstream call, which then finishes or
// asks again. The upstream call stays parked in this process between rounds.
import { randomBytes, randomUUID } from 'node:crypto';
import { ProtocolError, createRequestStateCodec, inputRequired } from '@modelcontextprotocol/server';
import type {
  InputRequiredResult,
  InputRequests,
  RequestStateCodec,
  ServerContext,
} from '@modelcontextprotocol/server';
import type { ClientCapabilities } from '@modelcontextprotocol/client';
import type { Progress } from '@modelcontextprotocol/client';
import type { DownstreamRelay, LogMessage } from '../upstream/upstream.js';

interface Question {
  key: string;
  method: string;
  params: unknown;
  resolve(answer: unknown): void;
  reject(error: Error): void;
}

/** Where the parked call's progress and log messages go: the client's latest round, which is still open. */
export interface RoundSink {
  log?: (message: LogMessage) => void;
  progress?: (progress: Progress) => void;
}

interface ParkedCall {
  id: string;
  sink: RoundSink;
  outcome: Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }>;
  /** Questions asked and not yet handed to the client. */
  pending: Question[];
  /** Questions handed to the client in the last round, answered by the next one. */
  asked: Question[];
  /** Wakes the round in progress when a question arrives. */
  wake: (() => void) | undefined;
  abort: AbortController;
  expiry: NodeJS.Timeout;
  /** Rounds handed to the client so far. */
  round: number;
}

export interface InputRounds {
  /**
   * The `requestState` verifier to give the SDK server of one principal (HMAC, expiry, owner): a state minted for
   * anyone else is refused as invalid, so that it can neither resume nor end another principal's call.
   */
  verifier(principal: string): (state: string, ctx: ServerContext) => Promise<unknown>;
  /**
   * Runs (or resumes) a forwarded request for a 2026-07-28 client. `start` begins the upstream call with a relay
   * that turns upstream questions into input-required rounds, and the signal that cancels it.
   */
  run<T>(
    ctx: ServerContext,
    principal: string,
    target: string,
    capabilities: ClientCapabilities | undefined,
    sink: RoundSink,
    start: (relay: DownstreamRelay, signal: AbortSignal, onprogress?: (progress: Progress) => void) => Promise<T>,
  ): Promise<T | InputRequiredResult>;
  close(): void;
}

interface State {
  call: string;
  /** Who started the call: only the same principal may answer it. */
  principal: string;
  /** The request the call answers (method and tool name or URI): a state is good for that request only. */
  target: string;
  /** Which round this state answers: each round's state is its own, and only the latest is accepted. */
  round: number;
}

export interface InputRoundsOptions {
  ttlMs?: number;
  /**
   * The HMAC key of `requestState` (at least 32 bytes): from configuration, so that every replica accepts what any
   * of them minted; a random one per process without it.
   */
  key?: Uint8Array | string;
  /** The key before the current one: states it signed are still accepted (key rotation); none are minted with it. */
  previousKey?: Uint8Array | string;
}

export function createInputRounds(options: InputRoundsOptions = {}): InputRounds {
  const ttlMs = options.ttlMs ?? 600_000;
  const codecFor = (key: Uint8Array | string) =>
    createRequestStateCodec<State>({ key, ttlSeconds: Math.ceil(ttlMs / 1000) });
  const codec: RequestStateCodec<State> = codecFor(options.key ?? randomBytes(32));
  const previous = options.previousKey === undefined ? undefined : codecFor(options.previousKey);
  /** Verified with the current key, else the previous one; the error of the current key when neither holds. */
  const verifyState = async (state: string, ctx: ServerContext): Promise<unknown> => {
    try {
      return await codec.verify(state, ctx);
    } catch (error) {
      if (!previous) throw error;
      return previous.verify(state, ctx).catch(() => Promise.reject(error));
    }
  };
  const parked = new Map<string, ParkedCall>();
  let counter = 0;

  function drop(call: ParkedCall): void {
    clearTimeout(call.expiry);
    parked.delete(call.id);
  }

  function park(call: ParkedCall): void {
    clearTimeout(call.expiry);
    parked.set(call.id, call);
    // A client that never comes back must not keep the upstream call (or its child's work) alive.
    call.expiry = setTimeout(() => {
      drop(call);
      call.abort.abort(new Error('the client did not answer in time'));
      for (const question of [...call.asked, ...call.pending]) question.reject(new Error('the client did not answer'));
    }, ttlMs);
    call.expiry.unref();
  }

  function start(
    capabilities: ClientCapabilities | undefined,
    sink: RoundSink,
    begin: (relay: DownstreamRelay, signal: AbortSignal, onprogress?: (progress: Progress) => void) => Promise<unknown>,
  ): ParkedCall {
    const call: ParkedCall = {
      id: randomUUID(),
      sink,
      outcome: undefined as never,
      pending: [],
      asked: [],
      wake: undefined,
      abort: new AbortController(),
      expiry: setTimeout(() => {}, 0),
      round: 0,
    };
    const relay: DownstreamRelay = {
      capabilities,
      log: (message) => call.sink.log?.(message),
      request: (method, params, key) =>
        new Promise((resolve, reject) => {
          // The upstream's own key when it gave one (a 2026-07-28 server), unless the round already uses it.
          const taken = (candidate: string) => call.pending.some((q) => q.key === candidate);
          let name = key !== undefined && !taken(key) ? key : `q${++counter}`;
          while (taken(name)) name = `q${++counter}`;
          call.pending.push({ key: name, method, params, resolve, reject });
          call.wake?.();
        }),
    };
    // Progress is asked for only when the first round asked; it then goes to whichever round is open.
    const onprogress = sink.progress ? (progress: Progress) => call.sink.progress?.(progress) : undefined;
    call.outcome = begin(relay, call.abort.signal, onprogress).then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
    return call;
  }

  return {
    verifier: (principal) => async (state, ctx) => {
      const decoded = (await verifyState(state, ctx)) as Partial<State> | undefined;
      // The SDK answers a refused state as invalid (-32602), which is what a stranger's state must look like.
      if (decoded?.principal !== principal) throw new Error('requestState of another principal');
      return decoded;
    },
    async run(ctx, principal, target, capabilities, sink, begin) {
      const state = ctx.mcpReq.requestState<State>();
      let call: ParkedCall;
      if (state?.call !== undefined) {
        const found = parked.get(state.call);
        if (!found || found.round !== state.round || state.target !== target || state.principal !== principal) {
          throw new ProtocolError(-32602, 'the call this requestState belongs to is no longer waiting for it');
        }
        // Taken: a second retry with the same state finds nothing, and the expiry stops while the call runs on.
        drop(found);
        call = found;
        const answers = (ctx.mcpReq.inputResponses ?? {}) as Record<string, unknown>;
        for (const question of call.asked) {
          if (question.key in answers) question.resolve(answers[question.key]);
          else question.reject(new Error('the client did not answer'));
        }
        call.asked = [];
      } else {
        call = start(capabilities, sink, begin);
      }
      call.sink = sink;
      // Until the call finishes or asks, this round waits; a cancelled round cancels the call.
      const onAbort = () => call.abort.abort(ctx.mcpReq.signal.reason);
      ctx.mcpReq.signal.addEventListener('abort', onAbort, { once: true });
      try {
        const asked = new Promise<'asked'>((resolve) => {
          call.wake = () => setImmediate(() => resolve('asked'));
          if (call.pending.length > 0) call.wake();
        });
        const next = await Promise.race([call.outcome, asked]);
        if (next !== 'asked') {
          drop(call);
          if (next.ok) return next.value as Awaited<ReturnType<typeof begin>>;
          throw next.error;
        }
      } finally {
        call.wake = undefined;
        ctx.mcpReq.signal.removeEventListener('abort', onAbort);
      }
      call.asked = call.pending;
      call.pending = [];
      park(call);
      const inputRequests: InputRequests = {};
      for (const question of call.asked) {
        inputRequests[question.key] = { method: question.method, params: question.params } as InputRequests[string];
      }
      call.round++;
      return inputRequired({
        inputRequests,
        requestState: await codec.mint({ call: call.id, principal, round: call.round, target }, ctx),
      });
    },
    close() {
      for (const call of parked.values()) {
        drop(call);
        call.abort.abort(new Error('mcplex is shutting down'));
      }
    },
  };
}
