// Faults: a crashed server is restarted while the others keep answering; broken and silent servers never
// hold up the catalog; expired upstream sessions and slow calls are handled; no child outlives mcplex.
import { createServer as createNetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import type { UpstreamStatus } from '../src/mcp/upstream/upstream.js';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import {
  connectHttp,
  everythingStdio,
  fixtureStdio,
  allReady,
  listeningUrl,
  processAlive,
  spawnMcplex,
  startMcplex,
  tempDir,
  waitFor,
  writeConfig,
} from './support/harness.js';

const HANG = { command: process.execPath, args: ['-e', 'setInterval(() => {}, 1000)'] };
const fast = { restart: { initialDelay: 100, maxDelay: 1000 } };

function statusOf(mcplex: RunningServer, name: string): UpstreamStatus {
  const status = mcplex.gateway.status().servers.find((s) => s.name === name);
  if (!status) throw new Error(`no server ${name}`);
  return status;
}

describe('a crashed stdio server', () => {
  let mcplex: RunningServer;
  let client: Client;
  beforeAll(async () => {
    mcplex = await startMcplex({
      mcpServers: { everything: everythingStdio(), victim: { ...fixtureStdio(), ...fast } },
    });
    await mcplex.gateway.whenSettled();
    client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
  });
  afterAll(async () => {
    await client?.close();
    await mcplex?.close();
  });

  it('leaves the others answering, is restarted, and its tools come back under the same names', async () => {
    const before = (await client.listTools()).tools.map((t) => t.name);
    expect(before).toContain('victim__echo');
    const pid = statusOf(mcplex, 'victim').pid!;
    expect(pid).toBeGreaterThan(0);

    process.kill(pid, 'SIGKILL');
    await waitFor(() => statusOf(mcplex, 'victim').state !== 'ready', 'the crash to be noticed');
    const during = (await client.listTools()).tools.map((t) => t.name);
    expect(during.some((n) => n.startsWith('victim__'))).toBe(false);
    const echo = await client.callTool({ name: 'everything__echo', arguments: { message: 'still here' } });
    expect(echo.content).toEqual([{ type: 'text', text: 'Echo: still here' }]);

    await waitFor(() => statusOf(mcplex, 'victim').state === 'ready', 'the restart');
    const status = statusOf(mcplex, 'victim');
    expect(status.restarts).toBeGreaterThanOrEqual(1);
    expect(status.pid).not.toBe(pid);
    expect(processAlive(pid)).toBe(false);
    const after = (await client.listTools()).tools.map((t) => t.name);
    expect(after).toEqual(before);
    const result = await client.callTool({ name: 'victim__echo', arguments: { message: 'back' } });
    expect(result.content).toEqual([{ type: 'text', text: 'back' }]);
  });
});

describe('broken and silent servers', () => {
  let mcplex: RunningServer;
  beforeAll(async () => {
    mcplex = await startMcplex({
      mcpServers: {
        good: fixtureStdio(),
        badcommand: { command: '/nonexistent/mcp-server', ...fast },
        silent: { ...HANG, timeouts: { startup: 1000 }, ...fast },
        slowpoke: { ...HANG, timeouts: { startup: 60_000 } },
      },
    });
  });
  afterAll(async () => {
    await mcplex?.close();
  });

  it('do not hold up tools/list', async () => {
    await waitFor(() => statusOf(mcplex, 'good').state === 'ready', 'the good server');
    const client = await connectHttp(`${mcplex.url}/mcp`, 'modern');
    const { tools } = await client.listTools();
    // The list came back while a server was still inside its 60 s startup window: nothing waited for it.
    expect(statusOf(mcplex, 'slowpoke').state).toBe('connecting');
    expect(tools.map((t) => t.name)).toContain('good__echo');
    expect(tools.every((t) => t.name.startsWith('good__'))).toBe(true);
    await client.close();
  });

  it('show as failed in /readyz with the reason', async () => {
    const body = await waitFor(async () => {
      const response = await fetch(`${mcplex.url}/readyz`);
      const body = (await response.json()) as { servers: UpstreamStatus[] };
      const byName = Object.fromEntries(body.servers.map((s) => [s.name, s]));
      return byName.badcommand?.lastError && byName.silent?.lastError ? byName : undefined;
    }, 'both failures to be reported');
    expect(['failed', 'restarting']).toContain(body.badcommand!.state);
    expect(body.badcommand!.lastError).toMatch(/ENOENT|not found/);
    expect(['failed', 'restarting']).toContain(body.silent!.state);
    expect(body.silent!.lastError).toMatch(/startup timeout \(1000 ms\)/);
    expect(body.good!.state).toBe('ready');
  });
});

describe('why a server failed', () => {
  it("names a child's own error and a remote server's URL and network error (regression: both were hidden)", async () => {
    // A port that was free a moment ago: nothing listens there.
    const closed = await new Promise<number>((resolve) => {
      const server = createNetServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as AddressInfo;
        server.close(() => resolve(port));
      });
    });
    const mcplex = await startMcplex({
      mcpServers: {
        // The mistake users make most: a path to a script that is not there.
        wrongpath: { command: process.execPath, args: ['/nonexistent/dir/server.js'], ...fast },
        down: { url: `http://127.0.0.1:${closed}/mcp?token=hidden`, ...fast },
        credentials: { url: `http://user:secret@127.0.0.1:${closed}/mcp?token=hidden`, ...fast },
      },
    });
    try {
      await mcplex.gateway.whenSettled();
      const body = (await (await fetch(`${mcplex.url}/readyz`)).json()) as { servers: UpstreamStatus[] };
      const byName = Object.fromEntries(body.servers.map((s) => [s.name, s]));
      expect(byName.wrongpath!.lastError).toMatch(/^the server stopped during start-up, saying: .*Cannot find module/);
      expect(byName.wrongpath!.lastError).toContain('/nonexistent/dir/server.js');
      expect(byName.down!.lastError).toContain('ECONNREFUSED');
      expect(byName.down!.lastError).toContain(`http://127.0.0.1:${closed}/mcp`);
      expect(byName.down!.lastError).not.toContain('hidden');
      // fetch quotes a URL with credentials in its error: they must not reach the log or /readyz.
      expect(byName.credentials!.lastError).toContain(`http://127.0.0.1:${closed}/mcp`);
      expect(byName.credentials!.lastError).not.toMatch(/secret|hidden/);
    } finally {
      await mcplex.close();
    }
  });
});

describe('Streamable HTTP upstream sessions and call timeouts', () => {
  let fixture: FixtureHandle;
  let mcplex: RunningServer;
  let client: Client;
  beforeAll(async () => {
    fixture = await startFixtureHttp({ legacyOnly: true });
    mcplex = await startMcplex({
      mcpServers: { web: { url: fixture.url, timeouts: { call: 500 } } },
    });
    await mcplex.gateway.whenSettled();
    client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
  });
  afterAll(async () => {
    await client?.close();
    await mcplex?.close();
    await fixture?.close();
  });

  it('re-initialises an expired upstream session transparently', async () => {
    expect(statusOf(mcplex, 'web').era).toBe('legacy');
    const first = await client.callTool({ name: 'web__echo', arguments: { message: 'one' } });
    expect(first.content).toEqual([{ type: 'text', text: 'one' }]);
    fixture.dropSessions();
    const second = await client.callTool({ name: 'web__echo', arguments: { message: 'two' } });
    expect(second.content).toEqual([{ type: 'text', text: 'two' }]);
    expect(statusOf(mcplex, 'web').state).toBe('ready');
  });

  it('lets a call run past the call timeout while it reports progress', async () => {
    const result = await client.callTool({ name: 'web__slow', arguments: { ms: 1500, steps: 15 } });
    expect(result.content).toEqual([{ type: 'text', text: 'done' }]);
  });

  it('ends a silent call at the call timeout with a clear error, and stays up', async () => {
    await expect(client.callTool({ name: 'web__slow', arguments: { ms: 1500, steps: 1 } })).rejects.toThrow(
      /server "web" did not answer in time/,
    );
    const result = await client.callTool({ name: 'web__echo', arguments: { message: 'alive' } });
    expect(result.content).toEqual([{ type: 'text', text: 'alive' }]);
  });
});

describe('shutdown', () => {
  const dir = tempDir();
  afterAll(() => dir.remove());

  it('leaves no child process behind', async () => {
    const config = writeConfig(dir.path, {
      mcpServers: { everything: everythingStdio(), fixture: fixtureStdio() },
      server: { port: 0 },
      store: 'memory:',
    });
    const mcplex = spawnMcplex(['serve', '--config', config]);
    try {
      const url = await listeningUrl(mcplex);
      const servers = await allReady(url);
      const pids = servers.map((s) => s.pid!);
      expect(pids.every((pid) => pid > 0 && processAlive(pid))).toBe(true);
      expect(await mcplex.stop('SIGTERM')).toBe(0);
      await waitFor(() => pids.every((pid) => !processAlive(pid)), 'children to exit', 5000);
    } finally {
      await mcplex.stop('SIGKILL');
    }
  });
});

describe('closing while a server is still starting', () => {
  it('ends the attempt and leaves no child behind', async () => {
    const mcplex = await startMcplex({ mcpServers: { slowpoke: { ...HANG, timeouts: { startup: 60_000 } } } });
    const pid = await waitFor(() => statusOf(mcplex, 'slowpoke').pid ?? undefined, 'the child to start');
    expect(statusOf(mcplex, 'slowpoke').state).toBe('connecting');
    expect(processAlive(pid)).toBe(true);
    await mcplex.close();
    expect(processAlive(pid)).toBe(false);
  });
});

describe('fast path and SDK path on one upstream session', () => {
  let fixture: FixtureHandle;
  let mcplex: RunningServer;
  beforeAll(async () => {
    fixture = await startFixtureHttp({ legacyOnly: true });
    mcplex = await startMcplex({ mcpServers: { web: { url: fixture.url } } });
    await mcplex.gateway.whenSettled();
  });
  afterAll(async () => {
    await mcplex?.close();
    await fixture?.close();
  });

  it('keep their request ids apart (regression: fast-path ids collided with the SDK client ids)', async () => {
    const client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    const progress: number[] = [];
    // With a progress token the call takes the SDK client path; the echo calls take the fast path.
    const slow = client.callTool(
      { name: 'web__slow', arguments: { ms: 600, steps: 4 } },
      { onprogress: (p) => progress.push(p.progress) },
    );
    const echoes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.callTool({ name: 'web__echo', arguments: { message: `m${i}` } })),
    );
    expect(echoes.map((r) => (r.content as { text: string }[])[0]!.text)).toEqual(
      Array.from({ length: 20 }, (_, i) => `m${i}`),
    );
    expect((await slow).content).toEqual([{ type: 'text', text: 'done' }]);
    expect(progress).toEqual([1, 2, 3, 4]);
    await client.close();
  });
});
