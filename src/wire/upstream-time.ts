// The time an HTTP request spent waiting on upstream MCP servers, noted against its response, so that the ingress
// can tell mcplex's own share of the request's time (the MCP overhead histogram) without threading timers through
// every layer in between.
import type { ServerResponse } from 'node:http';

const spent = new WeakMap<ServerResponse, number>();

export function addUpstreamTime(res: ServerResponse, ms: number): void {
  spent.set(res, (spent.get(res) ?? 0) + ms);
}

/** Milliseconds at upstreams so far, or undefined when the request reached none. */
export function upstreamTime(res: ServerResponse): number | undefined {
  return spent.get(res);
}
