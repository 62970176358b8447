// A deployment's own budgets (llm.models.*.deployments[].rpm / tpm): a deployment that used its budget is passed
// over like a busy one, so another deployment of the model answers; when every deployment has used its budget the
// client gets 429 with Retry-After, and the backend never sees the request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startMcplex } from './support/harness.js';

let small: MockLlm;
let spare: MockLlm;
let mcplex: RunningServer;

beforeAll(async () => {
  small = await startMockLlm({ name: 'budget-small' });
  spare = await startMockLlm({ name: 'budget-spare' });
  mcplex = await startMcplex({
    llm: {
      models: {
        capped: { deployments: [{ provider: 'openai', baseUrl: `${small.url}/v1`, model: 'b', rpm: 3 }] },
        spilling: {
          strategy: 'weighted',
          deployments: [
            { provider: 'openai', baseUrl: `${small.url}/v1`, model: 'b', rpm: 2, weight: 1000 },
            { provider: 'openai', baseUrl: `${spare.url}/v1`, model: 'b', weight: 1 },
          ],
        },
      },
    },
  });
});

afterAll(async () => {
  await mcplex?.close();
  await small?.close();
  await spare?.close();
});

async function chat(model: string): Promise<{ status: number; headers: Headers; body: { error?: { code?: string } } }> {
  const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as never };
}

describe('deployment budgets', () => {
  it('answer 429 with Retry-After once the only deployment used its rpm, without asking the backend', async () => {
    const before = small.requests.length;
    const answers = [];
    for (let i = 0; i < 5; i++) answers.push(await chat('capped'));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429, 429]);
    expect(small.requests.length).toBe(before + 3);
    const refused = answers[3]!;
    expect(refused.body.error?.code).toBe('deployment_budget_exceeded');
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('pass a deployment over its budget and let another deployment of the model answer', async () => {
    const [smallBefore, spareBefore] = [small.requests.length, spare.requests.length];
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await chat('spilling')).status);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(small.requests.length - smallBefore).toBe(2);
    expect(spare.requests.length - spareBefore).toBe(4);
  });
});
