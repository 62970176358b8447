// Server-side conversations through /v1: two mcplex processes sharing one SQLite file take 200 concurrent appends
// (each kept exactly once, versions strictly increasing); a stale version gets 409 and writes nothing; a chat turn
// that names a conversation gets its history and is appended with the answer.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { listeningUrl, spawnMcplex, tempDir, writeConfig } from './support/harness.js';
import type { SpawnedMcplex } from './support/harness.js';

const dir = tempDir('mcplex-conversations-');
let mock: MockLlm;
let processes: SpawnedMcplex[] = [];
let urls: string[] = [];
const dispatcher = new Agent({ connections: 64 });

beforeAll(async () => {
  mock = await startMockLlm({ name: 'conversation-mock' });
  const config = writeConfig(dir.path, {
    store: `sqlite:${join(dir.path, 'shared.db')}`,
    server: { port: 0 },
    mcpServers: {},
    llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
  });
  processes = [spawnMcplex(['serve', '--config', config]), spawnMcplex(['serve', '--config', config])];
  urls = await Promise.all(processes.map((p) => listeningUrl(p)));
}, 60_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  await dispatcher.close();
  await mock?.close();
  dir.remove();
});

async function call(url: string, method: string, path: string, body?: unknown) {
  const response = await request(`${url}${path}`, {
    method: method as 'GET' | 'POST',
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    dispatcher,
  });
  return { status: response.statusCode, json: (await response.body.json()) as Record<string, unknown> };
}

describe('conversations shared by two processes', () => {
  it('keeps 200 concurrent appends exactly once, with strictly increasing versions', async () => {
    const created = await call(urls[0]!, 'POST', '/v1/conversations', { metadata: { topic: 'race' } });
    const id = created.json.id as string;
    const appends = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        call(urls[i % 2]!, 'POST', `/v1/conversations/${id}/items`, {
          items: [{ role: 'user', content: `message ${i}` }],
        }),
      ),
    );
    expect(appends.every((a) => a.status === 200)).toBe(true);
    const versions = appends.map((a) => a.json.version as number).sort((a, b) => a - b);
    expect(versions).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));

    const texts: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await call(
        urls[1]!,
        'GET',
        `/v1/conversations/${id}/items?order=asc&limit=100${after ? `&after=${after}` : ''}`,
      );
      const data = page.json.data as { id: string; seq: number; message: { content: string } }[];
      texts.push(...data.map((item) => item.message.content));
      if (!page.json.has_more) break;
      after = data.at(-1)!.id;
    }
    expect(texts).toHaveLength(200);
    expect(new Set(texts).size).toBe(200);

    const stale = await call(urls[0]!, 'POST', `/v1/conversations/${id}/items`, {
      items: [{ role: 'user', content: 'too late' }],
      expected_version: 10,
    });
    expect(stale.status).toBe(409);
    expect((stale.json.error as { code: string }).code).toBe('conversation_version_conflict');
    const after409 = await call(urls[1]!, 'GET', `/v1/conversations/${id}`);
    expect(after409.json.version).toBe(200);
  });

  it('prepends the history to a chat turn that names the conversation and appends the turn with the answer', async () => {
    const created = await call(urls[0]!, 'POST', '/v1/conversations', {
      items: [{ role: 'user', content: 'my name is Ada' }],
    });
    const id = created.json.id as string;
    const turn = await call(urls[1]!, 'POST', '/v1/chat/completions', {
      model: 'm',
      conversation: id,
      messages: [{ role: 'user', content: 'what is my name?' }],
    });
    expect(turn.status).toBe(200);
    const sent = mock.requests.at(-1)!.body as { messages: { content: string }[]; conversation?: unknown };
    expect(sent.messages.map((m) => m.content)).toEqual(['my name is Ada', 'what is my name?']);
    expect(sent.conversation).toBeUndefined();
    expect(turn.json.conversation).toEqual({ id, version: 2 });
    const items = await call(urls[0]!, 'GET', `/v1/conversations/${id}/items?order=asc`);
    const roles = (items.json.data as { role: string }[]).map((item) => item.role);
    expect(roles).toEqual(['user', 'user', 'assistant']);
  });
});
