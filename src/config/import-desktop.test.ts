// Unit tests for importing Claude Desktop / Cursor / VS Code MCP configs.
import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { importDesktopConfig } from './import-desktop.js';
import { parseConfig } from './load-config.js';

describe('importDesktopConfig', () => {
  it('converts a Claude Desktop config', () => {
    const raw = {
      globalShortcut: 'Ctrl+Space',
      mcpServers: {
        filesystem: {
          command: 'npx',
          args: ['-y', '@modelcontextprotocol/server-filesystem', '/Users/me/Desktop'],
          env: { DEBUG: '1', PORT: 3000 },
          autoApprove: ['read_file'],
        },
        'brave search': { command: 'npx', args: ['-y', 'brave'] },
        'brave.search': { command: 'npx', args: ['-y', 'brave2'] },
        remote: { url: 'https://example.com/mcp', headers: { Authorization: 'Bearer x' } },
      },
    };
    const { config, warnings } = importDesktopConfig(raw);
    expect(config).toEqual({
      mcpServers: {
        filesystem: {
          command: 'npx',
          args: ['-y', '@modelcontextprotocol/server-filesystem', '/Users/me/Desktop'],
          env: { DEBUG: '1', PORT: '3000' },
        },
        'brave-search': { command: 'npx', args: ['-y', 'brave'] },
        'brave-search-2': { command: 'npx', args: ['-y', 'brave2'] },
        remote: { url: 'https://example.com/mcp', headers: { Authorization: 'Bearer x' } },
      },
    });
    expect(warnings).toEqual([
      'globalShortcut: dropped (not supported by mcplex)',
      'mcpServers.filesystem.autoApprove: dropped (not supported by mcplex)',
      'mcpServers["brave search"]: renamed server "brave search" to "brave-search"',
      'mcpServers["brave.search"]: renamed server "brave.search" to "brave-search-2"',
    ]);

    const parsed = parseConfig(config, {});
    expect(parsed.mcpServers.filesystem).toMatchObject({ transport: 'stdio', prefix: 'filesystem' });
    expect(parsed.mcpServers['brave-search-2']).toMatchObject({ transport: 'stdio', prefix: 'brave-search-2' });
    expect(parsed.mcpServers.remote).toMatchObject({ transport: 'streamable-http' });
  });

  it('converts a VS Code mcp.json (servers + typed entries + inputs)', () => {
    const raw = {
      inputs: [{ type: 'promptString', id: 'token', description: 'API token', password: true }],
      servers: {
        github: {
          type: 'http',
          url: 'https://api.githubcopilot.com/mcp/',
          headers: { Authorization: 'Bearer ${input:token}' },
        },
        memory: {
          type: 'stdio',
          command: 'npx',
          args: ['-y', '@modelcontextprotocol/server-memory'],
          env: { MEMORY_FILE_PATH: '${userHome}/memory.json', KEY: '${env:MY_KEY}' },
          envFile: '${workspaceFolder}/.env',
        },
        legacy: { type: 'sse', url: 'http://localhost:3001/sse' },
      },
    };
    const { config, warnings } = importDesktopConfig(raw);
    expect(config.mcpServers).toEqual({
      github: {
        type: 'http',
        url: 'https://api.githubcopilot.com/mcp/',
        headers: { Authorization: 'Bearer $${input:token}' },
      },
      memory: {
        type: 'stdio',
        command: 'npx',
        args: ['-y', '@modelcontextprotocol/server-memory'],
        env: { MEMORY_FILE_PATH: '${HOME}/memory.json', KEY: '${MY_KEY}' },
      },
      legacy: { type: 'sse', url: 'http://localhost:3001/sse' },
    });
    expect(warnings).toEqual([
      'inputs: dropped (not supported by mcplex)',
      expect.stringMatching(/^servers\.github\.headers\.Authorization: "\$\{input:token\}" is an editor variable/),
      'servers.memory.envFile: dropped (not supported by mcplex)',
    ]);

    const parsed = parseConfig(config, { HOME: '/home/me', MY_KEY: 'k' });
    expect(parsed.mcpServers.github).toMatchObject({
      transport: 'streamable-http',
      headers: { Authorization: 'Bearer ${input:token}' },
    });
    expect(parsed.mcpServers.memory).toMatchObject({
      transport: 'stdio',
      env: { MEMORY_FILE_PATH: '/home/me/memory.json', KEY: 'k' },
    });
    expect(parsed.mcpServers.legacy).toMatchObject({ transport: 'sse' });
  });

  it('reads servers from a VS Code settings.json (mcp.servers), ignoring unrelated settings', () => {
    const raw = {
      'editor.fontSize': 14,
      mcp: { servers: { time: { command: 'uvx', args: ['mcp-server-time'] } }, discovery: { enabled: true } },
    };
    const { config, warnings } = importDesktopConfig(raw);
    expect(config).toEqual({ mcpServers: { time: { command: 'uvx', args: ['mcp-server-time'] } } });
    expect(warnings).toEqual(['mcp.discovery: dropped (not supported by mcplex)']);
    expect(parseConfig(config, {}).mcpServers.time?.transport).toBe('stdio');
  });

  it('skips unusable entries and drops keys that do not fit the server kind', () => {
    const { config, warnings } = importDesktopConfig({
      mcpServers: {
        both: { command: 'x', url: 'http://h/mcp' },
        neither: { args: [] },
        notObject: 'npx foo',
        web: { url: 'http://h/mcp', args: ['x'], type: 'stdio' },
      },
    });
    expect(config).toEqual({ mcpServers: { web: { url: 'http://h/mcp' } } });
    expect(warnings).toHaveLength(5);
    expect(parseConfig(config, {}).mcpServers.web?.transport).toBe('streamable-http');
  });

  it('sanitises names: truncation, leading punctuation, and collisions with valid names', () => {
    const long = `${'x'.repeat(40)}!`;
    const { config } = importDesktopConfig({
      mcpServers: {
        '@scope/pkg': { command: 'a' },
        'scope-pkg': { command: 'b' },
        [long]: { command: 'c' },
        [`${'x'.repeat(40)}?`]: { command: 'd' },
      },
    });
    const keys = Object.keys(config.mcpServers);
    expect(keys).toEqual(['scope-pkg-2', 'scope-pkg', 'x'.repeat(32), `${'x'.repeat(30)}-2`]);
    expect(Object.keys(parseConfig(config, {}).mcpServers)).toEqual(keys);
  });

  it('throws a ConfigError when there is nothing to import', () => {
    expect(() => importDesktopConfig({ foo: {} })).toThrow(ConfigError);
    expect(() => importDesktopConfig([])).toThrow(ConfigError);
  });
});
