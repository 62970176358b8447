// Benchmark: one tool call through mcplex versus straight to the same Streamable HTTP upstream, at 1 and 16
// concurrent clients, in both protocol eras. Prints throughput, p50 and p99 of both paths and their ratios.
// Run with `npm run bench` (builds first). The upstream and mcplex each run in their own process, as deployed;
// mcplex speaks to the upstream in the same era as the clients, so both paths exercise the same upstream code.
// A plain pass-through proxy runs beside them as the floor of what any proxy process adds here, and a raw TCP relay
// as the cost of the extra hop alone, without HTTP. At 1 client the
// paths alternate call by call, at 16 in rounds, so that drift on a shared machine affects them alike. Nothing is
// measured before every process has run --warmup seconds (8 by default): the figures are of the steady state.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { ChildProcess } from 'node:child_process';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { upstreamFetch } from '../src/mcp/upstream/transport.js';
import { startMcplexServe, startProcess, stopAll } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'fixture-server.ts');

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '5' },
    // Seconds each process set runs unmeasured first: until the JIT of every process (the SDK's 2026-07-28 path
    // takes thousands of calls) has settled, figures measure warm-up rather than the steady state.
    warmup: { type: 'string', default: '8' },
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

async function connect(url: string, era: Era): Promise<Client> {
  const client = new Client(
    { name: 'bench', version: '1.0.0' },
    { versionNegotiation: era === 'modern' ? { mode: { pin: '2026-07-28' } } : { mode: 'legacy' } },
  );
  // No MaxListenersExceededWarning after thousands of calls on one client (see upstreamFetch).
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: upstreamFetch }));
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

interface Target {
  path: string;
  url: string;
  tool: string;
}

/**
 * Latency at one client: one client per path, calling in turn for ROUNDS x SECONDS (after the warm-up), so that
 * drift on a shared machine cannot favour any path. Throughput is then each path's calls over its own time.
 */
async function alternate(targets: Target[], era: Era): Promise<Sample[]> {
  const clients = await Promise.all(targets.map((t) => connect(t.url, era)));
  const samples: Sample[] = targets.map(() => ({ calls: 0, latencies: [], errors: 0, seconds: 0 }));
  const measureFrom = performance.now() + WARMUP * 1000;
  const end = measureFrom + ROUNDS * SECONDS * 1000;
  while (performance.now() < end) {
    for (const [i, target] of targets.entries()) {
      const sample = samples[i]!;
      const t0 = performance.now();
      try {
        await clients[i]!.callTool({ name: target.tool, arguments: { message: 'bench' } });
      } catch {
        sample.errors++;
      }
      const elapsed = performance.now() - t0;
      if (t0 >= measureFrom) {
        sample.latencies.push(elapsed);
        sample.calls++;
        sample.seconds = (sample.seconds ?? 0) + elapsed / 1000;
      }
    }
  }
  await Promise.all(clients.map((c) => c.close()));
  return samples;
}

type Summary = ReturnType<typeof summarise>;

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
    JSON.stringify({
      mcpServers: { up: { url: upstreamUrl, protocol: era } },
      server: { port: 0 },
      store: 'memory:',
      logLevel: 'info',
    }),
  );
  const { child, mcpUrl: url } = await startMcplexServe(config);
  const probe = await connect(url, era);
  for (let i = 0; i < 100 && !(await probe.listTools()).tools.some((t) => t.name === 'up__echo'); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await probe.close();
  return { child, url };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-'));
  try {
    const upstream = await startProcess(
      process.execPath,
      ['--import', 'tsx', FIXTURE, '--transport', 'http'],
      /LISTENING (\S+)/,
    );
    const upstreamUrl = upstream.match[1]!;
    const proxy = await startProcess(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench', 'plain-proxy.ts'), upstreamUrl],
      /LISTENING (\S+)/,
    );
    const proxyUrl = proxy.match[1]!;
    const relay = await startProcess(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'bench', 'tcp-relay.ts'), upstreamUrl],
      /LISTENING (\S+)/,
    );
    const relayUrl = relay.match[1]!;

    console.log(`mcplex MCP tool-call benchmark: ${ROUNDS} rounds x ${SECONDS}s per path and level (after warm-up)`);
    console.log('upstream: the project fixture (SDK v2, Streamable HTTP) in its own process; tool: echo');
    console.log('clients: the official SDK v2 client, one connection per concurrent client\n');
    const header = ['era', 'clients', 'path', 'calls/s', 'p50 ms', 'p99 ms', 'errors', 'throughput', 'p50 added ms'];
    const rows: string[][] = [header];
    /** Per era and level: mcplex's and the plain proxy's throughput share and p50 added, for the targets line. */
    const verdicts: string[] = [];
    for (const era of ERAS) {
      const mcplex = await startMcplex(dir, upstreamUrl, era);
      const targets: Target[] = [
        { path: 'direct', url: upstreamUrl, tool: 'echo' },
        { path: 'tcp relay', url: relayUrl, tool: 'echo' },
        { path: 'plain proxy', url: proxyUrl, tool: 'echo' },
        { path: 'mcplex', url: mcplex.url, tool: 'up__echo' },
      ];
      for (const [level, concurrency] of LEVELS.entries()) {
        const samples: Sample[][] = targets.map(() => []);
        if (concurrency === 1) {
          (await alternate(targets, era)).forEach((sample, i) => samples[i]!.push(sample));
        } else {
          for (let round = 0; round < ROUNDS; round++) {
            // The processes of a later level are warm already: a short settling time is enough.
            const warmup = round > 0 ? 0.2 : level === 0 ? WARMUP : 1;
            for (const [i, target] of targets.entries()) {
              samples[i]!.push(await run(target.url, target.tool, era, concurrency, warmup));
            }
          }
        }
        const summaries = samples.map(summarise);
        const [direct, relayRow, proxyRow, mcplexRow] = summaries as [Summary, Summary, Summary, Summary];
        const fmt = (n: number) => n.toFixed(2);
        const share = (r: Summary) => `${((r.rps / direct.rps) * 100).toFixed(1)} %`;
        verdicts.push(
          concurrency === 1
            ? `${era}, 1 client: p50 added ${fmt(mcplexRow.p50 - direct.p50)} ms (target <= 0.5; plain proxy ` +
                `${fmt(proxyRow.p50 - direct.p50)} ms, tcp relay ${fmt(relayRow.p50 - direct.p50)} ms)`
            : `${era}, ${concurrency} clients: throughput ${share(mcplexRow)} of direct (target >= 70 %; plain ` +
                `proxy ${share(proxyRow)})`,
        );
        targets.forEach((target, i) => {
          const r = summaries[i]!;
          const relative = i === 0 ? ['', ''] : [share(r), fmt(r.p50 - direct.p50)];
          rows.push([
            era,
            String(concurrency),
            target.path,
            r.rps.toFixed(0),
            fmt(r.p50),
            fmt(r.p99),
            String(r.errors),
            ...relative,
          ]);
        });
      }
      mcplex.child.kill('SIGTERM');
    }
    const widths = header.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i]!)).join('  '));
    console.log('\nthroughput = calls/s as a share of direct; p50 added = p50 minus direct p50');
    console.log('plain proxy = bench/plain-proxy.ts, a pass-through HTTP proxy: what forwarding alone costs here');
    console.log('tcp relay = bench/tcp-relay.ts, bytes piped without HTTP parsing: what the extra hop alone costs');
    console.log(`\ntargets:\n${verdicts.map((v) => `  ${v}`).join('\n')}`);
  } finally {
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
