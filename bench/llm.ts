// Benchmark: POST /v1/chat/completions through mcplex versus straight to the same mock LLM (and, with
// BENCH_PEER=portkey, through Portkey's gateway). Prints latency at 1 client, throughput at N clients and the time
// to the first streamed byte, with ratios against the direct path. Run with `npm run bench:llm` (builds first).
// The mock LLM, mcplex and any peer each run in their own process, as deployed; the clients (undici) run here. At
// 1 client the paths alternate call by call, at N in rounds, so that drift on a shared machine affects them alike.
// Nothing is measured before every process has run --warmup seconds (8 by default): figures are of the steady state.
// A plain pass-through proxy (bench/plain-proxy.ts) runs beside them as the floor of what any proxy process adds.
//
// Two more mcplex processes, each started like the bare one, measure what policy costs (their own table):
// - "mcplex + auth": `"auth": {"mode": "keys"}` on a SQLite store in the run's temporary folder, shared with
//   `mcplex keys create --rpm 100000000 --tpm 1000000000`, run before it starts; every request carries that key,
//   so the key is checked and both limits taken on every request, but nothing is refused. Answers without
//   x-ratelimit-* headers count as errors. At 1 client it alternates call by call with the bare mcplex path.
// - "mcplex cache hit": `llm.cache.enabled` (memory LRU); one warm-up request with `temperature: 0` fills the
//   cache, then every request sends that same body and must be answered `x-mcplex-cache: hit` (anything else
//   counts as an error). Measured at 1 client (alternating with the others) and at N clients against direct.
// - "mcplex + auth (PG, Redis)": the same key and limits with the store on PostgreSQL (a schema of the run's own)
//   and "redis" configured (a key prefix of the run's own): the limits are taken in Redis. Measured at 1 client
//   alternating with the others, and at N clients in turns with the SQLite one. Both are removed at the end.
// The bare mcplex process (cache off, memory store, no auth) is the same as before these rows were added.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { testNamespace } from '../src/store/redis/redis-test-support.js';
import { runToEnd, startMcplexServe, startProcess, stopAll } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PORTKEY_VERSION = '1.15.2';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '4' },
    // Seconds each process set runs unmeasured first: until the JIT of every process (the SDK's 2026-07-28 path
    // takes thousands of calls) has settled, figures measure warm-up rather than the steady state.
    warmup: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '16' },
    'latency-ms': { type: 'string', default: '1' },
    chunks: { type: 'string', default: '5' },
    'chunk-delay-ms': { type: 'string', default: '2' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);
const CONCURRENCY = Number(values.concurrency);
const LATENCY_MS = values['latency-ms'];
const CHUNKS = values.chunks;
const CHUNK_DELAY_MS = values['chunk-delay-ms'];
const PEER = process.env.BENCH_PEER ?? '';

const MODEL = 'mock-chat';
const messages = [{ role: 'user', content: 'Say hello in five words.' }];
const BODY = JSON.stringify({ model: MODEL, messages, max_tokens: 16 });
const STREAM_BODY = JSON.stringify({ model: MODEL, messages, max_tokens: 16, stream: true });
/** Deterministic, hence cacheable: every request of the cache-hit path sends exactly these bytes. */
const CACHED_BODY = JSON.stringify({ model: MODEL, messages, max_tokens: 16, temperature: 0 });
/** Limits high enough never to refuse in this run, low enough to be real limits checked on every request. */
const KEY_RPM = '100000000';
const KEY_TPM = '1000000000';

interface Target {
  name: string;
  pool: Pool;
  path: string;
  headers: Record<string, string>;
  /** The non-streamed body, when it is not BODY. */
  body?: string;
  /** A response header every answer must carry, and the value it must have (undefined: any value). */
  expect?: { header: string; value?: string };
}

function target(
  name: string,
  base: string,
  extra: Record<string, string> = {},
  options: Pick<Target, 'body' | 'expect'> = {},
): Target {
  const url = new URL(base);
  return {
    name,
    pool: new Pool(url.origin, { connections: Math.max(CONCURRENCY, 1), keepAliveTimeout: 30_000 }),
    path: `${url.pathname.replace(/\/$/, '')}/v1/chat/completions`,
    headers: { 'content-type': 'application/json', ...extra },
    ...options,
  };
}

interface Sample {
  latencies: number[];
  /** Time to the first body byte (streamed requests). */
  firstBytes: number[];
  /** mcplex's own `x-mcplex-overhead-ms` response header, when the path sets it. */
  overheads: number[];
  calls: number;
  errors: number;
  firstError?: string;
  /** Wall time the calls took, when it is not SECONDS per sample (alternating runs). */
  seconds?: number;
}

const emptySample = (): Sample => ({ latencies: [], firstBytes: [], overheads: [], calls: 0, errors: 0 });

interface Outcome {
  ms: number;
  firstByteMs: number;
  overheadMs?: number;
}

/**
 * One request; fails on anything but a 200 with a complete answer (a `choices` body, or a stream up to [DONE]),
 * and on an answer without the header the target expects.
 */
async function call(t: Target, stream: boolean): Promise<Outcome> {
  const t0 = performance.now();
  const response = await t.pool.request({
    method: 'POST',
    path: t.path,
    headers: t.headers,
    body: stream ? STREAM_BODY : (t.body ?? BODY),
  });
  let firstByteMs = NaN;
  let text = '';
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    if (Number.isNaN(firstByteMs)) firstByteMs = performance.now() - t0;
    text += chunk.toString('utf8');
  }
  const ms = performance.now() - t0;
  if (response.statusCode !== 200) throw new Error(`HTTP ${response.statusCode}: ${text.slice(0, 300)}`);
  const complete = stream ? text.trimEnd().endsWith('data: [DONE]') : text.includes('"choices"');
  if (!complete) throw new Error(`incomplete answer: ${text.slice(0, 300)}`);
  if (t.expect !== undefined) {
    const got = response.headers[t.expect.header];
    if (got === undefined || (t.expect.value !== undefined && got !== t.expect.value)) {
      throw new Error(`${t.expect.header}: ${String(got)}, expected ${t.expect.value ?? 'a value'}`);
    }
  }
  const overhead = response.headers['x-mcplex-overhead-ms'];
  return { ms, firstByteMs, ...(typeof overhead === 'string' ? { overheadMs: Number(overhead) } : {}) };
}

function record(sample: Sample, outcome: Outcome): void {
  sample.latencies.push(outcome.ms);
  sample.firstBytes.push(outcome.firstByteMs);
  if (outcome.overheadMs !== undefined) sample.overheads.push(outcome.overheadMs);
  sample.calls++;
}

function recordError(sample: Sample, t: Target, error: unknown): void {
  sample.errors++;
  sample.firstError ??= `${t.name}: ${error instanceof Error ? error.message : String(error)}`;
}

/** Each of `concurrency` clients calls back to back for SECONDS; the first `warmup` seconds are not recorded. */
async function run(t: Target, concurrency: number, warmup: number): Promise<Sample> {
  const sample = emptySample();
  const measureFrom = performance.now() + warmup * 1000;
  const end = measureFrom + SECONDS * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          const outcome = await call(t, false);
          if (t0 >= measureFrom) record(sample, outcome);
        } catch (error) {
          recordError(sample, t, error);
        }
      }
    }),
  );
  return sample;
}

/**
 * One client per path, calling in turn for ROUNDS x SECONDS (after the warm-up), so that drift on a shared
 * machine cannot favour any path. Throughput is then each path's calls over its own time.
 */
async function alternate(targets: Target[], stream: boolean): Promise<Sample[]> {
  const samples = targets.map(() => ({ ...emptySample(), seconds: 0 }));
  const measureFrom = performance.now() + WARMUP * 1000;
  const end = measureFrom + ROUNDS * SECONDS * 1000;
  while (performance.now() < end) {
    for (const [i, t] of targets.entries()) {
      const sample = samples[i]!;
      const t0 = performance.now();
      try {
        const outcome = await call(t, stream);
        if (t0 >= measureFrom) {
          record(sample, outcome);
          sample.seconds += outcome.ms / 1000;
        }
      } catch (error) {
        recordError(sample, t, error);
      }
    }
  }
  return samples;
}

/** `roundCount` rounds of SECONDS per path at `concurrency` clients; the starting path rotates each round. */
async function rounds(
  targets: Target[],
  concurrency: number,
  roundCount = ROUNDS,
  warmup = WARMUP,
): Promise<Sample[][]> {
  const samples: Sample[][] = targets.map(() => []);
  for (let round = 0; round < roundCount; round++) {
    for (let k = 0; k < targets.length; k++) {
      const i = (round + k) % targets.length;
      samples[i]!.push(await run(targets[i]!, concurrency, round === 0 ? warmup : 0.2));
    }
  }
  return samples;
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
}

function summarise(samples: Sample[]) {
  const latencies = samples.flatMap((s) => s.latencies);
  const firstBytes = samples.flatMap((s) => s.firstBytes);
  const calls = samples.reduce((n, s) => n + s.calls, 0);
  const seconds = samples.reduce((n, s) => n + (s.seconds ?? SECONDS), 0);
  return {
    rps: calls / seconds,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    firstByteP50: percentile(firstBytes, 0.5),
    firstByteP99: percentile(firstBytes, 0.99),
    overheadP50: percentile(
      samples.flatMap((s) => s.overheads),
      0.5,
    ),
    errors: samples.reduce((n, s) => n + s.errors, 0),
    firstError: samples.find((s) => s.firstError !== undefined)?.firstError,
  };
}

type Summary = ReturnType<typeof summarise>;

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
}

/**
 * `bare`: the forwarding path of the main tables. `auth`: API keys on a SQLite store in `dir` (the key is created
 * with `mcplex keys create` on the same config before the server starts). `cache`: the response cache on.
 */
type Variant = 'bare' | 'auth' | 'shared' | 'cache';

/** Writes the variant's config into `dir` and returns its path. */
function writeMcplexConfig(dir: string, mockUrl: string, variant: Variant): string {
  const config = join(dir, variant === 'bare' ? 'mcplex.json' : `mcplex-${variant}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      server: { port: 0 },
      // Nothing on disk: no keys, usage or cache kept between runs (and no mcplex.db in the working folder).
      // Keys must outlive the CLI that creates them: the auth variant uses a SQLite file in the temporary folder.
      // The shared variant: keys, usage and conversations in a PostgreSQL schema of the run's own, limits and
      // requests in progress in Redis under a prefix of its own (both removed at the end).
      store:
        variant === 'auth'
          ? `sqlite:${join(dir, 'bench.db')}`
          : variant === 'shared'
            ? `${BENCH_POSTGRES}${BENCH_POSTGRES.includes('?') ? '&' : '?'}schema=${SHARED_SCHEMA}`
            : 'memory:',
      logLevel: 'info',
      ...(variant === 'auth' || variant === 'shared' ? { auth: { mode: 'keys' } } : {}),
      ...(variant === 'shared' ? { redis: { url: BENCH_REDIS, prefix: redisSpace.fresh() } } : {}),
      llm: {
        // The bench measures forwarding: no answer may come from mcplex's response cache, except on the path that
        // measures cache hits.
        cache: variant === 'cache' ? { enabled: true, store: 'memory' } : { enabled: false },
        models: {
          [MODEL]: { deployments: [{ provider: 'openai', baseUrl: `${mockUrl}/v1`, apiKey: 'x', model: MODEL }] },
        },
      },
    }),
  );
  return config;
}

/** Creates an API key with `mcplex keys create` on `config`'s store and returns the token it prints. */
async function createKey(config: string): Promise<string> {
  const stdout = await runToEnd(
    process.execPath,
    [
      join(ROOT, 'bin', 'mcplex.js'),
      'keys',
      'create',
      '--config',
      config,
      '--name',
      'bench',
      '--rpm',
      KEY_RPM,
      '--tpm',
      KEY_TPM,
    ],
    ROOT,
    60_000,
  );
  const token = stdout.trim().split('\n').pop() ?? '';
  if (!/^mcx_\S+$/.test(token)) throw new Error(`mcplex keys create printed no key: ${stdout.slice(0, 300)}`);
  return token;
}

/** Starts `mcplex serve` on `config` and returns its base URL. */
async function startMcplex(config: string): Promise<string> {
  return (await startMcplexServe(config)).url;
}

/** Loaded into Portkey's process: every listen() goes to 127.0.0.1 (never all interfaces), and says where. */
const LOOPBACK_PRELOAD = `import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const callback = typeof args[args.length - 1] === 'function' ? args.pop() : undefined;
  const port = args[0];
  if (port !== undefined && port !== null && typeof port !== 'number' && typeof port !== 'string') {
    throw new Error('bench preload: only listen(port) is allowed here');
  }
  this.once('listening', () => {
    const address = this.address();
    if (typeof address !== 'object' || address === null || address.address !== '127.0.0.1') {
      process.stderr.write('bench preload: not on 127.0.0.1, stopping\\n');
      process.exit(1);
    }
    process.stderr.write('BENCH_LISTENING http://127.0.0.1:' + address.port + '\\n');
  });
  const options = { port: port === undefined || port === null ? 0 : Number(port), host: '127.0.0.1' };
  return callback ? listen.call(this, options, callback) : listen.call(this, options);
};
`;

/** Installs @portkey-ai/gateway into `dir` and starts it on 127.0.0.1; returns its URL, or why it could not. */
async function startPortkey(dir: string): Promise<{ url: string } | { reason: string }> {
  const folder = join(dir, 'portkey');
  mkdirSync(folder);
  writeFileSync(
    join(folder, 'package.json'),
    JSON.stringify({
      name: 'mcplex-bench-portkey',
      private: true,
      dependencies: { '@portkey-ai/gateway': PORTKEY_VERSION },
      overrides: { '@hono/node-server': '1.13.5', hono: '4.9.7', '@hono/node-ws': '1.2.0' },
    }),
  );
  writeFileSync(join(folder, 'loopback.mjs'), LOOPBACK_PRELOAD);
  try {
    await runToEnd('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], folder, 300_000);
  } catch (error) {
    return { reason: `npm install @portkey-ai/gateway@${PORTKEY_VERSION} failed: ${String(error)}` };
  }
  try {
    const entry = join(folder, 'node_modules', '@portkey-ai', 'gateway', 'build', 'start-server.js');
    const { match } = await startProcess(
      process.execPath,
      ['--import', pathToFileURL(join(folder, 'loopback.mjs')).href, entry, '--port=0', '--headless'],
      /BENCH_LISTENING (http:\/\/127\.0\.0\.1:\d+)/,
    );
    return { url: match[1]! };
  } catch (error) {
    return { reason: `Portkey did not start: ${String(error)}` };
  }
}

/** Config, Portkey's install and its preload; removed at the end, on error and on Ctrl-C. */
const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-llm-'));

const BENCH_POSTGRES = process.env.MCPLEX_BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const BENCH_REDIS = process.env.MCPLEX_BENCH_REDIS ?? 'redis://127.0.0.1:6379/0';
const SHARED_SCHEMA = `mcplex_bench_${randomBytes(4).toString('hex')}`;
const redisSpace = testNamespace(BENCH_REDIS);

async function cleanUp(): Promise<void> {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
  await redisSpace.removeAll().catch(() => {});
  const client = new pg.Client({ connectionString: BENCH_POSTGRES });
  await client
    .connect()
    .then(() => client.query(`DROP SCHEMA IF EXISTS ${SHARED_SCHEMA} CASCADE`))
    .catch(() => {})
    .finally(() => void client.end().catch(() => {}));
}

async function main(): Promise<number> {
  const targets: Target[] = [];
  /** The paths of the auth and cache rows only (their pools are closed at the end as well). */
  const extras: Target[] = [];
  try {
    const mock = await startProcess(
      process.execPath,
      [
        join(ROOT, 'bin', 'mcplex.js'),
        'mock-llm',
        '--port',
        '0',
        '--latency-ms',
        LATENCY_MS,
        '--chunks',
        CHUNKS,
        '--chunk-delay-ms',
        CHUNK_DELAY_MS,
      ],
      /LISTENING (\S+)/,
    );
    const mockUrl = mock.match[1]!;
    const proxy = await startProcess(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench', 'plain-proxy.ts'), `${mockUrl}/v1/chat/completions`],
      /LISTENING (http:\/\/[^/\s]+)/,
    );
    const mcplexUrl = await startMcplex(writeMcplexConfig(dir, mockUrl, 'bare'));
    targets.push(
      target('direct', mockUrl, { authorization: 'Bearer x' }),
      target('plain proxy', proxy.match[1]!, { authorization: 'Bearer x' }),
      target('mcplex', mcplexUrl),
    );
    const authConfig = writeMcplexConfig(dir, mockUrl, 'auth');
    const key = await createKey(authConfig);
    const authUrl = await startMcplex(authConfig);
    const sharedConfig = writeMcplexConfig(dir, mockUrl, 'shared');
    const sharedKey = await createKey(sharedConfig);
    const sharedUrl = await startMcplex(sharedConfig);
    const cacheUrl = await startMcplex(writeMcplexConfig(dir, mockUrl, 'cache'));
    extras.push(
      target(
        'mcplex + auth',
        authUrl,
        { authorization: `Bearer ${key}` },
        // Proof that the limits were checked: a key without limits gets no x-ratelimit-* headers.
        { expect: { header: 'x-ratelimit-remaining-tokens' } },
      ),
      target(
        'mcplex + auth (PG, Redis)',
        sharedUrl,
        { authorization: `Bearer ${sharedKey}` },
        { expect: { header: 'x-ratelimit-remaining-tokens' } },
      ),
      target(
        'mcplex cache hit',
        cacheUrl,
        {},
        { body: CACHED_BODY, expect: { header: 'x-mcplex-cache', value: 'hit' } },
      ),
    );
    const [authTarget, sharedTarget, cacheTarget] = extras as [Target, Target, Target];

    let peerNote: string | undefined;
    if (PEER === 'portkey') {
      console.log(`installing @portkey-ai/gateway@${PORTKEY_VERSION} into a temporary folder ...`);
      const portkey = await startPortkey(dir);
      if ('url' in portkey) {
        targets.push(
          target('portkey', portkey.url, {
            authorization: 'Bearer x',
            'x-portkey-provider': 'openai',
            'x-portkey-custom-host': `${mockUrl}/v1`,
          }),
        );
      } else {
        peerNote = portkey.reason;
        console.log(`Portkey left out: ${portkey.reason}\n`);
      }
    } else if (PEER !== '') {
      peerNote = `unknown BENCH_PEER "${PEER}" (known: portkey)`;
      console.log(`${peerNote}\n`);
    }

    console.log(
      `mcplex LLM gateway benchmark: ${ROUNDS} rounds x ${SECONDS}s per path and level (after ${WARMUP}s warm-up); ` +
        `${availableParallelism()} CPUs`,
    );
    console.log(
      `upstream: mcplex's mock LLM in its own process, latency ${LATENCY_MS} ms; streams of ${CHUNKS} content ` +
        `chunks, ${CHUNK_DELAY_MS} ms apart`,
    );
    console.log(`clients: undici Pool per path in this process; POST /v1/chat/completions, body ${BODY.length} B\n`);

    const M = targets.findIndex((t) => t.name === 'mcplex');
    const P = targets.findIndex((t) => t.name === 'plain proxy');
    const oneClient = (await alternate(targets, false)).map((s) => summarise([s]));
    // The 1-client run warmed every process: a short settling time before the concurrent rounds is enough.
    const many = (await rounds(targets, CONCURRENCY, ROUNDS, 1)).map((s) => summarise(s));
    const streamed = (await alternate(targets, true)).map((s) => summarise([s]));

    // Auth + limits and cache hits: direct, bare mcplex, mcplex + auth and cache hits alternate call by call at
    // 1 client; cache hits and direct take turns at N clients. One request first fills the cache (a miss).
    await call({ ...cacheTarget, expect: { header: 'x-mcplex-cache', value: 'miss' } }, false);
    // These two processes took no traffic yet: warm their code (JIT) as the bare path's is, before measuring.
    for (let i = 0; i < 1500; i++) {
      await call(authTarget, false);
      await call(sharedTarget, false);
      await call(cacheTarget, false);
    }
    const policyTargets = [targets[0]!, targets[M]!, authTarget, sharedTarget, cacheTarget];
    const policyOne = (await alternate(policyTargets, false)).map((s) => summarise([s]));
    const cacheManyRounds = Math.max(1, Math.ceil(ROUNDS / 2));
    const cacheMany = (await rounds([targets[0]!, cacheTarget], CONCURRENCY, cacheManyRounds, 1)).map((s) =>
      summarise(s),
    );
    // Limits on SQLite against limits on PostgreSQL + Redis, in turns at N clients.
    const authMany = (await rounds([authTarget, sharedTarget], CONCURRENCY, cacheManyRounds, 1)).map((s) =>
      summarise(s),
    );

    const fmt = (n: number) => n.toFixed(2);
    const pct = (n: number) => `${(n * 100).toFixed(1)} %`;
    const header = ['clients', 'path', 'req/s', 'p50 ms', 'p99 ms', 'errors', 'throughput', 'p50 added', 'p99 added'];
    const rows: string[][] = [header];
    for (const [clients, results] of [
      [1, oneClient],
      [CONCURRENCY, many],
    ] as const) {
      const direct = results[0]!;
      results.forEach((r: Summary, i) => {
        rows.push([
          String(clients),
          targets[i]!.name,
          r.rps.toFixed(0),
          fmt(r.p50),
          fmt(r.p99),
          String(r.errors),
          ...(i === 0 ? ['', '', ''] : [pct(r.rps / direct.rps), fmt(r.p50 - direct.p50), fmt(r.p99 - direct.p99)]),
        ]);
      });
    }
    console.log('non-streaming chat completions');
    printTable(rows);

    const streamRows: string[][] = [
      ['clients', 'path', 'first byte p50 ms', 'p99 ms', 'first byte added p50', 'whole stream p50 ms', 'errors'],
    ];
    streamed.forEach((r, i) => {
      streamRows.push([
        '1',
        targets[i]!.name,
        fmt(r.firstByteP50),
        fmt(r.firstByteP99),
        i === 0 ? '' : fmt(r.firstByteP50 - streamed[0]!.firstByteP50),
        fmt(r.p50),
        String(r.errors),
      ]);
    });
    console.log('\nstreamed chat completions (stream: true)');
    printTable(streamRows);

    console.log('\nthroughput = req/s as a share of direct; added = minus the direct value, in ms');
    console.log('plain proxy = bench/plain-proxy.ts, a pass-through HTTP proxy: what forwarding alone costs here');
    console.log(
      `mcplex's own x-mcplex-overhead-ms header at 1 client, p50: ${fmt(oneClient[M]!.overheadP50)} ms ` +
        '(its time outside the upstream round-trip, as mcplex measures it)',
    );
    const mcplexShare = many[M]!.rps / many[0]!.rps;
    const portkeyIndex = targets.findIndex((t) => t.name === 'portkey');
    const versusPortkey = portkeyIndex < 0 ? undefined : many[M]!.rps / many[portkeyIndex]!.rps;
    if (versusPortkey !== undefined) {
      console.log(
        `mcplex throughput / Portkey throughput at ${CONCURRENCY} clients: ${versusPortkey.toFixed(2)}x ` +
          `(Portkey ${PORTKEY_VERSION}, node build/start-server.js --headless, bound to 127.0.0.1)`,
      );
    } else if (peerNote !== undefined) {
      console.log(`Portkey: n/a (${peerNote.split('\n')[0]})`);
    }
    const added = (rows: Summary[], i: number) => fmt(rows[i]!.p50 - rows[0]!.p50);
    const firstByte = (i: number) => fmt(streamed[i]!.firstByteP50 - streamed[0]!.firstByteP50);
    console.log(
      `\ntargets: throughput >= 60 % of direct at ${CONCURRENCY} clients: ${pct(mcplexShare)} ; ` +
        `p50 added <= 0.3 ms at 1 client: ${added(oneClient, M)} ms ; ` +
        `first byte added <= 1 ms: ${firstByte(M)} ms ; ` +
        `>= 5x Portkey throughput: ${versusPortkey === undefined ? 'n/a' : `${versusPortkey.toFixed(2)}x`}`,
    );
    // What the same measurements give for the plain proxy: the part of each figure that any extra process costs.
    console.log(
      `floor (plain proxy, same run): throughput ${pct(many[P]!.rps / many[0]!.rps)} ; ` +
        `p50 added ${added(oneClient, P)} ms ; first byte added ${firstByte(P)} ms` +
        (portkeyIndex < 0 ? '' : ` ; Portkey at ${pct(many[portkeyIndex]!.rps / many[0]!.rps)} of direct`),
    );

    const policyRows: string[][] = [header];
    for (const [clients, results, paths] of [
      [1, policyOne, policyTargets],
      [CONCURRENCY, cacheMany, [targets[0]!, cacheTarget]],
      [CONCURRENCY, authMany, [authTarget, sharedTarget]],
    ] as const) {
      const direct = results[0]!;
      results.forEach((r: Summary, i) => {
        policyRows.push([
          String(clients),
          paths[i]!.name,
          r.rps.toFixed(0),
          fmt(r.p50),
          fmt(r.p99),
          String(r.errors),
          ...(i === 0 ? ['', '', ''] : [pct(r.rps / direct.rps), fmt(r.p50 - direct.p50), fmt(r.p99 - direct.p99)]),
        ]);
      });
    }
    const [, bare, auth, shared, hit] = policyOne as [Summary, Summary, Summary, Summary, Summary];
    const authAddedP50 = auth.p50 - bare.p50;
    const sharedAddedP50 = shared.p50 - bare.p50;
    const sharedShare = authMany[1]!.rps / authMany[0]!.rps;
    const hitShare = cacheMany[1]!.rps / cacheMany[0]!.rps;
    console.log(
      `\nauth + rate limiting, and cache hits (1 client: ${ROUNDS} x ${SECONDS}s, the five paths alternating; ` +
        `${CONCURRENCY} clients: ${cacheManyRounds} rounds x ${SECONDS}s)`,
    );
    printTable(policyRows);
    console.log(
      `mcplex + auth = a separate mcplex with "auth": {"mode": "keys"} (SQLite store): the key is checked and its ` +
        `limits (--rpm ${KEY_RPM} --tpm ${KEY_TPM}) taken on every request, none refused`,
    );
    console.log(
      'mcplex + auth (PG, Redis) = the same with its store on PostgreSQL and "redis" configured: the key read from ' +
        'PostgreSQL (then cached), both limits taken in Redis on every request; the last rows put it beside the ' +
        'SQLite one (throughput is a share of the first row there)',
    );
    console.log(
      'mcplex cache hit = a separate mcplex with llm.cache.enabled (memory): temperature: 0, the same body every ' +
        'time, each answer x-mcplex-cache: hit',
    );
    console.log(
      `auth + rate limiting over bare mcplex at 1 client: p50 ${fmt(authAddedP50)} ms, p99 ` +
        `${fmt(auth.p99 - bare.p99)} ms; x-mcplex-overhead-ms p50 ${fmt(bare.overheadP50)} ms bare, ` +
        `${fmt(auth.overheadP50)} ms with auth; on PostgreSQL + Redis p50 ${fmt(sharedAddedP50)} ms, ` +
        `x-mcplex-overhead-ms p50 ${fmt(shared.overheadP50)} ms`,
    );
    console.log(
      `\ntargets: auth + rate limiting <= 0.1 ms added at p50: ${fmt(authAddedP50)} ms ; ` +
        `cache hit p99 <= 1 ms at 1 client: ${fmt(hit.p99)} ms (p50 ${fmt(hit.p50)} ms; direct p99 ` +
        `${fmt(policyOne[0]!.p99)} ms) ; ` +
        `cache hit throughput at ${CONCURRENCY} clients >= direct: ${hitShare.toFixed(2)}x ; ` +
        `auth + limits on PostgreSQL + Redis <= 0.3 ms added at p50: ${fmt(sharedAddedP50)} ms ; ` +
        `their throughput at ${CONCURRENCY} clients >= 90 % of SQLite's: ${pct(sharedShare)}`,
    );

    const failures = [...oneClient, ...many, ...streamed, ...policyOne, ...cacheMany, ...authMany].filter(
      (r) => r.errors > 0,
    );
    if (failures.length > 0) {
      console.error(
        `\n${failures.reduce((n, r) => n + r.errors, 0)} requests failed; first: ${failures[0]!.firstError}`,
      );
      return 1;
    }
    return 0;
  } finally {
    await Promise.allSettled([...targets, ...extras].map((t) => t.pool.destroy()));
    await cleanUp();
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    console.error(error);
    await cleanUp();
    process.exit(1);
  },
);
