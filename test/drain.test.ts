// Graceful shutdown: closing mcplex refuses new connections at once, lets the requests in progress finish (up to
// server.drainMs), and does not wait for notification streams that stay open for as long as the client likes.
import { afterEach, describe, expect, it } from 'vitest';
import { Client as HttpClient } from 'undici';
import type { RunningServer } from '../src/main.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { execFileSync } from 'node:child_process';
import { connectHttp, fixtureStdio, startMcplex, waitFor } from './support/harness.js';

let mock: MockLlm | undefined;
let mcplex: RunningServer | undefined;

afterEach(async () => {
  await mcplex?.close();
  await mock?.close();
  mcplex = undefined;
  mock = undefined;
});

async function start(drainMs: number): Promise<{ mock: MockLlm; mcplex: RunningServer }> {
  mock = await startMockLlm({ name: 'drain-mock' });
  mcplex = await startMcplex({
    server: { drainMs },
    llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'b' }] } } },
  });
  return { mock, mcplex };
}

function chat(url: string): Promise<Response> {
  return fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hello' }] }),
  });
}

/** A request on a connection of its own (never one the server may have closed as idle). */
async function freshConnection(url: string): Promise<number> {
  const client = new HttpClient(url);
  try {
    const response = await client.request({ method: 'GET', path: '/healthz' });
    await response.body.dump();
    return response.statusCode;
  } finally {
    await client.destroy();
  }
}

describe('closing mcplex', () => {
  it('finishes the request in progress, refuses new connections and does not wait for a notification stream', async () => {
    const { mock, mcplex } = await start(60_000);
    // A legacy session opens its standalone notification stream, open until the client or the server ends it.
    const session = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
    const sessionId = (session.transport as { sessionId?: string } | undefined)?.sessionId;
    expect(sessionId).toBeDefined();
    await waitFor(async () => {
      // Only one such stream per session: a second one is refused (409) once the client's is open.
      const second = await fetch(`${mcplex.url}/mcp`, {
        headers: { accept: 'text/event-stream', 'mcp-session-id': sessionId!, 'mcp-protocol-version': '2025-11-25' },
      });
      await second.body?.cancel();
      return second.status === 409;
    }, "the client's notification stream to be open");

    mock.setOptions({ latencyMs: 400 });
    const pending = chat(mcplex.url);
    await waitFor(() => mock.inFlight === 1, 'the chat request to reach the backend');
    const closing = mcplex.close();

    await expect(freshConnection(mcplex.url)).rejects.toThrow();
    const answer = await pending;
    expect(answer.status).toBe(200);
    // Its client must not send another request on a connection that is about to close.
    expect(answer.headers.get('connection')).toBe('close');
    expect(((await answer.json()) as { choices: unknown[] }).choices).toHaveLength(1);
    // With a 60 s drain, closing ends within the test's own time limit only because the stream is not waited for.
    await closing;
    await session.close().catch(() => {});
  });

  it('cuts what is still running once server.drainMs has passed', async () => {
    const { mock, mcplex } = await start(100);
    mock.enqueue({ kind: 'hang' });
    const pending = chat(mcplex.url).then(
      async (response) => (await response.text()).length >= 0 && response.status,
      (error: unknown) => error,
    );
    await waitFor(() => mock.inFlight === 1, 'the chat request to reach the backend');
    await mcplex.close();
    expect(await pending).toBeInstanceOf(Error);
  });
});

describe('a port already taken', () => {
  /** Child processes of this test process whose command line names `marker`. */
  const children = (marker: string) =>
    execFileSync('ps', ['--ppid', String(process.pid), '-o', 'args='], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(marker));

  it('fails the start with the reason and leaves no upstream child behind', async () => {
    const first = await startMcplex({});
    try {
      const port = Number(new URL(first.url).port);
      const marker = 'port-taken-marker';
      await expect(
        startMcplex({ server: { port }, mcpServers: { local: fixtureStdio('--name', marker) } }),
      ).rejects.toMatchObject({ code: 'EADDRINUSE' });
      await waitFor(() => children(marker).length === 0, 'the upstream child to be gone');
      // The first one still serves.
      expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    } finally {
      await first.close();
    }
  });
});
