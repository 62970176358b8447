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
    // Nothing dropped: each fixture has eight tools with --long-names.
    expect(first).toHaveLength(16);
  });

  it('are the same after a restart', async () => {
    expect(await exposedNames()).toEqual(first);
  });
});
