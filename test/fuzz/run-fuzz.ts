// `npm run fuzz`: the long hostile-input fuzz run against mcplex in both auth modes, with progress on stderr and a
// summary (inputs per route, statuses, findings with shrunk reproductions) on stdout; exits 1 when something failed.
import { parseArgs } from 'node:util';
import { runFuzz } from './fuzz-runner.js';
import type { AuthMode } from './fuzz-runner.js';
import { formatSummary } from './summary.js';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string', default: '1000000' },
    seed: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    modes: { type: 'string', default: 'none,keys' },
    'shrink-runs': { type: 'string', default: '100' },
  },
});

function whole(name: string, text: string | undefined): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`--${name} must be a whole number, not ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}

const modes = values.modes.split(',').map((mode) => mode.trim());
if (!modes.every((mode): mode is AuthMode => mode === 'none' || mode === 'keys')) {
  console.error('--modes is a comma-separated list of none and keys');
  process.exit(2);
}
const seed = values.seed === undefined ? Date.now() % 2 ** 31 : whole('seed', values.seed);
const inputs = whole('inputs', values.inputs);
console.error(`fuzzing ${inputs} inputs over ${modes.join(' and ')} mode, seed ${seed} (--seed ${seed} repeats it)`);

const started = performance.now();
const result = await runFuzz({
  numRuns: inputs,
  seed,
  modes,
  concurrency: whole('concurrency', values.concurrency),
  shrinkRuns: whole('shrink-runs', values['shrink-runs']),
  batchSize: 5000,
  onProgress: (p) =>
    console.error(
      `[${p.mode}] ${p.done}/${p.total} inputs, ${p.inputsPerSecond.toFixed(0)}/s, ${p.findings} distinct findings so far`,
    ),
});
console.log(formatSummary(result));
console.error(`done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
process.exit(result.findings.length > 0 ? 1 : 0);
