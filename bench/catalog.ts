// Benchmark: a big catalog. mcplex in front of N stdio servers (the project's catalog fixture, `--generated T`
// tools each: 50 x 100 by default), measured from the outside: the time from start to every server ready, the
// time a client takes to list the whole catalog (every page, SDK v2 client, 2025-11-25 session) and the CPU time
// mcplex spends per whole listing (from /proc, over repeated listings: its server time), and mcplex's own RSS
// before any tool-running chat (the children's memory is theirs). Targets (issue figures): a whole listing of
// 5,000 tools at most 20 ms of mcplex's time; mcplex's RSS at most 130 MB with 10 servers of 100 tools.
// Run with `npm run bench:catalog` (builds first); `-- --servers 10 --tools 100` for the memory target.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { upstreamFetch } from '../src/mcp/upstream/transport.js';
import { startMcplexServe, stopAll } from './processes.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'catalog-server.ts');

const { values } = parseArgs({
  options: {
    servers: { type: 'string', default: '50' },
    tools: { type: 'string', default: '100' },
    listings: { type: 'string', default: '20' },
  },
});
const SERVERS = Number(values.servers);
const TOOLS = Number(values.tools);
const LISTINGS = Number(values.listings);

/** CPU seconds the process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The process's resident memory, MB, from /proc (Linux). */
function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN) / 1024;
}

async function listAll(client: Client): Promise<number> {
  let count = 0;
  let cursor: string | undefined;
  do {
    const page = await client.listTools(cursor === undefined ? undefined : { cursor }, { cacheMode: 'bypass' });
    count += page.tools.length;
    cursor = page.nextCursor;
  } while (cursor !== undefined);
  return count;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-catalog-'));
  try {
    const mcpServers = Object.fromEntries(
      Array.from({ length: SERVERS }, (_, i) => [
        `s${i + 1}`,
        {
          command: process.execPath,
          args: ['--import', 'tsx', FIXTURE, '--generated', String(TOOLS)],
          timeouts: { startup: 120_000 },
        },
      ]),
    );
    const config = join(dir, 'mcplex.json');
    writeFileSync(config, JSON.stringify({ server: { port: 0 }, store: 'memory:', logLevel: 'info', mcpServers }));
    const started = performance.now();
    const { child, url, mcpUrl } = await startMcplexServe(config);
    const pid = child.pid!;
    let readyMs = Number.NaN;
    for (;;) {
      const body = (await (await fetch(`${url}/readyz`)).json()) as { servers: { state: string }[] };
      if (body.servers.length === SERVERS && body.servers.every((s) => s.state === 'ready')) {
        readyMs = performance.now() - started;
        break;
      }
      if (performance.now() - started > 300_000) throw new Error('the servers were not all ready within 300 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const client = new Client({ name: 'bench', version: '1.0.0' }, { versionNegotiation: { mode: 'legacy' } });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { fetch: upstreamFetch }));
    const listed = await listAll(client);
    if (listed !== SERVERS * TOOLS) throw new Error(`listed ${listed} tools, expected ${SERVERS * TOOLS}`);
    const rssBefore = rssMb(pid);
    const wall: number[] = [];
    const cpuStart = cpuSeconds(pid);
    for (let i = 0; i < LISTINGS; i++) {
      const t0 = performance.now();
      await listAll(client);
      wall.push(performance.now() - t0);
    }
    const cpuMs = ((cpuSeconds(pid) - cpuStart) * 1000) / LISTINGS;
    wall.sort((a, b) => a - b);
    await client.close();
    console.log(`mcplex catalog benchmark: ${SERVERS} stdio servers x ${TOOLS} tools = ${listed} tools\n`);
    console.log(`  start to every server ready   ${(readyMs / 1000).toFixed(1)} s`);
    console.log(`  a whole tools/list, client    p50 ${wall[Math.floor(wall.length / 2)]!.toFixed(1)} ms`);
    console.log(
      `  a whole tools/list, mcplex    ${cpuMs.toFixed(1)} ms of CPU (over ${LISTINGS} listings; target <= 20 ms at 5,000 tools)`,
    );
    console.log(`  mcplex RSS, no chat yet       ${rssBefore.toFixed(0)} MB (target <= 130 MB at 10 x 100)`);
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch(async (error: unknown) => {
  console.error(error);
  await stopAll();
  process.exit(1);
});
