// The official MCP conformance suite in server mode, against the conformance fixture directly and through mcplex:
// runs test/conformance/run-conformance.ts as `npm run conformance` does and checks its report and exit status.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { judge } from './conformance/run-conformance.js';
import type { ConformanceReport, TargetResult } from './conformance/run-conformance.js';
import { ROOT, tempDir } from './support/harness.js';

const dir = tempDir('mcplex-conformance-test-');
afterAll(() => dir.remove());

let report: ConformanceReport;
let exitCode: number | null;
let output = '';

beforeAll(async () => {
  const out = join(dir.path, 'conformance.json');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'test', 'conformance', 'run-conformance.ts'), '--out', out],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  exitCode = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  report = JSON.parse(readFileSync(out, 'utf8')) as ConformanceReport;
  // The summary table belongs in the CI output.
  console.log(output);
}, 300_000);

const key = (s: { specVersion: string; scenario: string }) => `${s.specVersion} ${s.scenario}`;

describe('the conformance run (server mode, both spec versions)', () => {
  it('runs every server scenario of both spec versions against all three targets', () => {
    expect(report.specVersions).toEqual(['2025-11-25', '2026-07-28']);
    expect(report.skipped).toEqual([]);
    const names = (version: string) => report.scenarios.filter((s) => s.specVersion === version).map((s) => s.scenario);
    expect(names('2025-11-25')).toEqual(expect.arrayContaining(['server-initialize', 'tools-call-sampling']));
    expect(names('2026-07-28')).toEqual(expect.arrayContaining(['server-stateless', 'caching']));
    for (const s of report.scenarios) {
      for (const target of [s.direct, s.mcplex]) expect(target.missing, key(s)).toBeUndefined();
    }
  });

  it('the fixture passes every check of every scenario directly', () => {
    const short = report.scenarios.filter((s) => s.direct.total === 0 || s.direct.passed < s.direct.total);
    expect(short.map((s) => `${key(s)} ${s.direct.passed}/${s.direct.total}`)).toEqual([]);
  });

  it('mcplex passes every check of the endpoint scenarios itself', () => {
    for (const scenario of ['dns-rebinding-protection', 'http-header-validation']) {
      const runs = report.scenarios.filter((s) => s.scenario === scenario);
      expect(runs.length, scenario).toBeGreaterThan(0);
      for (const s of runs) expect(s.mcplex.passed, key(s)).toBe(s.mcplex.total);
    }
  });

  it('passes every scenario through mcplex at least as well as directly, and exits 0', () => {
    const failing = report.scenarios.filter((s) => s.verdict !== 'ok');
    expect(
      failing.map((s) => `${key(s)}: ${s.note ?? s.verdict}`),
      output,
    ).toEqual([]);
    expect(report.exitCode).toBe(0);
    expect(exitCode).toBe(0);
  });
});

describe('judging one scenario', () => {
  const result = (passed: number, total: number): TargetResult => ({ passed, total, warnings: 0, problems: [] });

  it('requires full marks through mcplex for endpoint scenarios, whatever the fixture scored', () => {
    expect(judge('http-header-validation', result(10, 14), result(14, 14)).verdict).toBe('ok');
    expect(judge('http-header-validation', result(10, 14), result(13, 14)).verdict).toBe('endpoint-failure');
  });

  it('fails a scenario where mcplex passes fewer checks than the fixture directly', () => {
    expect(judge('tools-call-simple-text', result(2, 2), result(2, 2)).verdict).toBe('ok');
    expect(judge('tools-call-simple-text', result(2, 2), result(1, 2)).verdict).toBe('regression');
    expect(judge('tools-call-simple-text', result(2, 2), { ...result(0, 0), missing: true }).verdict).toBe(
      'regression',
    );
  });
});
