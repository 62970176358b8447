// `mcplex stdio`: the same aggregated server on stdin/stdout, as desktop MCP clients launch it.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import { NAME_PATTERN } from '../src/mcp/catalog/naming.js';
import {
  MCPLEX_BIN,
  ROOT,
  clientOptions,
  everythingStdio,
  fixtureStdio,
  spawnMcplex,
  tempDir,
  waitFor,
  writeConfig,
} from './support/harness.js';
import type { Era } from './support/harness.js';

const dir = tempDir();
let configPath: string;

beforeAll(() => {
  configPath = writeConfig(dir.path, {
    mcpServers: { everything: everythingStdio(), fixture: fixtureStdio() },
    logLevel: 'silent',
  });
});
afterAll(() => dir.remove());

/** An SDK client that launches `mcplex stdio` on `config`, as a desktop client does. */
async function connectStdio(config: string, era: Era, cwd = ROOT): Promise<Client> {
  const client = new Client({ name: 'stdio-test', version: '1.0.0' }, clientOptions(era));
  await client.connect(
    new StdioClientTransport({ command: process.execPath, args: [MCPLEX_BIN, 'stdio', '--config', config], cwd }),
  );
  return client;
}

describe.each<Era>(['legacy', 'modern'])('mcplex stdio with a %s client', (era) => {
  let client: Client;
  beforeAll(async () => {
    client = await connectStdio(configPath, era);
  });
  afterAll(async () => {
    await client?.close();
  });

  it('lists tools of every server and round-trips everything__echo', async () => {
    // Servers connect in the background; the list fills as they become ready.
    const names = await waitFor(async () => {
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      return names.includes('everything__echo') && names.includes('fixture__echo') && names;
    }, 'both servers to be listed');
    for (const name of names) expect(name).toMatch(NAME_PATTERN);
    const result = await client.callTool({ name: 'everything__echo', arguments: { message: 'over stdio' } });
    expect(result.content).toEqual([{ type: 'text', text: 'Echo: over stdio' }]);
  });

  it('reads a resource, a template instance, gets a prompt and completes', async () => {
    const hello = await client.readResource({ uri: 'mcplex://fixture/fixture://static/hello' });
    expect(hello.contents[0]).toMatchObject({ text: 'hello from fixture' });
    const item = await client.readResource({ uri: 'mcplex://fixture/fixture://items/alpha' });
    expect(item.contents[0]).toMatchObject({ text: 'item alpha' });
    const prompt = await client.getPrompt({ name: 'fixture__greet', arguments: { name: 'carol' } });
    expect(prompt.messages[0]!.content).toEqual({ type: 'text', text: 'Hello, carol!' });
    const completion = await client.complete({
      ref: { type: 'ref/prompt', name: 'fixture__greet' },
      argument: { name: 'name', value: 'a' },
    });
    expect(completion.completion.values).toEqual(['alice']);
  });

  it('answers a parameter of the wrong type with -32602 naming the field', async () => {
    const error = (await client
      .callTool({ name: 'fixture__echo', arguments: [1, 2] as unknown as Record<string, unknown> })
      .catch((e: unknown) => e)) as { code?: number; message?: string };
    expect(error.code).toBe(-32602);
    expect(error.message).toContain('params.arguments');
    expect(error.message).not.toMatch(/\[\s*\{/);
  });
});

describe('mcplex stdio at start-up', () => {
  it('answers the first tools/list with every server that starts in time (regression: tools: [] for ~2 s)', async () => {
    // The fixture runs through tsx, which takes a moment to start: the list is asked for at once.
    const config = writeConfig(dir.path, { mcpServers: { fixture: fixtureStdio() }, logLevel: 'silent' }, 'first.json');
    const child = spawn(process.execPath, [MCPLEX_BIN, 'stdio', '--config', config], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    try {
      const lines = [
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'pipe', version: '1' } },
        },
        { jsonrpc: '2.0', method: 'notifications/initialized' },
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
        {
          jsonrpc: '2.0',
          id: 3,
          method: 'tools/call',
          params: { name: 'fixture__echo', arguments: { message: 'first' } },
        },
      ];
      child.stdin.write(lines.map((line) => `${JSON.stringify(line)}\n`).join(''));
      type Answer = { id?: number; result?: { tools?: { name: string }[]; content?: { text: string }[] } };
      const answers = new Map<number, Answer>();
      let buffer = '';
      child.stdout.setEncoding('utf8');
      child.stdout.on('data', (chunk: string) => {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const message = JSON.parse(buffer.slice(0, newline)) as Answer;
          buffer = buffer.slice(newline + 1);
          if (typeof message.id === 'number') answers.set(message.id, message);
        }
      });
      await waitFor(() => answers.has(3), 'the answers');
      expect(answers.get(2)?.result?.tools?.map((t) => t.name)).toContain('fixture__echo');
      expect(answers.get(3)?.result?.content?.[0]?.text).toBe('first');
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('mcplex stdio with a shared LLM', () => {
  it('opens no database file in the folder a desktop client starts it in, unless the configuration names one', async () => {
    const folder = tempDir('mcplex-stdio-cwd-');
    const config = writeConfig(
      dir.path,
      {
        mcpServers: {},
        llm: {
          models: { shared: { deployments: [{ provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', model: 'b' }] } },
        },
        logLevel: 'silent',
      },
      'stdio-default-store.json',
    );
    const client = await connectStdio(config, 'legacy', folder.path);
    try {
      expect((await client.listTools()).tools).toEqual([]);
      expect(readdirSync(folder.path)).toEqual([]);
    } finally {
      await client.close();
      folder.remove();
    }
  });

  it("answers an upstream's sampling request with the shared LLM and keeps the usage in the store", async () => {
    const mock = await startMockLlm({ name: 'stdio-sampling-mock' });
    const config = writeConfig(
      dir.path,
      {
        mcpServers: { everything: everythingStdio() },
        store: `sqlite:${join(dir.path, 'stdio.db')}`,
        llm: { models: { shared: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'b' }] } } },
        logLevel: 'silent',
      },
      'stdio-llm.json',
    );
    // The client declares no sampling: the answer can only come from mcplex's LLM.
    const client = await connectStdio(config, 'legacy');
    try {
      await waitFor(
        async () => (await client.listTools()).tools.some((t) => t.name === 'everything__trigger-sampling-request'),
        'server-everything to be listed',
      );
      const result = await client.callTool({
        name: 'everything__trigger-sampling-request',
        arguments: { prompt: 'hello over stdio', maxTokens: 20 },
      });
      const text = (result.content as { text?: string }[]).map((c) => c.text ?? '').join('\n');
      expect(text).toContain('mock reply: Resource trigger-sampling-request context: hello over stdio');
      expect(mock.requests).toHaveLength(1);
    } finally {
      await client.close();
      await mock.close();
    }
    // Usage is flushed on shutdown; the CLI reads it from the same file.
    const usage = spawnMcplex(['usage', '--config', config, '--json']);
    expect(await usage.exited).toBe(0);
    // The server's own model call under its identity, and the client's tool call that led to it.
    expect(JSON.parse(usage.stdout())).toEqual([
      expect.objectContaining({ subject: 'anonymous', model: 'mcp:everything/trigger-sampling-request', requests: 1 }),
      expect.objectContaining({ subject: 'server:everything', model: 'shared', requests: 1 }),
    ]);
  });
});
