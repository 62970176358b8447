// Unit tests for the OpenAI ⇄ Anthropic translation: requests, responses, streams, errors and headers.
import { describe, expect, it } from 'vitest';
import { McplexError } from '../../errors.js';
import type { ChatCompletionChunk, ChatCompletionRequest, ChatMessage } from '../types.js';
import {
  AnthropicStreamError,
  anthropicHeaders,
  createAnthropicStreamTranslator,
  fromAnthropicError,
  fromAnthropicResponse,
  toAnthropicRequest,
} from './anthropic.js';

const options = { model: 'claude-sonnet-4-5', defaultMaxTokens: 4096 };
const PNG = 'iVBORw0KGgo=';

function translate(request: Partial<ChatCompletionRequest>) {
  return toAnthropicRequest({ model: 'public', messages: [{ role: 'user', content: 'hi' }], ...request }, options);
}

function badRequest(run: () => unknown): McplexError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(McplexError);
    const e = error as McplexError;
    expect(e.code).toBe('LLM_BAD_REQUEST');
    expect(e.status).toBe(400);
    return e;
  }
  throw new Error('expected a bad request');
}

function paramOf(messages: ChatMessage[] | Partial<ChatCompletionRequest>): unknown {
  const request = Array.isArray(messages) ? { messages } : messages;
  return badRequest(() => translate(request)).data?.param;
}

describe('toAnthropicRequest', () => {
  it('translates a minimal request with the configured model and default max_tokens', () => {
    expect(translate({})).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 4096,
      messages: [{ role: 'user', content: 'hi' }],
    });
  });

  it('hoists system and developer messages, wherever they are, into one joined system string', () => {
    const body = translate({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'developer', content: 'Use British spelling.' },
        { role: 'user', content: 'hello' },
        { role: 'system', content: 'Never mention cats.' },
        { role: 'user', content: 'again' },
      ],
    });
    expect(body.system).toBe('Be brief.\n\nUse British spelling.\n\nNever mention cats.');
    // The two user messages, no longer separated, become one turn.
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'hello' },
          { type: 'text', text: 'again' },
        ],
      },
    ]);
  });

  it('keeps multi-part system content as text blocks, with cache_control', () => {
    const body = translate({
      messages: [
        { role: 'system', content: 'First.' },
        {
          role: 'system',
          content: [
            { type: 'text', text: 'Long context', cache_control: { type: 'ephemeral' } },
            { type: 'text', text: 'Second part' },
          ],
        },
        { role: 'user', content: 'q' },
      ],
    });
    expect(body.system).toEqual([
      { type: 'text', text: 'First.' },
      { type: 'text', text: 'Long context', cache_control: { type: 'ephemeral' } },
      { type: 'text', text: 'Second part' },
    ]);
  });

  it('rejects images in system messages', () => {
    expect(
      paramOf([
        { role: 'system', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] },
      ]),
    ).toBe('messages[0].content[0].type');
  });

  it('merges consecutive messages of one role into alternating turns', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: [{ type: 'text', text: 'b' }] },
        { role: 'assistant', content: 'c' },
        { role: 'assistant', content: 'd' },
        { role: 'user', content: 'e' },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'a' },
          { type: 'text', text: 'b' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'c' },
          { type: 'text', text: 'd' },
        ],
      },
      { role: 'user', content: 'e' },
    ]);
  });

  it('translates user text and image parts (data: URLs to base64, http(s) URLs to url sources)', () => {
    const body = translate({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is in these?' },
            { type: 'text', text: '' },
            { type: 'image_url', image_url: { url: `data:image/PNG;base64,${PNG}`, detail: 'high' } },
            {
              type: 'image_url',
              image_url: { url: 'https://example.com/cat.jpg' },
              cache_control: { type: 'ephemeral' },
            },
            { type: 'image_url', image_url: { url: 'HTTP://example.com/dog.gif' } },
          ],
        },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'What is in these?' },
          { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
          {
            type: 'image',
            source: { type: 'url', url: 'https://example.com/cat.jpg' },
            cache_control: { type: 'ephemeral' },
          },
          { type: 'image', source: { type: 'url', url: 'HTTP://example.com/dog.gif' } },
        ],
      },
    ]);
  });

  it.each([
    ['ftp://example.com/a.png'],
    ['file:///etc/passwd'],
    ['data:image/png,rawbytes'],
    ['data:;base64,AAAA'],
    ['data:image/png;base64,'],
    ['data:image/png;base64'],
  ])('rejects the image URL %s', (url) => {
    const error = badRequest(() =>
      translate({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url } }] }] }),
    );
    expect(error.data).toEqual({ param: 'messages[0].content[0].image_url.url' });
  });

  it('rejects an image part without a URL', () => {
    expect(paramOf([{ role: 'user', content: [{ type: 'image_url', image_url: {} }] }])).toBe(
      'messages[0].content[0].image_url.url',
    );
  });

  it.each(['input_audio', 'file', 'refusal'])('rejects user content parts of type %s', (type) => {
    const error = badRequest(() =>
      translate({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'x' },
              { type, data: 'x' },
            ],
          },
        ],
      }),
    );
    expect(error.data).toEqual({ param: 'messages[0].content[1].type' });
    expect(error.message).toContain(JSON.stringify(type));
  });

  it('rejects malformed content', () => {
    expect(paramOf([{ role: 'user', content: 42 as unknown as string }])).toBe('messages[0].content');
    expect(paramOf([{ role: 'user', content: ['text' as unknown as { type: 'text'; text: string }] }])).toBe(
      'messages[0].content[0]',
    );
    expect(paramOf([{ role: 'user', content: [{ type: 'text', text: 3 }] }])).toBe('messages[0].content[0].text');
  });

  it('rejects unknown roles and messages that are not objects', () => {
    expect(paramOf([{ role: 'function' as 'user', content: 'x' }])).toBe('messages[0].role');
    expect(paramOf([null as unknown as ChatMessage])).toBe('messages[0]');
  });

  it('translates assistant tool calls into text and tool_use blocks', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'weather?' },
        {
          role: 'assistant',
          content: 'Let me check.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call.2:x', type: 'function', function: { name: 'get_time', arguments: '' } },
          ],
        },
      ],
    });
    expect(body.messages[1]).toEqual({
      role: 'assistant',
      content: [
        { type: 'text', text: 'Let me check.' },
        { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
        // Anthropic accepts only [A-Za-z0-9_-] in ids; empty arguments mean no arguments.
        { type: 'tool_use', id: 'call_2_x', name: 'get_time', input: {} },
      ],
    });
  });

  it('keeps an assistant refusal part as text and skips an assistant turn with no content', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot.' }] },
        { role: 'user', content: 'b' },
        { role: 'assistant', content: null },
        { role: 'user', content: 'c' },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'I cannot.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'b' },
          { type: 'text', text: 'c' },
        ],
      },
    ]);
  });

  it.each([
    ['{not json', 'messages[0].tool_calls[0].function.arguments'],
    ['[1,2]', 'messages[0].tool_calls[0].function.arguments'],
    ['"text"', 'messages[0].tool_calls[0].function.arguments'],
  ])('rejects tool call arguments %s', (args, param) => {
    const error = badRequest(() =>
      translate({
        messages: [
          { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: args } }] },
        ],
      }),
    );
    expect(error.data).toEqual({ param });
  });

  it('rejects malformed tool calls', () => {
    const call = (c: unknown): ChatMessage[] => [{ role: 'assistant', tool_calls: [c as never] }];
    expect(paramOf(call({ id: 'c', type: 'function' }))).toBe('messages[0].tool_calls[0]');
    expect(paramOf(call({ id: 'c', type: 'custom', function: { name: 'f' } }))).toBe('messages[0].tool_calls[0].type');
    expect(paramOf(call({ type: 'function', function: { name: 'f' } }))).toBe('messages[0].tool_calls[0].id');
    expect(paramOf(call({ id: 'c', type: 'function', function: {} }))).toBe('messages[0].tool_calls[0].function.name');
    expect(paramOf([{ role: 'assistant', tool_calls: {} as never }])).toBe('messages[0].tool_calls');
  });

  it('groups consecutive tool messages into one user turn, tool results first', () => {
    const body = translate({
      messages: [
        { role: 'user', content: 'go' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'a', arguments: '{}' } },
            { id: 'call_b', type: 'function', function: { name: 'b', arguments: '{}' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_a', content: 'result a' },
        { role: 'tool', tool_call_id: 'call_b', content: [{ type: 'text', text: 'result b' }] },
        { role: 'user', content: 'and now?' },
        {
          role: 'assistant',
          content: 'ok',
          tool_calls: [{ id: 'x.1', type: 'function', function: { name: 'c', arguments: '{}' } }],
        },
        // A user message before the tool results (some clients do this) must not come first in the turn.
        { role: 'user', content: 'note' },
        { role: 'tool', tool_call_id: 'x.1', content: '' },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'user', content: 'go' },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_a', name: 'a', input: {} },
          { type: 'tool_use', id: 'call_b', name: 'b', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_a', content: 'result a' },
          { type: 'tool_result', tool_use_id: 'call_b', content: [{ type: 'text', text: 'result b' }] },
          { type: 'text', text: 'and now?' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'ok' },
          { type: 'tool_use', id: 'x_1', name: 'c', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'x_1' },
          { type: 'text', text: 'note' },
        ],
      },
    ]);
  });

  it('rejects a tool message without tool_call_id', () => {
    expect(paramOf([{ role: 'tool', content: 'x' }])).toBe('messages[0].tool_call_id');
  });

  it('translates a multi-turn conversation with tool results and images', () => {
    const request: ChatCompletionRequest = {
      model: 'claude',
      messages: [
        { role: 'system', content: 'You are a photo assistant.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Where was this taken?' },
            { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${PNG}` } },
          ],
        },
        {
          role: 'assistant',
          content: 'I will look up the landmark.',
          tool_calls: [
            {
              id: 'call_lookup',
              type: 'function',
              function: { name: 'lookup_landmark', arguments: '{"query":"iron tower"}' },
            },
          ],
        },
        { role: 'tool', tool_call_id: 'call_lookup', content: '{"name":"Eiffel Tower","city":"Paris"}' },
        { role: 'assistant', content: 'It is the Eiffel Tower in Paris.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'And this one?' },
            { type: 'image_url', image_url: { url: 'https://example.com/tower.webp' } },
          ],
        },
      ],
      tools: [
        {
          type: 'function',
          function: {
            name: 'lookup_landmark',
            description: 'Find a landmark',
            parameters: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
          },
        },
      ],
      tool_choice: 'auto',
      max_completion_tokens: 500,
      temperature: 0.2,
      stream: true,
    };
    expect(toAnthropicRequest(request, options)).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 500,
      system: 'You are a photo assistant.',
      stream: true,
      temperature: 0.2,
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Where was this taken?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: PNG } },
          ],
        },
        {
          role: 'assistant',
          content: [
            { type: 'text', text: 'I will look up the landmark.' },
            { type: 'tool_use', id: 'call_lookup', name: 'lookup_landmark', input: { query: 'iron tower' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'call_lookup', content: '{"name":"Eiffel Tower","city":"Paris"}' },
          ],
        },
        { role: 'assistant', content: 'It is the Eiffel Tower in Paris.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'And this one?' },
            { type: 'image', source: { type: 'url', url: 'https://example.com/tower.webp' } },
          ],
        },
      ],
      tools: [
        {
          name: 'lookup_landmark',
          description: 'Find a landmark',
          input_schema: { type: 'object', properties: { query: { type: 'string' } }, required: ['query'] },
        },
      ],
      tool_choice: { type: 'auto' },
    });
  });

  it('allows images in tool results', () => {
    const body = translate({
      messages: [
        {
          role: 'tool',
          tool_call_id: 'shot',
          content: [{ type: 'image_url', image_url: { url: `data:image/gif;base64,${PNG}` } }],
        },
      ],
    });
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          {
            type: 'tool_result',
            tool_use_id: 'shot',
            content: [{ type: 'image', source: { type: 'base64', media_type: 'image/gif', data: PNG } }],
          },
        ],
      },
    ]);
  });

  it('does not modify the request', () => {
    const request: ChatCompletionRequest = {
      model: 'm',
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: [{ type: 'text', text: 'b' }] },
      ],
      tools: [{ type: 'function', function: { name: 'f', parameters: { properties: {} } } }],
      parallel_tool_calls: false,
    };
    const copy = structuredClone(request);
    toAnthropicRequest(request, options);
    expect(request).toEqual(copy);
  });

  describe('tools', () => {
    it('translates function tools, defaulting the input schema', () => {
      const body = translate({
        tools: [
          { type: 'function', function: { name: 'noargs' } },
          { type: 'function', function: { name: 'loose', description: '', parameters: { properties: { a: {} } } } },
          {
            type: 'function',
            function: {
              name: 'strict',
              description: 'd',
              strict: true,
              parameters: { type: 'object', properties: {} },
            },
          },
        ],
      });
      expect(body.tools).toEqual([
        { name: 'noargs', input_schema: { type: 'object', properties: {} } },
        { name: 'loose', input_schema: { type: 'object', properties: { a: {} } } },
        { name: 'strict', description: 'd', input_schema: { type: 'object', properties: {} } },
      ]);
      expect(body.tool_choice).toBeUndefined();
    });

    it('rejects tools that are not functions', () => {
      expect(paramOf({ tools: [{ type: 'web_search' } as never] })).toBe('tools[0].type');
      expect(paramOf({ tools: [{ type: 'function', function: {} } as never] })).toBe('tools[0].function.name');
      expect(paramOf({ tools: [{ type: 'function', function: { name: 'f', parameters: [] } } as never] })).toBe(
        'tools[0].function.parameters',
      );
      expect(paramOf({ tools: {} as never })).toBe('tools');
    });

    const tools = [{ type: 'function' as const, function: { name: 'f' } }];
    it.each([
      ['auto', undefined, { type: 'auto' }],
      ['required', undefined, { type: 'any' }],
      ['none', undefined, { type: 'none' }],
      [{ type: 'function', function: { name: 'f' } }, undefined, { type: 'tool', name: 'f' }],
      ['auto', false, { type: 'auto', disable_parallel_tool_use: true }],
      ['required', false, { type: 'any', disable_parallel_tool_use: true }],
      [
        { type: 'function', function: { name: 'f' } },
        false,
        { type: 'tool', name: 'f', disable_parallel_tool_use: true },
      ],
      ['none', false, { type: 'none' }],
      [undefined, false, { type: 'auto', disable_parallel_tool_use: true }],
      [undefined, true, undefined],
      ['auto', true, { type: 'auto' }],
    ])('maps tool_choice %j with parallel_tool_calls %j', (choice, parallel, expected) => {
      const body = translate({
        tools,
        ...(choice === undefined ? {} : { tool_choice: choice as ChatCompletionRequest['tool_choice'] }),
        ...(parallel === undefined ? {} : { parallel_tool_calls: parallel }),
      });
      expect(body.tool_choice).toEqual(expected);
    });

    it('sends no tool_choice without tools', () => {
      const body = translate({ tool_choice: 'required', parallel_tool_calls: false });
      expect(body.tools).toBeUndefined();
      expect(body.tool_choice).toBeUndefined();
    });

    it('rejects tool_choice shapes Anthropic has no counterpart for', () => {
      expect(paramOf({ tools, tool_choice: { type: 'allowed_tools', tools: [] } })).toBe('tool_choice');
      expect(paramOf({ tools, tool_choice: 'sometimes' as never })).toBe('tool_choice');
      expect(paramOf({ tools, tool_choice: { type: 'function', function: {} } as never })).toBe(
        'tool_choice.function.name',
      );
    });
  });

  describe('parameters', () => {
    it('prefers max_completion_tokens over max_tokens over the default', () => {
      expect(translate({ max_tokens: 100 }).max_tokens).toBe(100);
      expect(translate({ max_tokens: 100, max_completion_tokens: 200 }).max_tokens).toBe(200);
      expect(translate({ max_tokens: null, max_completion_tokens: null }).max_tokens).toBe(4096);
    });

    it('rejects max_tokens that are not positive integers', () => {
      expect(paramOf({ max_tokens: 0 })).toBe('max_tokens');
      expect(paramOf({ max_completion_tokens: 1.5 })).toBe('max_completion_tokens');
    });

    it('turns stop into stop_sequences', () => {
      expect(translate({ stop: 'END' }).stop_sequences).toEqual(['END']);
      expect(translate({ stop: ['a', 'b'] }).stop_sequences).toEqual(['a', 'b']);
      expect(translate({ stop: null })).not.toHaveProperty('stop_sequences');
      expect(translate({ stop: [] })).not.toHaveProperty('stop_sequences');
      expect(paramOf({ stop: [1] as never })).toBe('stop');
    });

    it.each([
      [0.7, 0.7],
      [1.5, 1],
      [2, 1],
      [0, 0],
      [-1, 0],
    ])('clamps temperature %d to %d', (temperature, expected) => {
      expect(translate({ temperature }).temperature).toBe(expected);
    });

    it('passes top_p, top_k, stream and user; ignores seed, n = 1 and other OpenAI-only fields', () => {
      const body = translate({
        top_p: 0.9,
        top_k: 40,
        stream: false,
        user: 'user-42',
        seed: 7,
        n: 1,
        temperature: null,
        frequency_penalty: 0.5,
        logprobs: true,
        stream_options: { include_usage: true },
        metadata: { trace: 'x' },
      });
      expect(body).toEqual({
        model: 'claude-sonnet-4-5',
        max_tokens: 4096,
        messages: [{ role: 'user', content: 'hi' }],
        top_p: 0.9,
        top_k: 40,
        stream: false,
        metadata: { user_id: 'user-42' },
      });
    });

    it('rejects n > 1', () => {
      const error = badRequest(() => translate({ n: 2 }));
      expect(error.data).toEqual({ param: 'n' });
    });

    it('rejects messages that are not an array', () => {
      expect(paramOf({ messages: 'hi' as never })).toBe('messages');
    });
  });

  describe('response_format', () => {
    it('asks for a JSON object in the system prompt for json_object', () => {
      const body = translate({ response_format: { type: 'json_object' } });
      expect(body.system).toMatch(/^Respond only with valid JSON.*must be an object\.$/s);
    });

    it('appends the instruction and the schema after an existing system prompt', () => {
      const schema = { type: 'object', properties: { n: { type: 'number' } } };
      const body = translate({
        messages: [
          { role: 'system', content: 'Be terse.' },
          { role: 'user', content: 'x' },
        ],
        response_format: { type: 'json_schema', json_schema: { name: 'n', schema, strict: true } },
      });
      expect(typeof body.system).toBe('string');
      const [first, second] = (body.system as string).split('\n\n');
      expect(first).toBe('Be terse.');
      expect(second).toContain('Respond only with valid JSON');
      expect(second).toContain(JSON.stringify(schema));
    });

    it('adds a text block when the system prompt is made of blocks', () => {
      const body = translate({
        messages: [
          { role: 'system', content: [{ type: 'text', text: 'Be terse.' }] },
          { role: 'user', content: 'x' },
        ],
        response_format: { type: 'json_schema' },
      });
      expect(body.system).toEqual([
        { type: 'text', text: 'Be terse.' },
        { type: 'text', text: expect.stringContaining('Respond only with valid JSON') as unknown },
      ]);
    });

    it('adds nothing for text and rejects unknown types', () => {
      expect(translate({ response_format: { type: 'text' } })).not.toHaveProperty('system');
      expect(paramOf({ response_format: { type: 'xml' } as never })).toBe('response_format.type');
    });
  });
});

describe('fromAnthropicResponse', () => {
  const response = {
    id: 'msg_01ABC',
    type: 'message',
    role: 'assistant',
    model: 'claude-sonnet-4-5-20250929',
    content: [
      { type: 'thinking', thinking: 'hmm', signature: 's' },
      { type: 'text', text: 'Checking ' },
      { type: 'text', text: 'now.' },
      { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'toolu_2', name: 'get_time', input: {} },
    ],
    stop_reason: 'tool_use',
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 20, cache_read_input_tokens: 100, cache_creation_input_tokens: 5 },
  };

  it('translates text, tool calls, finish reason and usage, reporting the public model', () => {
    const completion = fromAnthropicResponse(response, 'smart');
    expect(completion).toEqual({
      id: 'chatcmpl-msg_01ABC',
      object: 'chat.completion',
      created: expect.any(Number) as unknown,
      model: 'smart',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Checking now.',
            tool_calls: [
              { id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
              { id: 'toolu_2', type: 'function', function: { name: 'get_time', arguments: '{}' } },
            ],
          },
          finish_reason: 'tool_calls',
          logprobs: null,
        },
      ],
      usage: {
        prompt_tokens: 115,
        completion_tokens: 20,
        total_tokens: 135,
        prompt_tokens_details: { cached_tokens: 100 },
      },
    });
    expect(Math.abs(completion.created - Date.now() / 1000)).toBeLessThan(5);
  });

  it('uses the given id and reports null content when there is no text', () => {
    const completion = fromAnthropicResponse(
      { ...response, content: [{ type: 'tool_use', id: 't', name: 'f', input: { a: [1] } }] },
      'smart',
      'chatcmpl-given',
    );
    expect(completion.id).toBe('chatcmpl-given');
    expect(completion.choices[0]?.message.content).toBeNull();
    expect(completion.choices[0]?.message.tool_calls?.[0]?.function.arguments).toBe('{"a":[1]}');
  });

  it('omits tool_calls when there are none and counts usage without cache fields', () => {
    const completion = fromAnthropicResponse(
      {
        id: 'msg_2',
        content: [{ type: 'text', text: 'Hi' }],
        stop_reason: 'end_turn',
        usage: { input_tokens: 3, output_tokens: 4 },
      },
      'm',
    );
    expect(completion.choices[0]?.message).toEqual({ role: 'assistant', content: 'Hi' });
    expect(completion.usage).toEqual({ prompt_tokens: 3, completion_tokens: 4, total_tokens: 7 });
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
    ['pause_turn', 'stop'],
    [null, 'stop'],
  ])('maps stop_reason %s to %s', (stop_reason, expected) => {
    expect(fromAnthropicResponse({ ...response, stop_reason }, 'm').choices[0]?.finish_reason).toBe(expected);
  });

  it('rejects a body that is not a message as an upstream error', () => {
    for (const body of [null, 'text', { type: 'error', error: {} }]) {
      expect(() => fromAnthropicResponse(body, 'm')).toThrow(
        expect.objectContaining({ code: 'UPSTREAM_ERROR', status: 502 }) as unknown as Error,
      );
    }
  });

  it('makes up an id when the message has none', () => {
    expect(fromAnthropicResponse({ content: [] }, 'm').id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
  });
});

describe('createAnthropicStreamTranslator', () => {
  const base = { id: 'chatcmpl-msg_01S', object: 'chat.completion.chunk', created: 1700000000, model: 'smart' };
  const choice = (delta: Record<string, unknown>, finish_reason: string | null = null) => ({
    ...base,
    usage: null,
    choices: [{ index: 0, delta, finish_reason, logprobs: null }],
  });

  function run(events: [string, unknown][], includeUsage: boolean, id?: string) {
    const translator = createAnthropicStreamTranslator('smart', {
      includeUsage,
      created: 1700000000,
      ...(id === undefined ? {} : { id }),
    });
    const chunks: ChatCompletionChunk[] = [];
    for (const [event, data] of events) chunks.push(...translator.push(event, data));
    return { translator, chunks };
  }

  const toolStream: [string, unknown][] = [
    [
      'message_start',
      {
        type: 'message_start',
        message: {
          id: 'msg_01S',
          type: 'message',
          role: 'assistant',
          content: [],
          model: 'claude-sonnet-4-5',
          stop_reason: null,
          usage: { input_tokens: 50, output_tokens: 1, cache_read_input_tokens: 10, cache_creation_input_tokens: 0 },
        },
      },
    ],
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['ping', { type: 'ping' }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me ' } }],
    ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'check.' } }],
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    [
      'content_block_start',
      {
        type: 'content_block_start',
        index: 1,
        content_block: { type: 'tool_use', id: 'toolu_A', name: 'get_weather', input: {} },
      },
    ],
    [
      'content_block_delta',
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } },
    ],
    [
      'content_block_delta',
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": ' } },
    ],
    [
      'content_block_delta',
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '"Paris"}' } },
    ],
    ['content_block_stop', { type: 'content_block_stop', index: 1 }],
    [
      'content_block_start',
      {
        type: 'content_block_start',
        index: 2,
        content_block: { type: 'tool_use', id: 'toolu_B', name: 'get_time', input: {} },
      },
    ],
    [
      'content_block_delta',
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } },
    ],
    ['content_block_stop', { type: 'content_block_stop', index: 2 }],
    [
      'message_delta',
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 42 } },
    ],
    ['message_stop', { type: 'message_stop' }],
  ];

  it('translates a complete streamed tool-call sequence, with usage', () => {
    const { translator, chunks } = run(toolStream, true);
    const usage = {
      prompt_tokens: 60,
      completion_tokens: 42,
      total_tokens: 102,
      prompt_tokens_details: { cached_tokens: 10 },
    };
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: '' }),
      choice({ content: 'Let me ' }),
      choice({ content: 'check.' }),
      choice({
        tool_calls: [{ index: 0, id: 'toolu_A', type: 'function', function: { name: 'get_weather', arguments: '' } }],
      }),
      choice({ tool_calls: [{ index: 0, function: { arguments: '{"city": ' } }] }),
      choice({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] }),
      choice({
        tool_calls: [{ index: 1, id: 'toolu_B', type: 'function', function: { name: 'get_time', arguments: '' } }],
      }),
      choice({ tool_calls: [{ index: 1, function: { arguments: '{}' } }] }),
      choice({}, 'tool_calls'),
      { ...base, choices: [], usage },
    ]);
    expect(translator.done).toBe(true);
    expect(translator.usage).toEqual(usage);
    // Reassembling the deltas gives back the complete arguments.
    const args = chunks
      .flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
      .filter((t) => t.index === 0)
      .map((t) => t.function?.arguments ?? '')
      .join('');
    expect(JSON.parse(args)).toEqual({ city: 'Paris' });
  });

  it('sends no usage fields and no usage chunk when the client did not ask for usage', () => {
    const { translator, chunks } = run(toolStream, false);
    expect(chunks).toHaveLength(9);
    for (const chunk of chunks) expect(chunk).not.toHaveProperty('usage');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('tool_calls');
    // Usage is still recorded for the gateway's own accounting.
    expect(translator.usage?.total_tokens).toBe(102);
  });

  it('gives every chunk the same id and created, from the options when given', () => {
    const { chunks } = run(toolStream, true, 'chatcmpl-mine');
    expect(new Set(chunks.map((c) => c.id))).toEqual(new Set(['chatcmpl-mine']));
    expect(new Set(chunks.map((c) => c.created))).toEqual(new Set([1700000000]));
    expect(new Set(chunks.map((c) => c.model))).toEqual(new Set(['smart']));
  });

  it('maps max_tokens to length and takes input tokens from message_delta when it repeats them', () => {
    const { chunks, translator } = run(
      [
        ['', { type: 'message_start', message: { id: 'msg_01S', usage: { input_tokens: 5, output_tokens: 1 } } }],
        ['', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: 'Once' } }],
        ['', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' upon' } }],
        [
          '',
          {
            type: 'message_delta',
            delta: { stop_reason: 'max_tokens' },
            usage: { input_tokens: 7, output_tokens: 2, cache_read_input_tokens: null },
          },
        ],
        ['', { type: 'message_stop' }],
      ],
      false,
    );
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? c.choices[0]?.finish_reason)).toEqual([
      '',
      'Once',
      ' upon',
      'length',
    ]);
    expect(translator.usage).toEqual({ prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 });
  });

  it('ignores thinking, pings and unknown events, and everything after message_stop', () => {
    const { chunks, translator } = run(
      [
        [
          'message_start',
          { type: 'message_start', message: { id: 'msg_01S', usage: { input_tokens: 1, output_tokens: 0 } } },
        ],
        [
          'content_block_start',
          { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } },
        ],
        [
          'content_block_delta',
          { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hm' } },
        ],
        [
          'content_block_delta',
          { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 's' } },
        ],
        [
          'content_block_delta',
          { type: 'content_block_delta', index: 9, delta: { type: 'input_json_delta', partial_json: '{' } },
        ],
        ['ping', {}],
        ['future_event', { anything: true }],
        ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 3 } }],
        ['message_stop', {}],
        ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'late' } }],
        ['message_stop', {}],
      ],
      true,
    );
    expect(chunks).toEqual([
      choice({ role: 'assistant', content: '' }),
      choice({}, 'stop'),
      { ...base, choices: [], usage: { prompt_tokens: 1, completion_tokens: 3, total_tokens: 4 } },
    ]);
    expect(translator.done).toBe(true);
  });

  it('has no usage and is not done before the stream starts', () => {
    const translator = createAnthropicStreamTranslator('m', { includeUsage: true });
    expect(translator.usage).toBeUndefined();
    expect(translator.done).toBe(false);
    expect(translator.push('ping', { type: 'ping' })).toEqual([]);
  });

  it('makes up an id when the message has none, and keeps it', () => {
    const translator = createAnthropicStreamTranslator('m', { includeUsage: false });
    const [first] = translator.push('message_start', { type: 'message_start', message: {} });
    const [second] = translator.push('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'x' } });
    expect(first?.id).toMatch(/^chatcmpl-[0-9a-f]{32}$/);
    expect(second?.id).toBe(first?.id);
    expect(Math.abs((first?.created ?? 0) - Date.now() / 1000)).toBeLessThan(5);
  });

  it('throws an AnthropicStreamError carrying the mapped OpenAI error on an error event', () => {
    const translator = createAnthropicStreamTranslator('m', { includeUsage: false });
    translator.push('message_start', { type: 'message_start', message: { id: 'msg_1' } });
    let caught: unknown;
    try {
      translator.push('error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(AnthropicStreamError);
    expect(caught).toBeInstanceOf(Error);
    const error = caught as AnthropicStreamError;
    expect(error.status).toBe(503);
    expect(error.message).toBe('Overloaded');
    expect(error.body).toEqual({ error: { message: 'Overloaded', type: 'server_error', param: null, code: null } });
  });

  it('reports an error event without a known type as a server error', () => {
    const translator = createAnthropicStreamTranslator('m', { includeUsage: false });
    expect(() => translator.push('error', 'garbage')).toThrow(
      expect.objectContaining({
        status: 500,
        body: expect.objectContaining({ error: expect.anything() as unknown }),
      }) as unknown as Error,
    );
  });
});

describe('fromAnthropicError', () => {
  const anthropic = (type: string, message = 'boom') => ({
    type: 'error',
    error: { type, message },
    request_id: 'req_1',
  });

  it.each([
    [400, 'invalid_request_error', 400, 'invalid_request_error', null],
    [401, 'authentication_error', 401, 'authentication_error', null],
    [402, 'billing_error', 402, 'insufficient_quota', 'insufficient_quota'],
    [403, 'permission_error', 403, 'permission_error', null],
    [404, 'not_found_error', 404, 'not_found_error', null],
    [413, 'request_too_large', 413, 'invalid_request_error', null],
    [429, 'rate_limit_error', 429, 'requests', 'rate_limit_exceeded'],
    [500, 'api_error', 500, 'server_error', null],
    [529, 'overloaded_error', 503, 'server_error', null],
  ])('maps HTTP %d %s to %d %s', (status, type, expectedStatus, expectedType, code) => {
    expect(fromAnthropicError(status, anthropic(type))).toEqual({
      status: expectedStatus,
      body: { error: { message: 'boom', type: expectedType, param: null, code } },
    });
  });

  it('keeps other 4xx statuses Anthropic reports as invalid_request_error', () => {
    expect(fromAnthropicError(409, anthropic('invalid_request_error')).status).toBe(409);
  });

  it('flags a prompt that is too long as context_length_exceeded', () => {
    const { body } = fromAnthropicError(
      400,
      anthropic('invalid_request_error', 'prompt is too long: 210000 tokens > 200000 maximum'),
    );
    expect(body.error.code).toBe('context_length_exceeded');
  });

  it('parses a JSON text body', () => {
    expect(fromAnthropicError(429, JSON.stringify(anthropic('rate_limit_error', 'slow down'))).body.error).toEqual({
      message: 'slow down',
      type: 'requests',
      param: null,
      code: 'rate_limit_exceeded',
    });
  });

  it('handles unknown bodies by status', () => {
    expect(fromAnthropicError(502, '<html>Bad gateway</html>')).toEqual({
      status: 502,
      body: { error: { message: '<html>Bad gateway</html>', type: 'server_error', param: null, code: null } },
    });
    expect(fromAnthropicError(529, null)).toEqual({
      status: 503,
      body: { error: { message: 'Anthropic API error (HTTP 529)', type: 'server_error', param: null, code: null } },
    });
    expect(fromAnthropicError(401, { message: 'nope' }).status).toBe(401);
    expect(fromAnthropicError(418, {})).toEqual({
      status: 418,
      body: {
        error: { message: 'Anthropic API error (HTTP 418)', type: 'invalid_request_error', param: null, code: null },
      },
    });
    expect(fromAnthropicError(200, anthropic('brand_new_error')).status).toBe(502);
    expect(fromAnthropicError(429, anthropic('brand_new_error')).body.error.type).toBe('requests');
    expect(fromAnthropicError(500, 'x'.repeat(2000)).body.error.message).toHaveLength(500);
  });
});

describe('anthropicHeaders', () => {
  it('sets the key, the API version and the content type', () => {
    expect(anthropicHeaders('sk-ant-1')).toEqual({
      'x-api-key': 'sk-ant-1',
      'anthropic-version': '2023-06-01',
      'content-type': 'application/json',
    });
  });

  it('leaves out the key when there is none', () => {
    expect(anthropicHeaders(undefined)).toEqual({
      'anthropic-version': '2023-06-01',
      'content-type': 'application/json',
    });
  });
});
