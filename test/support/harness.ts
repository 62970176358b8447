// Test harness: starts mcplex in-process or as a child process, and connects SDK v2 clients in either era.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
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
import { upstreamFetch } from '../../src/mcp/upstream/transport.js';

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

/** The transports over which the tests reach server-everything. */
export const EVERYTHING_TRANSPORTS = ['stdio', 'streamable-http'] as const;
export type EverythingTransport = (typeof EVERYTHING_TRANSPORTS)[number];

/**
 * Node arguments that make a server-everything process append every JSON-RPC message it receives to `file`, one
 * per line: what arrives on stdin (stdio), or the body of each HTTP request. The recording hooks `push`, through
 * which the data reaches the stream's readers, so it neither consumes the data nor changes when it is read.
 */
function tapArgs(file: string, mode: 'stdio' | 'http'): string[] {
  const preload = `
    import { appendFileSync } from 'node:fs';
    import { IncomingMessage } from 'node:http';
    const file = ${JSON.stringify(file)};
    const record = (text) => {
      try {
        appendFileSync(file, text);
      } catch {}
    };
    if (${JSON.stringify(mode)} === 'stdio') {
      const stdin = process.stdin;
      const push = stdin.push;
      stdin.push = function (chunk, encoding) {
        if (chunk != null) record(chunk);
        return push.call(this, chunk, encoding);
      };
    } else {
      const bodies = new WeakMap();
      const push = IncomingMessage.prototype.push;
      IncomingMessage.prototype.push = function (chunk, encoding) {
        if (chunk != null) {
          const chunks = bodies.get(this) ?? [];
          chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk, encoding));
          bodies.set(this, chunks);
        } else if (bodies.has(this)) {
          record(Buffer.concat([...bodies.get(this), Buffer.from('\\n')]));
        }
        return push.call(this, chunk, encoding);
      };
    }`;
  return ['--import', `data:text/javascript,${encodeURIComponent(preload)}`];
}

/** A stdio server entry that runs server-everything from node_modules (recording what it receives in `tap`). */
export function everythingStdio(tap?: string) {
  return { command: process.execPath, args: [...(tap ? tapArgs(tap, 'stdio') : []), EVERYTHING, 'stdio'] };
}

/** A free TCP port on loopback (free when this returns; the caller binds it right away). */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

export interface EverythingHttp {
  url: string;
  /** Ends the process: SIGTERM, then SIGKILL if it has not exited after a grace period. */
  close(): Promise<void>;
}

/**
 * Runs server-everything in Streamable HTTP mode (a session per client, served at /mcp) as a child process.
 * It listens on every interface of the port in PORT; the URL returned is the loopback one.
 */
export async function everythingHttp(tap?: string): Promise<EverythingHttp> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(process.execPath, [...(tap ? tapArgs(tap, 'http') : []), EVERYTHING, 'streamableHttp'], {
      env: { ...process.env, PORT: String(port) },
      // It logs every request on stdout; unread, a pipe would fill up and block it.
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const close = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    };
    // Once it accepts connections it says `MCP Streamable HTTP Server listening on port N` on stderr.
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    const started = await new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 20_000);
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-4096);
        if (stderr.includes(`listening on port ${port}`)) resolve(true);
      });
      void exited.then(() => resolve(false));
    });
    clearTimeout(timer);
    if (started) return { url: `http://127.0.0.1:${port}/mcp`, close };
    await close();
    // It exits when the port was taken in the meantime: then another one is tried.
    if (attempt >= 3) throw new Error(`server-everything did not start listening: ${stderr}`);
  }
}

export interface EverythingUpstream {
  /** The `mcpServers` entry that reaches this server-everything. */
  server: ReturnType<typeof everythingStdio> | { url: string };
  /** The JSON-RPC messages it has received so far, in order. */
  received(): JsonRpcMessage[];
  close(): Promise<void>;
}

export interface JsonRpcMessage {
  jsonrpc: '2.0';
  id?: string | number;
  method?: string;
  params?: Record<string, unknown>;
}

/**
 * server-everything over `transport`, recording what it receives. A stdio one is started by mcplex (and
 * stopped with it); an HTTP one runs until close().
 */
export async function startEverything(transport: EverythingTransport): Promise<EverythingUpstream> {
  const dir = tempDir('mcplex-everything-');
  const tap = join(dir.path, 'received.jsonl');
  const received = () => {
    const text = existsSync(tap) ? readFileSync(tap, 'utf8') : '';
    // Whole lines only: the last one may still be being written.
    return text
      .slice(0, text.lastIndexOf('\n') + 1)
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => JSON.parse(line) as JsonRpcMessage | JsonRpcMessage[]);
  };
  if (transport === 'stdio') {
    return { server: everythingStdio(tap), received, close: async () => dir.remove() };
  }
  const http = await everythingHttp(tap);
  return {
    server: { url: http.url },
    received,
    async close() {
      await http.close();
      dir.remove();
    },
  };
}

/** The token of `/metrics` and the details of `/readyz` in the mcplex instances tests start (in keys mode). */
export const METRICS_TOKEN = 'metrics-token-of-the-tests';
/** The headers that show `/metrics` and the whole `/readyz` of a test's mcplex. */
export const OPERATOR = { authorization: `Bearer ${METRICS_TOKEN}` };

export async function startMcplex(input: ConfigInput): Promise<RunningServer> {
  // Tests keep their state in memory unless they name a store.
  // No embedding model unless a test asks for it: loading and running it would only slow unrelated tests.
  const config = parseConfig({
    store: 'memory:',
    ...input,
    agent: { embeddings: false, ...input.agent },
    server: { port: 0, metricsToken: METRICS_TOKEN, ...input.server },
  });
  return startHttp(config, createLogger(process.env.MCPLEX_TEST_LOG ?? 'silent'));
}

/** The body of a plain 2025-11-25 `initialize`, for tests that open sessions by hand. */
export function legacyInitialize(clientName = 'raw'): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: clientName, version: '1' } },
  });
}

export function clientOptions(era: Era): ClientOptions {
  return {
    capabilities: {},
    versionNegotiation: era === 'modern' ? { mode: { pin: '2026-07-28' } } : { mode: 'legacy' },
  };
}

export async function connectHttp(url: string, era: Era): Promise<Client> {
  const client = new Client({ name: `test-${era}`, version: '1.0.0' }, clientOptions(era));
  // The fetch mcplex gives its own SDK transports: thousands of requests on one client print no listener warning.
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: upstreamFetch }));
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
export function spawnMcplex(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): SpawnedMcplex {
  const child = spawn(process.execPath, [MCPLEX_BIN, ...args], {
    cwd: options.cwd ?? ROOT,
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
    const body = (await (await fetch(`${baseUrl}/readyz`, { headers: OPERATOR })).json()) as {
      servers: UpstreamStatus[];
    };
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

/** Reads a server-sent events response event by event (its id and data); undefined once it has ended. */
export function sseEvents(response: Response): {
  next(): Promise<{ id?: string; data: string } | undefined>;
  stop(): void;
} {
  const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  return {
    async next() {
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
          }
          return { ...(id === undefined ? {} : { id }), data: data.join('\n') };
        }
        const { value, done } = await reader.read();
        if (done) return undefined;
        buffer += value;
      }
    },
    stop: () => void reader.cancel().catch(() => {}),
  };
}
