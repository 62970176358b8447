// The `mcplex` command line: start-up progress, refusal to listen beyond loopback, config errors, import.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config/load-config.js';
import { fixtureStdio, spawnMcplex, tempDir, waitFor, writeConfig } from './support/harness.js';

const dir = tempDir();
afterAll(() => dir.remove());

describe('mcplex serve', () => {
  it('shows each server connecting, then ready with its tool count or failed with the reason', async () => {
    const config = writeConfig(dir.path, {
      mcpServers: { good: fixtureStdio(), broken: { command: '/nonexistent/server' } },
      server: { port: 0 },
    });
    const mcplex = spawnMcplex(['serve', '--config', config]);
    try {
      await waitFor(() => /good: ready with \d+ tools/.test(mcplex.stderr()), 'the good server to be ready');
      const log = mcplex.stderr();
      expect(log).toMatch(/good: connecting \(stdio\)/);
      expect(log).toMatch(/good: ready with 8 tools \((legacy|modern) era\)/);
      expect(log).toMatch(/broken: failed: command not found/);
      // The listener came up without waiting for every server.
      expect(log).toMatch(/listening on http:\/\/127\.0\.0\.1:\d+\/mcp/);
    } finally {
      expect(await mcplex.stop()).toBe(0);
    }
  });

  it('refuses to listen beyond loopback and says why', async () => {
    const config = writeConfig(dir.path, { mcpServers: {} }, 'empty.json');
    const mcplex = spawnMcplex(['serve', '--config', config, '--host', '0.0.0.0']);
    expect(await mcplex.exited).toBe(1);
    expect(mcplex.stderr()).toMatch(
      /refusing to listen on 0\.0\.0\.0: without API keys mcplex only listens on loopback/,
    );
  });

  it('lists every configuration problem with its path and exits non-zero', async () => {
    const config = writeConfig(
      dir.path,
      {
        mcpServers: { fs: { comand: 'npx' }, web: { url: 'not a url' } },
        server: { port: 'x' },
        mcpServer: {},
      },
      'bad.json',
    );
    const mcplex = spawnMcplex(['serve', '--config', config]);
    expect(await mcplex.exited).toBe(1);
    const err = mcplex.stderr();
    expect(err).toContain(config);
    expect(err).toMatch(/mcpServers\.fs.*unknown key "comand" \(did you mean "command"\?\)/);
    expect(err).toMatch(/mcpServers\.web\.url/);
    expect(err).toMatch(/server\.port/);
    expect(err).toMatch(/unknown key "mcpServer" \(did you mean "mcpServers"\?\)/);
  });

  it('names a configuration file that cannot be read', async () => {
    const mcplex = spawnMcplex(['serve', '--config', join(dir.path, 'missing.json')]);
    expect(await mcplex.exited).toBe(1);
    expect(mcplex.stderr()).toContain('missing.json');
  });
});

describe('mcplex import', () => {
  it('prints an equivalent mcplex configuration for a desktop client file', async () => {
    const desktop = join(dir.path, 'claude_desktop_config.json');
    writeFileSync(
      desktop,
      JSON.stringify({
        mcpServers: {
          filesystem: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'] },
          'my remote': { url: 'https://example.com/mcp', headers: { Authorization: 'Bearer ${TOKEN}' } },
        },
      }),
    );
    const mcplex = spawnMcplex(['import', desktop]);
    expect(await mcplex.exited).toBe(0);
    const printed = JSON.parse(mcplex.stdout()) as { mcpServers: Record<string, unknown> };
    expect(Object.keys(printed.mcpServers).sort()).toEqual(['filesystem', 'my-remote']);
    const config = parseConfig(printed, { TOKEN: 'secret' });
    expect(config.mcpServers.filesystem).toMatchObject({ transport: 'stdio', command: 'npx' });
    expect(config.mcpServers['my-remote']).toMatchObject({
      transport: 'streamable-http',
      url: 'https://example.com/mcp',
    });
    expect(mcplex.stderr()).toMatch(/my remote/);
  });
});
