// Benchmark: usage totals (what `mcplex usage` and /admin/usage ask the store) over a large usage table, on SQLite
// and PostgreSQL. Fills each store through UsageStore.recordMany, as the usage recorder writes, with --rows entries
// (1,000,000 by default: 50 keys × 4 models, one flush a second per pair, spread over --days days up to now), then
// times each report --repeat times and prints the median and worst against the 200 ms target.
// Run with `npm run bench:usage` (PostgreSQL from MCPLEX_BENCH_POSTGRES, default the local server's `test` database;
// the bench's schema is dropped afterwards).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { openStore } from '../src/store/open-store.js';
import type { Store, UsageEntry, UsageFilter } from '../src/store/store.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    days: { type: 'string', default: '30' },
    repeat: { type: 'string', default: '7' },
    stores: { type: 'string', default: 'sqlite,postgres' },
  },
});
const ROWS = Number(values.rows);
const DAYS = Number(values.days);
const REPEAT = Number(values.repeat);
const TARGET_MS = 200;
const PG_URL = process.env.MCPLEX_BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';

const SUBJECTS = Array.from({ length: 50 }, (_, i) => `key${String(i).padStart(2, '0')}`);
const MODELS = ['gpt-4o', 'gpt-4o-mini', 'claude-sonnet', 'text-embedding-3-small'];
const now = Date.now();
const span = DAYS * 86_400_000;

function* entries(): Generator<UsageEntry[]> {
  const pairs = SUBJECTS.length * MODELS.length;
  let batch: UsageEntry[] = [];
  for (let i = 0; i < ROWS; i++) {
    const pair = i % pairs;
    batch.push({
      subject: SUBJECTS[Math.floor(pair / MODELS.length)]!,
      model: MODELS[pair % MODELS.length]!,
      at: now - span + Math.floor((i / ROWS) * span),
      requests: 1 + (i % 7),
      promptTokens: 100 + (i % 1000),
      completionTokens: 10 + (i % 300),
    });
    if (batch.length === 10_000) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

const REPORTS: [string, UsageFilter][] = [
  ['all time', {}],
  ['since 7d', { since: now - 7 * 86_400_000 }],
  ['since 1h', { since: now - 3_600_000 }],
  ['one key, all time', { subject: 'key07' }],
  ['one key and model, 12 days', { subject: 'key07', model: 'gpt-4o', since: now - 12 * 86_400_000 }],
];

async function measure(name: string, store: Store): Promise<boolean> {
  const filled = performance.now();
  for (const batch of entries()) await store.usage.recordMany(batch);
  console.log(
    `${name}: ${ROWS.toLocaleString('en')} rows written in ${((performance.now() - filled) / 1000).toFixed(1)} s`,
  );
  let ok = true;
  for (const [label, filter] of REPORTS) {
    const times: number[] = [];
    let groups = 0;
    for (let i = 0; i < REPEAT; i++) {
      const start = performance.now();
      groups = (await store.usage.totals(filter)).length;
      times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    const worst = times.at(-1)!;
    ok &&= worst < TARGET_MS;
    console.log(
      `  ${label.padEnd(28)} ${String(groups).padStart(4)} totals   median ${median.toFixed(1).padStart(7)} ms   ` +
        `worst ${worst.toFixed(1).padStart(7)} ms   ${worst < TARGET_MS ? 'ok' : 'OVER'} (target < ${TARGET_MS} ms)`,
    );
  }
  return ok;
}

let allOk = true;
for (const kind of values.stores.split(',')) {
  if (kind === 'sqlite') {
    const dir = mkdtempSync(join(tmpdir(), 'mcplex-bench-usage-'));
    const store = await openStore(`sqlite:${join(dir, 'usage.db')}`);
    try {
      allOk = (await measure('SQLite', store)) && allOk;
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  } else if (kind === 'postgres') {
    const schema = `mcplex_bench_${randomBytes(4).toString('hex')}`;
    const store = await openStore(`${PG_URL}${PG_URL.includes('?') ? '&' : '?'}schema=${schema}`);
    try {
      allOk = (await measure('PostgreSQL', store)) && allOk;
    } finally {
      await store.close();
      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
  }
}
console.log(allOk ? '\nevery report under the target' : '\nsome reports over the target');
process.exitCode = allOk ? 0 : 1;
