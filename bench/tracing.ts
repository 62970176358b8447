// Benchmark: what tracing costs. Two mcplex processes, the same but for `telemetry.traces` (off: no section, so
// tracing is never loaded; on: every request traced and exported to an OTLP/HTTP receiver in its own process),
// in front of the same mock LLM and the same Streamable HTTP fixture upstream. At 16 concurrent clients (by
// default) it measures the throughput of POST /v1/chat/completions (undici clients) and of /mcp tools/call (SDK
// v2 clients, 2025-11-25 sessions: the fast path), off and on in interleaved rounds (the order flips every round),
// and prints the on/off ratio of each round, their spread and the whole run's. Target: on >= 95 % of off.
// Run with `npm run bench:tracing` (builds first); `-- --short` for a quick run (or BENCH_SHORT=1).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { upstreamFetch } from '../src/mcp/upstream/transport.js';
import { startMcplexServe, startProcess, stopAll } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'fixture-server.ts');

const { values } = parseArgs({
  options: {
    short: { type: 'boolean', default: process.env.BENCH_SHORT === '1' },
    seconds: { type: 'string' },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    concurrency: { type: 'string', default: '16' },
    // The share of traces kept with tracing on (1: every request traced and exported).
    ratio: { type: 'string', default: '1' },
  },
});
const SHORT = values.short;
const SECONDS = Number(values.seconds ?? (SHORT ? 1.5 : 3));
const ROUNDS = Number(values.rounds ?? (SHORT ? 3 : 6));
const WARMUP = Number(values.warmup ?? (SHORT ? 3 : 8));
const CONCURRENCY = Number(values.concurrency);
const RATIO = Number(values.ratio);

const MODEL = 'mock-chat';
const BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16 });

type Mode = 'off' | 'on';
type Workload = 'v1 chat' | 'mcp tools/call';

function writeConfig(dir: string, mode: Mode, mockUrl: string, upstreamUrl: string, sinkUrl: string): string {
  const path = join(dir, `mcplex-${mode}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      server: { port: 0 },
      store: 'memory:',
      logLevel: 'info',
      mcpServers: { up: { url: upstreamUrl, protocol: 'legacy' } },
      llm: {
        cache: { enabled: false },
        models: {
          [MODEL]: { deployments: [{ provider: 'openai', baseUrl: `${mockUrl}/v1`, apiKey: 'x', model: MODEL }] },
        },
      },
      ...(mode === 'on'
        ? { telemetry: { traces: { endpoint: sinkUrl, serviceName: 'mcplex-bench', sampleRatio: RATIO } } }
        : {}),
    }),
  );
  return path;
}

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'bench', version: '1.0.0' }, { versionNegotiation: { mode: 'legacy' } });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: upstreamFetch }));
  return client;
}

/** CPU seconds a process (or, with `tid`, one of its threads) has used so far, from /proc (Linux). */
function cpuSeconds(pid: number, tid?: number): number {
  try {
    const stat = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
    // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th of them.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

interface Sample {
  calls: number;
  /** Every call answered, the warm-up's too (what the CPU time measured over the whole run is divided by). */
  all: number;
  errors: number;
  firstError?: string;
}

/** CONCURRENCY callers back to back for `seconds`, after `warmup` unrecorded seconds. */
async function drive(call: (i: number) => Promise<void>, warmup: number, seconds: number): Promise<Sample> {
  const sample: Sample = { calls: 0, all: 0, errors: 0 };
  const measureFrom = performance.now() + warmup * 1000;
  const end = measureFrom + seconds * 1000;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async (_, i) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await call(i);
          sample.all++;
          if (t0 >= measureFrom) sample.calls++;
        } catch (error) {
          sample.errors++;
          sample.firstError ??= error instanceof Error ? error.message : String(error);
        }
      }
    }),
  );
  return sample;
}

interface Target {
  mode: Mode;
  pid: number;
  pool: Pool;
  clients: Client[];
}

async function chat(pool: Pool): Promise<void> {
  const response = await pool.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    body: BODY,
  });
  const text = await response.body.text();
  if (response.statusCode !== 200 || !text.includes('"choices"')) {
    throw new Error(`HTTP ${response.statusCode}: ${text.slice(0, 200)}`);
  }
}

async function toolCall(client: Client, i: number): Promise<void> {
  const result = await client.callTool({ name: 'up__echo', arguments: { message: `bench ${i}` } });
  if (result.isError === true) throw new Error(JSON.stringify(result.content).slice(0, 200));
}

function run(target: Target, workload: Workload, warmup: number): Promise<Sample> {
  return workload === 'v1 chat'
    ? drive(() => chat(target.pool), warmup, SECONDS)
    : drive((i) => toolCall(target.clients[i]!, i), warmup, SECONDS);
}

const NO_CPU = { process: 0, main: 0, sink: 0, calls: 0 };

function printTable(rows: string[][]): void {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-tracing-'));
  const targets: Target[] = [];
  try {
    const [mock, upstream, sink] = await Promise.all([
      startProcess(
        process.execPath,
        [join(ROOT, 'bin', 'mcplex.js'), 'mock-llm', '--port', '0', '--latency-ms', '1'],
        /LISTENING (\S+)/,
      ),
      startProcess(process.execPath, ['--import', 'tsx', FIXTURE, '--transport', 'http'], /LISTENING (\S+)/),
      startProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'otlp-sink.ts')], /LISTENING (\S+)/),
    ]);
    const [mockUrl, upstreamUrl, sinkUrl] = [mock.match[1]!, upstream.match[1]!, sink.match[1]!];
    for (const mode of ['off', 'on'] as const) {
      const { child, url, mcpUrl } = await startMcplexServe(writeConfig(dir, mode, mockUrl, upstreamUrl, sinkUrl));
      const origin = new URL(url).origin;
      const pool = new Pool(origin, { connections: CONCURRENCY, keepAliveTimeout: 30_000 });
      const probe = await connect(mcpUrl);
      for (let i = 0; i < 100 && !(await probe.listTools()).tools.some((t) => t.name === 'up__echo'); i++) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await probe.close();
      const clients = await Promise.all(Array.from({ length: CONCURRENCY }, () => connect(mcpUrl)));
      targets.push({ mode, pid: child.pid!, pool, clients });
    }

    console.log(
      `mcplex tracing benchmark: ${CONCURRENCY} clients, ${ROUNDS} rounds x ${SECONDS}s per mode and workload ` +
        `(after ${WARMUP}s of warm-up each), off and on interleaved`,
    );
    console.log(
      `on: every request traced, ${RATIO === 1 ? 'all' : `${RATIO * 100} %`} of the traces sampled and exported ` +
        'over OTLP/HTTP (protobuf) to a receiver process\n',
    );
    const workloads: Workload[] = ['v1 chat', 'mcp tools/call'];
    const rows: string[][] = [['workload', 'round', 'off calls/s', 'on calls/s', 'on/off']];
    const verdicts: string[] = [];
    const cpuRows: string[][] = [['workload', 'mode', 'mcplex main thread', 'other threads', 'receiver']];
    for (const workload of workloads) {
      // Warm both processes on this workload first (JIT), unrecorded.
      for (const target of targets) await run(target, workload, WARMUP);
      const totals = { off: { calls: 0, errors: 0 }, on: { calls: 0, errors: 0 } };
      const cpu = { off: { ...NO_CPU }, on: { ...NO_CPU } };
      const ratios: number[] = [];
      for (let round = 1; round <= ROUNDS; round++) {
        const order = round % 2 === 1 ? targets : [...targets].reverse();
        const rps: Record<Mode, number> = { off: 0, on: 0 };
        for (const target of order) {
          const before = [cpuSeconds(target.pid), cpuSeconds(target.pid, target.pid), cpuSeconds(sink.child.pid!)];
          const sample = await run(target, workload, 0.2);
          const used = cpu[target.mode];
          used.process += cpuSeconds(target.pid) - before[0]!;
          used.main += cpuSeconds(target.pid, target.pid) - before[1]!;
          used.sink += cpuSeconds(sink.child.pid!) - before[2]!;
          used.calls += sample.all;
          if (sample.errors > 0)
            console.error(`${workload} ${target.mode}: ${sample.errors} errors (${sample.firstError})`);
          totals[target.mode].calls += sample.calls;
          totals[target.mode].errors += sample.errors;
          rps[target.mode] = sample.calls / SECONDS;
        }
        const ratio = rps.on / rps.off;
        ratios.push(ratio);
        rows.push([workload, String(round), rps.off.toFixed(0), rps.on.toFixed(0), `${(ratio * 100).toFixed(1)} %`]);
      }
      const overall = totals.on.calls / totals.off.calls;
      const spread = `${(Math.min(...ratios) * 100).toFixed(1)}-${(Math.max(...ratios) * 100).toFixed(1)} %`;
      rows.push([
        workload,
        'all',
        (totals.off.calls / (ROUNDS * SECONDS)).toFixed(0),
        (totals.on.calls / (ROUNDS * SECONDS)).toFixed(0),
        `${(overall * 100).toFixed(1)} %`,
      ]);
      const perCall = (seconds: number, calls: number) => `${((seconds / calls) * 1e6).toFixed(1)} µs`;
      cpuRows.push(
        ...(['off', 'on'] as const).map((mode) => [
          workload,
          mode,
          perCall(cpu[mode].main, cpu[mode].calls),
          perCall(cpu[mode].process - cpu[mode].main, cpu[mode].calls),
          perCall(cpu[mode].sink, cpu[mode].calls),
        ]),
      );
      verdicts.push(
        `${workload}, ${CONCURRENCY} clients: tracing on at ${(overall * 100).toFixed(1)} % of off (median round ` +
          `${(median(ratios) * 100).toFixed(1)} %, rounds ${spread}; target >= 95 %; errors off ${totals.off.errors}, ` +
          `on ${totals.on.errors})`,
      );
    }
    printTable(rows);
    console.log('\nCPU time per call (from /proc, over every round):');
    printTable(cpuRows);
    const counted = (await (await fetch(`${sinkUrl}/count`)).json()) as { spans: number; exports: number };
    console.log(`\nthe receiver got ${counted.spans} spans in ${counted.exports} exports`);
    console.log(`\ntargets:\n${verdicts.map((v) => `  ${v}`).join('\n')}`);
  } finally {
    for (const target of targets) {
      await Promise.all(target.clients.map((c) => c.close().catch(() => {})));
      await target.pool.close();
    }
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
