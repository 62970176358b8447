// The official MCP conformance suite in client mode, against the way mcplex connects upstream: runs
// test/conformance/run-client-conformance.ts as `npm run conformance:client` does (the suite's mock server for each
// scenario, test/conformance/upstream-client.ts connecting to it through mcplex's Upstream) and checks its report.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_MAY_FAIL, REQUIRED_CLIENT_SCENARIOS } from './conformance/run-client-conformance.js';
import type { ClientConformanceReport } from './conformance/run-client-conformance.js';
import { ROOT, tempDir } from './support/harness.js';

/** Which spec versions list each required scenario (conformance 0.2.0-alpha.12). */
const EXPECTED_RUNS = [
  '2025-11-25 initialize',
  '2025-11-25 tools_call',
  '2025-11-25 sse-retry',
  '2026-07-28 tools_call',
  '2026-07-28 request-metadata',
  '2026-07-28 http-standard-headers',
  '2026-07-28 http-custom-headers',
  '2026-07-28 http-invalid-tool-headers',
  // mcplex's OAuth client towards upstreams, in both versions.
  ...['2025-11-25', '2026-07-28'].flatMap((version) =>
    [
      'metadata-default',
      'metadata-var1',
      'metadata-var2',
      'metadata-var3',
      'basic-cimd',
      'scope-from-www-authenticate',
      'scope-from-scopes-supported',
      'scope-omitted-when-undefined',
      'scope-step-up',
      'scope-retry-limit',
      'token-endpoint-auth-basic',
      'token-endpoint-auth-post',
      'token-endpoint-auth-none',
      'pre-registration',
    ].map((scenario) => `${version} auth/${scenario}`),
  ),
];

const dir = tempDir('mcplex-client-conformance-test-');
afterAll(() => dir.remove());

let report: ClientConformanceReport;
let exitCode: number | null;
let output = '';

beforeAll(async () => {
  const out = join(dir.path, 'conformance-client.json');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'test', 'conformance', 'run-client-conformance.ts'), '--out', out],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  exitCode = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  // The summary table belongs in the CI output.
  console.log(output);
  report = JSON.parse(readFileSync(out, 'utf8')) as ClientConformanceReport;
}, 300_000);

const key = (s: { specVersion: string; scenario: string }) => `${s.specVersion} ${s.scenario}`;

describe('the conformance run (client mode: mcplex connecting upstream, both spec versions)', () => {
  it('runs every required client scenario for each spec version that has it', () => {
    expect(report.specVersions).toEqual(['2025-11-25', '2026-07-28']);
    expect(report.scenarios.map(key).sort()).toEqual([...EXPECTED_RUNS].sort());
    const covered = new Set(report.scenarios.map((s) => s.scenario));
    for (const scenario of REQUIRED_CLIENT_SCENARIOS) expect(covered.has(scenario), scenario).toBe(true);
  });

  it('passes every check of every required scenario, with the client exiting cleanly', () => {
    const short = report.scenarios.filter(
      (s) =>
        s.result.missing ||
        s.result.total === 0 ||
        s.result.passed < s.result.total ||
        s.result.problems.length > 0 ||
        // A client that gives up where the suite expects it to (auth/scope-retry-limit) exits with an error.
        (s.clientExitCode !== 0 && !CLIENT_MAY_FAIL.has(s.scenario)) ||
        s.clientTimedOut,
    );
    const describeRun = (s: (typeof short)[number]) =>
      `${key(s)} ${s.result.passed}/${s.result.total} exit ${s.clientExitCode}: ` +
      (s.result.problems.map((p) => `${p.status} ${p.id} ${p.message ?? ''}`).join('; ') || (s.note ?? ''));
    expect(short.map(describeRun), output).toEqual([]);
  });

  it('reports success and exits with 0', () => {
    expect(report.failures).toEqual([]);
    expect(report.exitCode).toBe(0);
    expect(exitCode).toBe(0);
  });
});
