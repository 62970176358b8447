// `mcplex cluster up`: N replicas of `mcplex serve` on one configuration (PostgreSQL + Redis) behind nginx in
// plain round robin, on this machine; `mcplex cluster status`: the live replicas as their heartbeats in Redis
// tell. startCluster is what both the command and the tests run.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BIN = join(ROOT, 'bin', 'mcplex.js');

export interface ClusterOptions {
  replicas: number;
  /** Where nginx listens (127.0.0.1); replica i listens on port + i. */
  port: number;
  /** The configuration every replica runs (it must name a shared store and Redis). */
  config: string;
  /** Names are `<prefix>-<i>`. Default "replica". */
  namePrefix?: string;
  env?: NodeJS.ProcessEnv;
  /** Where the logs (one file per replica, nginx's) and nginx's files go. Default: a new temporary directory. */
  dir?: string;
}

export interface ClusterReplica {
  readonly name: string;
  readonly url: string;
  /** The running process, if any. */
  readonly process: ChildProcess | undefined;
  /** Starts the replica (again) and waits until it is ready. */
  start(): Promise<void>;
  /** Sends `signal` (SIGKILL: dies at once; SIGTERM: drains) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface RunningCluster {
  /** nginx's address: what clients use. */
  readonly url: string;
  readonly replicas: readonly ClusterReplica[];
  readonly dir: string;
  stop(): Promise<void>;
}

/** A port on 127.0.0.1 with the next `count - 1` free as well: nginx's, then one per replica. */
export async function freePortRun(count: number): Promise<number> {
  const free = (port: number) =>
    new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
  for (;;) {
    const base = 20_000 + Math.floor(Math.random() * 20_000);
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await free(base + i);
    if (ok) return base;
  }
}

function nginxBinary(): string | undefined {
  for (const candidate of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/** nginx from Debian's packages, installed by the project's own script when it is missing. */
export async function ensureNginx(): Promise<string> {
  const found = nginxBinary();
  if (found) return found;
  const install = spawn('sh', [join(ROOT, 'deploy', 'install-lb.sh')], { stdio: 'inherit' });
  const code = await new Promise<number | null>((resolve) => install.once('exit', resolve));
  const installed = nginxBinary();
  if (code !== 0 || !installed)
    throw new Error('nginx is not installed and could not be installed (deploy/install-lb.sh)');
  return installed;
}

/** Polls `url` until it answers 200, or fails after `timeoutMs`, or as soon as `child` exits. */
async function waitUntilReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${url}: the process exited first`);
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      if (response.status === 200) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`${url}: not ready within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

export interface Balancer {
  readonly url: string;
  stop(): Promise<void>;
}

/** nginx on 127.0.0.1:`port` in front of `replicas` (deploy/nginx.conf), its files and log in `dir`. */
export async function startBalancer(options: { dir: string; port: number; replicas: string[] }): Promise<Balancer> {
  const nginx = await ensureNginx();
  const { dir, port } = options;
  mkdirSync(dir, { recursive: true });
  // nginx's workers may run as another user than its master: they write their temporary files here.
  chmodSync(dir, 0o777);
  const servers = options.replicas
    .map((url) => `server ${new URL(url).host} max_fails=1 fail_timeout=2s;`)
    .join('\n    ');
  const conf = readFileSync(join(ROOT, 'deploy', 'nginx.conf'), 'utf8')
    .replaceAll('{{PREFIX}}', dir)
    .replaceAll('{{LISTEN}}', `127.0.0.1:${port}`)
    .replaceAll('{{SERVERS}}', servers);
  const file = join(dir, `nginx-${port}.conf`);
  writeFileSync(file, conf);
  const log = createWriteStream(join(dir, `nginx-${port}.log`), { flags: 'a' });
  const child = spawn(nginx, ['-p', dir, '-c', file, '-g', `daemon off; pid ${join(dir, `nginx-${port}.pid`)};`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const done = exited(child);
    child.kill('SIGQUIT');
    await done;
  };
  try {
    await waitUntilReady(`http://127.0.0.1:${port}/healthz`, child, 10_000);
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `http://127.0.0.1:${port}`, stop };
}

export async function startCluster(options: ClusterOptions): Promise<RunningCluster> {
  await ensureNginx();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'mcplex-cluster-'));
  mkdirSync(dir, { recursive: true });
  const prefix = options.namePrefix ?? 'replica';
  const replicas: ClusterReplica[] = [];
  for (let i = 1; i <= options.replicas; i++) {
    const name = `${prefix}-${i}`;
    const port = options.port + i;
    const url = `http://127.0.0.1:${port}`;
    let child: ChildProcess | undefined;
    replicas.push({
      name,
      url,
      get process() {
        return child;
      },
      async start() {
        const log = createWriteStream(join(dir, `${name}.log`), { flags: 'a' });
        child = spawn(
          process.execPath,
          [BIN, 'serve', '--config', options.config, '--port', String(port), '--name', name],
          { cwd: ROOT, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        child.stdout?.pipe(log);
        child.stderr?.pipe(log);
        await waitUntilReady(`${url}/readyz`, child, 60_000);
      },
      async stop(signal = 'SIGTERM') {
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const done = exited(child);
        child.kill(signal);
        await done;
      },
    });
  }
  let balancer: Balancer | undefined;
  const stopAll = async () => {
    await Promise.all(replicas.map((r) => r.stop('SIGTERM')));
    await balancer?.stop();
  };
  try {
    await Promise.all(replicas.map((r) => r.start()));
    balancer = await startBalancer({ dir, port: options.port, replicas: replicas.map((r) => r.url) });
  } catch (error) {
    await stopAll();
    throw new Error(`the cluster did not start: ${errorMessage(error)} (logs in ${dir})`, { cause: error });
  }
  return { url: `http://127.0.0.1:${options.port}`, replicas, dir, stop: stopAll };
}

/**
 * deploy/cluster.json takes the replicas' shared requestState key from the environment (MCPLEX_REQUEST_STATE_KEY):
 * a run without one gets a random key of its own, never a default anyone could know.
 */
function clusterKey(): string {
  process.env.MCPLEX_REQUEST_STATE_KEY ??= randomBytes(32).toString('hex');
  return process.env.MCPLEX_REQUEST_STATE_KEY;
}

function parseCount(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > 32) throw new Error('expected a whole number from 1 to 32');
  return number;
}

export function registerClusterCommands(
  program: Command,
  load: (path: string) => Promise<Config>,
  fail: (message: string) => never,
): void {
  const cluster = program.command('cluster').description('run several replicas behind nginx, and see them');
  cluster
    .command('up')
    .description('start N replicas of `mcplex serve` on one configuration behind nginx (round robin) on this machine')
    .option('-c, --config <path>', 'configuration every replica runs (shared store and Redis)', 'deploy/cluster.json')
    .option('-r, --replicas <n>', 'how many replicas', parseCount, 3)
    .option('-p, --port <port>', "nginx's port; replica i listens on port + i", (v) => Number(v), 7070)
    .action(async (options: { config: string; replicas: number; port: number }) => {
      const env = { MCPLEX_REQUEST_STATE_KEY: clusterKey() };
      const config = await load(options.config);
      if (!config.redis || !config.store?.startsWith('postgres')) {
        fail(
          `${options.config}: replicas need a shared store and Redis ("store": "postgres://…", "redis": "redis://…")`,
        );
      }
      const running = await startCluster({ ...options, env }).catch((error: unknown) => fail(errorMessage(error)));
      process.stdout.write(
        `mcplex cluster: ${running.url}/mcp and ${running.url}/v1 through nginx, ` +
          `${running.replicas.map((r) => `${r.name} (${r.url})`).join(', ')}; logs in ${running.dir}\n`,
      );
      const stop = () => void running.stop().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
  cluster
    .command('status')
    .description("list the live replicas (their heartbeats in the configuration's Redis)")
    .option('-c, --config <path>', 'configuration file (JSON or YAML)', 'mcplex.json')
    .option('--json', 'print JSON')
    .action(async (options: { config: string; json?: boolean }) => {
      clusterKey();
      const config = await load(options.config);
      if (!config.redis) fail(`${options.config} names no Redis: there is one replica, the process you run`);
      const { openRedisState } = await import('../store/redis/redis-state.js');
      const redis = await openRedisState(config.redis.url, { prefix: config.redis.prefix }).catch((error: unknown) =>
        fail(errorMessage(error)),
      );
      try {
        const replicas = await redis.replicas.list();
        if (options.json) {
          process.stdout.write(`${JSON.stringify(replicas, null, 2)}\n`);
          return;
        }
        for (const r of replicas) {
          const upstreams = r.upstreams.map((u) => `${u.key} ${u.state} (${u.tools} tools)`).join(', ');
          const age = Math.max(0, Math.round((Date.now() - r.beatAt) / 100) / 10);
          process.stdout.write(
            `${r.name}\tpid ${r.pid}\t${r.draining ? 'draining' : 'serving'}\tsessions in use ${r.sessionsInUse}\t` +
              `beat ${age}s ago\t${upstreams}\n`,
          );
        }
        if (replicas.length === 0) process.stdout.write('no live replica\n');
      } finally {
        await redis.close();
      }
    });
}
