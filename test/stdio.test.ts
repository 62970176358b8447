// `mcplex stdio`: the same aggregated server on stdin/stdout, as desktop MCP clients launch it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { NAME_PATTERN } from '../src/mcp/catalog/naming.js';
import {
  MCPLEX_BIN,
  ROOT,
  clientOptions,
  everythingStdio,
  fixtureStdio,
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

describe.each<Era>(['legacy', 'modern'])('mcplex stdio with a %s client', (era) => {
  let client: Client;
  beforeAll(async () => {
    client = new Client({ name: 'stdio-test', version: '1.0.0' }, clientOptions(era));
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [MCPLEX_BIN, 'stdio', '--config', configPath],
        cwd: ROOT,
      }),
    );
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
});
