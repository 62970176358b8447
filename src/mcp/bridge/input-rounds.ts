// Server-to-client requests for 2026-07-28 clients: while an upstream call waits for an answer (elicitation,
// sampling, roots), mcplex returns an input-required result carrying the questions and an integrity-protected
// requestState; the client's retry delivers the answers to the waiting upstream call, which then finishes or
// asks again. The upstream call stays parked in the process that began it between rounds; a retry that reaches
// another replica is passed to that one over the coordination port, and its outcome comes back the same way.
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
import { McplexError } from '../../errors.js';
import type { McplexErrorCode } from '../../errors.js';
import { subscribeForGood } from '../../store/coordination.js';
import type { PubSub, Unsubscribe } from '../../store/coordination.js';

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
  /** The replica the call is parked on (absent in states minted before replicas were named). */
  replica?: string;
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
  /** This process's name among the replicas: the states it mints say the call is parked here. */
  replica?: string;
  /** Where a retry for a call parked on another replica is passed on; without it such a retry is refused. */
  pubsub?: PubSub;
  /** How long a replica passed a retry may stay silent before the call counts as lost. Default 3000 ms. */
  silenceMs?: number;
}

/** What became of a round: the call finished (its value or error) or asked the client again. */
type Outcome =
  | { kind: 'done'; ok: true; value: unknown }
  | { kind: 'done'; ok: false; error: unknown }
  | { kind: 'asked'; call: string; inputRequests: InputRequests; round: number };

/** What the replicas tell each other about parked calls, on the topic of the replica it is for. */
type RoundMessage =
  | {
      kind: 'resume';
      rid: string;
      from: string;
      state: State;
      answers: Record<string, unknown>;
      progress: boolean;
      log: boolean;
    }
  | { kind: 'cancel'; rid: string; reason: string }
  | { kind: 'alive'; rid: string }
  | { kind: 'progress'; rid: string; progress: Progress }
  | { kind: 'log'; rid: string; message: LogMessage }
  | { kind: 'outcome'; rid: string; outcome: WireOutcome };

type WireError = { code?: number | string; mcplex?: boolean; message: string; data?: unknown };
type WireOutcome =
  | { kind: 'done'; ok: true; value: unknown }
  | { kind: 'done'; ok: false; error: WireError }
  | { kind: 'asked'; call: string; inputRequests: InputRequests; round: number };

const roundsTopic = (replica: string) => `mcp:rounds:${replica}`;

/** An error as it can cross to another replica: a protocol error or mcplex's own keeps its code and data. */
function errorToWire(error: unknown): WireError {
  if (error instanceof McplexError) {
    return { mcplex: true, code: error.code, message: error.message, ...(error.data ? { data: error.data } : {}) };
  }
  const { code, message, data } = error as { code?: unknown; message?: unknown; data?: unknown };
  return {
    ...(typeof code === 'number' ? { code } : {}),
    message: typeof message === 'string' ? message : String(error),
    ...(data === undefined ? {} : { data }),
  };
}

function errorFromWire(error: WireError): Error {
  if (error.mcplex && typeof error.code === 'string') {
    return new McplexError(error.code as McplexErrorCode, error.message, {
      ...(error.data ? { data: error.data as Record<string, unknown> } : {}),
    });
  }
  if (typeof error.code === 'number') return new ProtocolError(error.code, error.message, error.data);
  return new Error(error.message);
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
  const self = options.replica;
  const pubsub = options.pubsub;
  const silenceMs = options.silenceMs ?? 3000;

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

  const noLongerWaiting = () =>
    new ProtocolError(-32602, 'the call this requestState belongs to is no longer waiting for it');

  /** The parked call a state names, taken (a second retry with the same state finds nothing), its answers given. */
  function take(state: State, answers: Record<string, unknown>): ParkedCall {
    const found = parked.get(state.call);
    if (!found || found.round !== state.round) throw noLongerWaiting();
    drop(found);
    for (const question of found.asked) {
      if (question.key in answers) question.resolve(answers[question.key]);
      else question.reject(new Error('the client did not answer'));
    }
    found.asked = [];
    return found;
  }

  /** Runs a call until it finishes or asks the client something; a cancelled round cancels the call. */
  async function advance(call: ParkedCall, sink: RoundSink, signal: AbortSignal): Promise<Outcome> {
    call.sink = sink;
    const onAbort = () => call.abort.abort(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const asked = new Promise<'asked'>((resolve) => {
        call.wake = () => setImmediate(() => resolve('asked'));
        if (call.pending.length > 0) call.wake();
      });
      const next = await Promise.race([call.outcome, asked]);
      if (next !== 'asked') {
        drop(call);
        return next.ok ? { kind: 'done', ok: true, value: next.value } : { kind: 'done', ok: false, error: next.error };
      }
    } finally {
      call.wake = undefined;
      signal.removeEventListener('abort', onAbort);
    }
    call.asked = call.pending;
    call.pending = [];
    park(call);
    const inputRequests: InputRequests = {};
    for (const question of call.asked) {
      inputRequests[question.key] = { method: question.method, params: question.params } as InputRequests[string];
    }
    call.round++;
    return { kind: 'asked', call: call.id, inputRequests, round: call.round };
  }

  /** Retries waiting here for the replica that holds their call: their sinks, and what settles them. */
  const away = new Map<
    string,
    { sink: RoundSink; heard: () => void; settle: (outcome: Outcome) => void; fail: (error: Error) => void }
  >();
  /** Rounds this replica runs for a retry that reached another one: what cancels each. */
  const forOthers = new Map<string, AbortController>();
  const tell = (replica: string, message: RoundMessage) =>
    pubsub ? pubsub.publish(roundsTopic(replica), JSON.stringify(message)).catch(() => {}) : Promise.resolve();

  /** Passes a retry to the replica its call is parked on and waits for what became of the round. */
  function resumeElsewhere(
    state: State,
    answers: Record<string, unknown>,
    sink: RoundSink,
    signal: AbortSignal,
  ): Promise<Outcome> {
    const home = state.replica!;
    if (!pubsub) {
      return Promise.reject(
        new ProtocolError(-32603, `the call is waiting on replica ${home}, which this one cannot reach; call again`),
      );
    }
    const rid = randomUUID();
    return new Promise<Outcome>((resolve, reject) => {
      let last = Date.now();
      const watch = setInterval(
        () => {
          if (Date.now() - last <= silenceMs) return;
          finish();
          reject(
            new ProtocolError(
              -32603,
              `the replica holding this call (${home}) stopped answering; call the tool again`,
              {
                code: 'REQUEST_LOST',
              },
            ),
          );
        },
        Math.max(50, Math.floor(silenceMs / 3)),
      );
      watch.unref();
      const onAbort = () => void tell(home, { kind: 'cancel', rid, reason: String(signal.reason ?? 'cancelled') });
      signal.addEventListener('abort', onAbort, { once: true });
      const finish = () => {
        clearInterval(watch);
        signal.removeEventListener('abort', onAbort);
        away.delete(rid);
      };
      away.set(rid, {
        sink,
        heard: () => (last = Date.now()),
        settle: (outcome) => {
          finish();
          resolve(outcome);
        },
        fail: (error) => {
          finish();
          reject(error);
        },
      });
      void tell(home, {
        kind: 'resume',
        rid,
        from: self!,
        state,
        answers,
        progress: sink.progress !== undefined,
        log: sink.log !== undefined,
      });
    });
  }

  /** Resumes a call parked here for a retry that reached replica `from`, reporting back as the round goes. */
  async function resumeFor(message: Extract<RoundMessage, { kind: 'resume' }>): Promise<void> {
    const { rid, from } = message;
    const beat = setInterval(() => void tell(from, { kind: 'alive', rid }), Math.max(50, Math.floor(silenceMs / 3)));
    beat.unref();
    const cancel = new AbortController();
    forOthers.set(rid, cancel);
    let outcome: WireOutcome;
    try {
      const sink: RoundSink = {
        ...(message.log ? { log: (m: LogMessage) => void tell(from, { kind: 'log', rid, message: m }) } : {}),
        ...(message.progress
          ? { progress: (p: Progress) => void tell(from, { kind: 'progress', rid, progress: p }) }
          : {}),
      };
      const result = await advance(take(message.state, message.answers), sink, cancel.signal);
      outcome = result.kind === 'done' && !result.ok ? { ...result, error: errorToWire(result.error) } : result;
    } catch (error) {
      outcome = { kind: 'done', ok: false, error: errorToWire(error) };
    } finally {
      clearInterval(beat);
      forOthers.delete(rid);
    }
    await tell(from, { kind: 'outcome', rid, outcome });
  }

  function hear(text: string): void {
    let message: RoundMessage;
    try {
      message = JSON.parse(text) as RoundMessage;
    } catch {
      return;
    }
    if (message.kind === 'resume') {
      void resumeFor(message);
      return;
    }
    if (message.kind === 'cancel') {
      forOthers.get(message.rid)?.abort(new Error(message.reason));
      return;
    }
    const waiting = away.get(message.rid);
    if (!waiting) return;
    waiting.heard();
    if (message.kind === 'progress') waiting.sink.progress?.(message.progress);
    else if (message.kind === 'log') waiting.sink.log?.(message.message);
    else if (message.kind === 'outcome') {
      const outcome = message.outcome;
      if (outcome.kind === 'done' && !outcome.ok)
        waiting.settle({ kind: 'done', ok: false, error: errorFromWire(outcome.error) });
      else waiting.settle(outcome as Outcome);
    }
  }
  const stopHearing: Unsubscribe | undefined =
    pubsub && self !== undefined ? subscribeForGood(pubsub, roundsTopic(self), hear) : undefined;

  return {
    verifier: (principal) => async (state, ctx) => {
      const decoded = (await verifyState(state, ctx)) as Partial<State> | undefined;
      // The SDK answers a refused state as invalid (-32602), which is what a stranger's state must look like.
      if (decoded?.principal !== principal) throw new Error('requestState of another principal');
      return decoded;
    },
    async run(ctx, principal, target, capabilities, sink, begin) {
      const state = ctx.mcpReq.requestState<State>();
      let outcome: Outcome;
      let parkedOn = self;
      if (state?.call !== undefined) {
        if (state.target !== target || state.principal !== principal) throw noLongerWaiting();
        const answers = (ctx.mcpReq.inputResponses ?? {}) as Record<string, unknown>;
        if (state.replica !== undefined && state.replica !== self) {
          parkedOn = state.replica;
          outcome = await resumeElsewhere(state, answers, sink, ctx.mcpReq.signal);
        } else {
          outcome = await advance(take(state, answers), sink, ctx.mcpReq.signal);
        }
      } else {
        outcome = await advance(start(capabilities, sink, begin), sink, ctx.mcpReq.signal);
      }
      if (outcome.kind === 'done') {
        if (outcome.ok) return outcome.value as Awaited<ReturnType<typeof begin>>;
        throw outcome.error;
      }
      return inputRequired({
        inputRequests: outcome.inputRequests,
        requestState: await codec.mint(
          {
            call: outcome.call,
            principal,
            round: outcome.round,
            target,
            ...(parkedOn === undefined ? {} : { replica: parkedOn }),
          },
          ctx,
        ),
      });
    },
    close() {
      void stopHearing?.();
      for (const { fail } of away.values()) fail(new Error('mcplex is shutting down'));
      for (const call of parked.values()) {
        drop(call);
        call.abort.abort(new Error('mcplex is shutting down'));
      }
    },
  };
}
