// Balancing and failover of the LLM gateway over several mock backends: weights, least-in-flight, a backend killed
// mid-run (non-streaming and streaming), the circuit breaker opening and recovering, retry-after, and a client
// disconnect aborting the upstream request.
import { afterEach, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { Agent, request } from 'undici';
import type { RunningServer } from '../src/main.js';
import type { ConfigInput } from '../src/config/schema.js';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { startMcplex, waitFor } from './support/harness.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step().catch(() => {});
});

async function mocks(count: number): Promise<MockLlm[]> {
  const started = await Promise.all(Array.from({ length: count }, (_, i) => startMockLlm({ name: `b${i}` })));
  for (const mock of started) cleanup.push(() => mock.close());
  return started;
}

async function gateway(model: Record<string, unknown>, llm: Record<string, unknown> = {}): Promise<RunningServer> {
  const mcplex = await startMcplex({ llm: { models: { m: model }, ...llm } } as unknown as ConfigInput);
  cleanup.push(() => mcplex.close());
  return mcplex;
}

const deployment = (mock: MockLlm, extra: Record<string, unknown> = {}) => ({
  provider: 'openai' as const,
  baseUrl: `${mock.url}/v1`,
  model: 'backend',
  ...extra,
});

const chatBody = (stream = false) =>
  JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }], ...(stream ? { stream: true } : {}) });

/** Runs `total` chat requests, `concurrency` at a time, with a raw HTTP client; returns the status of each. */
async function load(url: string, total: number, concurrency: number, onDone?: (n: number) => void, stream = false) {
  const dispatcher = new Agent({ connections: concurrency });
  const statuses: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        next++;
        const response = await request(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: chatBody(stream),
          dispatcher,
        });
        const text = await response.body.text();
        // A stream that broke after it began carries an error event: count it as a failure.
        statuses.push(stream && text.includes('"error"') ? 599 : response.statusCode);
        onDone?.(statuses.length);
      }
    }),
  );
  await dispatcher.close();
  return statuses;
}

describe('weighted balancing', () => {
  it('honours the weights within 5 % over 10,000 requests', async () => {
    const [a, b] = await mocks(2);
    const mcplex = await gateway({
      strategy: 'weighted',
      deployments: [deployment(a!, { weight: 3 }), deployment(b!, { weight: 1 })],
    });
    const statuses = await load(mcplex.url, 10_000, 32);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const share = a!.requests.length / (a!.requests.length + b!.requests.length);
    expect(share).toBeGreaterThan(0.75 * 0.95);
    expect(share).toBeLessThan(0.75 * 1.05);
  });
});

describe('least in flight', () => {
  it('sends new requests to the idle backend while the other one is busy', async () => {
    const [a, b] = await mocks(2);
    const mcplex = await gateway({ strategy: 'least-in-flight', deployments: [deployment(a!), deployment(b!)] });
    a!.enqueue({ kind: 'hang' });
    b!.enqueue({ kind: 'hang' });
    const client = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const abort = new AbortController();
    const busy = client.chat.completions
      .create({ model: 'm', messages: [{ role: 'user', content: 'slow' }] }, { signal: abort.signal })
      .catch(() => undefined);
    const hanging = await waitFor(() => [a!, b!].find((m) => m.inFlight === 1), 'the first request to arrive');
    const idle = hanging === a ? b! : a!;
    idle.clearQueue();
    for (let i = 0; i < 5; i++) {
      await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: `q${i}` }] });
    }
    expect(idle.requests).toHaveLength(5);
    expect(hanging.requests).toHaveLength(1);
    abort.abort();
    await busy;
  });
});

describe('failover', () => {
  it.each([false, true])(
    'loses no request when a backend is killed mid-run (streaming: %s)',
    async (stream) => {
      const [a, b] = await mocks(2);
      const mcplex = await gateway(
        { strategy: 'latency', deployments: [deployment(a!), deployment(b!)] },
        { breaker: { failures: 3, cooldownMs: 60_000 } },
      );
      let killed = false;
      const statuses = await load(
        mcplex.url,
        400,
        8,
        (n) => {
          if (n === 100 && !killed) {
            killed = true;
            void a!.kill();
          }
        },
        stream,
      );
      expect(killed).toBe(true);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(b!.requests.length).toBeGreaterThan(200);
      // The breaker took the dead backend out of rotation.
      const metrics = await (await fetch(`${mcplex.url}/metrics`)).text();
      expect(metrics).toMatch(/mcplex_llm_breaker_state\{deployment="m#0"\} 2/);
    },
    60_000,
  );

  it('opens the breaker after consecutive failures and closes it after a successful probe', async () => {
    const [a, b] = await mocks(2);
    const port = a!.port;
    const mcplex = await gateway(
      { strategy: 'weighted', deployments: [deployment(a!), deployment(b!)] },
      { breaker: { failures: 2, cooldownMs: 300 }, retries: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 } },
    );
    await a!.kill();
    // Requests keep succeeding through b while a's breaker opens.
    expect((await load(mcplex.url, 20, 1)).every((s) => s === 200)).toBe(true);
    const state = async () =>
      /mcplex_llm_breaker_state\{deployment="m#0"\} (\d)/.exec(
        await (await fetch(`${mcplex.url}/metrics`)).text(),
      )?.[1];
    expect(await state()).toBe('2');
    // The backend comes back on the same address; after the cool-down a probe gets through and closes the breaker.
    const revived = await startMockLlm({ name: 'revived', port });
    cleanup.push(() => revived.close());
    await waitFor(async () => {
      await load(mcplex.url, 4, 1);
      return revived.requests.length > 0 && (await state()) === '0';
    }, 'the breaker to close again');
  });

  it('falls back to another model when every deployment of the first one fails', async () => {
    const [a, b] = await mocks(2);
    await a!.kill();
    const mcplex = await startMcplex({
      llm: {
        models: {
          primary: { deployments: [deployment(a!)], fallbacks: ['backup'] },
          backup: { deployments: [deployment(b!)] },
        },
        retries: { attempts: 3, initialDelayMs: 1, maxDelayMs: 1 },
      },
    });
    cleanup.push(() => mcplex.close());
    const client = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const result = await client.chat.completions.create({
      model: 'primary',
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(result.choices[0]?.message.content).toBe('mock reply: x');
    expect(b!.requests).toHaveLength(1);
  });
});

describe('retry-after', () => {
  it('waits as long as the backend asks before trying again', async () => {
    const [a] = await mocks(1);
    const mcplex = await gateway({ deployments: [deployment(a!)] }, { retries: { attempts: 2, initialDelayMs: 1 } });
    a!.enqueue({ kind: 'error', status: 429, headers: { 'retry-after-ms': '400' } });
    const client = new OpenAI({ baseURL: `${mcplex.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const result = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }] });
    expect(result.choices[0]?.message.content).toBe('mock reply: x');
    const [first, second] = a!.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(400);
  });

  it('answers 429 with retry-after when the backend asks for longer than mcplex waits', async () => {
    const [a] = await mocks(1);
    const mcplex = await gateway({ deployments: [deployment(a!)] }, { retries: { maxRetryAfterMs: 1000 } });
    a!.enqueue({ kind: 'error', status: 429, headers: { 'retry-after': '30' } });
    const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(),
    });
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('30');
    const body = (await response.json()) as { error: { message: string; code: string | null } };
    expect(body.error.message).toEqual(expect.any(String));
    expect(a!.requests).toHaveLength(1);
  });
});

describe('a client that goes away', () => {
  it.each([false, true])('aborts the upstream request (streaming: %s)', async (stream) => {
    const [a] = await mocks(1);
    const mcplex = await gateway({ deployments: [deployment(a!)] });
    a!.enqueue({ kind: 'hang' });
    const abort = new AbortController();
    const pending = fetch(`${mcplex.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(stream),
      signal: abort.signal,
    }).catch(() => undefined);
    await waitFor(() => a!.inFlight === 1, 'the request to reach the backend');
    abort.abort();
    await pending;
    await waitFor(() => a!.requests[0]?.aborted, 'the backend to see the request aborted');
    expect(a!.requests).toHaveLength(1);
  });
});

describe('timeouts and quiet streams', () => {
  it('gives up on a backend that sends nothing within the first-token timeout (504, upstream aborted)', async () => {
    const [a] = await mocks(1);
    const mcplex = await gateway(
      { deployments: [deployment(a!, { timeouts: { firstToken: 200 } })] },
      { retries: { attempts: 0 } },
    );
    a!.enqueue({ kind: 'hang' });
    const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(),
    });
    expect(response.status).toBe(504);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('timeout');
    await waitFor(() => a!.requests[0]?.aborted, 'the backend request to be aborted');
  });

  it('sends keep-alive comments while a started stream is quiet', async () => {
    const [a] = await mocks(1);
    a!.setOptions({ chunks: 3, chunkDelayMs: 400 });
    const mcplex = await gateway({ deployments: [deployment(a!)] }, { keepAliveMs: 100 });
    const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chatBody(true),
    });
    const text = await response.text();
    expect(text).toContain(': keep-alive');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });

  it('sends keep-alive comments on a quiet streamed conversation turn too', async () => {
    const [a] = await mocks(1);
    a!.setOptions({ chunks: 3, chunkDelayMs: 400 });
    const mcplex = await gateway({ deployments: [deployment(a!)] }, { keepAliveMs: 100 });
    const created = await fetch(`${mcplex.url}/v1/conversations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ items: [{ role: 'user', content: 'hello' }] }),
    });
    const { id } = (await created.json()) as { id: string };
    const response = await fetch(`${mcplex.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...(JSON.parse(chatBody(true)) as object), conversation: id }),
    });
    const text = await response.text();
    expect(text).toContain(': keep-alive');
    expect(text).toContain('"conversation"');
    expect(text.trimEnd().endsWith('data: [DONE]')).toBe(true);
  });
});
