// The mock LLM as tests and benchmarks see it: both wire formats, scripted steps, faults and what it records.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ChatCompletion, ChatCompletionChunk, EmbeddingResponse, OpenAiErrorBody } from '../types.js';
import { startMockLlm } from './mock-llm.js';
import type { MockLlm } from './mock-llm.js';

const ANTHROPIC_HEADERS = { 'x-api-key': 'test-key', 'anthropic-version': '2023-06-01' };
const USER = [{ role: 'user', content: 'hello there' }];

let mock: MockLlm;
beforeEach(async () => {
  mock = await startMockLlm({ name: 'unit' });
});
afterEach(async () => {
  await mock.close();
});

function post(path: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  return fetch(`${mock.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
    ...(signal === undefined ? {} : { signal }),
  });
}

function chat(body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return post('/v1/chat/completions', { model: 'gpt-test', messages: USER, ...body }, headers);
}

function messages(body: Record<string, unknown> = {}, headers: Record<string, string> = ANTHROPIC_HEADERS) {
  return post('/v1/messages', { model: 'claude-test', max_tokens: 256, messages: USER, ...body }, headers);
}

/** The JSON payloads of an OpenAI stream, and whether it ended with [DONE]. */
async function openAiStream(response: Response): Promise<{ chunks: ChatCompletionChunk[]; done: boolean }> {
  const text = await response.text();
  expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  const events = text.split('\n\n').filter((event) => event !== '');
  const chunks: ChatCompletionChunk[] = [];
  let done = false;
  for (const event of events) {
    expect(event.startsWith('data: ')).toBe(true);
    const data = event.slice('data: '.length);
    if (data === '[DONE]') done = true;
    else chunks.push(JSON.parse(data) as ChatCompletionChunk);
  }
  return { chunks, done };
}

interface AnthropicEvent {
  event: string;
  data: { type: string; [key: string]: unknown };
}

async function anthropicStream(response: Response): Promise<AnthropicEvent[]> {
  const text = await response.text();
  return text
    .split('\n\n')
    .filter((block) => block !== '')
    .map((block) => {
      const match = /^event: (\S+)\ndata: (.*)$/s.exec(block);
      if (match === null) throw new Error(`not an SSE event: ${block}`);
      return { event: match[1]!, data: JSON.parse(match[2]!) as AnthropicEvent['data'] };
    });
}

/** Reads a body until it ends or fails; returns what arrived and whether it failed. */
async function readUntilFailure(response: Response): Promise<{ text: string; failed: boolean }> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, failed: false };
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    return { text, failed: true };
  }
}

describe('OpenAI chat completions', () => {
  it('answers with the default reply, labelled as a mock, and records the request', async () => {
    const response = await chat();
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mock-llm')).toBe('true');
    expect(response.headers.get('x-mock-llm-name')).toBe('unit');
    const body = (await response.json()) as ChatCompletion;
    expect(body).toMatchObject({
      object: 'chat.completion',
      model: 'gpt-test',
      choices: [
        { index: 0, message: { role: 'assistant', content: 'mock reply: hello there' }, finish_reason: 'stop' },
      ],
      usage: { prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 },
    });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(mock.requests).toHaveLength(1);
    expect(mock.requests[0]).toMatchObject({
      path: '/v1/chat/completions',
      api: 'openai',
      body: { model: 'gpt-test', messages: USER },
      completed: true,
      aborted: false,
      status: 200,
      outcome: 'default',
    });
    expect(mock.requests[0]!.headers['content-type']).toBe('application/json');
    expect(String(mock.requests[0]!.id)).toBe(response.headers.get('x-mock-request-id'));
    await vi.waitFor(() => expect(mock.inFlight).toBe(0));
  });

  it('gives n choices, and cuts at max_tokens with finish_reason length', async () => {
    const two = (await (await chat({ n: 2 })).json()) as ChatCompletion;
    expect(two.choices.map((choice) => choice.index)).toEqual([0, 1]);
    expect(two.usage?.completion_tokens).toBe(12);

    const cut = (await (await chat({ max_tokens: 2 })).json()) as ChatCompletion;
    expect(cut.choices[0]).toMatchObject({ message: { content: 'mock rep' }, finish_reason: 'length' });
  });

  it('streams the reply in `chunks` content deltas between a role delta, a finish delta and [DONE]', async () => {
    mock.setOptions({ chunks: 3, chunkDelayMs: 5 });
    const response = await chat({ stream: true });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('x-mock-llm')).toBe('true');
    const { chunks, done } = await openAiStream(response);
    expect(done).toBe(true);
    expect(chunks[0]!.choices[0]!.delta).toMatchObject({ role: 'assistant' });
    const content = chunks.slice(1, -1).map((chunk) => chunk.choices[0]!.delta.content);
    expect(content).toHaveLength(3);
    expect(content.join('')).toBe('mock reply: hello there');
    expect(chunks.at(-1)!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    for (const chunk of chunks) {
      expect(chunk).toMatchObject({ object: 'chat.completion.chunk', model: 'gpt-test', id: chunks[0]!.id });
      expect('usage' in chunk).toBe(false);
    }
  });

  it('ends with a usage chunk whose choices are empty when stream_options.include_usage is set', async () => {
    const { chunks } = await openAiStream(await chat({ stream: true, stream_options: { include_usage: true } }));
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 3, completion_tokens: 6, total_tokens: 9 });
    for (const chunk of chunks.slice(0, -1)) expect(chunk.usage).toBeNull();
  });

  it('answers scripted tool calls, whole and streamed as deltas', async () => {
    const calls = [
      { name: 'get_weather', arguments: { city: 'Paris', days: 3 } },
      { name: 'get_time', arguments: { zone: 'CET' } },
    ];
    mock.enqueue({ kind: 'tool_calls', calls }, { kind: 'tool_calls', calls });

    const whole = (await (await chat({ tools: [] })).json()) as ChatCompletion;
    const choice = whole.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls!.map((call) => call.id)).toEqual([
      expect.stringMatching(/^call_/),
      expect.stringMatching(/^call_/),
    ]);
    expect(choice.message.tool_calls!.map((call) => [call.function.name, JSON.parse(call.function.arguments)])).toEqual(
      calls.map((call) => [call.name, call.arguments]),
    );

    const { chunks } = await openAiStream(await chat({ stream: true }));
    const assembled: { id?: string; name?: string; arguments: string }[] = [];
    for (const chunk of chunks) {
      for (const delta of chunk.choices[0]?.delta.tool_calls ?? []) {
        const call = (assembled[delta.index] ??= { arguments: '' });
        if (delta.id !== undefined) call.id = delta.id;
        if (delta.function?.name !== undefined) call.name = delta.function.name;
        call.arguments += delta.function?.arguments ?? '';
      }
    }
    expect(assembled.map((call) => [call.name, JSON.parse(call.arguments)])).toEqual(
      calls.map((call) => [call.name, call.arguments]),
    );
    expect(assembled[0]!.id).toMatch(/^call_/);
    // Arguments arrive in pieces, not in one delta.
    expect(chunks.filter((chunk) => chunk.choices[0]?.delta.tool_calls !== undefined).length).toBeGreaterThan(4);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('answers scripted text, then the default reply once the script is used up', async () => {
    mock.enqueue({ kind: 'text', text: 'first' }, { kind: 'text', text: 'second' });
    const contents = [];
    for (let i = 0; i < 3; i++) {
      contents.push(((await (await chat()).json()) as ChatCompletion).choices[0]!.message.content);
    }
    expect(contents).toEqual(['first', 'second', 'mock reply: hello there']);
    expect(mock.requests.map((request) => request.outcome)).toEqual(['text', 'text', 'default']);
  });

  it('refuses a request without messages with an OpenAI error naming the parameter', async () => {
    const response = await post('/v1/chat/completions', { model: 'gpt-test' });
    expect(response.status).toBe(400);
    const body = (await response.json()) as OpenAiErrorBody;
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: 'messages' });
  });
});

describe('Anthropic messages', () => {
  it('answers the default reply as a message object', async () => {
    const response = await messages();
    expect(response.status).toBe(200);
    expect(response.headers.get('x-mock-llm')).toBe('true');
    const body = (await response.json()) as Record<string, unknown>;
    expect(body).toEqual({
      id: expect.stringMatching(/^msg_/),
      type: 'message',
      role: 'assistant',
      model: 'claude-test',
      content: [{ type: 'text', text: 'mock reply: hello there' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 3, output_tokens: 6 },
    });
    expect(mock.requests[0]).toMatchObject({ api: 'anthropic', path: '/v1/messages', outcome: 'default' });
  });

  it('echoes the last user text, not a turn of tool results', async () => {
    const body = await (
      await messages({
        system: 'be brief',
        messages: [
          { role: 'user', content: [{ type: 'text', text: 'weather?' }] },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'w', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'sunny' }] },
        ],
      })
    ).json();
    expect(body).toMatchObject({ content: [{ type: 'text', text: 'mock reply: weather?' }] });
  });

  it('streams the exact Anthropic event sequence', async () => {
    mock.setOptions({ chunkDelayMs: 2 });
    const response = await messages({ stream: true });
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await anthropicStream(response);
    expect(events.map((event) => event.event)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    for (const event of events) expect(event.data.type).toBe(event.event);
    expect(events[0]!.data).toMatchObject({
      message: { type: 'message', role: 'assistant', model: 'claude-test', content: [], stop_reason: null },
    });
    expect(events[1]!.data).toEqual({
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    });
    const text = events
      .filter((event) => event.event === 'content_block_delta')
      .map((event) => (event.data['delta'] as { type: string; text: string }).text)
      .join('');
    expect(text).toBe('mock reply: hello there');
    expect(events[8]!.data).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: 6 },
    });
  });

  it('answers scripted tool use, whole and streamed as input_json_delta pieces', async () => {
    const calls = [
      { name: 'get_weather', arguments: { city: 'Paris' } },
      { name: 'get_time', arguments: { zone: 'CET' } },
    ];
    mock.enqueue({ kind: 'tool_calls', calls }, { kind: 'tool_calls', calls });

    const whole = (await (await messages()).json()) as { content: unknown[]; stop_reason: string };
    expect(whole.stop_reason).toBe('tool_use');
    expect(whole.content).toEqual([
      { type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'get_time', input: { zone: 'CET' } },
    ]);

    const events = await anthropicStream(await messages({ stream: true }));
    const blocks: { name: string; json: string }[] = [];
    for (const { event, data } of events) {
      if (event === 'content_block_start') {
        const block = data['content_block'] as { type: string; id: string; name: string; input: unknown };
        expect(block).toMatchObject({ type: 'tool_use', id: expect.stringMatching(/^toolu_/), input: {} });
        blocks[data['index'] as number] = { name: block.name, json: '' };
      } else if (event === 'content_block_delta') {
        const delta = data['delta'] as { type: string; partial_json: string };
        expect(delta.type).toBe('input_json_delta');
        blocks[data['index'] as number]!.json += delta.partial_json;
      }
    }
    expect(blocks.map((block) => [block.name, JSON.parse(block.json)])).toEqual(
      calls.map((call) => [call.name, call.arguments]),
    );
    expect(events.filter((event) => event.event === 'content_block_delta').length).toBeGreaterThan(2);
    expect(events.filter((event) => event.event === 'content_block_stop')).toHaveLength(2);
    expect(events.at(-2)!.data).toMatchObject({ delta: { stop_reason: 'tool_use' } });
    expect(events.at(-1)!.event).toBe('message_stop');
  });

  it('requires x-api-key, anthropic-version and max_tokens, refusing in the Anthropic error shape', async () => {
    const noKey = await messages({}, { 'anthropic-version': '2023-06-01' });
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toEqual({
      type: 'error',
      error: { type: 'authentication_error', message: expect.any(String) },
    });

    const noVersion = await messages({}, { 'x-api-key': 'k' });
    expect(noVersion.status).toBe(400);
    expect(await noVersion.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });

    const noMaxTokens = await post('/v1/messages', { model: 'claude-test', messages: USER }, ANTHROPIC_HEADERS);
    expect(noMaxTokens.status).toBe(400);
    expect(await noMaxTokens.json()).toMatchObject({ error: { message: expect.stringMatching(/max_tokens/) } });
    expect(mock.requests.map((request) => request.outcome)).toEqual(['rejected', 'rejected', 'rejected']);
  });
});

describe('embeddings and models', () => {
  it('returns deterministic unit vectors of `dimensions` (default 8) for a string or an array', async () => {
    const embed = async (body: Record<string, unknown>) =>
      (await (await post('/v1/embeddings', { model: 'mock-embedding', ...body })).json()) as EmbeddingResponse;
    const one = await embed({ input: 'alpha' });
    expect(one.data).toHaveLength(1);
    const vector = one.data[0]!.embedding as number[];
    expect(vector).toHaveLength(8);
    expect(Math.hypot(...vector)).toBeCloseTo(1, 10);
    expect(one.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 });

    const many = await embed({ input: ['alpha', 'beta', 'alpha'] });
    expect(many.data.map((item) => item.index)).toEqual([0, 1, 2]);
    expect(many.data[0]!.embedding).toEqual(vector);
    expect(many.data[2]!.embedding).toEqual(vector);
    expect(many.data[1]!.embedding).not.toEqual(vector);

    // The same input gives the same vector from another mock, too.
    const other = await startMockLlm();
    try {
      const response = await fetch(`${other.url}/v1/embeddings`, {
        method: 'POST',
        body: JSON.stringify({ model: 'm', input: 'alpha' }),
      });
      expect(((await response.json()) as EmbeddingResponse).data[0]!.embedding).toEqual(vector);
    } finally {
      await other.close();
    }

    const wide = await embed({ input: 'alpha', dimensions: 32 });
    expect(wide.data[0]!.embedding).toHaveLength(32);
    const base64 = await embed({ input: 'alpha', encoding_format: 'base64' });
    const bytes = Uint8Array.from(Buffer.from(base64.data[0]!.embedding as string, 'base64'));
    const floats = new Float32Array(bytes.buffer);
    expect(Array.from(floats)).toEqual(vector.map((value) => Math.fround(value)));
  });

  it('does not take script steps', async () => {
    mock.enqueue({ kind: 'text', text: 'scripted' });
    expect((await post('/v1/embeddings', { model: 'm', input: 'x' })).status).toBe(200);
    expect(mock.queued).toBe(1);
    expect(((await (await chat()).json()) as ChatCompletion).choices[0]!.message.content).toBe('scripted');
  });

  it('lists mock models, in the OpenAI or the Anthropic shape', async () => {
    const openai = (await (await fetch(`${mock.url}/v1/models`)).json()) as {
      data: { id: string; owned_by: string }[];
    };
    expect(openai.data.length).toBeGreaterThan(0);
    for (const model of openai.data) {
      expect(model.id).toMatch(/mock/);
      expect(model.owned_by).toBe('mock');
    }
    const anthropic = await fetch(`${mock.url}/v1/models`, { headers: ANTHROPIC_HEADERS });
    expect(anthropic.headers.get('x-mock-llm')).toBe('true');
    const listed = (await anthropic.json()) as { data: { type: string; id: string }[] };
    expect(listed.data.length).toBeGreaterThan(0);
    for (const model of listed.data) expect(model).toMatchObject({ type: 'model', id: expect.stringMatching(/mock/) });
  });
});

describe('faults', () => {
  it('answers a scripted 429 with its retry-after header, in each API shape', async () => {
    mock.enqueue(
      { kind: 'error', status: 429, message: 'slow down', headers: { 'retry-after': '1' } },
      { kind: 'error', status: 429, headers: { 'retry-after-ms': '50' } },
    );
    const openai = await chat();
    expect(openai.status).toBe(429);
    expect(openai.headers.get('retry-after')).toBe('1');
    expect(openai.headers.get('x-mock-llm')).toBe('true');
    expect(((await openai.json()) as OpenAiErrorBody).error).toEqual({
      message: 'slow down',
      type: 'requests',
      param: null,
      code: 'rate_limit_exceeded',
    });

    const anthropic = await messages();
    expect(anthropic.status).toBe(429);
    expect(anthropic.headers.get('retry-after-ms')).toBe('50');
    expect(await anthropic.json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });

    expect((await chat()).status).toBe(200);
  });

  it('answers 500 at failureRate 1, and recovers when the rate is set back to 0', async () => {
    mock.setOptions({ failureRate: 1 });
    const failed = await chat();
    expect(failed.status).toBe(500);
    expect(((await failed.json()) as OpenAiErrorBody).error.type).toBe('server_error');
    mock.setOptions({ failureRate: 0 });
    expect((await chat()).status).toBe(200);
    expect(mock.requests.map((request) => request.outcome)).toEqual(['failure', 'default']);
  });

  it('drops the connection before any byte on a disconnect step', async () => {
    mock.enqueue({ kind: 'disconnect' }, { kind: 'disconnect' });
    await expect(chat()).rejects.toThrow();
    await expect(messages({ stream: true })).rejects.toThrow();
    await vi.waitFor(() => expect(mock.inFlight).toBe(0));
    // The mock cut the connection; the client did not abort.
    expect(mock.requests.map((request) => [request.aborted, request.completed])).toEqual([
      [false, false],
      [false, false],
    ]);
    expect((await chat()).status).toBe(200);
  });

  it('drops a stream after N chunks', async () => {
    mock.enqueue({ kind: 'disconnect', afterChunks: 2 }, { kind: 'disconnect', afterChunks: 1 });
    const openai = await chat({ stream: true });
    expect(openai.status).toBe(200);
    const received = await readUntilFailure(openai);
    expect(received.failed).toBe(true);
    expect(received.text).toContain('"content":"mock r"');
    expect(received.text).not.toContain('[DONE]');

    const anthropic = await readUntilFailure(await messages({ stream: true }));
    expect(anthropic.failed).toBe(true);
    expect(anthropic.text).toContain('event: content_block_delta');
    expect(anthropic.text).not.toContain('message_stop');
  });

  it('marks a hanging request aborted when the client goes away', async () => {
    mock.enqueue({ kind: 'hang' });
    const controller = new AbortController();
    const pending = post('/v1/chat/completions', { model: 'm', messages: USER }, {}, controller.signal);
    await vi.waitFor(() => expect(mock.requests[0]?.outcome).toBe('hang'));
    expect(mock.inFlight).toBe(1);
    controller.abort();
    await expect(pending).rejects.toThrow();
    await vi.waitFor(() => expect(mock.requests[0]).toMatchObject({ aborted: true, completed: false }));
    expect(mock.inFlight).toBe(0);
  });

  it('refuses requests without the required key, in each API shape', async () => {
    const keyed = await startMockLlm({ requireKey: 'sk-mock' });
    try {
      const call = (path: string, body: unknown, headers: Record<string, string>) =>
        fetch(`${keyed.url}${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
      const missing = await call('/v1/chat/completions', { model: 'm', messages: USER }, {});
      expect(missing.status).toBe(401);
      expect(((await missing.json()) as OpenAiErrorBody).error.code).toBe('invalid_api_key');
      const wrong = await call('/v1/chat/completions', { model: 'm', messages: USER }, { authorization: 'Bearer no' });
      expect(wrong.status).toBe(401);
      const right = await call(
        '/v1/chat/completions',
        { model: 'm', messages: USER },
        { authorization: 'Bearer sk-mock' },
      );
      expect(right.status).toBe(200);

      const claude = { model: 'c', max_tokens: 10, messages: USER };
      const wrongKey = await call('/v1/messages', claude, ANTHROPIC_HEADERS);
      expect(wrongKey.status).toBe(401);
      expect(await wrongKey.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
      const rightKey = await call('/v1/messages', claude, { ...ANTHROPIC_HEADERS, 'x-api-key': 'sk-mock' });
      expect(rightKey.status).toBe(200);
      expect((await fetch(`${keyed.url}/v1/models`)).status).toBe(401);
    } finally {
      await keyed.close();
    }
  });

  it('kill() drops in-flight requests and refuses new connections, like a crashed backend', async () => {
    mock.enqueue({ kind: 'hang' });
    // The request may fail while kill() is still running: catch it at once so that it is never unhandled.
    const outcome = chat().then(
      () => 'answered',
      (error: unknown) => error,
    );
    await vi.waitFor(() => expect(mock.inFlight).toBe(1));
    await mock.kill();
    expect(await outcome).toBeInstanceOf(Error);
    await expect(chat()).rejects.toThrow();
    expect(mock.requests[0]!.aborted).toBe(false);
  });
});

describe('options', () => {
  it('refuses to listen beyond loopback', async () => {
    await expect(startMockLlm({ host: '0.0.0.0' })).rejects.toMatchObject({ code: 'LISTEN_REFUSED' });
  });

  it('rejects bad options and script steps with a clear error', () => {
    expect(() => mock.setOptions({ failureRate: 2 })).toThrow(/failureRate/);
    expect(() => mock.setOptions({ chunks: 0 })).toThrow(/chunks/);
    expect(() => mock.enqueue({ kind: 'error', status: 200 })).toThrow(/status/);
    expect(mock.queued).toBe(0);
  });

  it('answers 404 on unknown paths, labelled as a mock', async () => {
    const response = await fetch(`${mock.url}/v1/unknown`);
    expect(response.status).toBe(404);
    expect(response.headers.get('x-mock-llm')).toBe('true');
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error' } });
  });
});
