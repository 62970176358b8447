// The fault run's short version (the long one is `npm run faultrun`): 15 s of Locust's load on three replicas
// behind nginx, one replica killed with SIGKILL at 5 s and started again at 10 s. Every check of the run must hold.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ROOT, tempDir } from './support/harness.js';

const dir = tempDir('mcplex-faultrun-test-');
afterAll(() => dir.remove());

it('loses no acknowledged write and no session when a replica is killed under load, and recovers at once', async () => {
  const out = join(dir.path, 'faultrun.json');
  const run = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      'loadtest/fault-run.ts',
      ...['--duration', '15', '--kill-at', '5', '--restart-at', '10', '--redis-restart-at', '1000'],
      ...['--users', '12', '--json', out],
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  run.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  run.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => run.once('exit', resolve));
  const { summary, checks } = JSON.parse(readFileSync(out, 'utf8')) as {
    summary: { requests: number; acknowledgedWrites: number; faults: { what: string }[] };
    checks: Record<string, boolean>;
  };
  // The figures belong in the CI output.
  console.log(output);
  expect(summary.faults.map((f) => f.what)).toEqual(['kill -9 replica-2', 'start replica-2']);
  expect(summary.requests).toBeGreaterThan(100);
  expect(summary.acknowledgedWrites).toBeGreaterThan(10);
  expect(checks).toEqual(Object.fromEntries(Object.keys(checks).map((name) => [name, true])));
  expect(code).toBe(0);
}, 180_000);
