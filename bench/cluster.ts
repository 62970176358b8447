// Benchmark: MCP tool calls (2025-11-25 sessions) through nginx in front of one replica and in front of three,
// beside the direct path to one replica, in one run. The replicas share PostgreSQL and Redis, as deployed; each has
// its own stdio fixture upstream. Prints calls/s, p50 and p99 per path and their ratios to the direct path.
//   npm run bench:cluster [-- --seconds 3 --rounds 3 --concurrency 1,16]
// On a machine of 2 cores three replicas, nginx, the upstreams and the clients share the same cores: the ratio of
// three replicas to one measures what the cluster costs here more than what it would gain on more cores.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { freePortRun, startBalancer, startCluster } from '../src/cli/cluster.js';
import { upstreamFetch } from '../src/mcp/upstream/transport.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'fixture-server.ts');
const POSTGRES = process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS = process.env.MCPLEX_TEST_REDIS ?? 'redis://127.0.0.1:6379/0';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '1,16' },
  },
});
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
const WARMUP = Number(values.warmup);
const LEVELS = values.concurrency!.split(',').map(Number);

async function connect(url: string): Promise<Client> {
  const client = new Client({ name: 'bench', version: '1.0.0' }, { versionNegotiation: { mode: 'legacy' } });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${url}/mcp`), { fetch: upstreamFetch }));
  return client;
}

interface Sample {
  calls: number;
  latencies: number[];
  errors: number;
}

/** Every client calls back to back for `seconds`. */
async function measure(clients: Client[], seconds: number): Promise<Sample> {
  const sample: Sample = { calls: 0, latencies: [], errors: 0 };
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (client, i) => {
      while (performance.now() < until) {
        const start = performance.now();
        try {
          await client.callTool({ name: 'fixture__echo', arguments: { message: `bench ${i}` } });
          sample.latencies.push(performance.now() - start);
          sample.calls++;
        } catch {
          sample.errors++;
        }
      }
    }),
  );
  return sample;
}

const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;

const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-cluster-'));
const schema = `mcplex_bench_${randomBytes(4).toString('hex')}`;
const prefix = `mcplex-bench-${randomBytes(4).toString('hex')}:`;
const config = join(dir, 'mcplex.json');
writeFileSync(
  config,
  JSON.stringify({
    store: `${POSTGRES}?schema=${schema}`,
    redis: { url: REDIS, prefix },
    logLevel: 'warn',
    mcpServers: { fixture: { command: process.execPath, args: ['--import', 'tsx', FIXTURE, '--transport', 'stdio'] } },
  }),
);
const base = await freePortRun(5);
const cluster = await startCluster({ replicas: 3, port: base, config, dir: join(dir, 'cluster') });
const single = await startBalancer({ dir: join(dir, 'single'), port: base + 4, replicas: [cluster.replicas[0]!.url] });
const paths = [
  { name: 'direct (one replica)', url: cluster.replicas[0]!.url },
  { name: 'nginx → 1 replica', url: single.url },
  { name: 'nginx → 3 replicas', url: cluster.url },
];
try {
  const rows: string[] = [];
  for (const level of LEVELS) {
    const clients = await Promise.all(
      paths.map(async (path) => Promise.all(Array.from({ length: level }, () => connect(path.url)))),
    );
    for (const set of clients) await measure(set, WARMUP / paths.length);
    const totals = paths.map(() => ({ calls: 0, latencies: [] as number[], errors: 0, seconds: 0 }));
    for (let round = 0; round < ROUNDS; round++) {
      // The paths take turns within each round, so that drift on a shared machine affects them alike.
      for (let p = 0; p < paths.length; p++) {
        const sample = await measure(clients[p]!, SECONDS);
        totals[p]!.calls += sample.calls;
        totals[p]!.errors += sample.errors;
        totals[p]!.latencies.push(...sample.latencies);
        totals[p]!.seconds += SECONDS;
      }
    }
    const direct = totals[0]!;
    const directRate = direct.calls / direct.seconds;
    const directP50 = percentile(
      [...direct.latencies].sort((a, b) => a - b),
      0.5,
    );
    for (let p = 0; p < paths.length; p++) {
      const t = totals[p]!;
      const sorted = [...t.latencies].sort((a, b) => a - b);
      const rate = t.calls / t.seconds;
      const p50 = percentile(sorted, 0.5);
      rows.push(
        [
          paths[p]!.name.padEnd(22),
          String(level).padStart(3),
          rate.toFixed(0).padStart(8),
          p50.toFixed(2).padStart(8),
          percentile(sorted, 0.99).toFixed(2).padStart(8),
          `${((rate / directRate) * 100).toFixed(1)} %`.padStart(9),
          `${p50 - directP50 >= 0 ? '+' : ''}${(p50 - directP50).toFixed(2)} ms`.padStart(10),
          String(t.errors).padStart(6),
        ].join('  '),
      );
    }
    await Promise.all(clients.flat().map((c) => c.close()));
  }
  process.stdout.write(
    `${['path'.padEnd(22), 'cli', 'calls/s'.padStart(8), 'p50 ms'.padStart(8), 'p99 ms'.padStart(8), 'vs direct'.padStart(9), 'p50 +'.padStart(10), 'errors'].join('  ')}\n${rows.join('\n')}\n`,
  );
} finally {
  await single.stop();
  await cluster.stop();
  const db = new pg.Client({ connectionString: POSTGRES });
  await db.connect();
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
  const { Redis } = await import('ioredis');
  const redis = new Redis(REDIS);
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
  rmSync(dir, { recursive: true, force: true });
}
