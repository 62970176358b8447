// The OpenAI-compatible gateway driven by the official `openai` SDK: chat (plain, streamed, tools), embeddings,
// models and error shapes against the project's mock OpenAI server, and the same chat flows translated to the
// mock Anthropic Messages API.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startMcplex } from './support/harness.js';

let openaiMock: MockLlm;
let anthropicMock: MockLlm;
let mcplex: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  openaiMock = await startMockLlm({ name: 'openai-mock', requireKey: 'sk-backend' });
  anthropicMock = await startMockLlm({ name: 'anthropic-mock', requireKey: 'sk-ant-backend' });
  mcplex = await startMcplex({
    llm: {
      models: {
        'gpt-mock': {
          deployments: [
            { provider: 'openai', baseUrl: `${openaiMock.url}/v1`, apiKey: 'sk-backend', model: 'backend-gpt' },
          ],
          aliases: ['gpt-alias'],
        },
        'claude-mock': {
          deployments: [
            {
              provider: 'anthropic',
              baseUrl: `${anthropicMock.url}/v1`,
              apiKey: 'sk-ant-backend',
              model: 'claude-backend',
            },
          ],
        },
      },
    },
  });
  client = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: 'sk-client', maxRetries: 0 });
});

afterAll(async () => {
  await mcplex?.close();
  await openaiMock?.close();
  await anthropicMock?.close();
});

const lastBody = (mock: MockLlm) => mock.requests.at(-1)?.body as Record<string, unknown>;

describe('an OpenAI-compatible backend', () => {
  it('answers a chat completion, with the backend model and key, and the overhead header', async () => {
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-mock', messages: [{ role: 'user', content: 'hello there' }] })
      .withResponse();
    expect(data.choices[0]?.message.content).toBe('mock reply: hello there');
    expect(data.usage?.total_tokens).toBeGreaterThan(0);
    expect(Number(response.headers.get('x-mcplex-overhead-ms'))).toBeGreaterThanOrEqual(0);
    const seen = openaiMock.requests.at(-1)!;
    expect((seen.body as { model: string }).model).toBe('backend-gpt');
    expect(seen.headers.authorization).toBe('Bearer sk-backend');
  });

  it('passes fields it does not know through to the backend', async () => {
    await client.chat.completions.create({
      model: 'gpt-alias',
      messages: [{ role: 'user', content: 'x' }],
      seed: 7,
      n: 2,
      stop: ['END'],
      response_format: { type: 'json_object' },
      // @ts-expect-error a vendor extension the SDK does not know
      top_k: 5,
    });
    expect(lastBody(openaiMock)).toMatchObject({ seed: 7, n: 2, stop: ['END'], top_k: 5, model: 'backend-gpt' });
  });

  it('streams the answer and the usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-mock',
      messages: [{ role: 'user', content: 'stream me' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    let chunks = 0;
    for await (const chunk of stream) {
      chunks++;
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('mock reply: stream me');
    expect(chunks).toBeGreaterThan(2);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('returns tool calls, plain and streamed', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } },
    ];
    openaiMock.enqueue({ kind: 'tool_calls', calls: [{ name: 'get_weather', arguments: { city: 'Oslo' } }] });
    const plain = await client.chat.completions.create({
      model: 'gpt-mock',
      messages: [{ role: 'user', content: 'weather?' }],
      tools,
      tool_choice: 'auto',
    });
    const call = plain.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(plain.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Oslo' });
    expect(lastBody(openaiMock)).toMatchObject({ tools, tool_choice: 'auto' });

    openaiMock.enqueue({ kind: 'tool_calls', calls: [{ name: 'get_weather', arguments: { city: 'Rome' } }] });
    const stream = client.chat.completions.stream({
      model: 'gpt-mock',
      messages: [{ role: 'user', content: 'weather?' }],
      tools,
    });
    const final = await stream.finalChatCompletion();
    const streamed = final.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(JSON.parse(streamed.function.arguments)).toEqual({ city: 'Rome' });
  });

  it('answers embeddings', async () => {
    const result = await client.embeddings.create({ model: 'gpt-mock', input: ['alpha', 'beta'] });
    expect(result.data.map((d) => d.index)).toEqual([0, 1]);
    expect(result.data[0]?.embedding.length).toBeGreaterThan(0);
    const again = await client.embeddings.create({ model: 'gpt-mock', input: 'alpha' });
    expect(again.data[0]?.embedding).toEqual(result.data[0]?.embedding);
  });

  it('lists the public models and aliases', async () => {
    const ids = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids.sort()).toEqual(['claude-mock', 'gpt-alias', 'gpt-mock']);
  });
});

describe('errors in the OpenAI shape', () => {
  it('an unknown model is a 404 with code model_not_found', async () => {
    const error = await client.chat.completions
      .create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).code).toBe('model_not_found');
    // A made-up name is counted, but never becomes a label of its own (one series per name would grow forever).
    const metrics = await (await fetch(`${mcplex.url}/metrics`)).text();
    expect(metrics).toMatch(/mcplex_llm_requests_total\{route="chat",model="",deployment="",status="404"\} \d+/);
    expect(metrics).not.toContain('model="nope"');
  });

  it('a request without messages is a 400 naming the parameter', async () => {
    const error = await client.chat.completions.create({ model: 'gpt-mock', messages: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages');
  });

  it("a backend's client error reaches the client with its status and message", async () => {
    openaiMock.enqueue({ kind: 'error', status: 400, message: 'context too long for this model' });
    const error = await client.chat.completions
      .create({ model: 'gpt-mock', messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toMatch(/context too long/);
  });

  it('malformed JSON is a 400, and the process stays up', async () => {
    const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model": ',
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe('invalid_request_error');
    await expect(client.models.list()).resolves.toBeDefined();
  });
});

describe('an Anthropic backend behind the OpenAI API', () => {
  it('answers a plain chat, translated both ways', async () => {
    const result = await client.chat.completions.create({
      model: 'claude-mock',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi claude' },
      ],
      max_tokens: 50,
    });
    expect(result.choices[0]?.message.content).toBe('mock reply: hi claude');
    expect(result.model).toBe('claude-mock');
    expect(result.usage?.prompt_tokens).toBeGreaterThan(0);
    const seen = anthropicMock.requests.at(-1)!;
    expect(seen.path).toBe('/v1/messages');
    expect(seen.headers['x-api-key']).toBe('sk-ant-backend');
    expect(seen.body).toMatchObject({ model: 'claude-backend', system: 'be brief', max_tokens: 50 });
  });

  it('streams a chat', async () => {
    const stream = await client.chat.completions.create({
      model: 'claude-mock',
      messages: [{ role: 'user', content: 'stream claude' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('mock reply: stream claude');
    expect(usage?.completion_tokens).toBeGreaterThan(0);
  });

  it('completes a tool-call round trip, plain and streamed', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'lookup',
          parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
        },
      },
    ];
    anthropicMock.enqueue({ kind: 'tool_calls', calls: [{ name: 'lookup', arguments: { q: 'mcp' } }] });
    const first = await client.chat.completions.create({
      model: 'claude-mock',
      messages: [{ role: 'user', content: 'look it up' }],
      tools,
    });
    const call = first.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(first.choices[0]?.finish_reason).toBe('tool_calls');
    expect(JSON.parse(call.function.arguments)).toEqual({ q: 'mcp' });
    expect(anthropicMock.requests.at(-1)?.body).toMatchObject({
      tools: [{ name: 'lookup', input_schema: { type: 'object' } }],
    });

    anthropicMock.enqueue({ kind: 'text', text: 'MCP is a protocol.' });
    const second = await client.chat.completions.create({
      model: 'claude-mock',
      messages: [
        { role: 'user', content: 'look it up' },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: 'Model Context Protocol' },
      ],
      tools,
    });
    expect(second.choices[0]?.message.content).toBe('MCP is a protocol.');
    const sent = anthropicMock.requests.at(-1)?.body as { messages: { role: string; content: unknown }[] };
    expect(sent.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(sent.messages[2]?.content).toEqual([expect.objectContaining({ type: 'tool_result', tool_use_id: call.id })]);

    anthropicMock.enqueue({ kind: 'tool_calls', calls: [{ name: 'lookup', arguments: { q: 'streamed' } }] });
    const final = await client.chat.completions
      .stream({ model: 'claude-mock', messages: [{ role: 'user', content: 'again' }], tools })
      .finalChatCompletion();
    const streamed = final.choices[0]?.message.tool_calls?.[0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(streamed.function.name).toBe('lookup');
    expect(JSON.parse(streamed.function.arguments)).toEqual({ q: 'streamed' });
  });

  it('says clearly that Anthropic has no embeddings', async () => {
    const error = await client.embeddings.create({ model: 'claude-mock', input: 'x' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toMatch(/no embeddings/);
  });
});
