// The tool-running chat: one /v1/chat/completions request with the `mcp` extension, sent with the openai SDK; the
// scripted mock model calls a server-memory tool and a server-everything tool, mcplex runs them and loops until
// the model answers. Streaming, the max_steps guard, approval, tool errors and key scopes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { OPERATOR, everythingStdio, startMcplex, waitFor } from './support/harness.js';

let mock: MockLlm;
let mcplex: RunningServer;
let client: OpenAI;
let token: string;
const dir = mkdtempSync(join(tmpdir(), 'mcplex-agent-'));

beforeAll(async () => {
  mock = await startMockLlm({ name: 'agent-mock' });
  mcplex = await startMcplex({
    auth: { mode: 'keys' },
    mcpServers: {
      memory: {
        command: process.execPath,
        args: [join('node_modules', '@modelcontextprotocol', 'server-memory', 'dist', 'index.js')],
        env: { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') },
      },
      everything: everythingStdio(),
    },
    llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'backend' }] } } },
    agent: { embeddings: false },
  });
  await mcplex.gateway.whenSettled();
  const key = await mcplex.policy.keys.create({ name: 'agent' });
  token = key.token;
  client = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: token, maxRetries: 0 });
});
afterAll(async () => {
  await mcplex?.close();
  await mock?.close();
  rmSync(dir, { recursive: true, force: true });
});

type McpAnswer = OpenAI.ChatCompletion & {
  mcp: { steps: { step: number; tool_calls: { name: string; output: string; is_error: boolean }[] }[] };
};

const ask = (api: OpenAI, mcp: Record<string, unknown>, content = 'Remember Ada and echo hello') =>
  api.chat.completions.create({
    model: 'm',
    messages: [{ role: 'user', content }],
    // @ts-expect-error the MCP extension of mcplex
    mcp,
  }) as unknown as Promise<McpAnswer>;

const bothTools = () =>
  mock.enqueue(
    {
      kind: 'tool_calls',
      calls: [
        {
          name: 'memory__create_entities',
          arguments: { entities: [{ name: 'Ada', entityType: 'person', observations: ['wrote the first program'] }] },
        },
        { name: 'everything__echo', arguments: { message: 'hello agent' } },
      ],
    },
    { kind: 'report_tool_results' },
  );

describe('the tool-running chat', () => {
  it('runs a server-memory and a server-everything tool and answers with both results', async () => {
    bothTools();
    const answer = await ask(client, { servers: ['*'], max_steps: 4 });
    const text = answer.choices[0]?.message.content ?? '';
    expect(text).toContain('Echo: hello agent');
    expect(text).toContain('wrote the first program');
    expect(answer.mcp.steps).toHaveLength(1);
    expect(answer.mcp.steps[0]!.tool_calls.map((c) => c.name).sort()).toEqual([
      'everything__echo',
      'memory__create_entities',
    ]);
    // The model saw every server's tools, and the tool results came back to it as tool messages.
    const first = mock.requests.at(-2)!.body as { tools: { function: { name: string } }[] };
    const offered = first.tools.map((t) => t.function.name);
    expect(offered).toContain('memory__read_graph');
    expect(offered).toContain('everything__echo');
    const second = mock.requests.at(-1)!.body as { messages: { role: string }[] };
    expect(second.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'tool']);
    expect(answer.usage?.total_tokens).toBeGreaterThan(0);
  });

  it("records the tool rounds in usage without charging them to the key's limits again", async () => {
    // The chat's two model calls take the key's two requests a minute, one at a time; its two tool calls, run
    // together, take neither.
    const { token: limited, key } = await mcplex.policy.keys.create({
      name: 'agent-limited',
      rpm: 2,
      maxConcurrent: 1,
    });
    bothTools();
    const api = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: limited, maxRetries: 0 });
    const answer = await ask(api, { servers: ['*'], max_steps: 4 });
    expect(answer.mcp.steps[0]!.tool_calls.map((c) => c.is_error)).toEqual([false, false]);
    await mcplex.policy.usage.flush();
    const totals = await mcplex.policy.usage.totals({ subject: key.id });
    expect(totals.map((t) => [t.model, t.requests])).toEqual([
      ['m', 2],
      ['mcp:everything/echo', 1],
      ['mcp:memory/create_entities', 1],
    ]);
  });

  it("counts a tool-running chat once as the client's /v1 request, and its model calls apart", async () => {
    /** The sum of the series whose labels begin with `labels`. */
    const count = async (labels: string) => {
      const text = await (await fetch(`${mcplex.url}/metrics`, { headers: OPERATOR })).text();
      const lines = text.split('\n').filter((l) => l.startsWith(`mcplex_llm_requests_total{${labels}`));
      return lines.reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
    };
    const outer = 'route="chat",model="m",deployment="agent",status="200"';
    const steps = 'route="agent",model="m",';
    const plain = 'route="chat",model="m",deployment="m';
    const before = [await count(outer), await count(steps), await count(plain)];
    bothTools();
    await ask(client, { servers: ['*'], max_steps: 4 });
    // Regression: the chat's two model calls were counted as two /v1 chat requests.
    expect([await count(outer), await count(steps), await count(plain)]).toEqual([
      before[0]! + 1,
      before[1]! + 2,
      before[2]!,
    ]);
  });

  it('streams the answer and reports the tool round as an mcp_step chunk', async () => {
    bothTools();
    // The MCP extension of mcplex rides along as an extra field.
    const params = {
      model: 'm',
      messages: [{ role: 'user', content: 'Remember Ada and echo hello' }],
      stream: true,
      mcp: { servers: ['*'] },
    } as unknown as OpenAI.ChatCompletionCreateParamsStreaming;
    const stream = await client.chat.completions.create(params);
    let text = '';
    const steps: unknown[] = [];
    let finish: string | null = null;
    for await (const chunk of stream) {
      const extra = chunk as unknown as { mcp_step?: unknown };
      if (extra.mcp_step) steps.push(extra.mcp_step);
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(steps).toHaveLength(1);
    expect(text).toContain('Echo: hello agent');
    expect(finish).toBe('stop');
  });

  it('stops running tools after max_steps and makes the model answer', async () => {
    for (let i = 0; i < 3; i++) {
      mock.enqueue({ kind: 'tool_calls', calls: [{ name: 'everything__echo', arguments: { message: `round ${i}` } }] });
    }
    const answer = await ask(client, { max_steps: 2 }, 'loop forever');
    expect(answer.mcp.steps).toHaveLength(2);
    const last = mock.requests.at(-1)!.body as { tool_choice: string };
    expect(last.tool_choice).toBe('none');
    mock.clearQueue();
  });

  it('returns the tool calls to the client with require_approval "always", running nothing', async () => {
    mock.enqueue({ kind: 'tool_calls', calls: [{ name: 'everything__echo', arguments: { message: 'approve me' } }] });
    const answer = await ask(client, { require_approval: 'always' });
    expect(answer.choices[0]?.finish_reason).toBe('tool_calls');
    expect(answer.mcp.steps).toEqual([]);
  });

  it('gives a failing tool back to the model as a tool result', async () => {
    mock.enqueue(
      { kind: 'tool_calls', calls: [{ name: 'everything__echo', arguments: { wrong: 1 } }] },
      { kind: 'report_tool_results' },
    );
    const answer = await ask(client, {});
    expect(answer.mcp.steps[0]!.tool_calls[0]!.is_error).toBe(true);
    expect(answer.choices[0]?.message.content).toMatch(/^tool results: Error: /);
  });

  it('keeps the tools of a server the key is scoped away from out of what the model sees', async () => {
    const scoped = await mcplex.policy.keys.create({ name: 'memory-only', servers: ['memory'] });
    const api = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: scoped.token, maxRetries: 0 });
    mock.enqueue({ kind: 'text', text: 'fine' });
    await ask(api, { servers: ['*'] });
    const offered = (mock.requests.at(-1)!.body as { tools: { function: { name: string } }[] }).tools.map(
      (t) => t.function.name,
    );
    expect(offered.length).toBeGreaterThan(0);
    expect(offered.every((name) => name.startsWith('memory__'))).toBe(true);
  });

  it('refuses a malformed mcp field with a 400 naming it', async () => {
    const error = await ask(client, { max_steps: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as Error).message).toMatch(/mcp.max_steps/);
  });

  // Each star once became ".*" in a regular expression that backtracked exponentially: this request held the
  // whole process (every route, SIGTERM included) for longer than any test timeout.
  it('regression: an mcp.tools glob of many stars is matched at once and /healthz stays answered', async () => {
    mock.enqueue({ kind: 'text', text: 'no tools matched' });
    const answer = await ask(client, { tools: [`${'*'.repeat(200)}x`, 'everything__echo'] });
    expect(answer.choices[0]?.message.content).toBe('no tools matched');
    const offered = (mock.requests.at(-1)!.body as { tools?: { function: { name: string } }[] }).tools ?? [];
    expect(offered.map((t) => t.function.name).filter((name) => !name.endsWith('x'))).toEqual(['everything__echo']);
    expect((await fetch(`${mcplex.url}/healthz`)).status).toBe(200);
  });

  it('refuses a pattern over 256 characters, over 64 patterns or over 1024 characters in all, naming mcp.tools', async () => {
    const lists = [['*'.repeat(257)], Array.from({ length: 65 }, (_, i) => `t${i}`), Array(5).fill('*'.repeat(250))];
    for (const tools of lists) {
      const error = await ask(client, { tools }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect((error as Error).message).toMatch(/mcp.tools/);
    }
  });

  it('refuses a key scope with an overlong tool pattern', async () => {
    await expect(mcplex.policy.keys.create({ name: 'starry', tools: ['*'.repeat(257)] })).rejects.toThrow(
      /longer than 256/,
    );
  });
});

describe('the tool-running chat in a stored conversation', () => {
  async function v1(method: string, path: string, body?: unknown) {
    const response = await fetch(`${mcplex.url}/v1${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  }
  const roles = async (id: string) => {
    const items = await v1('GET', `/conversations/${id}/items?order=asc`);
    return (items.json.data as { message: { role: string; content: string | null } }[]).map((i) => i.message);
  };

  it('appends the whole exchange with its version, and the next (streamed) turn is sent all of it', async () => {
    const id = (await v1('POST', '/conversations', {})).json.id as string;
    mock.enqueue(
      { kind: 'tool_calls', calls: [{ name: 'everything__echo', arguments: { message: 'kept' } }] },
      { kind: 'report_tool_results' },
    );
    const first = (await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'echo kept' }],
      // @ts-expect-error the MCP and conversation extensions of mcplex
      mcp: { servers: ['everything'] },
      conversation: id,
    })) as unknown as McpAnswer & { conversation: { id: string; version: number } };
    const stored = await roles(id);
    expect(stored.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(stored[2]!.content).toContain('Echo: kept');
    expect(stored[3]!.content).toBe(first.choices[0]?.message.content);
    expect(first.conversation).toEqual({ id, version: (await v1('GET', `/conversations/${id}`)).json.version });

    mock.enqueue({ kind: 'text', text: 'done' });
    const params = {
      model: 'm',
      messages: [{ role: 'user', content: 'thanks' }],
      stream: true,
      mcp: { servers: ['everything'] },
      conversation: id,
    } as unknown as OpenAI.ChatCompletionCreateParamsStreaming;
    let text = '';
    let named: { id: string; version: number } | undefined;
    for await (const chunk of await client.chat.completions.create(params)) {
      text += chunk.choices[0]?.delta.content ?? '';
      named = (chunk as unknown as { conversation?: typeof named }).conversation ?? named;
    }
    expect(text).toBe('done');
    const sent = mock.requests.at(-1)!.body as { messages: { role: string }[] };
    expect(sent.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user']);
    expect((await roles(id)).map((m) => m.role)).toEqual([
      'user',
      'assistant',
      'tool',
      'assistant',
      'user',
      'assistant',
    ]);
    expect(named?.version).toBeGreaterThan(first.conversation.version);
    expect(named?.version).toBe((await v1('GET', `/conversations/${id}`)).json.version);
  });

  it('keeps no tool calls of a last step, which were neither run nor answered', async () => {
    const id = (await v1('POST', '/conversations', {})).json.id as string;
    for (let i = 0; i < 2; i++) {
      mock.enqueue({ kind: 'tool_calls', calls: [{ name: 'everything__echo', arguments: { message: `round ${i}` } }] });
    }
    await v1('POST', '/chat/completions', {
      model: 'm',
      messages: [{ role: 'user', content: 'loop' }],
      mcp: { servers: ['everything'], max_steps: 1 },
      conversation: id,
    });
    const stored = (await v1('GET', `/conversations/${id}/items?order=asc`)).json.data as {
      message: { role: string; tool_calls?: unknown[] };
    }[];
    expect(stored.map((i) => i.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(stored[1]!.message.tool_calls).toHaveLength(1);
    expect(stored[3]!.message.tool_calls).toBeUndefined();
  });

  it('ends a streamed turn with a 409 error event when another turn came in meanwhile', async () => {
    const id = (await v1('POST', '/conversations', {})).json.id as string;
    mock.setOptions({ latencyMs: 300 });
    mock.enqueue({ kind: 'text', text: 'too late' });
    const seen = mock.requests.length;
    const streamed = fetch(`${mcplex.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'm',
        messages: [{ role: 'user', content: 'hello' }],
        stream: true,
        mcp: { servers: ['everything'] },
        conversation: id,
      }),
    }).then((response) => response.text());
    try {
      await waitFor(() => mock.requests.length > seen, 'the model to be asked');
      expect(
        (await v1('POST', `/conversations/${id}/items`, { items: [{ role: 'user', content: 'first' }] })).status,
      ).toBe(200);
    } finally {
      mock.setOptions({ latencyMs: 0 });
    }
    const events = (await streamed)
      .split('\n\n')
      .filter((e) => e.startsWith('data: '))
      .map((e) => e.slice(6));
    expect(events.at(-1)).not.toBe('[DONE]');
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'conversation_version_conflict' } });
    expect((await v1('GET', `/conversations/${id}/items?order=asc`)).json.data).toHaveLength(1);
  });

  it('refuses a stale conversation_version with 409 before the model or any tool runs', async () => {
    const id = (await v1('POST', '/conversations', {})).json.id as string;
    await v1('POST', `/conversations/${id}/items`, { items: [{ role: 'user', content: 'earlier' }] });
    const seen = mock.requests.length;
    const refused = await v1('POST', '/chat/completions', {
      model: 'm',
      messages: [{ role: 'user', content: 'echo nothing' }],
      mcp: { servers: ['everything'] },
      conversation: id,
      conversation_version: 0,
    });
    expect(refused.status).toBe(409);
    expect(mock.requests.length).toBe(seen);
    expect((await roles(id)).map((m) => m.content)).toEqual(['earlier']);
  });
});
