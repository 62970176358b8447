// The fuzz runner: for each auth mode it starts the mock LLM and mcplex (with the stdio fixture MCP server) in this
// process, sends generated requests over keep-alive loopback connections, checks every answer, and shrinks failures.
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Random, Value } from 'fast-check';
import type { Arbitrary } from 'fast-check';
import { Pool } from 'undici';
import type { Dispatcher } from 'undici';
import type { RunningServer } from '../../src/main.js';
import { startMockLlm } from '../../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../../src/llm/mock/mock-llm.js';
import { fixtureStdio, startMcplex } from '../support/harness.js';
import { KNOWN_INPUTS, LEGACY_VERSION, VALID_KEY_FORMS, fuzzRequest } from './arbitraries.js';
import type { AuthChoice, FuzzRequest } from './arbitraries.js';
import { checkAnswer, confirmedBad, family, messagesOf, normalise } from './checks.js';
import type { Answer, PropertyName, SentRequest, Violation } from './checks.js';
import { UNKNOWN_KEY, reproduction } from './repro.js';

export type AuthMode = 'none' | 'keys';

export interface FuzzOptions {
  /** Inputs in all, shared among the modes (each mode gets the same inputs from the same seed). */
  numRuns: number;
  seed: number;
  modes?: readonly AuthMode[];
  /** Requests in flight at once. Default 8. */
  concurrency?: number;
  /** Inputs between two health checks. Default 500. */
  batchSize?: number;
  /** A request without a whole answer by then is a finding. Default 15 s. */
  timeoutMs?: number;
  /** Requests spent shrinking each distinct finding. Default 100. */
  shrinkRuns?: number;
  /** Distinct findings shrunk per mode (the rest keep their first input). Default 60. */
  maxShrunk?: number;
  /** How far the heap may end above its baseline. Default 64 MB. */
  heapSlackBytes?: number;
  onProgress?: (progress: FuzzProgress) => void;
}

export interface FuzzProgress {
  mode: AuthMode;
  done: number;
  total: number;
  findings: number;
  inputsPerSecond: number;
}

export interface Finding {
  property: PropertyName;
  mode: AuthMode;
  /** The route of the input shown; `routes` lists every route that failed the same way. */
  route: string;
  routes: string[];
  detail: string;
  /** HTTP status and JSON-RPC error codes of the (shrunk) answer. */
  code: string;
  /** Inputs that failed the same way. */
  count: number;
  input: FuzzRequest;
  /** The smallest input found that still fails the same way. */
  shrunk: FuzzRequest;
  /** The answer to the shrunk input, cut to 600 characters. */
  body: string;
  repro: string;
}

export interface ModeReport {
  mode: AuthMode;
  inputs: number;
  elapsedMs: number;
  inputsPerSecond: number;
  heap: { baselineBytes: number; afterBytes: number; gc: GcKind };
}

export interface FuzzResult {
  seed: number;
  inputs: number;
  /** Inputs per route, over every mode. */
  perRoute: Record<string, number>;
  /** Statuses per route, over every mode. */
  statuses: Record<string, Record<string, number>>;
  /** Answers per route that were a success (2xx, no error inside): generated inputs do reach real handling. */
  successes: Record<string, number>;
  findings: Finding[];
  modes: ModeReport[];
}

type GcKind = 'exposed' | 'flag' | 'none';

const MAX_BODY_BYTES = 1024 * 1024;
const MAX_READ_BYTES = 8 * 1024 * 1024;
/** How long an open-ended stream (GET /mcp, subscriptions/listen) is read before the runner drops it. */
const OPEN_ENDED_READ_MS = 250;
const POOL_SESSIONS = 4;
const POOL_CONVERSATIONS = 3;
const MAX_DISTINCT = 400;

/** A seeded xoshiro128** for fast-check's Random (fast-check exports no generator of its own). */
function seeded(seed: number): Random {
  let x = seed >>> 0;
  const splitmix = () => {
    x = (x + 0x9e3779b9) >>> 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  const rotl = (v: number, k: number) => (v << k) | (v >>> (32 - k));
  interface Generator {
    clone(): Generator;
    next(): number;
    getState(): readonly number[];
  }
  const xoshiro = (a: number, b: number, c: number, d: number): Generator => ({
    clone: () => xoshiro(a, b, c, d),
    next() {
      const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) | 0;
      const t = b << 9;
      c ^= a;
      d ^= b;
      b ^= c;
      a ^= d;
      c ^= t;
      d = rotl(d, 11);
      return result;
    },
    getState: () => [a, b, c, d],
  });
  return new Random(xoshiro(splitmix(), splitmix(), splitmix(), splitmix()));
}

/** fast-check's own bias schedule: small values more often early in a run. */
const biasFactor = (run: number) => 2 + Math.floor(Math.log(run + 1) / Math.log(10));

let gcFunction: (() => void) | undefined;
function gcKind(): GcKind {
  if (typeof globalThis.gc === 'function') {
    gcFunction = globalThis.gc as () => void;
    return 'exposed';
  }
  try {
    // Outside `node --expose-gc` (vitest's workers): V8 still hands gc() to a new context once the flag is set.
    setFlagsFromString('--expose-gc');
    gcFunction = runInNewContext('gc') as () => void;
    return 'flag';
  } catch {
    return 'none';
  }
}

/** heapUsed after garbage collection (or, without gc(), after allocating and waiting a few cycles). */
async function settledHeap(kind: GcKind): Promise<number> {
  for (let round = 0; round < 6; round++) {
    if (kind !== 'none' && gcFunction) gcFunction();
    else new Array(1_000_000).fill(round);
    await sleep(kind === 'none' ? 200 : 40);
  }
  return process.memoryUsage().heapUsed;
}

interface Outcome {
  sent: SentRequest;
  answer: Answer | undefined;
  violations: Violation[];
}

/** One running mcplex and what the runner keeps beside it: keys, live sessions and conversations. */
interface Target {
  mode: AuthMode;
  send(request: FuzzRequest): Promise<Outcome>;
  /** Health, readiness, and fresh sessions and conversations (so that neither grows for the whole run). */
  afterBatch(): Promise<Violation[]>;
  /** Ends the runner's own sessions and conversations. */
  tidy(): Promise<void>;
  /** Opens fresh ones (after tidy, before shrinking). */
  refill(): Promise<void>;
  close(): Promise<void>;
}

function headerOf(answer: Answer, name: string): string | undefined {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function startTarget(mode: AuthMode, timeoutMs: number): Promise<Target> {
  const mock: MockLlm = await startMockLlm({ name: 'fuzz-mock', autoTools: true, record: false });
  const deployment = { provider: 'openai' as const, baseUrl: `${mock.url}/v1`, model: 'backend' };
  let mcplex: RunningServer;
  try {
    mcplex = await startMcplex({
      auth: { mode },
      // A short call timeout: a request the fixture never answers ends as UPSTREAM_TIMEOUT before the runner's own.
      mcpServers: { fixture: { ...fixtureStdio(), timeouts: { call: Math.max(1000, timeoutMs / 3) } } },
      llm: {
        models: { small: { deployments: [deployment], aliases: ['tiny'] }, large: { deployments: [deployment] } },
        // The cache is an LRU bounded by design; a small bound keeps the heap check about leaks, not about it.
        cache: { maxBytes: 2 * 1024 * 1024 },
      },
      server: { maxBodyBytes: MAX_BODY_BYTES },
    });
  } catch (error) {
    await mock.close();
    throw error;
  }
  await mcplex.gateway.whenSettled();
  const url = new URL(mcplex.url);
  const port = url.port;
  const pool = new Pool(url.origin, { connections: 16, pipelining: 1, keepAliveTimeout: 30_000 });
  const keys =
    mode === 'keys'
      ? {
          plain: (await mcplex.policy.keys.create({ name: 'fuzz-plain' })).token,
          scoped: (
            await mcplex.policy.keys.create({
              name: 'fuzz-scoped',
              servers: ['fixture'],
              tools: ['*__echo'],
              models: ['small'],
            })
          ).token,
          admin: (await mcplex.policy.keys.create({ name: 'fuzz-admin', admin: true })).token,
        }
      : { plain: UNKNOWN_KEY, scoped: UNKNOWN_KEY, admin: UNKNOWN_KEY };

  function authHeaders(choice: AuthChoice): Record<string, string> {
    switch (choice) {
      case 'plain':
        return { authorization: `Bearer ${keys.plain}` };
      case 'scoped':
        return { authorization: `Bearer ${keys.scoped}` };
      case 'admin':
        return { authorization: `Bearer ${keys.admin}` };
      case 'plain-lowercase':
        return { authorization: `bearer ${keys.plain}` };
      case 'plain-uppercase':
        return { authorization: `BEARER ${keys.plain}` };
      case 'plain-spaces':
        return { authorization: `Bearer   ${keys.plain}` };
      case 'plain-x-api-key':
        return { 'x-api-key': keys.plain };
      case 'missing':
        return {};
      case 'malformed':
        return { authorization: 'Bearer not-a-key' };
      case 'unknown-key':
        return { authorization: `Bearer ${UNKNOWN_KEY}` };
      case 'basic':
        return { authorization: 'Basic dXNlcjpwYXNz' };
      case 'bearer-empty':
        return { authorization: 'Bearer ' };
    }
  }

  /** A plain request of the runner's own (set-up and tidying), with the plain key. */
  async function plainRequest(
    method: Dispatcher.HttpMethod,
    path: string,
    body?: unknown,
    extra: Record<string, string> = {},
    auth: AuthChoice = 'plain',
  ): Promise<Answer> {
    const response = await pool.request({
      method,
      path,
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        ...authHeaders(auth),
        ...extra,
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    return { status: response.statusCode, headers: response.headers, body: await response.body.text() };
  }

  const sessions: string[] = [];
  const conversations: string[] = [];
  let nextSession = 0;
  let nextConversation = 0;

  async function openSession(): Promise<string> {
    const answer = await plainRequest('POST', '/mcp', {
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: LEGACY_VERSION, capabilities: {}, clientInfo: { name: 'fuzz', version: '1' } },
    });
    const id = headerOf(answer, 'mcp-session-id');
    if (!id) throw new Error(`initialize answered ${answer.status} without a session: ${answer.body.slice(0, 200)}`);
    const version = { 'mcp-session-id': id, 'mcp-protocol-version': LEGACY_VERSION };
    await plainRequest('POST', '/mcp', { jsonrpc: '2.0', method: 'notifications/initialized' }, version);
    return id;
  }
  const endSession = (id: string, auth: AuthChoice = 'plain') =>
    plainRequest('DELETE', '/mcp', undefined, { 'mcp-session-id': id }, auth).catch(() => undefined);
  async function openConversation(): Promise<string> {
    const answer = await plainRequest('POST', '/v1/conversations', { metadata: { by: 'fuzz' } });
    const id = (JSON.parse(answer.body) as { id?: string }).id;
    if (!id) throw new Error(`POST /v1/conversations answered ${answer.status}: ${answer.body.slice(0, 200)}`);
    return id;
  }
  const endConversation = (id: string, auth: AuthChoice = 'plain') =>
    plainRequest('DELETE', `/v1/conversations/${encodeURIComponent(id)}`, undefined, {}, auth).catch(() => undefined);

  async function refill(): Promise<void> {
    await Promise.all(sessions.splice(0).map((id) => endSession(id)));
    await Promise.all(conversations.splice(0).map((id) => endConversation(id)));
    for (let i = 0; i < POOL_SESSIONS; i++) sessions.push(await openSession());
    for (let i = 0; i < POOL_CONVERSATIONS; i++) conversations.push(await openConversation());
  }
  await refill();

  function resolve(request: FuzzRequest): { sent: SentRequest; session: string } {
    const session = sessions[nextSession++ % sessions.length] ?? 'no-session';
    const conversation = conversations[nextConversation++ % conversations.length] ?? 'no-conversation';
    const fill = (text: string) =>
      text.includes('{{')
        ? text
            .replaceAll('{{session}}', session)
            .replaceAll('{{conversation}}', conversation)
            .replaceAll('{{port}}', port)
        : text;
    const headers: Record<string, string> = { ...authHeaders(request.auth) };
    for (const [name, value] of Object.entries(request.headers)) headers[name] = fill(value);
    const body = request.body === undefined ? undefined : fill(request.body);
    const bad = confirmedBad(request.bad, headers, body);
    const route = family(request.path);
    const guarded = route !== 'other';
    if (mode === 'keys' && guarded && !VALID_KEY_FORMS.has(request.auth)) bad.push('no valid API key');
    if (body !== undefined && Buffer.byteLength(body) > MAX_BODY_BYTES) bad.push('body over the limit');
    return {
      sent: {
        route: request.route,
        method: request.method,
        path: fill(request.path),
        headers,
        ...(body === undefined ? {} : { body }),
        bad,
        validKey: mode === 'keys' && guarded && VALID_KEY_FORMS.has(request.auth),
      },
      session,
    };
  }

  async function exchange(sent: SentRequest, openEnded: boolean): Promise<Answer | 'timeout' | Error> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      const response = await pool.request({
        method: sent.method as Dispatcher.HttpMethod,
        path: sent.path,
        headers: sent.headers,
        ...(sent.body === undefined ? {} : { body: sent.body }),
        signal: abort.signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const chunks: Buffer[] = [];
      let size = 0;
      const stop = openEnded ? setTimeout(() => response.body.destroy(), OPEN_ENDED_READ_MS) : undefined;
      try {
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          if (size < MAX_READ_BYTES) chunks.push(chunk);
          size += chunk.length;
        }
      } catch (error) {
        // An open-ended stream is cut by the runner itself; anything else is the server's doing.
        if (!openEnded || abort.signal.aborted) throw error;
      } finally {
        clearTimeout(stop);
      }
      return { status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks).toString('utf8') };
    } catch (error) {
      if (abort.signal.aborted) return 'timeout';
      return error instanceof Error ? error : new Error(String(error));
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends what an input left behind: the sessions, conversations and keys it created. */
  async function tidyAfter(request: FuzzRequest, sent: SentRequest, answer: Answer, session: string): Promise<void> {
    const opened = headerOf(answer, 'mcp-session-id');
    if (sent.method === 'POST' && opened && sent.headers['mcp-session-id'] !== opened) {
      await endSession(opened, request.auth);
    }
    if (request.route === 'v1:conversations:create' && answer.status === 200) {
      const id = (JSON.parse(answer.body) as { id?: unknown }).id;
      if (typeof id === 'string') await endConversation(id, request.auth);
    }
    if (request.route === 'admin:keys:create' && answer.status === 201) {
      const id = (JSON.parse(answer.body) as { id?: unknown }).id;
      if (typeof id === 'string') await plainRequest('DELETE', `/admin/keys/${id}`, undefined, {}, 'admin');
    }
    // A pool session an input ended is replaced, so that later inputs still find live ones.
    if (request.route === 'mcp:delete' && answer.status === 200 && sent.headers['mcp-session-id'] === session) {
      const index = sessions.indexOf(session);
      if (index >= 0) sessions[index] = await openSession();
    }
    if (request.route === 'v1:conversations:delete' && answer.status === 200) {
      const index = conversations.indexOf(sent.path.split('/')[3] ?? '');
      if (index >= 0) conversations[index] = await openConversation();
    }
  }

  return {
    mode,
    async send(request) {
      const { sent, session } = resolve(request);
      const answer = await exchange(sent, request.openEnded);
      if (answer === 'timeout') {
        return {
          sent,
          answer: undefined,
          violations: [
            { property: 'answers-in-time', detail: `no whole answer within ${timeoutMs} ms`, code: 'timeout' },
          ],
        };
      }
      if (answer instanceof Error && (answer as { code?: unknown }).code === 'UND_ERR_INVALID_ARG') {
        // undici refused to send it (a header HTTP cannot carry): the generator's fault, not mcplex's.
        return { sent, answer: undefined, violations: [] };
      }
      if (answer instanceof Error) {
        // A body over the limit may be cut off mid-upload, once mcplex has answered 413 and closed the connection.
        if (sent.bad.includes('body over the limit')) return { sent, answer: undefined, violations: [] };
        return {
          sent,
          answer: undefined,
          violations: [{ property: 'answers-at-all', detail: `no answer: ${answer.message}`, code: 'no answer' }],
        };
      }
      try {
        await tidyAfter(request, sent, answer, session);
      } catch {
        // Tidying is best effort; the next batch starts with fresh sessions and conversations anyway.
      }
      return { sent, answer, violations: checkAnswer(sent, answer) };
    },
    async afterBatch() {
      const violations: Violation[] = [];
      const health = await plainRequest('GET', '/healthz').catch((error: Error) => error);
      if (health instanceof Error || health.status !== 200) {
        const code = health instanceof Error ? 'no answer' : String(health.status);
        violations.push({ property: 'healthy-after-batch', detail: `/healthz answered ${code}`, code });
      }
      const ready = await plainRequest('GET', '/readyz').catch((error: Error) => error);
      if (ready instanceof Error || ready.status !== 200) {
        const code = ready instanceof Error ? 'no answer' : String(ready.status);
        const detail = ready instanceof Error ? ready.message : ready.body.slice(0, 300);
        violations.push({
          property: 'upstream-ready-after-batch',
          detail: `/readyz answered ${code}: ${detail}`,
          code,
        });
        // Wait for the fixture to come back, so that the next batch reaches it again.
        for (let i = 0; i < 100 && (await plainRequest('GET', '/readyz').catch(() => undefined))?.status !== 200; i++) {
          await sleep(100);
        }
      }
      await refill();
      return violations;
    },
    async tidy() {
      await Promise.all(sessions.splice(0).map((id) => endSession(id)));
      await Promise.all(conversations.splice(0).map((id) => endConversation(id)));
    },
    refill,
    async close() {
      await pool.close();
      await mcplex.close();
      await mock.close();
    },
  };
}

interface Distinct {
  violation: Violation;
  route: string;
  value: Value<FuzzRequest>;
  count: number;
  /** The answer to the first input, cut short. */
  body: string;
}

/** Findings that belong to no single input (health after a batch, the heap): the input shown is a stand-in. */
const NO_INPUT: FuzzRequest = {
  route: 'none',
  method: 'GET',
  path: '/healthz',
  headers: {},
  auth: 'plain',
  bad: [],
  openEnded: false,
};

function runFinding(mode: AuthMode, violation: Violation, count: number, what: string): Finding {
  return {
    property: violation.property,
    mode,
    route: 'run',
    routes: ['run'],
    detail: violation.detail,
    code: violation.code,
    count,
    input: NO_INPUT,
    shrunk: NO_INPUT,
    body: '',
    repro: what,
  };
}

/** What tells findings apart: property, route, codes, and the gist of what was wrong. */
function signature(route: string, violation: Violation): string {
  return `${violation.property}|${route}|${violation.code}|${gist(violation)}`;
}

/** The gist of a violation: for bad input, which kinds of bad; else its detail without ids and numbers. */
function gist(violation: Violation): string {
  if (violation.property !== 'bad-input-rejected') return normalise(violation.detail);
  return (/\((.*)\) answered/.exec(violation.detail)?.[1] ?? '').split('; ').map(normalise).sort().join('; ');
}

/** The HTTP status of a violation's code (`200 -32603,-32602` → `200`). */
const statusOf = (violation: Violation) => violation.code.split(' ', 1)[0];

function isSuccess(answer: Answer): boolean {
  if (answer.status < 200 || answer.status >= 300) return false;
  const messages = messagesOf(answer) ?? [];
  return !messages.some((m) => typeof m === 'object' && m !== null && 'error' in m);
}

/**
 * Runs `numRuns` generated inputs against mcplex in each auth mode and reports what the properties of checks.ts
 * found, each finding with its input shrunk as far as `shrinkRuns` requests allow.
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzResult> {
  const modes = options.modes ?? ['none', 'keys'];
  const concurrency = options.concurrency ?? 8;
  const batchSize = options.batchSize ?? 500;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const shrinkRuns = options.shrinkRuns ?? 100;
  const maxShrunk = options.maxShrunk ?? 60;
  const heapSlack = options.heapSlackBytes ?? 64 * 1024 * 1024;
  const perMode = Math.ceil(options.numRuns / modes.length);
  const arbitrary = fuzzRequest();
  const gc = gcKind();

  const result: FuzzResult = {
    seed: options.seed,
    inputs: 0,
    perRoute: {},
    statuses: {},
    successes: {},
    findings: [],
    modes: [],
  };

  for (const mode of modes) {
    const target = await startTarget(mode, timeoutMs);
    try {
      const distinct = new Map<string, Distinct>();
      const batchFindings = new Map<string, { violation: Violation; count: number }>();
      // What the runner itself keeps of its findings (inputs of up to 1.5 MB each) is not mcplex's heap growth.
      let retainedBytes = 0;
      const record = (route: string, value: Value<FuzzRequest>, outcome: Outcome) => {
        for (const violation of outcome.violations) {
          const key = signature(route, violation);
          const seen = distinct.get(key);
          if (seen) seen.count++;
          else if (distinct.size < MAX_DISTINCT) {
            const body = outcome.answer?.body.slice(0, 600) ?? '';
            distinct.set(key, { violation, route, value, count: 1, body });
            retainedBytes += 2 * ((value.value.body?.length ?? 0) + key.length + body.length) + 4096;
          }
        }
      };
      const random = seeded(options.seed);
      let generated = 0;
      let done = 0;
      let lastProgress = 0;
      const started = performance.now();

      const known = KNOWN_INPUTS.map((input) => new Value(input, undefined));
      const runBatch = async (size: number) => {
        const end = Math.min(perMode, generated + size);
        const worker = async () => {
          while (generated < end) {
            // The known holes go first; then generated inputs (which the seed alone decides).
            const value = known.shift() ?? arbitrary.generate(random, biasFactor(generated));
            generated++;
            const request = value.value;
            const outcome = await target.send(request);
            done++;
            result.perRoute[request.route] = (result.perRoute[request.route] ?? 0) + 1;
            const status = outcome.answer ? String(outcome.answer.status) : (outcome.violations[0]?.code ?? 'none');
            const statuses = (result.statuses[request.route] ??= {});
            statuses[status] = (statuses[status] ?? 0) + 1;
            if (outcome.answer && isSuccess(outcome.answer)) {
              result.successes[request.route] = (result.successes[request.route] ?? 0) + 1;
            }
            record(request.route, value, outcome);
            const now = performance.now();
            if (options.onProgress && now - lastProgress > 2000) {
              lastProgress = now;
              options.onProgress({
                mode,
                done,
                total: perMode,
                findings: distinct.size,
                inputsPerSecond: done / ((now - started) / 1000),
              });
            }
          }
        };
        await Promise.all(Array.from({ length: concurrency }, worker));
        for (const violation of await target.afterBatch()) {
          const key = signature('run', violation);
          const seen = batchFindings.get(key);
          if (seen) seen.count++;
          else batchFindings.set(key, { violation, count: 1 });
        }
      };

      // Warm-up: the first batch fills caches, pools and JIT before the heap baseline is taken.
      await runBatch(Math.min(batchSize, Math.ceil(perMode / 10)));
      const baselineBytes = await settledHeap(gc);
      const retainedAtBaseline = retainedBytes;
      while (generated < perMode) await runBatch(batchSize);
      const elapsedMs = performance.now() - started;
      await target.tidy();
      const afterBytes = await settledHeap(gc);
      const report: ModeReport = {
        mode,
        inputs: done,
        elapsedMs,
        inputsPerSecond: done / (elapsedMs / 1000),
        heap: { baselineBytes, afterBytes, gc },
      };
      result.modes.push(report);
      result.inputs += done;

      await target.refill();
      result.findings.push(...(await shrinkAll(target, arbitrary, [...distinct.values()], shrinkRuns, maxShrunk)));
      for (const { violation, count } of batchFindings.values()) {
        result.findings.push(runFinding(mode, violation, count, `checked after a batch of ${batchSize} inputs`));
      }
      const retained = retainedBytes - retainedAtBaseline;
      if (afterBytes > baselineBytes + heapSlack + retained) {
        const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
        const detail =
          `heapUsed ${mb(afterBytes)} after the run, baseline ${mb(baselineBytes)} ` +
          `(+${mb(heapSlack)} allowed, +${mb(retained)} for the runner's findings; gc: ${gc})`;
        const violation: Violation = { property: 'heap-returns-to-baseline', detail, code: 'heap' };
        result.findings.push(runFinding(mode, violation, 1, `the whole run: ${done} inputs, seed ${options.seed}`));
      }
    } finally {
      await target.close();
    }
  }
  return result;
}

/** Shrinks each distinct finding, then merges those whose shrunk inputs fail the same way. */
async function shrinkAll(
  target: Target,
  arbitrary: Arbitrary<FuzzRequest>,
  distinct: readonly Distinct[],
  shrinkRuns: number,
  maxShrunk: number,
): Promise<Finding[]> {
  const merged = new Map<string, Finding>();
  const order = [...distinct].sort((a, b) => b.count - a.count);
  for (const [index, entry] of order.entries()) {
    const { violation, route } = entry;
    // The same failure: for bad input the same answer, else the same gist (a batch's other members may go).
    const same = (v: Violation) =>
      v.property === violation.property &&
      (violation.property === 'bad-input-rejected'
        ? v.code === violation.code
        : statusOf(v) === statusOf(violation) && gist(v) === gist(violation));
    // Timeouts are not shrunk: each try would cost a whole timeout.
    const budget = index < maxShrunk && violation.property !== 'answers-in-time' ? shrinkRuns : 0;
    let current = entry.value;
    let last: Outcome | undefined;
    let runs = 0;
    shrinking: while (runs < budget) {
      // A known input has no generation context to shrink from; it is small already.
      if (current.context === undefined) break;
      for (const candidate of arbitrary.shrink(current.value_, current.context)) {
        if (runs++ >= budget) break shrinking;
        if (candidate.value_.route !== route) continue;
        const outcome = await target.send(candidate.value);
        if (outcome.violations.some(same)) {
          current = candidate;
          last = outcome;
          continue shrinking;
        }
      }
      break;
    }
    let flaky = false;
    if (!last && budget > 0) {
      last = await target.send(current.value);
      flaky = !last.violations.some(same);
    }
    const shown = (flaky ? undefined : last?.violations.find(same)) ?? violation;
    // One bug seen on several routes is one finding: the route is left out of the key here.
    const key = `${shown.property}|${statusOf(shown)}|${gist(shown)}`;
    const existing = merged.get(key);
    if (existing) {
      existing.count += entry.count;
      if (!existing.routes.includes(route)) existing.routes.push(route);
      continue;
    }
    merged.set(key, {
      property: violation.property,
      mode: target.mode,
      route,
      routes: [route],
      detail: flaky ? `${shown.detail} (did not happen again when sent a second time)` : shown.detail,
      code: shown.code,
      count: entry.count,
      input: entry.value.value,
      shrunk: current.value,
      body: (flaky ? undefined : last?.answer?.body.slice(0, 600)) ?? entry.body,
      repro: reproduction(current.value, target.mode),
    });
  }
  return [...merged.values()];
}
