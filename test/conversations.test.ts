// Server-side conversations through /v1: two mcplex processes sharing one SQLite file take 200 concurrent appends
// (each kept exactly once, versions strictly increasing); a stale version gets 409 and writes nothing; a chat turn
// that names a conversation gets its history and is appended with the answer.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { listeningUrl, spawnMcplex, tempDir, waitFor, writeConfig } from './support/harness.js';
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

/** A streamed chat turn in conversation `id`, read to its end. */
async function streamTurn(url: string, id: string, content: string): Promise<string> {
  const response = await request(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', stream: true, conversation: id, messages: [{ role: 'user', content }] }),
    dispatcher,
  });
  return response.body.text();
}

describe('a streamed conversation turn', () => {
  it('streams the answer, then appends the turn and names the new version in a last chunk', async () => {
    const created = await call(urls[0]!, 'POST', '/v1/conversations', {
      items: [{ role: 'user', content: 'I like tea' }],
    });
    const id = created.json.id as string;
    const text = await streamTurn(urls[1]!, id, 'what do I like?');
    const chunks = text
      .split('\n')
      .filter((line) => line.startsWith('data: {'))
      .map(
        (line) => JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[]; conversation?: unknown },
      );
    const streamed = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(streamed).toBe('mock reply: what do I like?');
    expect(chunks.at(-1)!.conversation).toEqual({ id, version: 2 });
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    const sent = mock.requests.at(-1)!.body as { messages: { content: string }[] };
    expect(sent.messages.map((m) => m.content)).toEqual(['I like tea', 'what do I like?']);
    const items = await call(urls[0]!, 'GET', `/v1/conversations/${id}/items?order=asc`);
    const stored = items.json.data as { role: string; message: { content: string } }[];
    expect(stored.map((item) => [item.role, item.message.content])).toEqual([
      ['user', 'I like tea'],
      ['user', 'what do I like?'],
      ['assistant', 'mock reply: what do I like?'],
    ]);
  });

  it('ends with a 409 error event and appends nothing when another turn came in between', async () => {
    const created = await call(urls[0]!, 'POST', '/v1/conversations', { items: [{ role: 'user', content: 'x' }] });
    const id = created.json.id as string;
    mock.setOptions({ latencyMs: 300 });
    const before = mock.requests.length;
    try {
      const racing = streamTurn(urls[1]!, id, 'slow');
      // Once the model has the request, the turn has read the conversation; another writer appends meanwhile.
      await waitFor(() => mock.requests.length > before, 'the turn to reach the model');
      await call(urls[0]!, 'POST', `/v1/conversations/${id}/items`, {
        items: [{ role: 'user', content: 'meanwhile' }],
      });
      const text = await racing;
      expect(text).toMatch(/conversation_version_conflict/);
      expect(text).not.toContain('[DONE]');
    } finally {
      mock.setOptions({ latencyMs: 0 });
    }
    const after = await call(urls[0]!, 'GET', `/v1/conversations/${id}`);
    expect(after.json.version).toBe(2);
  });
});
