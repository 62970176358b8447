// The bundled example (what `npm start` runs): three reference servers from npm over stdio, nothing fetched.
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, allReady, connectHttp, listeningUrl, spawnMcplex, tempDir, waitFor } from './support/harness.js';

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

describe('npm start without provider credentials', () => {
  it('runs the MOCK LLM beside mcplex, says so, and the tool-running chat works offline', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: dir.path };
    delete env.OPENAI_API_KEY;
    delete env.ANTHROPIC_API_KEY;
    const child = spawn(process.execPath, ['examples/start.mjs', '--port', '0'], { cwd: ROOT, env });
    let err = '';
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    try {
      const url = await waitFor(() => /listening on (http:\/\/\S+)\/mcp/.exec(err)?.[1], 'mcplex to listen');
      expect(err).toMatch(/the model behind \/v1 is the MOCK LLM/);
      await allReady(url);
      const response = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'demo',
          messages: [{ role: 'user', content: 'hello from the demo' }],
          mcp: { servers: ['everything'] },
        }),
      });
      const answer = (await response.json()) as {
        choices: { message: { content: string } }[];
        mcp: { steps: unknown[] };
      };
      expect(answer.choices[0]?.message.content).toContain('Echo: hello from the demo');
      expect(answer.mcp.steps).toHaveLength(1);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});
