// The bundled example (what `npm start` runs): three reference servers from npm over stdio, nothing fetched.
import { afterAll, describe, expect, it } from 'vitest';
import { allReady, connectHttp, listeningUrl, spawnMcplex, tempDir } from './support/harness.js';

const dir = tempDir();
afterAll(() => dir.remove());

describe('examples/mcplex.json', () => {
  it('serves server-everything, server-memory and server-filesystem behind one endpoint', async () => {
    const mcplex = spawnMcplex(['serve', '--config', 'examples/mcplex.json', '--port', '0'], {
      env: { TMPDIR: dir.path },
    });
    try {
      const url = await listeningUrl(mcplex);
      const servers = await allReady(url);
      expect(Object.fromEntries(servers.map((s) => [s.name, s.tools]))).toEqual({
        everything: 17,
        memory: 9,
        filesystem: 14,
      });
      const client = await connectHttp(`${url}/mcp`, 'legacy');
      const listed = await client.callTool({ name: 'filesystem__list_allowed_directories', arguments: {} });
      expect(JSON.stringify(listed.content)).toContain('sandbox');
      const entities = await client.callTool({
        name: 'memory__create_entities',
        arguments: { entities: [{ name: 'mcplex', entityType: 'project', observations: ['aggregates MCP servers'] }] },
      });
      expect(entities.isError ?? false).toBe(false);
      await client.close();
    } finally {
      expect(await mcplex.stop()).toBe(0);
    }
  });
});
