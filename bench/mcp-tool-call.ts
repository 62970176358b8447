// Benchmark: one tool call through mcplex versus straight to the same Streamable HTTP upstream, at 1 and 16
// concurrent clients. Prints throughput, p50 and p99 for both paths and the ratios, in one run.
// Run with `npm run bench` (builds first). Upstream and mcplex each run in their own process, as deployed.
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
    seconds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '1,16' },
    era: { type: 'string', default: 'legacy' },
  },
});
const SECONDS = Number(values.seconds);
const WARMUP = Number(values.warmup);
const LEVELS = values.concurrency.split(',').map(Number);
const ERA = values.era === 'modern' ? 'modern' : 'legacy';

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

async function connect(url: string): Promise<Client> {
  const client = new Client(
    { name: 'bench', version: '1.0.0' },
    { versionNegotiation: ERA === 'modern' ? { mode: { pin: '2026-07-28' } } : { mode: 'legacy' } },
  );
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

/** Each client runs calls back to back; latencies are recorded only after the warm-up. */
async function run(url: string, tool: string, concurrency: number): Promise<Result> {
  const clients = await Promise.all(Array.from({ length: concurrency }, () => connect(url)));
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + WARMUP * 1000;
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
        const t1 = performance.now();
        if (t0 >= measureFrom) latencies.push(t1 - t0);
      }
    }),
  );
  await Promise.all(clients.map((c) => c.close()));
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / SECONDS, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-'));
  const children: ChildProcess[] = [];
  try {
    const upstream = await startProcess(['--import', 'tsx', FIXTURE, '--transport', 'http'], /LISTENING (\S+)/);
    children.push(upstream.child);
    const upstreamUrl = upstream.match[1]!;
    const config = join(dir, 'mcplex.json');
    writeFileSync(
      config,
      JSON.stringify({ mcpServers: { up: { url: upstreamUrl } }, server: { port: 0 }, logLevel: 'info' }),
    );
    const mcplex = await startProcess(
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
    children.push(mcplex.child);
    const mcplexUrl = mcplex.match[1]!;
    // Wait until mcplex lists the upstream's tools.
    const probe = await connect(mcplexUrl);
    for (let i = 0; i < 100 && !(await probe.listTools()).tools.some((t) => t.name === 'up__echo'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await probe.close();

    console.log(`mcplex MCP tool-call benchmark: ${ERA} clients, ${SECONDS}s per run after ${WARMUP}s warm-up`);
    console.log('upstream: the project fixture (SDK v2, Streamable HTTP) in its own process; tool: echo\n');
    const rows: string[][] = [
      ['clients', 'path', 'calls/s', 'p50 ms', 'p99 ms', 'errors', 'throughput ratio', 'p50 added ms'],
    ];
    for (const concurrency of LEVELS) {
      const direct = await run(upstreamUrl, 'echo', concurrency);
      const through = await run(mcplexUrl, 'up__echo', concurrency);
      const fmt = (n: number) => n.toFixed(2);
      rows.push([
        String(concurrency),
        'direct',
        direct.rps.toFixed(0),
        fmt(direct.p50),
        fmt(direct.p99),
        String(direct.errors),
        '',
        '',
      ]);
      rows.push([
        String(concurrency),
        'mcplex',
        through.rps.toFixed(0),
        fmt(through.p50),
        fmt(through.p99),
        String(through.errors),
        `${((through.rps / direct.rps) * 100).toFixed(1)} %`,
        fmt(through.p50 - direct.p50),
      ]);
    }
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
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
