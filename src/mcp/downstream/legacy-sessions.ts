// 2025-11-25 sessions on /mcp, kept in the session directory rather than in this process: every request of a
// session, whichever process receives it, is served by a fresh aggregated server on a per-request (stateless) SDK
// transport, primed with what the client said at initialize; the events of its streams go to the session's log,
// from which a GET stream is written and a dropped stream resumed. What only this process can hold (calls in
// flight, the client's answers to their questions, open streams, upstream subscriptions) is looked up by id.
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { NodeStreamableHTTPServerTransport } from '@modelcontextprotocol/node';
import {
  LATEST_PROTOCOL_VERSION,
  SUPPORTED_PROTOCOL_VERSIONS,
  isJSONRPCErrorResponse,
  isJSONRPCNotification,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
} from '@modelcontextprotocol/server';
import type { EventStore, JSONRPCMessage, Server, Transport, TransportSendOptions } from '@modelcontextprotocol/server';
import type { ClientCapabilities } from '@modelcontextprotocol/client';
import type { Logger } from '../../log/logger.js';
import { McplexError } from '../../errors.js';
import type { Catalog, ListChanges } from '../catalog/catalog.js';
import { sendJsonRpcError } from '../../wire/json.js';
import type { Principal } from '../../policy/auth/keys.js';
import { ANONYMOUS } from '../../policy/auth/keys.js';
import type { SessionDirectory, SessionRecord } from '../../store/sessions.js';
import { subscribeForGood } from '../../store/coordination.js';
import type { PubSub } from '../../store/coordination.js';
import type { SessionSubscriptions } from './aggregate-server.js';
import { fastToolCall, serveFastToolCall } from './fast-tool-call.js';
import type { AdmitCall } from '../../policy/limits/mcp-call-limits.js';
import { timedAdmit } from '../../policy/limits/mcp-call-limits.js';
import { checkInboundParams, invalidParams } from './request-params.js';
import type { Subscriber, Subscriptions } from './subscriptions.js';

export interface SessionLimits {
  /** Open sessions in all. */
  max: number;
  /** Open sessions of one principal (one API key, or everyone in keyless mode). */
  maxPerPrincipal: number;
  /** Sessions idle longer than this are closed. */
  idleMs: number;
  /** 2026-07-28 listen streams one principal may hold open at once (keyless mode: not capped). */
  maxListensPerPrincipal: number;
  /** When the sessions in all or of one principal reach their cap, sessions idle longer than this are closed. */
  pressureIdleMs: number;
  /** Last-Event-ID replay: newest events per session, their size per session and in all. */
  replayEvents: number;
  replayBytes: number;
  replayTotalBytes: number;
}

export interface LegacySessionsOptions {
  /** A fresh aggregated server for one request of a session of `principal`. */
  createServer: (principal: Principal, session: SessionSubscriptions) => Server;
  catalog: Catalog;
  subscriptions?: Subscriptions;
  /** Admits the fast path's calls of `principal` (the SDK path's come with the server). */
  admitFor?: (principal: Principal) => AdmitCall | undefined;
  directory: SessionDirectory;
  limits: SessionLimits;
  maxSubscriptions: number;
  logger: Logger;
  /** This process's name among the replicas: the ids of the requests it sends clients carry it. */
  replica: string;
  /**
   * Messages between the replicas (answers for another replica's call, cancellations, ended sessions, list changes,
   * streams taken over). Without it nothing reaches another process.
   */
  pubsub?: PubSub;
  /** Whether a replica is alive (its heartbeat is fresh). Default: this one only. */
  alive?: (replica: string) => boolean;
}

export interface LegacySessions {
  /** Opens a session for an `initialize` request and answers it. */
  open(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal): Promise<void>;
  /**
   * Serves a POST (body), GET or DELETE (no body) of the session `id`; false, without answering, when the session
   * is unknown, ended, expired or another principal's.
   */
  serve(req: IncomingMessage, res: ServerResponse, body: unknown, principal: Principal, id: string): Promise<boolean>;
  notifyListChanged(changes: ListChanges): void;
  count(): Promise<number>;
  /** Sessions with a stream open or a request in progress here. */
  inUse(): number;
  logBytes(): Promise<number>;
  close(): Promise<void>;
}

/** What a session keeps of its initialize, so that any process can prime a server with it. */
interface SessionState {
  protocolVersion: string;
  clientInfo: unknown;
  capabilities: ClientCapabilities;
  logLevel?: string;
  /** Who holds the session's GET stream now (null: nobody). */
  getStream?: { replica: string; nonce: string } | null;
}

/** What the replicas tell each other about sessions (on SESSIONS_TOPIC, or a replica's own topic). */
type ClusterMessage =
  | { kind: 'answer'; session: string; message: JSONRPCMessage }
  | { kind: 'cancel'; session: string; request: RequestId; reason: string; from: string }
  | { kind: 'ended'; session: string; from: string }
  | { kind: 'lists'; changes: ListChanges; from: string }
  | { kind: 'stream'; session: string; nonce: string; from: string };

const SESSIONS_TOPIC = 'mcp:sessions';
const replicaTopic = (name: string) => `mcp:replica:${name}`;

/** How long list changes are gathered before a session is told: replicas that all saw one change tell it once. */
const LIST_CHANGE_GATHER_MS = 100;

/** How often a stream whose requests run on another replica checks that the replica is still alive. */
const OWNER_CHECK_MS = 1000;

/** What the state of one session may take (clientInfo and capabilities as JSON), so that no client can fill the store. */
const MAX_STATE_CHARS = 65_536;

/** The stream of a session's GET requests; POST streams are named by the transport (UUIDs). */
const GET_STREAM = 'get';

/** Tags of log entries that are not sent: the first entry of each stream, which says what the stream is for. */
const PRIME = 'prime';

/** Methods whose answer may be preceded by progress, log messages or questions: their streams are logged. */
const STREAMED = new Set(['tools/call', 'resources/read', 'prompts/get', 'completion/complete']);

const PRIME_ID = 'mcplex-prime';

/** What the first entry of a POST stream says: the requests it answers and the replica that runs them. */
interface StreamPrime {
  requests: (string | number)[];
  replica: string;
}

type RequestId = string | number;

const idKey = (id: RequestId) => `${typeof id}:${id}`;

function messagesOf(body: unknown): unknown[] {
  return Array.isArray(body) ? body : [body];
}

function requestedLogLevel(body: unknown): string | undefined {
  for (const message of messagesOf(body)) {
    const m = message as { method?: unknown; params?: { level?: unknown } } | null;
    if (m?.method === 'logging/setLevel' && typeof m.params?.level === 'string') return m.params.level;
  }
  return undefined;
}

const isResponse = (message: unknown) =>
  isJSONRPCResultResponse(message as JSONRPCMessage) || isJSONRPCErrorResponse(message as JSONRPCMessage);

/**
 * The transport between one request's server and the SDK's per-request transport: primes the server with the
 * session's initialize (its answer swallowed), gives the requests the server sends the client ids that name this
 * exchange (so that the client's answer, in another POST, finds its way back), and reports the answers it sends.
 */
class ExchangeTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: Transport['onmessage'];
  sessionId?: string;
  private primed?: () => void;

  constructor(
    private readonly inner: NodeStreamableHTTPServerTransport,
    /** Put before the id of every request this server sends: `mcplex:<replica>:<exchange>:`. */
    private readonly prefix: string,
    sessionId: string,
    private readonly onAnswer: (id: RequestId) => void,
  ) {
    this.sessionId = sessionId;
  }

  async start(): Promise<void> {
    this.inner.onmessage = (message, extra) => this.onmessage?.(message, extra);
    this.inner.onclose = () => this.onclose?.();
    this.inner.onerror = (error) => this.onerror?.(error);
    await this.inner.start();
  }

  /** Replays the session's handshake (and log level) into the fresh server. */
  async prime(state: SessionState): Promise<void> {
    const answered = new Promise<void>((resolve) => (this.primed = resolve));
    this.onmessage?.({
      jsonrpc: '2.0',
      id: PRIME_ID,
      method: 'initialize',
      params: {
        protocolVersion: state.protocolVersion,
        capabilities: state.capabilities,
        clientInfo: state.clientInfo,
      },
    } as JSONRPCMessage);
    await answered;
    if (state.logLevel !== undefined) {
      const levelSet = new Promise<void>((resolve) => (this.primed = resolve));
      this.onmessage?.({
        jsonrpc: '2.0',
        id: PRIME_ID,
        method: 'logging/setLevel',
        params: { level: state.logLevel },
      } as JSONRPCMessage);
      await levelSet;
    }
    this.primed = undefined;
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (isResponse(message)) {
      const id = (message as { id: RequestId }).id;
      if (id === PRIME_ID && this.primed) {
        this.primed();
        return;
      }
      await this.inner.send(message, options);
      this.onAnswer(id);
      return;
    }
    if (isJSONRPCRequest(message)) {
      await this.inner.send({ ...message, id: `${this.prefix}${message.id}` }, options);
      return;
    }
    await this.inner.send(message, options);
  }

  /** A message from the client that belongs to this exchange: its answer to one of our requests, or a cancel. */
  deliver(message: JSONRPCMessage): void {
    if (isResponse(message)) {
      const id = String((message as { id: RequestId }).id).slice(this.prefix.length);
      this.onmessage?.({ ...message, id: Number(id) } as JSONRPCMessage);
      return;
    }
    this.onmessage?.(message);
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** The exchange a client's answer belongs to, from the id mcplex gave its request (`mcplex:<replica>:<n>:<id>`). */
function exchangeOf(id: unknown): { replica: string; key: string } | undefined {
  if (typeof id !== 'string' || !id.startsWith('mcplex:')) return undefined;
  const parts = id.split(':', 4);
  if (parts.length < 4) return undefined;
  return { replica: parts[1]!, key: `mcplex:${parts[1]}:${parts[2]}:` };
}

/** Whether `id` can be a session id mcplex gave (a UUID): anything else is unknown without asking the store. */
function isSessionId(id: string): boolean {
  if (id.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = id.charCodeAt(i);
    const dash = i === 8 || i === 13 || i === 18 || i === 23;
    if (dash ? c !== 45 : !((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function stateOf(record: SessionRecord): SessionState {
  return record.state as unknown as SessionState;
}

export function createLegacySessions(options: LegacySessionsOptions): LegacySessions {
  const { directory, limits, logger, replica } = options;
  /** Exchanges in progress here, by the prefix of the ids of their requests to the client. */
  const exchanges = new Map<string, ExchangeTransport>();
  /**
   * What cancels a request in progress here, by session and the client's request id; `ended`: the session (or this
   * process) is ending, and the request's stream must end too, since a cancelled request gets no answer.
   */
  const running = new Map<string, Map<string, (reason: string, ended: boolean) => void>>();
  /** Requests in progress (streams included) per session here: those sessions are kept from going idle. */
  const inUse = new Map<string, number>();
  /** Open GET streams here, per session: list changes are written to their logs. */
  const listening = new Map<string, Set<ServerResponse>>();
  /** This process's subscriber of each session that subscribed through it. */
  const subscribers = new Map<string, Subscriber>();
  let exchangeCount = 0;
  let closed = false;
  const alive = options.alive ?? ((name: string) => name === replica);
  const pubsub = options.pubsub;
  /** This process's GET streams by session, with the nonce it took each with. */
  const holding = new Map<string, string>();
  /** List changes gathered per session before they are written to its log. */
  const gathering = new Map<string, ListChanges>();

  const tell = (topic: string, message: ClusterMessage) => {
    if (pubsub) void pubsub.publish(topic, JSON.stringify(message)).catch(() => {});
  };

  function hear(text: string): void {
    let message: ClusterMessage;
    try {
      message = JSON.parse(text) as ClusterMessage;
    } catch {
      return;
    }
    if ('from' in message && message.from === replica) return;
    switch (message.kind) {
      case 'answer': {
        const target = exchangeOf((message.message as { id?: unknown }).id);
        if (target) deliverAnswer(message.session, target.key, message.message);
        break;
      }
      case 'cancel':
        running.get(message.session)?.get(idKey(message.request))?.(message.reason, false);
        break;
      case 'ended':
        forgetLocally(message.session);
        break;
      case 'lists':
        for (const id of listening.keys()) gatherListChange(id, message.changes);
        break;
      case 'stream':
        // Another replica took the session's GET stream: this one's client has moved there.
        if (holding.has(message.session) && holding.get(message.session) !== message.nonce) {
          for (const res of listening.get(message.session) ?? []) res.end();
        }
        break;
    }
  }
  const stopHearing = pubsub
    ? [subscribeForGood(pubsub, SESSIONS_TOPIC, hear), subscribeForGood(pubsub, replicaTopic(replica), hear)]
    : [];

  /** Tells a session's GET stream that lists changed, once for changes that arrive together. */
  function gatherListChange(id: string, changes: ListChanges): void {
    const gathered = gathering.get(id);
    if (gathered) {
      gathered.tools ||= changes.tools;
      gathered.resources ||= changes.resources;
      gathered.prompts ||= changes.prompts;
      return;
    }
    gathering.set(id, { ...changes });
    setTimeout(() => {
      const all = gathering.get(id);
      gathering.delete(id);
      if (!all || !listening.has(id)) return;
      const methods: string[] = [];
      if (all.tools) methods.push('notifications/tools/list_changed');
      if (all.resources) methods.push('notifications/resources/list_changed');
      if (all.prompts) methods.push('notifications/prompts/list_changed');
      const events = methods.map((method) => ({
        stream: GET_STREAM,
        message: JSON.stringify({ jsonrpc: '2.0', method }),
      }));
      if (events.length > 0) void directory.append(id, events).catch(() => {});
    }, LIST_CHANGE_GATHER_MS).unref();
  }

  const keepMs = Math.max(20, Math.min(20_000, Math.floor(Math.min(limits.idleMs, limits.pressureIdleMs) / 3)));
  const keeper = setInterval(() => {
    if (inUse.size > 0) void directory.touchAll([...inUse.keys()], Date.now()).catch(() => {});
  }, keepMs);
  keeper.unref();
  // Expired sessions are forgotten as they are counted (the directory in this process has no clock of its own).
  const sweep = setInterval(() => void directory.count(Date.now()).catch(() => {}), Math.min(limits.idleMs, 60_000));
  sweep.unref();

  function use(id: string, res: ServerResponse): void {
    inUse.set(id, (inUse.get(id) ?? 0) + 1);
    res.once('close', () => {
      const left = (inUse.get(id) ?? 1) - 1;
      // The request's own start and the keeper's touches while it ran leave lastSeen within keepMs of its end:
      // no round trip of its own is needed here.
      if (left > 0) inUse.set(id, left);
      else inUse.delete(id);
    });
  }

  function track(id: string, request: RequestId, cancel: (reason: string, ended: boolean) => void): () => void {
    let calls = running.get(id);
    if (!calls) running.set(id, (calls = new Map()));
    const key = idKey(request);
    calls.set(key, cancel);
    return () => {
      if (calls.get(key) !== cancel) return;
      calls.delete(key);
      if (calls.size === 0 && running.get(id) === calls) running.delete(id);
    };
  }

  function subscriberOf(id: string): Subscriber {
    const subscriber = subscribers.get(id);
    if (subscriber) return subscriber;
    const own: Subscriber = {
      notifyUpdated: (uri) => {
        const message = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri } });
        void directory.append(id, [{ stream: GET_STREAM, message }]).then(
          (ids) => {
            // The session is gone: so is what this process held for it.
            if (ids.length === 0) forgetLocally(id);
          },
          () => {},
        );
      },
    };
    subscribers.set(id, own);
    return own;
  }

  function sessionSubscriptions(id: string): SessionSubscriptions {
    const upstream = options.subscriptions;
    return {
      async subscribe(uri) {
        if (!upstream) throw new McplexError('UNKNOWN_RESOURCE', 'resource subscriptions are not available');
        const outcome = await directory.subscribe(id, uri, options.maxSubscriptions);
        if (outcome === 'full') {
          const max = options.maxSubscriptions;
          throw new McplexError(
            'TOO_MANY_SUBSCRIPTIONS',
            `too many resource subscriptions: this client holds ${max}, the most allowed; unsubscribe first`,
            { data: { limit: max } },
          );
        }
        // Held already: by this process (subscribing again is harmless) or by the one that subscribed it.
        if (outcome === 'held' && !subscribers.has(id)) return;
        if (outcome === 'gone') throw new McplexError('UNKNOWN_RESOURCE', 'the session has ended');
        try {
          await upstream.subscribe(uri, subscriberOf(id));
        } catch (error) {
          if (outcome === 'added') await directory.unsubscribe(id, uri).catch(() => {});
          throw error;
        }
      },
      async unsubscribe(uri) {
        await directory.unsubscribe(id, uri);
        const subscriber = subscribers.get(id);
        if (subscriber && upstream) await upstream.unsubscribe(uri, subscriber);
      },
    };
  }

  /** Drops what this process holds for a session that ended: streams, calls, subscriptions. */
  function forgetLocally(id: string): void {
    const subscriber = subscribers.get(id);
    if (subscriber) {
      subscribers.delete(id);
      options.subscriptions?.drop(subscriber);
    }
    for (const res of listening.get(id) ?? []) res.end();
    listening.delete(id);
    for (const cancel of [...(running.get(id)?.values() ?? [])]) cancel('the session ended', true);
    running.delete(id);
  }

  /** The log's event store for one POST of a session: the stream's first entry says what the stream answers. */
  function postEvents(id: string, requests: RequestId[]): EventStore {
    let primed = false;
    return {
      async storeEvent(streamId, message) {
        const first = !primed;
        primed = true;
        const entry = first
          ? { stream: streamId, message: JSON.stringify({ requests, replica } satisfies StreamPrime), tag: PRIME }
          : { stream: streamId, message: JSON.stringify(message) };
        const [eventId] = await directory.append(id, [entry]);
        return eventId ?? randomUUID();
      },
      async replayEventsAfter() {
        throw new Error('streams are resumed from the session log, not by the transport');
      },
    };
  }

  /** Serves one POST of a session on a fresh server and per-request transport. */
  async function exchange(
    record: SessionRecord,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    principal: Principal,
    prime: boolean,
  ): Promise<void> {
    const server = options.createServer(principal, sessionSubscriptions(record.id));
    // The members of a batch reach the server one by one: each is checked there (single requests are checked
    // before they reach the transport).
    checkInboundParams(server, 'legacy');
    const requests = messagesOf(body)
      .filter((m) => isJSONRPCRequest(m as JSONRPCMessage))
      .map((m) => (m as { id: RequestId }).id);
    const streamed = messagesOf(body).some((m) => STREAMED.has((m as { method?: string } | null)?.method ?? ''));
    // Answers come as SSE streams; only those that may carry more than their answer are logged for resumption.
    const inner = new NodeStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      ...(streamed ? { eventStore: postEvents(record.id, requests) } : {}),
      // Tells clients how soon to reconnect when a stream ends before its response (SSE polling).
      retryInterval: 1000,
    });
    const prefix = `mcplex:${replica}:${++exchangeCount}:`;
    const pending = new Set(requests.map(idKey));
    const untrack: (() => void)[] = [];
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      exchanges.delete(prefix);
      for (const stop of untrack) stop();
      void server.close().catch(() => {});
    };
    const transport = new ExchangeTransport(inner, prefix, record.id, (id) => {
      pending.delete(idKey(id));
      if (pending.size === 0) finish();
    });
    exchanges.set(prefix, transport);
    for (const id of requests) {
      untrack.push(
        track(record.id, id, (reason, ended) => {
          transport.deliver({
            jsonrpc: '2.0',
            method: 'notifications/cancelled',
            params: { requestId: id, reason },
          } as JSONRPCMessage);
          if (ended) {
            finish();
            void inner.close().catch(() => {});
          }
        }),
      );
    }
    try {
      await server.connect(transport);
      if (prime) await transport.prime(stateOf(record));
      res.setHeader('mcp-session-id', record.id);
      await inner.handleRequest(req, res, body);
    } catch (error) {
      finish();
      throw error;
    }
    if (requests.length === 0) finish();
  }

  /** Gives an answer to its exchange, if that exchange serves the same session (ids of others' are guessable). */
  function deliverAnswer(session: string, key: string, message: JSONRPCMessage): void {
    const exchange = exchanges.get(key);
    if (exchange?.sessionId === session) exchange.deliver(message);
  }

  /** Hands the client's answers and cancellations to the exchanges they belong to; whether anything else is left. */
  function route(id: string, body: unknown): boolean {
    let rest = false;
    for (const message of messagesOf(body)) {
      if (isResponse(message)) {
        const target = exchangeOf((message as { id: unknown }).id);
        // An answer for an exchange that has ended, or for a replica that is gone, has nobody waiting for it.
        if (target?.replica === replica) deliverAnswer(id, target.key, message as JSONRPCMessage);
        else if (target && alive(target.replica)) {
          tell(replicaTopic(target.replica), { kind: 'answer', session: id, message: message as JSONRPCMessage });
        }
        continue;
      }
      const m = message as { method?: unknown; params?: { requestId?: unknown; reason?: unknown } };
      if (m?.method === 'notifications/cancelled') {
        const request = m.params?.requestId;
        if (typeof request === 'string' || typeof request === 'number') {
          const reason = typeof m.params?.reason === 'string' ? m.params.reason : 'cancelled by the client';
          const cancel = running.get(id)?.get(idKey(request));
          // The request may run on another replica: each looks for it.
          if (cancel) cancel(reason, false);
          else tell(SESSIONS_TOPIC, { kind: 'cancel', session: id, request, reason, from: replica });
        }
        continue;
      }
      if (isJSONRPCNotification(message as JSONRPCMessage)) continue;
      rest = true;
    }
    return rest;
  }

  /** Answers a request whose params do not fit its method's schema (-32602 naming the field); false when they do. */
  function refuseInvalid(res: ServerResponse, body: unknown): boolean {
    const invalid = invalidParams(body, 'legacy');
    if (invalid === undefined) return false;
    sendJsonRpcError(res, 200, invalid.error, invalid.id);
    return true;
  }

  async function post(
    record: SessionRecord,
    req: IncomingMessage,
    res: ServerResponse,
    body: unknown,
    principal: Principal,
  ): Promise<void> {
    const state = stateOf(record);
    const level = requestedLogLevel(body);
    if (level !== undefined) await directory.update(record.id, { logLevel: level });
    if (!route(record.id, body)) {
      res.writeHead(202).end();
      return;
    }
    const call = fastToolCall(req, body, 'legacy', state.capabilities, state.clientInfo);
    if (call) {
      const cancel = new AbortController();
      const untrack = track(record.id, call.id, (reason) => cancel.abort(new Error(reason)));
      try {
        const admit = timedAdmit(options.admitFor?.(principal), res);
        await serveFastToolCall(options.catalog, call, 'legacy', res, cancel, principal, state.logLevel, admit);
      } finally {
        untrack();
      }
      return;
    }
    // A single request is checked here: the transport's own JSON-RPC schema would answer some bad params (a
    // `_meta` that is no object) with a parse error before the server's check could see them.
    if (refuseInvalid(res, body)) return;
    await exchange(record, req, res, body, principal, true);
  }

  /** Writes one SSE event. */
  function writeEvent(res: ServerResponse, id: string, data: string): void {
    if (!res.writableEnded) res.write(`id: ${id}\nevent: message\ndata: ${data}\n\n`);
  }

  /**
   * Writes the events of `stream` after `from` as they reach the log, until the response closes or, for a POST's
   * stream, every request it answers has its answer. A POST stream whose replica is gone gets an error for each
   * request still unanswered, so that its client never waits for an answer that cannot come.
   */
  async function tail(
    id: string,
    res: ServerResponse,
    stream: string,
    from: string,
    owed?: StreamPrime,
  ): Promise<void> {
    let last = from;
    let reading = false;
    let again = false;
    const unanswered = new Set((owed?.requests ?? []).map(idKey));
    const byKey = new Map((owed?.requests ?? []).map((request) => [idKey(request), request]));
    const done = () => owed !== undefined && unanswered.size === 0;
    const read = async () => {
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          for (const event of await directory.streamAfter(id, stream, last)) {
            last = event.id;
            if (event.tag) continue;
            writeEvent(res, event.id, event.message);
            if (owed) {
              const sent = JSON.parse(event.message) as { id?: RequestId; method?: unknown };
              if (sent.id !== undefined && sent.method === undefined) unanswered.delete(idKey(sent.id));
            }
          }
        } while (again && !res.writableEnded);
      } catch (error) {
        logger.debug({ session: id, err: error }, 'reading the session log failed');
      } finally {
        reading = false;
      }
      if (done()) res.end();
    };
    /** The stream's requests will not be answered: each gets an error, so that its client stops waiting. */
    const giveUp = (why: string) => {
      for (const key of unanswered) {
        const message = JSON.stringify({
          jsonrpc: '2.0',
          id: byKey.get(key),
          error: {
            code: -32603,
            message: `${why} before the request was answered; send it again`,
            data: { code: 'REQUEST_LOST' },
          },
        });
        writeEvent(res, last, message);
      }
      unanswered.clear();
      res.end();
    };
    const unwatch = await directory.watch(id, () => void read());
    res.once('close', () => void unwatch());
    await read();
    if (!owed || done()) return;
    if (owed.replica === replica) {
      // This process runs the stream's requests: if none of them is running any more (the process restarted
      // under the same name, or the call was lost), nothing will answer them.
      if (![...unanswered].some((key) => running.get(id)?.has(key))) giveUp('the call was lost');
      return;
    }
    // Another replica runs them: should it die, nothing will answer them either.
    const check = setInterval(() => {
      if (done() || res.writableEnded) clearInterval(check);
      else if (!alive(owed.replica)) {
        clearInterval(check);
        // Whatever it wrote before it died is sent first.
        void read().then(() => {
          if (!done()) giveUp(`the replica running it (${owed.replica}) stopped`);
        });
      }
    }, OWNER_CHECK_MS);
    check.unref();
    res.once('close', () => clearInterval(check));
  }

  async function get(record: SessionRecord, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const accept = req.headers.accept ?? '';
    if (!accept.includes('text/event-stream')) {
      sendJsonRpcError(res, 406, { code: -32000, message: 'Not Acceptable: Client must accept text/event-stream' });
      return;
    }
    const resumeFrom = req.headers['last-event-id'];
    const lastEventId = Array.isArray(resumeFrom) ? resumeFrom[0] : resumeFrom;
    let replay: { stream: string; events: { id: string; message: string; tag?: string }[] } | undefined;
    if (lastEventId !== undefined) {
      replay = await directory.after(record.id, lastEventId);
      if (!replay) {
        sendJsonRpcError(res, 400, {
          code: -32000,
          message:
            `event "${lastEventId}" cannot be replayed: it is unknown, or older than what this session keeps ` +
            `(the newest ${limits.replayEvents} events and ${limits.replayBytes} characters at most); ` +
            'open the stream again without Last-Event-ID',
          data: { code: 'EVENT_NOT_REPLAYABLE' },
        });
        return;
      }
    }
    const stream = replay?.stream ?? GET_STREAM;
    if (stream === GET_STREAM) {
      const open = listening.get(record.id);
      const holder = stateOf(record).getStream;
      const heldElsewhere = holder != null && holder.replica !== replica && alive(holder.replica);
      if (!replay && ((open && open.size > 0) || heldElsewhere)) {
        // One notification stream per session, as the SDK's transport has it: each message goes out once.
        sendJsonRpcError(res, 409, { code: -32000, message: 'Conflict: only one SSE stream is allowed per session' });
        return;
      }
      // A resume takes over from a stream still open here or on another replica (its client has given it up).
      for (const old of open ?? []) old.end();
      await holdGetStream(record.id, res);
    }
    let owed: StreamPrime | undefined;
    if (stream !== GET_STREAM) {
      const [first] = await directory.streamAfter(record.id, stream, undefined);
      owed = first?.tag === PRIME ? (JSON.parse(first.message) as StreamPrime) : undefined;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
      'mcp-session-id': record.id,
    });
    res.flushHeaders();
    let from = lastEventId;
    if (!replay) {
      // A new GET stream starts after everything its session's log holds: an entry of its own marks the place,
      // and is the priming event a 2025-11-25 client resumes from.
      const [primeId] = await directory.append(record.id, [{ stream: GET_STREAM, message: '{}', tag: PRIME }]);
      from = primeId;
      if (primeId !== undefined && stateOf(record).protocolVersion >= '2025-11-25') {
        res.write(`id: ${primeId}\nretry: 1000\ndata: \n\n`);
      }
    }
    if (from === undefined) {
      res.end();
      return;
    }
    if (stream === GET_STREAM) {
      let open = listening.get(record.id);
      if (!open) listening.set(record.id, (open = new Set()));
      open.add(res);
      res.once('close', () => {
        open.delete(res);
        if (open.size === 0 && listening.get(record.id) === open) listening.delete(record.id);
      });
      // A resumed stream may have missed list changes while nobody held it (only a holder writes them), or while
      // a replica that has died held it: the client is told to list again.
      const holder = stateOf(record).getStream;
      if (replay && (holder == null || holder.replica !== replica)) {
        gatherListChange(record.id, { tools: true, resources: true, prompts: true });
      }
    }
    await tail(record.id, res, stream, from, owed);
  }

  /** Records this process as the holder of the session's GET stream until `res` closes, and tells the others. */
  async function holdGetStream(id: string, res: ServerResponse): Promise<void> {
    const nonce = randomUUID();
    holding.set(id, nonce);
    res.once('close', () => {
      if (holding.get(id) !== nonce) return;
      holding.delete(id);
      void directory.update(id, { getStream: null }).catch(() => {});
    });
    await directory.update(id, { getStream: { replica, nonce } });
    tell(SESSIONS_TOPIC, { kind: 'stream', session: id, nonce, from: replica });
  }

  async function end(record: SessionRecord, res: ServerResponse): Promise<void> {
    await directory.end(record.id);
    forgetLocally(record.id);
    tell(SESSIONS_TOPIC, { kind: 'ended', session: record.id, from: replica });
    res.writeHead(200).end();
  }

  return {
    async open(req, res, body, principal) {
      const params = (body as { params: { protocolVersion: string; capabilities: unknown; clientInfo: unknown } })
        .params;
      const state: SessionState = {
        protocolVersion: SUPPORTED_PROTOCOL_VERSIONS.includes(params.protocolVersion)
          ? params.protocolVersion
          : LATEST_PROTOCOL_VERSION,
        clientInfo: params.clientInfo,
        capabilities: (params.capabilities ?? {}) as ClientCapabilities,
      };
      if (JSON.stringify(state).length > MAX_STATE_CHARS) {
        sendJsonRpcError(
          res,
          400,
          { code: -32602, message: `initialize params too large: at most ${MAX_STATE_CHARS} characters are kept` },
          (body as { id?: unknown }).id ?? null,
        );
        return;
      }
      const id = randomUUID();
      const now = Date.now();
      const outcome = await directory.open(
        { id, principal: principal.id, state: { ...state }, capped: principal.id !== ANONYMOUS.id },
        now,
      );
      if (outcome === 'principal-full') {
        sendJsonRpcError(res, 429, {
          code: -32000,
          message:
            `too many open sessions for this key (${limits.maxPerPrincipal}); end unused ones with DELETE /mcp, ` +
            'or wait for idle ones to expire',
          data: { code: 'TOO_MANY_SESSIONS', limit: limits.maxPerPrincipal },
        });
        return;
      }
      if (outcome === 'full') {
        sendJsonRpcError(res, 503, {
          code: -32000,
          message: `too many open sessions (${limits.max}); try again later`,
        });
        return;
      }
      const record: SessionRecord = { id, principal: principal.id, state: { ...state }, createdAt: now, lastSeen: now };
      use(id, res);
      await exchange(record, req, res, body, principal, false);
    },
    async serve(req, res, body, principal, id) {
      if (closed || !isSessionId(id)) return false;
      const record = await directory.touch(id, Date.now());
      // Another key's session is as good as unknown: its id must not be usable, nor its existence confirmed.
      if (!record || record.principal !== principal.id) return false;
      use(id, res);
      const version = req.headers['mcp-protocol-version'];
      if (req.method !== 'POST' && typeof version === 'string' && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
        // As the SDK's transport answers it for POSTs (a GET or DELETE never reaches it).
        sendJsonRpcError(res, 400, {
          code: -32000,
          message: `Bad Request: Unsupported protocol version: ${version.slice(0, 40)} (supported versions: ${SUPPORTED_PROTOCOL_VERSIONS.join(', ')})`,
        });
        return true;
      }
      if (req.method === 'GET') await get(record, req, res);
      else if (req.method === 'DELETE') await end(record, res);
      else await post(record, req, res, body, principal);
      return true;
    },
    notifyListChanged(changes) {
      if (!changes.tools && !changes.resources && !changes.prompts) return;
      for (const id of listening.keys()) gatherListChange(id, changes);
      // The other replicas' clients hear of it too: an upstream they share changed, or one they may be sent to.
      tell(SESSIONS_TOPIC, { kind: 'lists', changes, from: replica });
    },
    count: () => directory.count(Date.now()),
    inUse: () => inUse.size,
    logBytes: () => directory.logBytes(),
    async close() {
      closed = true;
      await Promise.all(stopHearing.map((stop) => stop()));
      clearInterval(keeper);
      clearInterval(sweep);
      for (const id of [...listening.keys()]) for (const res of listening.get(id) ?? []) res.end();
      for (const [, calls] of running)
        for (const cancel of [...calls.values()]) cancel('mcplex is shutting down', true);
      for (const subscriber of subscribers.values()) options.subscriptions?.drop(subscriber);
      subscribers.clear();
    },
  };
}
