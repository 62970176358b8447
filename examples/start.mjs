// `npm start`: serves examples/mcplex.json with a shared LLM on /v1. With OPENAI_API_KEY (and optionally
// OPENAI_BASE_URL) or ANTHROPIC_API_KEY in the environment that provider is used; without credentials the project's
// MOCK LLM starts beside mcplex, scripted to call the example servers' tools, so the whole flow runs offline.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearInterval, clearTimeout, setInterval, setTimeout } from 'node:timers';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'bin', 'mcplex.js');
const children = [];
const dir = mkdtempSync(join(tmpdir(), 'mcplex-start-'));

const running = (child) => child.exitCode === null && child.signalCode === null;

/**
 * Stops the children and exits once they have: mcplex drains its requests and closes its servers first. One that
 * outlives its own shutdown (drainMs plus 10 s) is killed.
 */
let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  clearInterval(orphanCheck);
  const alive = children.filter(running);
  for (const child of alive) child.kill('SIGTERM');
  const force = setTimeout(() => {
    for (const child of alive) if (running(child)) child.kill('SIGKILL');
  }, 25_000);
  void Promise.all(alive.map((child) => new Promise((resolve) => child.once('exit', resolve)))).then(() => {
    clearTimeout(force);
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  });
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
process.on('SIGHUP', () => stop(0));
// A process manager that signals `npm start` alone reaches npm and its shell, not this script: when the process
// that started it is gone, it stops as if signalled rather than keep mcplex and the port.
const parent = process.ppid;
const orphanCheck = setInterval(() => {
  if (process.ppid !== parent) stop(0);
}, 500);
orphanCheck.unref();

/** Starts the mock and resolves with its base URL. */
function startMock() {
  return new Promise((resolve, reject) => {
    const mock = spawn(process.execPath, [bin, 'mock-llm', '--port', '0', '--auto-tools'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(mock);
    let out = '';
    mock.stdout.on('data', (chunk) => {
      out += chunk;
      const match = /LISTENING (\S+)/.exec(out);
      if (match) resolve(match[1]);
    });
    mock.once('exit', (code) => {
      if (!stopping) reject(new Error(`the mock LLM exited with ${code}`));
    });
  });
}

async function deployment() {
  if (process.env.OPENAI_API_KEY) {
    return {
      provider: 'openai',
      baseUrl: process.env.OPENAI_BASE_URL || 'https://api.openai.com/v1',
      apiKey: '${OPENAI_API_KEY}',
      model: process.env.OPENAI_MODEL || 'gpt-4o-mini',
    };
  }
  if (process.env.ANTHROPIC_API_KEY) {
    return {
      provider: 'anthropic',
      apiKey: '${ANTHROPIC_API_KEY}',
      model: process.env.ANTHROPIC_MODEL || 'claude-sonnet-4-5',
    };
  }
  const url = await startMock();
  process.stderr.write(
    `mcplex start: no OPENAI_API_KEY or ANTHROPIC_API_KEY in the environment, so the model behind /v1 is the ` +
      `MOCK LLM at ${url} (canned answers; it calls the example servers' tools and reports their results)\n`,
  );
  return { provider: 'openai', baseUrl: `${url}/v1`, model: 'mock' };
}

const example = JSON.parse(readFileSync(join(root, 'examples', 'mcplex.json'), 'utf8'));
const config = join(dir, 'mcplex.json');
writeFileSync(config, JSON.stringify({ ...example, llm: { models: { demo: { deployments: [await deployment()] } } } }));
if (stopping) await new Promise(() => {}); // signalled while the mock started: stop() exits
const args = ['serve', '--config', config, ...process.argv.slice(2)];
const mcplex = spawn(process.execPath, [bin, ...args], { stdio: 'inherit', cwd: root });
children.push(mcplex);
mcplex.once('exit', (code) => stop(code ?? 1));
