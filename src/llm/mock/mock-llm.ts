// A scriptable MOCK LLM for tests and benchmarks, never a real model: one loopback HTTP server that speaks the
// OpenAI API (/v1/chat/completions, /v1/embeddings, /v1/models) and the Anthropic Messages API (/v1/messages).
// Every response carries `x-mock-llm: true`. The hot path does no logging and keeps connections alive.
import { isLoopbackHost } from '../../wire/loopback.js';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { McplexError, errorMessage } from '../../errors.js';
import {
  anthropicErrorBody,
  anthropicModelsBody,
  messageBody,
  messageGroups,
  readMessagesRequest,
} from './anthropic-wire.js';
import {
  chatCompletionBody,
  chatCompletionGroups,
  embeddingsBody,
  modelsBody,
  openAiErrorBody,
  readChatRequest,
  readEmbeddingRequest,
} from './openai-wire.js';
import { estimateTokens, textCompletion, toolCallsCompletion } from './script.js';
import type { ChatInput, InvalidRequest, MockStep, ReplyPlan } from './script.js';

export type { MockStep, MockToolCall } from './script.js';

/** What can change while the mock runs (`setOptions`). */
export interface MockLlmBehaviour {
  /** Delay before a response starts, in ms (chat and embeddings). Default 0. */
  latencyMs: number;
  /** A random 0..jitterMs added to `latencyMs`. Default 0. */
  jitterMs: number;
  /** Share of chat and embedding requests (0..1) answered with a 500 server error. Default 0. */
  failureRate: number;
  /** Content chunks per streamed text, and per tool call's arguments. Default 4. */
  chunks: number;
  /** Delay between streamed chunks, in ms. Default 0: the whole stream goes out in one write. */
  chunkDelayMs: number;
  /**
   * With nothing scripted, a request that offers tools gets a tool call (`everything__echo` with the user's words
   * when offered, else the first tool without required arguments), and the turn after the tools ran gets their
   * results reported: a MOCK that exercises tool-running chat in demos.
   */
  autoTools: boolean;
}

export interface MockLlmOptions extends Partial<MockLlmBehaviour> {
  /** Default 0 (a free port). */
  port?: number;
  /** A loopback address only; default 127.0.0.1. */
  host?: string;
  /** A label, sent back as `x-mock-llm-name` and in `system_fingerprint`, to tell several mocks apart. */
  name?: string;
  /** When set, OpenAI requests need `Authorization: Bearer <key>` and Anthropic ones `x-api-key: <key>`. */
  requireKey?: string;
  /** The ids listed by GET /v1/models. Any model name is accepted and echoed back. */
  models?: string[];
  /** Keep every request in `requests` (default true); long-running servers turn it off. */
  record?: boolean;
}

export type MockApi = 'openai' | 'anthropic';

/** What the mock did with a request: a script step, the default reply, a random failure, or a refusal. */
export type MockOutcome = MockStep['kind'] | 'default' | 'failure' | 'rejected';

export interface MockRequest {
  /** Also sent back as the `x-mock-request-id` header. */
  id: number;
  method: string;
  path: string;
  api: MockApi;
  /** The parsed JSON body (the raw text when it is not JSON); undefined until read, and for GET. */
  body: unknown;
  headers: IncomingHttpHeaders;
  /** Arrival time (ms since the epoch). */
  at: number;
  /** The client went away before the response finished (not set when the mock cut the connection itself). */
  aborted: boolean;
  /** The whole response was written. */
  completed: boolean;
  /** Status of the response head, once written. */
  status: number | undefined;
  outcome: MockOutcome | undefined;
}

export interface MockLlm {
  /** Base URL, e.g. `http://127.0.0.1:PORT` (the APIs are under /v1). */
  readonly url: string;
  readonly port: number;
  readonly name: string;
  /** Every request so far, in arrival order (live entries: `aborted` and `completed` change as requests end). */
  readonly requests: readonly MockRequest[];
  /** Requests received whose response has not closed yet. */
  readonly inFlight: number;
  /** The most requests in flight at once since the start (or the last resetRequests). */
  readonly peakInFlight: number;
  /** Script steps not yet used. */
  readonly queued: number;
  /** Appends steps; each chat request (OpenAI or Anthropic) takes the next, the default reply when none is left. */
  enqueue(...steps: MockStep[]): void;
  clearQueue(): void;
  setOptions(options: Partial<MockLlmBehaviour>): void;
  resetRequests(): void;
  /**
   * Stops listening and destroys every connection, in-flight requests included (they are not marked aborted);
   * resolves when all are closed. The same as kill(): the name says what a test means.
   */
  close(): Promise<void>;
  /** Simulates a crashed backend: destroys every open socket at once and stops listening; the port is free again. */
  kill(): Promise<void>;
}

const MAX_BODY = 32 * 1024 * 1024;
const JSON_TYPE = 'application/json';
const SSE_TYPE = 'text/event-stream; charset=utf-8';

/** One request and its response, as the handlers see it. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  api: MockApi;
  entry: MockRequest;
  closed: boolean;
  /** The mock destroyed the connection on purpose (a `disconnect` step). */
  cutByMock: boolean;
}

type ReplyStep = Extract<MockStep, { kind: 'text' | 'tool_calls' | 'report_tool_results' }> | undefined;

export async function startMockLlm(options: MockLlmOptions = {}): Promise<MockLlm> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) {
    throw new McplexError(
      'LISTEN_REFUSED',
      `refusing to listen on ${host}: the mock LLM only listens on loopback (127.0.0.1, ::1, localhost)`,
    );
  }
  const name = options.name ?? 'mock';
  if (!/^[\x20-\x7e]+$/.test(name)) throw new TypeError('name must be printable ASCII (it is sent in a header)');
  let behaviour = mergeBehaviour(
    { latencyMs: 0, jitterMs: 0, failureRate: 0, chunks: 4, chunkDelayMs: 0, autoTools: false },
    {
      latencyMs: options.latencyMs,
      jitterMs: options.jitterMs,
      failureRate: options.failureRate,
      chunks: options.chunks,
      chunkDelayMs: options.chunkDelayMs,
      autoTools: options.autoTools,
    },
  );
  const requireKey = options.requireKey;
  const record = options.record ?? true;
  const models = options.models ?? ['mock-chat', 'mock-embedding'];
  const fingerprint = `fp_mock_${name}`;
  const openAiModels = modelsBody(models, Math.floor(Date.now() / 1000));
  const anthropicModels = anthropicModelsBody(models);

  const queue: MockStep[] = [];
  let requests: MockRequest[] = [];
  let inFlight = 0;
  let peakInFlight = 0;
  let nextId = 1;
  let stopping = false;
  const sockets = new Set<Socket>();
  const timers = new Map<NodeJS.Timeout, () => void>();

  /** A delay that close() and kill() end early; callers check `gone` afterwards. */
  function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.set(timer, resolve);
    });
  }

  function gone(x: Exchange): boolean {
    return x.closed || stopping || x.req.socket.destroyed;
  }

  function later(x: Exchange, respond: () => void): void {
    const delay = behaviour.latencyMs + (behaviour.jitterMs > 0 ? Math.random() * behaviour.jitterMs : 0);
    if (delay <= 0) {
      respond();
      return;
    }
    void sleep(delay).then(() => {
      if (!gone(x)) guard(x, respond);
    });
  }

  function guard(x: Exchange, respond: () => void): void {
    try {
      respond();
    } catch (error) {
      fail(x, 500, `mock LLM internal error: ${errorMessage(error)}`);
    }
  }

  function writeHead(x: Exchange, status: number, type: string, length?: number, extra?: Record<string, string>) {
    const headers: OutgoingHttpHeaders = { ...extra, 'content-type': type };
    if (length !== undefined) headers['content-length'] = length;
    else headers['cache-control'] = 'no-cache';
    headers['x-mock-llm'] = 'true';
    headers['x-mock-llm-name'] = name;
    headers['x-mock-request-id'] = String(x.entry.id);
    x.entry.status = status;
    x.res.writeHead(status, headers);
  }

  function sendJson(x: Exchange, status: number, body: string, extra?: Record<string, string>): void {
    if (gone(x) || x.res.headersSent) return;
    writeHead(x, status, JSON_TYPE, Buffer.byteLength(body), extra);
    x.res.end(body);
  }

  function fail(
    x: Exchange,
    status: number,
    message: string,
    param: string | null = null,
    extra?: Record<string, string>,
  ): void {
    x.entry.outcome ??= 'rejected';
    const body = x.api === 'openai' ? openAiErrorBody(status, message, param) : anthropicErrorBody(status, message);
    sendJson(x, status, body, extra);
  }

  function cut(x: Exchange): void {
    x.cutByMock = true;
    x.req.socket.destroy();
  }

  function authorised(x: Exchange): boolean {
    const headers = x.req.headers;
    if (x.api === 'anthropic') {
      const key = headers['x-api-key'];
      if (typeof key !== 'string' || key === '') fail(x, 401, 'x-api-key header is required');
      else if (requireKey !== undefined && key !== requireKey) fail(x, 401, 'invalid x-api-key');
      else if (headers['anthropic-version'] === undefined) fail(x, 400, 'anthropic-version: header is required');
      else return true;
      return false;
    }
    if (requireKey === undefined || headers.authorization === `Bearer ${requireKey}`) return true;
    fail(
      x,
      401,
      headers.authorization === undefined
        ? "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        : 'Incorrect API key provided.',
    );
    return false;
  }

  function failureRoll(x: Exchange): boolean {
    if (behaviour.failureRate <= 0 || Math.random() >= behaviour.failureRate) return false;
    x.entry.outcome = 'failure';
    later(x, () => fail(x, 500, 'mock LLM server error (failureRate)'));
    return true;
  }

  function planReply(x: Exchange, input: ChatInput, step: ReplyStep): ReplyPlan {
    const choices = [];
    for (let i = 0; i < input.n; i++) {
      if (step?.kind === 'tool_calls') {
        choices.push(toolCallsCompletion(step.calls, x.api === 'openai' ? 'call_' : 'toolu_'));
      } else {
        const text =
          step?.kind === 'text'
            ? step.text
            : step?.kind === 'report_tool_results'
              ? `tool results: ${input.toolResults.join(' | ')}`
              : `mock reply: ${input.lastUserText}`;
        choices.push(textCompletion(text, input.maxTokens));
      }
    }
    return {
      id: x.api === 'openai' ? `chatcmpl-mock${x.entry.id}` : `msg_mock${x.entry.id}`,
      created: Math.floor(Date.now() / 1000),
      model: input.model,
      fingerprint,
      choices,
      promptTokens: estimateTokens(input.promptChars),
      includeUsage: input.includeUsage,
      chunks: behaviour.chunks,
    };
  }

  function reply(x: Exchange, input: ChatInput, step: ReplyStep): void {
    const plan = planReply(x, input, step);
    if (!input.stream) sendJson(x, 200, x.api === 'openai' ? chatCompletionBody(plan) : messageBody(plan));
    else void stream(x, x.api === 'openai' ? chatCompletionGroups(plan) : messageGroups(plan));
  }

  function disconnect(x: Exchange, input: ChatInput, afterChunks: number): void {
    if (afterChunks <= 0) {
      cut(x);
      return;
    }
    const plan = planReply(x, input, undefined);
    if (input.stream) {
      void stream(x, x.api === 'openai' ? chatCompletionGroups(plan) : messageGroups(plan), afterChunks);
      return;
    }
    const body = Buffer.from(x.api === 'openai' ? chatCompletionBody(plan) : messageBody(plan));
    writeHead(x, 200, JSON_TYPE, body.length);
    x.res.write(body.subarray(0, body.length >> 1), () => cut(x));
  }

  /** Writes the groups of a streamed reply, `chunkDelayMs` apart; with `cutAfter`, destroys the socket after that many. */
  async function stream(x: Exchange, groups: string[], cutAfter?: number): Promise<void> {
    if (gone(x)) return;
    writeHead(x, 200, SSE_TYPE);
    const limit = cutAfter === undefined ? groups.length : Math.min(cutAfter, groups.length);
    const delay = behaviour.chunkDelayMs;
    if (delay <= 0) {
      if (cutAfter === undefined) x.res.end(groups.join(''));
      else x.res.write(groups.slice(0, limit).join(''), () => cut(x));
      return;
    }
    for (let i = 0; i < limit; i++) {
      if (i > 0) {
        await sleep(delay);
        if (gone(x)) return;
      }
      const data = groups[i] ?? '';
      if (cutAfter !== undefined && i === limit - 1) x.res.write(data, () => cut(x));
      else if (i === groups.length - 1) x.res.end(data);
      else x.res.write(data);
    }
  }

  function chat(x: Exchange, body: unknown): void {
    if (!authorised(x)) return;
    const input: ChatInput | InvalidRequest = x.api === 'openai' ? readChatRequest(body) : readMessagesRequest(body);
    if ('invalid' in input) {
      fail(x, 400, input.invalid, input.param);
      return;
    }
    if (failureRoll(x)) return;
    const step = queue.shift() ?? (behaviour.autoTools ? autoStep(input) : undefined);
    x.entry.outcome = step?.kind ?? 'default';
    if (step?.kind === 'hang') return;
    later(x, () => {
      if (step?.kind === 'error') {
        fail(x, step.status, step.message ?? `mock LLM error ${step.status}`, null, step.headers);
      } else if (step?.kind === 'disconnect') {
        disconnect(x, input, step.afterChunks ?? 0);
      } else {
        reply(x, input, step);
      }
    });
  }

  /** The demo's scripted model: call a tool when tools are offered, then report what they returned. */
  function autoStep(input: ChatInput): MockStep | undefined {
    if (input.afterTools) return { kind: 'report_tool_results' };
    if (input.toolNames.length === 0) return undefined;
    const echo = input.toolNames.find((name) => name.endsWith('__echo'));
    if (echo) return { kind: 'tool_calls', calls: [{ name: echo, arguments: { message: input.lastUserText } }] };
    return { kind: 'tool_calls', calls: [{ name: input.toolNames[0]!, arguments: {} }] };
  }

  function embeddings(x: Exchange, body: unknown): void {
    if (!authorised(x)) return;
    const input = readEmbeddingRequest(body);
    if ('invalid' in input) {
      fail(x, 400, input.invalid, input.param);
      return;
    }
    if (failureRoll(x)) return;
    x.entry.outcome = 'default';
    later(x, () => sendJson(x, 200, embeddingsBody(input)));
  }

  function readJson(x: Exchange, then: (body: unknown) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    x.req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    x.req.once('end', () => {
      if (size > MAX_BODY) {
        fail(x, 413, `the request body exceeds ${MAX_BODY} bytes`);
        return;
      }
      const text = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        x.entry.body = text;
        if (authorised(x)) fail(x, 400, 'the request body is not valid JSON');
        return;
      }
      x.entry.body = body;
      guard(x, () => then(body));
    });
  }

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const path = query === -1 ? url : url.slice(0, query);
    const api: MockApi =
      path === '/v1/messages'
        ? 'anthropic'
        : path === '/v1/chat/completions' || path === '/v1/embeddings'
          ? 'openai'
          : req.headers['anthropic-version'] === undefined
            ? 'openai'
            : 'anthropic';
    const entry: MockRequest = {
      id: nextId++,
      method: req.method ?? 'GET',
      path,
      api,
      body: undefined,
      headers: req.headers,
      at: Date.now(),
      aborted: false,
      completed: false,
      status: undefined,
      outcome: undefined,
    };
    if (record) requests.push(entry);
    const x: Exchange = { req, res, api, entry, closed: false, cutByMock: false };
    inFlight++;
    peakInFlight = Math.max(peakInFlight, inFlight);
    res.once('close', () => {
      inFlight--;
      x.closed = true;
      entry.completed = res.writableFinished;
      if (!res.writableFinished && !x.cutByMock && !stopping) entry.aborted = true;
    });

    const method = entry.method;
    if (method === 'POST' && path === '/v1/chat/completions') readJson(x, (body) => chat(x, body));
    else if (method === 'POST' && path === '/v1/messages') readJson(x, (body) => chat(x, body));
    else if (method === 'POST' && path === '/v1/embeddings') readJson(x, (body) => embeddings(x, body));
    else if (method === 'GET' && path === '/v1/models') {
      if (authorised(x)) {
        entry.outcome = 'default';
        sendJson(x, 200, api === 'openai' ? openAiModels : anthropicModels);
      }
    } else fail(x, 404, `the mock LLM has no route for ${method} ${path}`);
  }

  const server = createServer({ noDelay: true }, (req, res) => guardRequest(req, res));
  function guardRequest(req: IncomingMessage, res: ServerResponse): void {
    try {
      handle(req, res);
    } catch (error) {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain', 'x-mock-llm': 'true' });
      res.end(`mock LLM internal error: ${errorMessage(error)}`);
    }
  }
  // Benchmarks reuse connections; a long keep-alive keeps them from reconnecting between bursts.
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(options.port ?? 0, host.replace(/^\[(.*)\]$/, '$1'));
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  const url = `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;

  let closing: Promise<void> | undefined;
  function shutdown(): Promise<void> {
    if (closing !== undefined) return closing;
    stopping = true;
    // Settled once every socket has closed (and with it every response, so inFlight and aborted are final).
    const socketsClosed = [...sockets].map((socket) => once(socket, 'close').then(() => undefined));
    const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    for (const [timer, wake] of timers) {
      clearTimeout(timer);
      wake();
    }
    timers.clear();
    closing = Promise.all([serverClosed, ...socketsClosed]).then(() => undefined);
    return closing;
  }

  return {
    url,
    port: address.port,
    name,
    get requests() {
      return requests;
    },
    get inFlight() {
      return inFlight;
    },
    get peakInFlight() {
      return peakInFlight;
    },
    get queued() {
      return queue.length;
    },
    enqueue(...steps) {
      for (const step of steps) checkStep(step);
      queue.push(...steps);
    },
    clearQueue() {
      queue.length = 0;
    },
    setOptions(partial) {
      behaviour = mergeBehaviour(behaviour, partial);
    },
    resetRequests() {
      requests = [];
      peakInFlight = inFlight;
    },
    close: shutdown,
    kill: shutdown,
  };
}

function mergeBehaviour(base: MockLlmBehaviour, partial: Partial<MockLlmBehaviour>): MockLlmBehaviour {
  const merged: MockLlmBehaviour = { ...base };
  for (const key of Object.keys(base) as (keyof MockLlmBehaviour)[]) {
    if (partial[key] !== undefined) Object.assign(merged, { [key]: partial[key] });
  }
  if (typeof merged.autoTools !== 'boolean') throw new TypeError('autoTools must be a boolean');
  for (const key of ['latencyMs', 'jitterMs', 'chunkDelayMs'] as const) {
    if (!Number.isFinite(merged[key]) || merged[key] < 0) throw new RangeError(`${key} must be a number >= 0`);
  }
  if (!(merged.failureRate >= 0 && merged.failureRate <= 1))
    throw new RangeError('failureRate must be between 0 and 1');
  if (!Number.isInteger(merged.chunks) || merged.chunks < 1) throw new RangeError('chunks must be an integer >= 1');
  return merged;
}

function checkStep(step: MockStep): void {
  switch (step.kind) {
    case 'text':
      if (typeof step.text !== 'string') throw new TypeError('a text step needs text');
      return;
    case 'tool_calls':
      if (!Array.isArray(step.calls) || step.calls.length === 0) throw new TypeError('a tool_calls step needs calls');
      return;
    case 'error':
      if (!Number.isInteger(step.status) || step.status < 400 || step.status > 599) {
        throw new RangeError('an error step needs a status between 400 and 599');
      }
      return;
    case 'disconnect':
      if (step.afterChunks !== undefined && (!Number.isInteger(step.afterChunks) || step.afterChunks < 0)) {
        throw new RangeError('afterChunks must be an integer >= 0');
      }
      return;
    case 'hang':
    case 'report_tool_results':
      return;
    default:
      throw new TypeError(`unknown step kind ${JSON.stringify((step as { kind: unknown }).kind)}`);
  }
}
