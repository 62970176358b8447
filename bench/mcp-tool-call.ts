// Benchmark: one tool call through mcplex versus straight to the same Streamable HTTP upstream, at 1 and 16
// concurrent clients, in both protocol eras. Prints throughput, p50 and p99 of both paths and their ratios.
// Run with `npm run bench` (builds first). The upstream and mcplex each run in their own process, as deployed;
// mcplex speaks to the upstream in the same era as the clients, so both paths exercise the same upstream code.
// At 1 client the two paths alternate call by call; at 16, in rounds; so that drift on a shared machine affects both alike.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'fixture-server.ts');

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '1,16' },
    eras: { type: 'string', default: 'legacy,modern' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);
const LEVELS = values.concurrency.split(',').map(Number);
const ERAS = values.eras.split(',').filter((e): e is Era => e === 'legacy' || e === 'modern');

type Era = 'legacy' | 'modern';

/** Starts a child process and resolves with the first stdout/stderr match of `pattern`. */
function startProcess(args: string[], pattern: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      const match = pattern.exec(seen);
      if (match) resolve({ child, match });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}:\n${seen}`)));
  });
}

async function connect(url: string, era: Era): Promise<Client> {
  const client = new Client(
    { name: 'bench', version: '1.0.0' },
    { versionNegotiation: era === 'modern' ? { mode: { pin: '2026-07-28' } } : { mode: 'legacy' } },
  );
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

interface Sample {
  calls: number;
  latencies: number[];
  errors: number;
  /** Wall time the calls took, when it is not SECONDS per sample (alternating runs). */
  seconds?: number;
}

/** Each client calls back to back for `SECONDS`; the first `WARMUP` seconds are not recorded. */
async function run(url: string, tool: string, era: Era, concurrency: number, warmup: number): Promise<Sample> {
  const clients = await Promise.all(Array.from({ length: concurrency }, () => connect(url, era)));
  const latencies: number[] = [];
  let errors = 0;
  const measureFrom = performance.now() + warmup * 1000;
  const end = measureFrom + SECONDS * 1000;
  await Promise.all(
    clients.map(async (client, i) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          await client.callTool({ name: tool, arguments: { message: `bench ${i}` } });
        } catch {
          errors++;
        }
        if (t0 >= measureFrom) latencies.push(performance.now() - t0);
      }
    }),
  );
  await Promise.all(clients.map((c) => c.close()));
  return { calls: latencies.length, latencies, errors };
}

/**
 * Latency at one client: a direct client and an mcplex client call in turn for ROUNDS x SECONDS (after the
 * warm-up), so that drift on a shared machine cannot favour either path. Throughput is then per path's own
 * share of the wall time.
 */
async function alternate(directUrl: string, mcplexUrl: string, era: Era): Promise<{ direct: Sample; mcplex: Sample }> {
  const [d, m] = await Promise.all([connect(directUrl, era), connect(mcplexUrl, era)]);
  const direct: Sample = { calls: 0, latencies: [], errors: 0, seconds: 0 };
  const through: Sample = { calls: 0, latencies: [], errors: 0, seconds: 0 };
  const measureFrom = performance.now() + WARMUP * 1000;
  const end = measureFrom + ROUNDS * SECONDS * 1000;
  const once = async (client: Client, tool: string, sample: Sample) => {
    const t0 = performance.now();
    try {
      await client.callTool({ name: tool, arguments: { message: 'bench' } });
    } catch {
      sample.errors++;
    }
    const elapsed = performance.now() - t0;
    if (t0 >= measureFrom) {
      sample.latencies.push(elapsed);
      sample.calls++;
      sample.seconds = (sample.seconds ?? 0) + elapsed / 1000;
    }
  };
  while (performance.now() < end) {
    await once(d, 'echo', direct);
    await once(m, 'up__echo', through);
  }
  await Promise.all([d.close(), m.close()]);
  return { direct, mcplex: through };
}

function summarise(samples: Sample[]) {
  const latencies = samples.flatMap((s) => s.latencies).sort((a, b) => a - b);
  const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  const calls = samples.reduce((n, s) => n + s.calls, 0);
  const seconds = samples.reduce((n, s) => n + (s.seconds ?? SECONDS), 0);
  return {
    rps: calls / seconds,
    p50: at(0.5),
    p99: at(0.99),
    errors: samples.reduce((n, s) => n + s.errors, 0),
  };
}

async function startMcplex(dir: string, upstreamUrl: string, era: Era): Promise<{ child: ChildProcess; url: string }> {
  const config = join(dir, `mcplex-${era}.json`);
  writeFileSync(
    config,
    JSON.stringify({ mcpServers: { up: { url: upstreamUrl, protocol: era } }, server: { port: 0 }, logLevel: 'info' }),
  );
  const { child, match } = await startProcess(
    // MCPLEX_NODE_ARGS passes profiler flags (e.g. --cpu-prof) to the mcplex process only.
    [
      ...(process.env.MCPLEX_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      join(ROOT, 'bin', 'mcplex.js'),
      'serve',
      '--config',
      config,
    ],
    /listening on (http:\/\/\S+\/mcp)/,
  );
  const url = match[1]!;
  const probe = await connect(url, era);
  for (let i = 0; i < 100 && !(await probe.listTools()).tools.some((t) => t.name === 'up__echo'); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await probe.close();
  return { child, url };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-'));
  const children: ChildProcess[] = [];
  try {
    const upstream = await startProcess(['--import', 'tsx', FIXTURE, '--transport', 'http'], /LISTENING (\S+)/);
    children.push(upstream.child);
    const upstreamUrl = upstream.match[1]!;

    console.log(`mcplex MCP tool-call benchmark: ${ROUNDS} rounds x ${SECONDS}s per path and level (after warm-up)`);
    console.log('upstream: the project fixture (SDK v2, Streamable HTTP) in its own process; tool: echo');
    console.log('clients: the official SDK v2 client, one connection per concurrent client\n');
    const header = ['era', 'clients', 'path', 'calls/s', 'p50 ms', 'p99 ms', 'errors', 'throughput', 'p50 added ms'];
    const rows: string[][] = [header];
    for (const era of ERAS) {
      const mcplex = await startMcplex(dir, upstreamUrl, era);
      children.push(mcplex.child);
      for (const concurrency of LEVELS) {
        const direct: Sample[] = [];
        const through: Sample[] = [];
        if (concurrency === 1) {
          // One client per path, calls alternating one by one: both paths see the same moment of the machine.
          const pair = await alternate(upstreamUrl, mcplex.url, era);
          direct.push(pair.direct);
          through.push(pair.mcplex);
        } else {
          for (let round = 0; round < ROUNDS; round++) {
            const warmup = round === 0 ? WARMUP : 0.2;
            direct.push(await run(upstreamUrl, 'echo', era, concurrency, warmup));
            through.push(await run(mcplex.url, 'up__echo', era, concurrency, warmup));
          }
        }
        const d = summarise(direct);
        const m = summarise(through);
        const fmt = (n: number) => n.toFixed(2);
        rows.push([
          era,
          String(concurrency),
          'direct',
          d.rps.toFixed(0),
          fmt(d.p50),
          fmt(d.p99),
          String(d.errors),
          '',
          '',
        ]);
        rows.push([
          era,
          String(concurrency),
          'mcplex',
          m.rps.toFixed(0),
          fmt(m.p50),
          fmt(m.p99),
          String(m.errors),
          `${((m.rps / d.rps) * 100).toFixed(1)} %`,
          fmt(m.p50 - d.p50),
        ]);
      }
      mcplex.child.kill('SIGTERM');
    }
    const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
    console.log('\nthroughput = mcplex calls/s as a share of direct; p50 added = mcplex p50 minus direct p50');
  } finally {
    for (const child of children) child.kill('SIGTERM');
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
