// Regression: the SDK's HTTP client transport hands one AbortSignal to every request, and Node's fetch keeps a
// listener on it per request until the request is collected. Thousands of requests to a Streamable HTTP upstream
// (any method but the fast path's tools/call) made mcplex print a MaxListenersExceededWarning per request.
// mcplex runs in its own process here, so that only its own warnings count.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startFixtureHttp } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { allReady, connectHttp, listeningUrl, spawnMcplex, tempDir, writeConfig } from './support/harness.js';
import type { SpawnedMcplex } from './support/harness.js';

const dir = tempDir('mcplex-listeners-');
let fixture: FixtureHandle;
let mcplex: SpawnedMcplex;
let url: string;

beforeAll(async () => {
  fixture = await startFixtureHttp();
  const config = writeConfig(dir.path, {
    mcpServers: { up: { url: fixture.url, protocol: 'legacy' } },
    server: { port: 0 },
    store: 'memory:',
  });
  mcplex = spawnMcplex(['serve', '--config', config]);
  url = await listeningUrl(mcplex);
  await allReady(url);
});
afterAll(async () => {
  await mcplex?.stop();
  await fixture?.close();
  dir.remove();
});

it('reads 3000 resources through a legacy HTTP upstream without a listener-leak warning', async () => {
  const client = await connectHttp(`${url}/mcp`, 'legacy');
  try {
    for (let i = 0; i < 3000; i++) {
      const read = await client.readResource({ uri: 'mcplex://up/fixture://static/hello' });
      expect(read.contents).toHaveLength(1);
    }
  } finally {
    await client.close();
  }
  expect(mcplex.stderr()).not.toContain('MaxListenersExceededWarning');
}, 60_000);
