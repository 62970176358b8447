// `npm start`, as a process manager runs it: a SIGTERM to npm alone must not leave the example launcher, mcplex
// or its servers running with the port held (npm's shell does not pass the signal on to its grandchildren).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import type { UpstreamStatus } from '../src/mcp/upstream/upstream.js';
import { processAlive, tempDir, waitFor } from './support/harness.js';

const dir = tempDir('mcplex-start-test-');
afterAll(() => dir.remove());

/** The parent of a process, from /proc. */
function parentOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name, in parentheses, may hold spaces: the fields after it are plain.
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

const refused = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });

describe('npm start under a process manager', () => {
  it('stops mcplex, the mock LLM and every server when npm alone gets SIGTERM', async () => {
    const env = { ...process.env, TMPDIR: dir.path, OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '' };
    // A process group of its own, so that whatever is left can be cleaned up after a failure.
    const npm = spawn('npm', ['start', '--silent', '--', '--port', '0'], {
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    npm.stdout.on('data', (chunk: Buffer) => (log += chunk.toString()));
    npm.stderr.on('data', (chunk: Buffer) => (log += chunk.toString()));
    try {
      const url = await waitFor(() => /listening on (http:\/\/\S+)\/mcp/.exec(log)?.[1], 'mcplex to listen', 60_000);
      const servers = await waitFor(async () => {
        const body = (await (await fetch(`${url}/readyz`)).json()) as { servers: UpstreamStatus[] };
        return body.servers.every((s) => s.state === 'ready') && body.servers;
      }, 'the example servers to be ready');
      const upstreams = servers.map((s) => s.pid!);
      const mcplex = parentOf(upstreams[0]!);
      const launcher = parentOf(mcplex);
      const port = Number(new URL(url).port);

      process.kill(npm.pid!, 'SIGTERM');
      await waitFor(
        () => [launcher, mcplex, ...upstreams].every((pid) => !processAlive(pid)),
        'the launcher, mcplex and its servers to exit',
        30_000,
      );
      expect(await refused(port)).toBe(true);
      expect(log).not.toMatch(/Error|unhandled/i);
    } finally {
      try {
        process.kill(-npm.pid!, 'SIGKILL');
      } catch {
        // Nothing left.
      }
    }
  }, 120_000);
});
