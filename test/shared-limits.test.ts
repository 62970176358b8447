// Rate-limit counters live in the configured store: two mcplex processes on one SQLite file share each key's
// budget (before, each counted alone and granted the whole limit); `limits.counters: "process"` opts out. Requests
// in progress are leases in the same store, shared the same way.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startMcplex, tempDir } from './support/harness.js';

const dir = tempDir('mcplex-shared-limits-');
let mock: MockLlm;
let slow: MockLlm;

beforeAll(async () => {
  mock = await startMockLlm({ name: 'limits-mock' });
  slow = await startMockLlm({ name: 'limits-slow', latencyMs: 800 });
});
afterAll(async () => {
  await mock?.close();
  await slow?.close();
  dir.remove();
});

async function pair(file: string, counters: 'store' | 'process'): Promise<[RunningServer, RunningServer]> {
  const config = {
    store: `sqlite:${join(dir.path, file)}`,
    auth: { mode: 'keys' as const },
    limits: { counters },
    llm: {
      models: {
        m: { deployments: [{ provider: 'openai' as const, baseUrl: `${mock.url}/v1`, model: 'b' }] },
        slow: { deployments: [{ provider: 'openai' as const, baseUrl: `${slow.url}/v1`, model: 'b' }] },
      },
    },
  };
  return [await startMcplex(config), await startMcplex(config)];
}

async function statuses(replicas: RunningServer[], token: string, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const response = await fetch(`${replicas[i % replicas.length]!.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `hi ${i}` }] }),
    });
    await response.text();
    out.push(response.status);
  }
  return out;
}

describe('rate limits across processes on one store', () => {
  it('share one budget per key by default', async () => {
    const replicas = await pair('shared.db', 'store');
    try {
      const { token } = await replicas[0].policy.keys.create({ name: 'shared', rpm: 4 });
      const answers = await statuses(replicas, token, 8);
      expect(answers.filter((s) => s === 200)).toHaveLength(4);
      expect(answers.filter((s) => s === 429)).toHaveLength(4);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  it('share the requests in progress of a key: maxConcurrent 2 over both, 2 of 6 at once run', async () => {
    const replicas = await pair('concurrent.db', 'store');
    try {
      const { token } = await replicas[0].policy.keys.create({ name: 'busy', maxConcurrent: 2 });
      const answers = await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const response = await fetch(`${replicas[i % 2]!.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'slow', messages: [{ role: 'user', content: 'hi' }] }),
          });
          await response.text();
          return response.status;
        }),
      );
      expect(answers.filter((s) => s === 200)).toHaveLength(2);
      expect(answers.filter((s) => s === 429)).toHaveLength(4);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });

  it('count per process with limits.counters "process", as configured', async () => {
    const replicas = await pair('per-process.db', 'process');
    try {
      const { token } = await replicas[0].policy.keys.create({ name: 'alone', rpm: 4 });
      const answers = await statuses(replicas, token, 8);
      expect(answers.filter((s) => s === 200)).toHaveLength(8);
    } finally {
      await Promise.all(replicas.map((r) => r.close()));
    }
  });
});
