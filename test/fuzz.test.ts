// The hostile-input fuzz suite, bounded: a few thousand generated requests to every route, in both auth modes,
// against mcplex with the stdio fixture MCP server and the mock LLM. `npm run fuzz` runs the long version.
import { beforeAll, describe, expect, it } from 'vitest';
import { runFuzz } from './fuzz/fuzz-runner.js';
import type { FuzzResult } from './fuzz/fuzz-runner.js';
import type { PropertyName } from './fuzz/checks.js';
import { formatFindings } from './fuzz/summary.js';

// A fixed seed keeps the inputs the same from run to run; FUZZ_SEED tries others.
const SEED = Number(process.env.FUZZ_SEED ?? 20_260_728);

let result: FuzzResult;

beforeAll(async () => {
  result = await runFuzz({ numRuns: 3000, seed: SEED, batchSize: 250, shrinkRuns: 30, maxShrunk: 30 });
}, 240_000);

/** The findings of one property as text: an empty string is a pass, anything else says what failed and how. */
const failures = (...properties: PropertyName[]) =>
  formatFindings(result.findings.filter((finding) => properties.includes(finding.property)));

describe(`hostile input (seed ${SEED})`, () => {
  it('reaches real handling on every route family', () => {
    for (const route of ['mcp:legacy:tools/call', 'mcp:modern:tools/call', 'mcp:modern:tools/list', 'v1:chat']) {
      expect(result.successes[route] ?? 0, `successful ${route} answers`).toBeGreaterThan(0);
    }
    expect(result.successes['v1:chat+mcp'] ?? 0, 'chat completions that ran MCP tools').toBeGreaterThan(0);
    expect(result.successes['admin:keys:list'] ?? 0, 'admin answers (keys mode)').toBeGreaterThan(0);
  });

  it('never answers 5xx, except a declared upstream failure', () => {
    expect(failures('no-5xx')).toBe('');
  });

  it('never answers JSON-RPC -32603 on /mcp, except a declared upstream failure', () => {
    expect(failures('no-internal-error')).toBe('');
  });

  it("answers every error in the route's shape", () => {
    expect(failures('error-shape')).toBe('');
  });

  it('answers bad input with a client error (4xx, or -32700/-32600/-32601/-32602 on /mcp)', () => {
    expect(failures('bad-input-rejected')).toBe('');
  });

  it('accepts a valid key in every form HTTP allows (any case of Bearer, x-api-key)', () => {
    expect(failures('valid-key-accepted')).toBe('');
  });

  it('answers every request, in time', () => {
    expect(failures('answers-in-time', 'answers-at-all')).toBe('');
  });

  it('stays healthy, with its upstream ready, after every batch', () => {
    expect(failures('healthy-after-batch', 'upstream-ready-after-batch')).toBe('');
  });

  it('returns to its heap baseline', () => {
    expect(failures('heap-returns-to-baseline')).toBe('');
    for (const mode of result.modes) {
      expect(mode.heap.afterBytes, `${mode.mode} mode heapUsed`).toBeGreaterThan(0);
    }
  });
});
