// `mcplex mock-llm`: says MOCK on start-up, prints a machine-readable LISTENING line, stops on SIGTERM, and
// refuses to listen beyond loopback.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
const CLI = fileURLToPath(new URL('../../cli/main.ts', import.meta.url));

function run(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'mock-llm', ...args], { cwd: ROOT });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

describe('mcplex mock-llm', () => {
  it('announces itself as a mock, serves both APIs and stops on SIGTERM', async () => {
    const mock = run(['--port', '0', '--chunks', '2']);
    try {
      await expect.poll(() => mock.stdout(), { timeout: 20_000 }).toMatch(/^LISTENING http:\/\/127\.0\.0\.1:\d+\n/);
      const url = /^LISTENING (\S+)/.exec(mock.stdout())![1]!;
      expect(mock.stderr()).toContain(
        `MOCK LLM (not a real model) listening on ${url} — OpenAI: /v1/chat/completions, /v1/embeddings, ` +
          '/v1/models; Anthropic: /v1/messages',
      );
      const response = await fetch(`${url}/v1/messages`, {
        method: 'POST',
        headers: { 'x-api-key': 'k', 'anthropic-version': '2023-06-01' },
        body: JSON.stringify({ model: 'c', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(response.headers.get('x-mock-llm')).toBe('true');
      expect(await response.json()).toMatchObject({ content: [{ type: 'text', text: 'mock reply: hi' }] });
    } finally {
      mock.child.kill('SIGTERM');
    }
    expect(await mock.exited).toBe(0);
  });

  it('refuses a non-loopback host with a clear error', async () => {
    const mock = run(['--port', '0', '--host', '0.0.0.0']);
    expect(await mock.exited).toBe(1);
    expect(mock.stderr()).toMatch(/refusing to listen on 0\.0\.0\.0: the mock LLM only listens on loopback/);
    expect(mock.stdout()).toBe('');
  });
});
