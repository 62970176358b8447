// The response cache, request coalescing and embedding micro-batching of the /v1 gateway, against the mock LLM.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startMcplex } from './support/harness.js';

let mock: MockLlm;
let mcplex: RunningServer;
let dispatcher: Agent;

beforeAll(async () => {
  mock = await startMockLlm({ name: 'cache-mock', chunks: 5 });
  mcplex = await startMcplex({
    llm: {
      models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } },
      batching: { windowMs: 25, maxInputs: 64 },
    },
  });
  dispatcher = new Agent({ connections: 256 });
});
afterAll(async () => {
  await dispatcher?.close();
  await mcplex?.close();
  await mock?.close();
});
afterEach(() => {
  mock.setOptions({ latencyMs: 0 });
  mock.resetRequests();
});

let counter = 0;
/** A chat body that no earlier test used, so each test starts with an empty cache for it. */
const fresh = (extra: Record<string, unknown> = {}) => ({
  model: 'm',
  messages: [{ role: 'user', content: `question ${++counter}` }],
  temperature: 0,
  ...extra,
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await request(`${mcplex.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    dispatcher,
  });
  return { status: response.statusCode, headers: response.headers, text: await response.body.text() };
}

/** The text of a streamed answer. */
function streamedText(sse: string): string {
  return sse
    .split('\n')
    .filter((line) => line.startsWith('data: {'))
    .map((line) => (JSON.parse(line.slice(6)) as { choices: { delta: { content?: string } }[] }).choices[0])
    .map((choice) => choice?.delta.content ?? '')
    .join('');
}

describe('the response cache', () => {
  it('answers a repeated deterministic request from the cache with the body of the miss', async () => {
    const body = fresh();
    const miss = await post('/v1/chat/completions', body);
    const hit = await post('/v1/chat/completions', body);
    expect(miss.headers['x-mcplex-cache']).toBe('miss');
    expect(hit.headers['x-mcplex-cache']).toBe('hit');
    expect(JSON.parse(hit.text)).toEqual(JSON.parse(miss.text));
    expect(mock.requests).toHaveLength(1);
  });

  it('replays a cached answer as a stream with the same content, and a streamed one as JSON', async () => {
    const body = fresh();
    const plain = JSON.parse((await post('/v1/chat/completions', body)).text) as {
      choices: { message: { content: string } }[];
    };
    const replay = await post('/v1/chat/completions', { ...body, stream: true });
    expect(replay.headers['x-mcplex-cache']).toBe('hit');
    expect(streamedText(replay.text)).toBe(plain.choices[0]!.message.content);
    expect(replay.text.trimEnd().endsWith('data: [DONE]')).toBe(true);

    const streamedFirst = fresh();
    const live = await post('/v1/chat/completions', { ...streamedFirst, stream: true });
    expect(live.headers['x-mcplex-cache']).toBe('miss');
    const asJson = await post('/v1/chat/completions', streamedFirst);
    expect(asJson.headers['x-mcplex-cache']).toBe('hit');
    expect(
      (JSON.parse(asJson.text) as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
    ).toBe(streamedText(live.text));
    expect(mock.requests).toHaveLength(2);
  });

  it('works with the openai SDK streaming a replay', async () => {
    const body = fresh();
    const client = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const first = await client.chat.completions.create(body as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const stream = await client.chat.completions.create({
      ...(body as OpenAI.ChatCompletionCreateParamsNonStreaming),
      stream: true,
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(first.choices[0]?.message.content);
    expect(mock.requests).toHaveLength(1);
  });

  it('does not cache a request at temperature 0.7 unless the client opts in; bypass skips the cache', async () => {
    const body = fresh({ temperature: 0.7 });
    await post('/v1/chat/completions', body);
    const again = await post('/v1/chat/completions', body);
    expect(again.headers['x-mcplex-cache']).toBe('miss');
    expect(mock.requests).toHaveLength(2);

    const forced = fresh({ temperature: 0.7 });
    await post('/v1/chat/completions', forced, { 'x-mcplex-cache': 'force' });
    const forcedAgain = await post('/v1/chat/completions', forced, { 'x-mcplex-cache': 'force' });
    expect(forcedAgain.headers['x-mcplex-cache']).toBe('hit');

    const cached = fresh();
    await post('/v1/chat/completions', cached);
    const bypass = await post('/v1/chat/completions', cached, { 'x-mcplex-cache': 'bypass' });
    expect(bypass.headers['x-mcplex-cache']).toBe('bypass');
    expect(mock.requests).toHaveLength(5);
  });
});

describe('the overhead header on answers mcplex gives alone', () => {
  it('is on cache hits (JSON and streamed), the model list and refusals, where no backend answered', async () => {
    const body = fresh();
    expect((await post('/v1/chat/completions', body)).headers['x-mcplex-cache']).toBe('miss');
    const answers = [
      await post('/v1/chat/completions', body),
      await post('/v1/chat/completions', { ...body, stream: true }),
      await post('/v1/chat/completions', { ...fresh(), model: 'no-such-model' }),
      await post('/v1/chat/completions', { model: 'm' }),
    ];
    expect(answers.map((a) => [a.status, a.headers['x-mcplex-cache']])).toEqual([
      [200, 'hit'],
      [200, 'hit'],
      [404, undefined],
      [400, undefined],
    ]);
    const models = await request(`${mcplex.url}/v1/models`, { dispatcher });
    await models.body.text();
    for (const headers of [...answers.map((a) => a.headers), models.headers]) {
      expect(Number(headers['x-mcplex-overhead-ms'])).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('coalescing', () => {
  it.each([false, true])('sends 50 identical concurrent requests upstream once (streaming: %s)', async (stream) => {
    mock.setOptions({ latencyMs: 300 });
    const body = fresh(stream ? { stream: true } : {});
    const answers = await Promise.all(Array.from({ length: 50 }, () => post('/v1/chat/completions', body)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(mock.requests).toHaveLength(1);
    // Every caller got the very same bytes.
    expect(new Set(answers.map((a) => (stream ? streamedText(a.text) : a.text))).size).toBe(1);
  });
});

describe('embedding micro-batching', () => {
  it('sends 200 concurrent single-input requests upstream in a few calls, each caller getting its own vector', async () => {
    const inputs = Array.from({ length: 200 }, (_, i) => `sentence number ${i}`);
    const answers = await Promise.all(inputs.map((input) => post('/v1/embeddings', { model: 'm', input })));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    const calls = mock.requests.filter((r) => r.path === '/v1/embeddings');
    // 64 inputs per call at most; requests spread over several 25 ms windows on a busy machine.
    expect(calls.length).toBeGreaterThanOrEqual(4);
    expect(calls.length).toBeLessThanOrEqual(20);
    for (const call of calls) expect((call.body as { input: string[] }).input.length).toBeLessThanOrEqual(64);
    // Each caller's vector is the one the backend computes for its own input.
    const direct = (await (
      await fetch(`${mock.url}/v1/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'backend', input: inputs }),
      })
    ).json()) as { data: { index: number; embedding: number[] }[] };
    answers.forEach((answer, i) => {
      const got = JSON.parse(answer.text) as { data: { embedding: number[] }[]; model: string };
      expect(got.model).toBe('m');
      expect(got.data[0]!.embedding).toEqual(direct.data[i]!.embedding);
    });
  });
});
