// One aggregated endpoint in front of stdio, Streamable HTTP and legacy SSE upstreams, driven by SDK v2
// clients in both protocol eras.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import { NAME_PATTERN } from '../src/mcp/catalog/naming.js';
import type { RunningServer } from '../src/main.js';
import { startFixtureHttp, startFixtureSse } from './fixtures/fixture-server.js';
import type { FixtureHandle } from './fixtures/fixture-server.js';
import { connectHttp, everythingStdio, fixtureStdio, startMcplex } from './support/harness.js';
import type { Era } from './support/harness.js';

let http: FixtureHandle;
let sse: FixtureHandle;
let mcplex: RunningServer;

beforeAll(async () => {
  http = await startFixtureHttp({ name: 'fixture-http' });
  sse = await startFixtureSse({ name: 'fixture-sse' });
  mcplex = await startMcplex({
    mcpServers: {
      everything: everythingStdio(),
      local: fixtureStdio(),
      web: { type: 'streamable-http', url: http.url },
      old: { type: 'sse', url: sse.url },
    },
  });
  await mcplex.gateway.whenSettled();
});

afterAll(async () => {
  await mcplex?.close();
  await http?.close();
  await sse?.close();
});

it('speaks to each upstream in its own era', () => {
  const eras = Object.fromEntries(mcplex.gateway.status().servers.map((s) => [s.name, [s.state, s.era]]));
  expect(eras).toEqual({
    everything: ['ready', 'legacy'],
    local: ['ready', 'modern'],
    web: ['ready', 'modern'],
    old: ['ready', 'legacy'],
  });
});

describe.each<Era>(['legacy', 'modern'])('through /mcp with a %s client', (era) => {
  let client: Client;
  beforeAll(async () => {
    client = await connectHttp(`${mcplex.url}/mcp`, era);
  });
  afterAll(async () => {
    await client?.close();
  });

  it('negotiates the era the client asked for', () => {
    expect(client.getProtocolEra()).toBe(era);
  });

  it('lists the tools of every server under valid names', async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const name of names) expect(name).toMatch(NAME_PATTERN);
    expect(new Set(names).size).toBe(names.length);
    for (const server of ['everything', 'local', 'web', 'old']) {
      expect(names).toContain(`${server}__echo`);
    }
    // server-everything exposes its full set because mcplex advertises sampling, elicitation and roots upstream.
    expect(names.filter((n) => n.startsWith('everything__')).length).toBeGreaterThanOrEqual(17);
    expect(names).toEqual([...names].sort());
  });

  it('round-trips everything__echo', async () => {
    const result = await client.callTool({ name: 'everything__echo', arguments: { message: `hi from ${era}` } });
    expect(result.content).toEqual([{ type: 'text', text: `Echo: hi from ${era}` }]);
  });

  it('routes calls to the HTTP, SSE and stdio fixtures', async () => {
    for (const server of ['local', 'web', 'old']) {
      const result = await client.callTool({ name: `${server}__echo`, arguments: { message: server } });
      expect(result.content).toEqual([{ type: 'text', text: server }]);
    }
    const sum = await client.callTool({ name: 'web__add', arguments: { a: 2, b: 40 } });
    expect(sum.structuredContent).toEqual({ sum: 42 });
  });

  it('reads a resource', async () => {
    const { resources } = await client.listResources();
    const hello = resources.find((r) => r.uri === 'mcplex://web/fixture://static/hello');
    expect(hello).toBeDefined();
    const result = await client.readResource({ uri: hello!.uri });
    expect(result.contents).toEqual([
      { uri: 'mcplex://web/fixture://static/hello', mimeType: 'text/plain', text: 'hello from fixture' },
    ]);
  });

  it('reads a resource template instance', async () => {
    const { resourceTemplates } = await client.listResourceTemplates();
    const template = resourceTemplates.find((t) => t.uriTemplate === 'mcplex://local/fixture://items/{id}');
    expect(template).toBeDefined();
    const result = await client.readResource({ uri: 'mcplex://local/fixture://items/beta' });
    expect(result.contents[0]).toMatchObject({ uri: 'mcplex://local/fixture://items/beta', text: 'item beta' });
  });

  it('gets a prompt', async () => {
    const { prompts } = await client.listPrompts();
    expect(prompts.map((p) => p.name)).toContain('old__greet');
    const result = await client.getPrompt({ name: 'old__greet', arguments: { name: 'alice' } });
    expect(result.messages).toEqual([{ role: 'user', content: { type: 'text', text: 'Hello, alice!' } }]);
  });

  it('routes completions to the owning server', async () => {
    const prompt = await client.complete({
      ref: { type: 'ref/prompt', name: 'web__greet' },
      argument: { name: 'name', value: 'b' },
    });
    expect(prompt.completion.values).toEqual(['bob']);
    const template = await client.complete({
      ref: { type: 'ref/resource', uri: 'mcplex://local/fixture://items/{id}' },
      argument: { name: 'id', value: 'g' },
    });
    expect(template.completion.values).toEqual(['gamma']);
  });

  it('points resource links and embedded resources at URIs that read back through mcplex', async () => {
    const links = await client.callTool({ name: 'everything__get-resource-links', arguments: { count: 2 } });
    const linked = (links.content as { type: string; uri?: string }[]).filter((c) => c.type === 'resource_link');
    expect(linked).toHaveLength(2);
    for (const link of linked) {
      expect(link.uri).toMatch(/^mcplex:\/\/everything\//);
      const read = await client.readResource({ uri: link.uri! });
      expect(read.contents[0]!.uri).toBe(link.uri);
    }
    const reference = await client.callTool({
      name: 'everything__get-resource-reference',
      arguments: { resourceType: 'Text', resourceId: 3 },
    });
    const embedded = (reference.content as { type: string; resource?: { uri: string; text?: string } }[]).find(
      (c) => c.type === 'resource',
    );
    expect(embedded?.resource?.uri).toMatch(/^mcplex:\/\/everything\//);
    const read = await client.readResource({ uri: embedded!.resource!.uri });
    // server-everything writes the time of each read into the text: two reads a second apart differ only there.
    const untimed = (text: string | undefined) => text?.replace(/created at .*$/, 'created at <time>');
    expect(untimed((read.contents[0] as { text?: string }).text)).toBe(untimed(embedded!.resource!.text));
    expect((read.contents[0] as { text?: string }).text).toMatch(/^Resource 3: /);

    const prompt = await client.getPrompt({
      name: 'everything__resource-prompt',
      arguments: { resourceType: 'Text', resourceId: '3' },
    });
    const inPrompt = prompt.messages.find((m) => m.content.type === 'resource')?.content as
      { resource: { uri: string } } | undefined;
    expect(inPrompt?.resource.uri).toBe(embedded!.resource!.uri);
  });

  it('reads a server-everything resource', async () => {
    const { resources } = await client.listResources();
    const doc = resources.find((r) => r.uri.startsWith('mcplex://everything/'));
    expect(doc).toBeDefined();
    const result = await client.readResource({ uri: doc!.uri });
    expect(result.contents.length).toBeGreaterThan(0);
    expect(result.contents[0]!.uri).toBe(doc!.uri);
  });
});
