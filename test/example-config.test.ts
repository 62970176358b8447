// The bundled example (what `npm start` runs): three reference servers from npm over stdio, nothing fetched.
import { afterAll, describe, expect, it } from 'vitest';
import type { UpstreamStatus } from '../src/mcp/upstream/upstream.js';
import { connectHttp, spawnMcplex, tempDir, waitFor } from './support/harness.js';

const dir = tempDir();
afterAll(() => dir.remove());

describe('examples/mcplex.json', () => {
  it('serves server-everything, server-memory and server-filesystem behind one endpoint', async () => {
    const mcplex = spawnMcplex(['serve', '--config', 'examples/mcplex.json', '--port', '0'], {
      env: { TMPDIR: dir.path },
    });
    try {
      const url = await waitFor(
        () => /listening on (http:\/\/\S+)\/mcp/.exec(mcplex.stderr())?.[1],
        'mcplex to listen',
      );
      const servers = await waitFor(async () => {
        const body = (await (await fetch(`${url}/readyz`)).json()) as { servers: UpstreamStatus[] };
        return body.servers.every((s) => s.state === 'ready') && body.servers;
      }, 'every server to be ready');
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
