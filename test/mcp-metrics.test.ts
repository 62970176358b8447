// MCP metrics in /metrics beside the LLM ones: calls per server, method, tool and outcome, the upstream's time,
// the whole /mcp request's time and mcplex's share of it, sessions, each server's state and restarts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@modelcontextprotocol/client';
import type { RunningServer } from '../src/main.js';
import { OPERATOR, connectHttp, fixtureStdio, startMcplex, waitFor } from './support/harness.js';

let mcplex: RunningServer;
let client: Client;

beforeAll(async () => {
  mcplex = await startMcplex({
    mcpServers: {
      fx: fixtureStdio('--name', 'fx'),
      slow: { ...fixtureStdio('--name', 'slow'), limits: { maxConcurrent: 1 } },
    },
  });
  await mcplex.gateway.whenSettled();
  client = await connectHttp(`${mcplex.url}/mcp`, 'legacy');
});
afterAll(async () => {
  await client?.close();
  await mcplex?.close();
});

/** The value of one series of /metrics, or 0 when it is not there (yet). */
async function series(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${mcplex.url}/metrics`, { headers: OPERATOR })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('MCP metrics', () => {
  it('count calls by server, method, tool and outcome, with the upstream time and the request time', async () => {
    for (let i = 0; i < 2; i++) await client.callTool({ name: 'fx__echo', arguments: { message: `${i}` } });
    await client.callTool({ name: 'fx__fail', arguments: {} });
    await client.readResource({ uri: 'mcplex://fx/fixture://static/hello' });
    // One call in progress at a time on "slow": a second call meanwhile is refused.
    const held = client.callTool({ name: 'slow__slow', arguments: { ms: 300, steps: 1 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expect(client.callTool({ name: 'slow__echo', arguments: { message: 'x' } })).rejects.toThrow(/-32029|limit/);
    await held;

    const calls = 'mcplex_mcp_calls_total';
    expect(await series(calls, 'server="fx",method="tools/call",tool="echo",outcome="ok"')).toBe(2);
    expect(await series(calls, 'server="fx",method="tools/call",tool="fail",outcome="error"')).toBe(1);
    expect(await series(calls, 'server="fx",method="resources/read",tool="",outcome="ok"')).toBe(1);
    expect(await series(calls, 'server="slow",method="tools/call",tool="echo",outcome="refused"')).toBe(1);
    expect(await series(calls, 'server="slow",method="tools/call",tool="slow",outcome="ok"')).toBe(1);
    expect(await series('mcplex_mcp_upstream_seconds_count', 'server="fx",method="tools/call"')).toBe(3);
    // The slow call's 300 ms were spent at its upstream.
    expect(await series('mcplex_mcp_upstream_seconds_sum', 'server="slow",method="tools/call"')).toBeGreaterThan(0.25);
    expect(await series('mcplex_mcp_request_seconds_count', 'method="tools/call"')).toBe(5);
    expect(await series('mcplex_mcp_request_seconds_count', 'method="initialize"')).toBeGreaterThanOrEqual(1);
    // mcplex's own share: the four calls that reached an upstream, each its request time minus its upstream time
    // (so the slow call's wait at its upstream is not in it).
    expect(await series('mcplex_mcp_overhead_seconds_count', 'method="tools/call"')).toBe(4);
    const overhead = await series('mcplex_mcp_overhead_seconds_sum', 'method="tools/call"');
    const requests = await series('mcplex_mcp_request_seconds_sum', 'method="tools/call"');
    const atSlow = await series('mcplex_mcp_upstream_seconds_sum', 'server="slow",method="tools/call"');
    expect(overhead).toBeGreaterThan(0);
    expect(overhead).toBeLessThanOrEqual(requests - atSlow + 1e-6);
    expect(await series('mcplex_mcp_sessions')).toBeGreaterThanOrEqual(1);
  });

  it("show each server's state and restarts, live", async () => {
    expect(await series('mcplex_mcp_upstream_up', 'server="fx"')).toBe(1);
    expect(await series('mcplex_mcp_upstream_restarts', 'server="fx"')).toBe(0);
    const answer = await client.callTool({ name: 'fx__pid', arguments: {} });
    const pid = Number((answer.content as { text?: string }[])[0]?.text);
    process.kill(pid, 'SIGKILL');
    await waitFor(async () => (await series('mcplex_mcp_upstream_restarts', 'server="fx"')) >= 1, 'a restart');
    await waitFor(async () => (await series('mcplex_mcp_upstream_up', 'server="fx"')) === 1, 'fx to be back');
  });
});
