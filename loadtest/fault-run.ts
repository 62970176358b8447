// The fault run: Locust's load against three replicas behind nginx on PostgreSQL and a Redis of its own, with a
// replica killed (SIGKILL) and started again, and Redis restarted, while it runs. Prints what happened and checks:
// every acknowledged conversation write is in PostgreSQL with gapless versions, MCP sessions outlive the killed
// replica (no "session not found"), errors stop within 5 s of each fault, and no request outlives its timeout.
//   npm run faultrun -- [--duration 60] [--kill-at 20] [--restart-at 40] [--redis-restart-at 50] [--users 24]
// Exit code 0 when every check holds. The CI runs a short version (test/fault-run.test.ts).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { freePortRun, startCluster } from '../src/cli/cluster.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import { freePort, startRedis, stopRedis } from '../src/store/redis/redis-test-support.js';
import { runLocust } from './locust.js';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    'kill-at': { type: 'string', default: '20' },
    'restart-at': { type: 'string', default: '40' },
    'redis-restart-at': { type: 'string', default: '50' },
    users: { type: 'string', default: '24' },
    replicas: { type: 'string', default: '3' },
    json: { type: 'string' },
  },
});
const duration = Number(values.duration);
const killAt = Number(values['kill-at']);
const restartAt = Number(values['restart-at']);
const redisRestartAt = Number(values['redis-restart-at']);
const users = Number(values.users);
const RECOVERY_S = 5;
const TIMEOUT_S = 10;
const POSTGRES = process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

interface Event {
  t: number;
  name: string;
  ms: number;
  ok: boolean;
  status: number | null;
  replica: string | null;
  error: string | null;
}

interface Ack {
  conversation: string;
  version: number;
  items?: string[];
}

const readLines = <T>(path: string): T[] => {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as T);
  } catch {
    return [];
  }
};

const dir = mkdtempSync(join(tmpdir(), 'mcplex-faultrun-'));
const schema = `mcplex_faultrun_${randomBytes(4).toString('hex')}`;
const redisPort = await freePort();
let redis = await startRedis(redisPort);
const mock = await startMockLlm({ name: 'faultrun', latencyMs: 20, record: false });
const config = join(dir, 'mcplex.json');
writeFileSync(
  config,
  JSON.stringify({
    store: `${POSTGRES}?schema=${schema}`,
    redis: { url: `redis://127.0.0.1:${redisPort}/0`, prefix: 'faultrun:' },
    cluster: { heartbeatMs: 500 },
    server: { drainMs: 2000, requestState: { key: randomBytes(32).toString('hex') } },
    mcpServers: { everything: { command: 'node_modules/.bin/mcp-server-everything', args: ['stdio'] } },
    llm: {
      models: { mock: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } },
      cache: { store: 'redis' },
    },
  }),
);
const cluster = await startCluster({
  replicas: Number(values.replicas),
  port: await freePortRun(4),
  config,
  dir: join(dir, 'cluster'),
});
const events = join(dir, 'events.jsonl');
const acks = join(dir, 'acks.jsonl');
const started = Date.now() / 1000;
const faults: { at: number; what: string }[] = [];
const victim = cluster.replicas[1]!;
const timers = [
  setTimeout(() => {
    faults.push({ at: Date.now() / 1000, what: `kill -9 ${victim.name}` });
    void victim.stop('SIGKILL');
  }, killAt * 1000),
  setTimeout(() => {
    faults.push({ at: Date.now() / 1000, what: `start ${victim.name}` });
    void victim.start();
  }, restartAt * 1000),
];
if (redisRestartAt < duration) {
  timers.push(
    setTimeout(() => {
      faults.push({ at: Date.now() / 1000, what: 'restart Redis' });
      void stopRedis(redis).then(async () => {
        await new Promise((resolve) => setTimeout(resolve, 500));
        redis = await startRedis(redisPort);
      });
    }, redisRestartAt * 1000),
  );
}
const locust = await runLocust({
  host: cluster.url,
  users,
  duration,
  quiet: true,
  env: { LOADTEST_EVENTS: events, LOADTEST_ACKS: acks, MCPLEX_MODEL: 'mock', MCPLEX_TIMEOUT: String(TIMEOUT_S) },
});
for (const timer of timers) clearTimeout(timer);

// What happened.
const all = readLines<Event>(events);
const failures = all.filter((e) => !e.ok);
const acknowledged = readLines<Ack>(acks);
const db = new pg.Client({ connectionString: POSTGRES });
await db.connect();
const lostWrites: string[] = [];
const gaps: string[] = [];
try {
  const acked = new Map<string, number>();
  const items = new Set<string>();
  for (const ack of acknowledged) {
    acked.set(ack.conversation, Math.max(acked.get(ack.conversation) ?? 0, ack.version ?? 0));
    for (const item of ack.items ?? []) items.add(item);
  }
  for (const [conversation, version] of acked) {
    const { rows } = await db.query<{ version: number; seqs: number[] | null }>(
      `SELECT c.version, array_agg(i.seq ORDER BY i.seq) AS seqs FROM ${schema}.conversations c
       LEFT JOIN ${schema}.conversation_items i ON i.conversation_id = c.id WHERE c.id = $1 GROUP BY c.version`,
      [conversation],
    );
    const row = rows[0];
    if (!row || row.version < version)
      lostWrites.push(`${conversation}: acknowledged version ${version}, kept ${row?.version}`);
    const seqs = row?.seqs ?? [];
    // Each append takes the next version and its items the next positions: positions 1..n, none missing.
    if (seqs.some((seq, i) => seq !== i + 1)) gaps.push(`${conversation}: items at ${JSON.stringify(seqs)}`);
  }
  if (items.size > 0) {
    const { rows } = await db.query<{ id: string }>(`SELECT id FROM ${schema}.conversation_items WHERE id = ANY($1)`, [
      [...items],
    ]);
    const kept = new Set(rows.map((r) => r.id));
    for (const item of items) if (!kept.has(item)) lostWrites.push(`item ${item}`);
  }
} finally {
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => {});
  await db.end();
}

/** The last failure within the window after a fault, in seconds after the fault. */
const recovery = (fault: { at: number }, until: number) => {
  const late = failures.filter((e) => e.t >= fault.at && e.t < until).map((e) => e.t - fault.at);
  return late.length === 0 ? 0 : Math.max(...late);
};
const windows = faults.map((fault, i) => ({
  ...fault,
  secondsAfter: Math.round((fault.at - started) * 10) / 10,
  lastErrorAfterS: Math.round(recovery(fault, faults[i + 1]?.at ?? Infinity) * 10) / 10,
  errors: failures.filter((e) => e.t >= fault.at && e.t < (faults[i + 1]?.at ?? Infinity)).length,
}));
const before = failures.filter((e) => e.t < (faults[0]?.at ?? Infinity));
// A Redis restarted without persistence forgets every session (their clients initialise again); a replica that dies
// must not cost any.
const redisRestart = faults.find((f) => f.what === 'restart Redis')?.at ?? Infinity;
const lostSessions = failures.filter((e) => e.error?.includes('session not found') && e.t < redisRestart);
const slowest = Math.max(0, ...all.map((e) => e.ms));
const byReplica: Record<string, number> = {};
for (const e of all) if (e.replica) byReplica[e.replica] = (byReplica[e.replica] ?? 0) + 1;
const summary = {
  requests: all.length,
  failures: failures.length,
  failuresBeforeFaults: before.length,
  byReplica,
  faults: windows,
  acknowledgedWrites: acknowledged.length,
  lostWrites: lostWrites.length,
  conversationsWithGaps: gaps.length,
  gaps: gaps.slice(0, 3),
  lostSessions: lostSessions.length,
  slowestMs: Math.round(slowest),
  timeoutMs: TIMEOUT_S * 1000,
  locustExit: locust.code,
  sampleFailures: [...new Set(failures.map((e) => `${e.name}: ${e.error}`))].slice(0, 8),
};
const checks = {
  'no acknowledged conversation write lost': lostWrites.length === 0,
  'conversation versions gapless': gaps.length === 0,
  'no failure before the first fault': before.length === 0,
  'MCP sessions outlive the killed replica (no "session not found")': lostSessions.length === 0,
  [`errors stop within ${RECOVERY_S} s of each fault`]: windows.every((w) => w.lastErrorAfterS <= RECOVERY_S),
  'failures at the kill are calls in flight there, at most one per user': (windows[0]?.errors ?? 0) <= users,
  'no request waited past its timeout':
    slowest < TIMEOUT_S * 1000 && !failures.some((e) => /timed out/i.test(e.error ?? '')),
  'every replica served requests': Object.keys(byReplica).length === cluster.replicas.length,
};
process.stdout.write(`${JSON.stringify({ summary, checks }, null, 2)}\n`);
if (values.json) writeFileSync(values.json, JSON.stringify({ summary, checks }));

await cluster.stop();
await stopRedis(redis);
await mock.close();
rmSync(dir, { recursive: true, force: true });
process.exit(Object.values(checks).every(Boolean) ? 0 : 1);
