// Test harness: starts mcplex in-process or as a child process, and connects SDK v2 clients in either era.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import type { ClientOptions } from '@modelcontextprotocol/client';
import { parseConfig } from '../../src/config/load-config.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { createLogger } from '../../src/log/logger.js';
import { startHttp } from '../../src/main.js';
import type { RunningServer } from '../../src/main.js';
import type { UpstreamStatus } from '../../src/mcp/upstream/upstream.js';

const require = createRequire(import.meta.url);

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const FIXTURE = fileURLToPath(new URL('../fixtures/fixture-server.ts', import.meta.url));
export const MCPLEX_BIN = join(ROOT, 'bin', 'mcplex.js');
export const EVERYTHING = require.resolve('@modelcontextprotocol/server-everything/dist/index.js');

export type Era = 'legacy' | 'modern';

/** A stdio server entry that runs the project's fixture. */
export function fixtureStdio(...extraArgs: string[]) {
  return {
    command: process.execPath,
    args: ['--import', 'tsx', FIXTURE, '--transport', 'stdio', ...extraArgs],
    cwd: ROOT,
  };
}

/** A stdio server entry that runs server-everything from node_modules. */
export function everythingStdio() {
  return { command: process.execPath, args: [EVERYTHING, 'stdio'] };
}

export async function startMcplex(input: ConfigInput): Promise<RunningServer> {
  const config = parseConfig({ ...input, server: { port: 0, ...input.server } });
  return startHttp(config, createLogger(process.env.MCPLEX_TEST_LOG ?? 'silent'));
}

export function clientOptions(era: Era): ClientOptions {
  return {
    capabilities: {},
    versionNegotiation: era === 'modern' ? { mode: { pin: '2026-07-28' } } : { mode: 'legacy' },
  };
}

export async function connectHttp(url: string, era: Era): Promise<Client> {
  const client = new Client({ name: `test-${era}`, version: '1.0.0' }, clientOptions(era));
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  return client;
}

export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function tempDir(prefix = 'mcplex-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export function writeConfig(dir: string, config: unknown, name = 'mcplex.json'): string {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(config, null, 2));
  return path;
}

export interface SpawnedMcplex {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs the built `mcplex` command as a child process, capturing its output. */
export function spawnMcplex(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): SpawnedMcplex {
  const child = spawn(process.execPath, [MCPLEX_BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** The base URL a spawned `mcplex serve` announced it listens on. */
export function listeningUrl(mcplex: SpawnedMcplex): Promise<string> {
  return waitFor(() => /listening on (http:\/\/\S+)\/mcp/.exec(mcplex.stderr())?.[1], 'mcplex to listen');
}

/** Waits until /readyz reports every server ready, and returns their states. */
export function allReady(baseUrl: string): Promise<UpstreamStatus[]> {
  return waitFor(async () => {
    const body = (await (await fetch(`${baseUrl}/readyz`)).json()) as { servers: UpstreamStatus[] };
    return body.servers.every((s) => s.state === 'ready') && body.servers;
  }, 'every server to be ready');
}

/** True while a process with this pid exists (and is not a zombie waiting to be reaped). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return !/^State:\s+Z/m.test(status);
  } catch {
    return false;
  }
}
