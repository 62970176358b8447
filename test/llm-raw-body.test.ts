// A /v1 request goes to the backend as the client's own bytes when nothing in it changes (the backend's model name
// is the public one), and re-encoded with the backend's name when it does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startMcplex } from './support/harness.js';

let mock: MockLlm;
let mcplex: RunningServer;

beforeAll(async () => {
  mock = await startMockLlm({ name: 'raw-body-mock' });
  mcplex = await startMcplex({
    llm: {
      models: {
        'same-name': { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'same-name' }] },
        renamed: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend-name' }] },
      },
    },
  });
});

afterAll(async () => {
  await mcplex?.close();
  await mock?.close();
});

/** A body whose spacing and escapes a re-encoding would not keep. */
const spaced = (model: string) =>
  `{ "model" : "${model}",\n  "messages" : [ { "role" : "user", "content" : "caf\\u00e9" } ] }`;

async function post(body: string): Promise<void> {
  const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  expect(response.status).toBe(200);
  await response.text();
}

describe('the body sent to the backend', () => {
  it("is the client's own bytes when the backend's model name is the public one", async () => {
    const body = spaced('same-name');
    await post(body);
    const seen = mock.requests.at(-1)!;
    expect(seen.headers['content-length']).toBe(String(Buffer.byteLength(body)));
    expect(seen.body).toEqual(JSON.parse(body));
  });

  it("is re-encoded with the backend's model name otherwise", async () => {
    const body = spaced('renamed');
    await post(body);
    const seen = mock.requests.at(-1)!;
    expect((seen.body as { model: string }).model).toBe('backend-name');
    expect((seen.body as { messages: { content: string }[] }).messages[0]?.content).toBe('café');
    expect(seen.headers['content-length']).not.toBe(String(Buffer.byteLength(body)));
  });
});
