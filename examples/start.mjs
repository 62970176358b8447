// `npm start`: serves examples/mcplex.json with a shared LLM on /v1. With OPENAI_API_KEY (and optionally
// OPENAI_BASE_URL) or ANTHROPIC_API_KEY in the environment that provider is used; without credentials the project's
// MOCK LLM starts beside mcplex, scripted to call the example servers' tools, so the whole flow runs offline.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'bin', 'mcplex.js');
const children = [];
const dir = mkdtempSync(join(tmpdir(), 'mcplex-start-'));

function stop(code) {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
  process.exitCode = code;
}
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));

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
    mock.once('exit', (code) => reject(new Error(`the mock LLM exited with ${code}`)));
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
const args = ['serve', '--config', config, ...process.argv.slice(2)];
const mcplex = spawn(process.execPath, [bin, ...args], { stdio: 'inherit', cwd: root });
children.push(mcplex);
mcplex.once('exit', (code) => stop(code ?? 0));
