// Exposed names across servers: identical tool names, a 70-character name, and stability across restarts.
import { describe, expect, it } from 'vitest';
import { NAME_PATTERN } from '../src/mcp/catalog/naming.js';
import { LONG_TOOL_NAME } from './fixtures/fixture-server.js';
import { connectHttp, fixtureStdio, startMcplex } from './support/harness.js';

const config = {
  mcpServers: {
    alpha: fixtureStdio('--long-names'),
    beta: fixtureStdio('--long-names'),
  },
};

async function exposedNames(): Promise<string[]> {
  const mcplex = await startMcplex(config);
  try {
    await mcplex.gateway.whenSettled();
    const client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    const names = (await client.listTools()).tools.map((t) => t.name);
    // Every exposed name routes back to its own server.
    for (const name of names.filter((n) => n.includes('a_tool_with'))) {
      const result = await client.callTool({ name, arguments: { message: name } });
      expect(result.content).toEqual([{ type: 'text', text: name }]);
    }
    await client.close();
    return names;
  } finally {
    await mcplex.close();
  }
}

describe('exposed tool names', () => {
  let first: string[];

  it('keep identical tool names of two servers apart and shorten a 70-character name', async () => {
    first = await exposedNames();
    expect(first).toContain('alpha__echo');
    expect(first).toContain('beta__echo');
    expect(new Set(first).size).toBe(first.length);
    for (const name of first) expect(name).toMatch(NAME_PATTERN);
    const long = first.filter((n) => n.includes('a_tool_with'));
    expect(long).toHaveLength(2);
    for (const name of long) expect(name.length).toBeLessThanOrEqual(64);
    expect(LONG_TOOL_NAME).toHaveLength(70);
    // Nothing dropped: each fixture has ten tools with --long-names.
    expect(first).toHaveLength(20);
  });

  it('are the same after a restart', async () => {
    expect(await exposedNames()).toEqual(first);
  });
});

describe('an unprefixed server (prefix "")', () => {
  it('keeps its names and URIs as they are, routes them to it, and leaves the other servers namespaced', async () => {
    const mcplex = await startMcplex({
      mcpServers: { plain: { ...fixtureStdio('--name', 'plain'), prefix: '' }, beta: fixtureStdio('--name', 'beta') },
    });
    try {
      await mcplex.gateway.whenSettled();
      const client = await connectHttp(`${mcplex.url}/mcp`, 'modern');
      const tools = (await client.listTools()).tools.map((t) => t.name);
      expect(tools).toEqual(expect.arrayContaining(['echo', 'beta__echo', 'pid', 'beta__pid']));
      const pids = await Promise.all(
        ['pid', 'beta__pid'].map(async (name) => JSON.stringify((await client.callTool({ name })).content)),
      );
      expect(pids[0]).not.toBe(pids[1]);

      const uris = (await client.listResources()).resources.map((r) => r.uri);
      expect(uris).toEqual(expect.arrayContaining(['fixture://static/hello', 'mcplex://beta/fixture://static/hello']));
      const templates = (await client.listResourceTemplates()).resourceTemplates.map((t) => t.uriTemplate);
      expect(templates).toEqual(expect.arrayContaining(['fixture://items/{id}', 'mcplex://beta/fixture://items/{id}']));
      const read = await client.readResource({ uri: 'fixture://items/beta' });
      expect(read.contents).toEqual([expect.objectContaining({ text: 'item beta' })]);
      const prompt = await client.getPrompt({ name: 'greet', arguments: { name: 'bob' } });
      expect(prompt.messages[0]?.content).toEqual({ type: 'text', text: 'Hello, bob!' });
      const completion = await client.complete({
        ref: { type: 'ref/resource', uri: 'fixture://items/{id}' },
        argument: { name: 'id', value: 'g' },
      });
      expect(completion.completion.values).toEqual(['gamma']);
      // A URI that names no server is not taken for the unprefixed one when it looks namespaced.
      await expect(client.readResource({ uri: 'mcplex://nobody/fixture://static/hello' })).rejects.toThrow(
        /unknown resource/,
      );
      await client.close();
    } finally {
      await mcplex.close();
    }
  });
});
