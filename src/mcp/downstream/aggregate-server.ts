// The aggregated MCP server that downstream clients talk to: one low-level SDK Server whose handlers
// answer lists from the catalog and forward calls, reads, gets and completions to the owning upstream.
import { ProtocolError, Server } from '@modelcontextprotocol/server';
import type { ServerContext } from '@modelcontextprotocol/server';
import type { Progress } from '@modelcontextprotocol/client';
import { McplexError } from '../../errors.js';
import type { Catalog } from '../catalog/catalog.js';
import { paginate } from './paginate.js';

export interface AggregateServerOptions {
  name: string;
  version: string;
  pageSize: number;
  instructions?: string;
}

/** JSON-RPC codes for local failures, chosen so that clients can tell "no such thing" from "server down". */
const WIRE_CODES: Partial<Record<McplexError['code'], number>> = {
  UNKNOWN_TOOL: -32602,
  UNKNOWN_PROMPT: -32602,
  UNKNOWN_RESOURCE: -32002,
  INVALID_CURSOR: -32602,
  UPSTREAM_UNAVAILABLE: -32603,
  UPSTREAM_TIMEOUT: -32603,
  UPSTREAM_ERROR: -32603,
};

/** Maps errors to JSON-RPC errors once, at the boundary; upstream protocol errors pass through untouched. */
function toWireError(error: unknown): unknown {
  if (error instanceof McplexError) {
    return new ProtocolError(WIRE_CODES[error.code] ?? -32603, error.message, { code: error.code });
  }
  return error;
}

function wrap<T>(run: () => Promise<T>): Promise<T> {
  return run().catch((error: unknown) => {
    throw toWireError(error);
  });
}

/** Relays upstream progress to the downstream caller under the caller's own progress token. */
function progressRelay(ctx: ServerContext): ((progress: Progress) => void) | undefined {
  const token = ctx.mcpReq._meta?.progressToken;
  if (token === undefined) return undefined;
  return (progress) => {
    void ctx.mcpReq
      .notify({ method: 'notifications/progress', params: { ...progress, progressToken: token } })
      .catch(() => {});
  };
}

function callOptions(ctx: ServerContext) {
  const onprogress = progressRelay(ctx);
  return { signal: ctx.mcpReq.signal, ...(onprogress ? { onprogress } : {}) };
}

export function createAggregateServer(catalog: Catalog, options: AggregateServerOptions): Server {
  const server = new Server(
    { name: options.name, version: options.version },
    {
      capabilities: {
        tools: { listChanged: true },
        resources: { listChanged: true },
        prompts: { listChanged: true },
        completions: {},
      },
      ...(options.instructions === undefined ? {} : { instructions: options.instructions }),
    },
  );
  const { pageSize } = options;

  server.setRequestHandler('tools/list', async (request) =>
    wrap(async () => {
      const page = paginate(catalog.view.tools, request.params?.cursor, pageSize, catalog.view.version);
      return { tools: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('tools/call', async (request, ctx) =>
    wrap(async () => {
      const route = catalog.resolveTool(request.params.name);
      return route.upstream.callTool({ ...request.params, name: route.original }, callOptions(ctx));
    }),
  );
  server.setRequestHandler('resources/list', async (request) =>
    wrap(async () => {
      const page = paginate(catalog.view.resources, request.params?.cursor, pageSize, catalog.view.version);
      return { resources: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('resources/templates/list', async (request) =>
    wrap(async () => {
      const view = catalog.view;
      const page = paginate(view.resourceTemplates, request.params?.cursor, pageSize, view.version);
      return { resourceTemplates: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('resources/read', async (request, ctx) =>
    wrap(async () => {
      const route = catalog.resolveResource(request.params.uri);
      const result = await route.upstream.readResource({ ...request.params, uri: route.original }, callOptions(ctx));
      // Contents carry the URI the client asked for, so that it can match them to its request.
      const prefix = request.params.uri.slice(0, request.params.uri.length - route.original.length);
      return { ...result, contents: result.contents.map((c) => ({ ...c, uri: prefix + c.uri })) };
    }),
  );
  server.setRequestHandler('prompts/list', async (request) =>
    wrap(async () => {
      const page = paginate(catalog.view.prompts, request.params?.cursor, pageSize, catalog.view.version);
      return { prompts: [...page.items], ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    }),
  );
  server.setRequestHandler('prompts/get', async (request, ctx) =>
    wrap(async () => {
      const route = catalog.resolvePrompt(request.params.name);
      return route.upstream.getPrompt({ ...request.params, name: route.original }, callOptions(ctx));
    }),
  );
  server.setRequestHandler('completion/complete', async (request, ctx) =>
    wrap(async () => {
      const ref = request.params.ref;
      if (ref.type === 'ref/prompt') {
        const route = catalog.resolvePrompt(ref.name);
        return route.upstream.complete({ ...request.params, ref: { ...ref, name: route.original } }, callOptions(ctx));
      }
      const route = catalog.resolveResource(ref.uri);
      return route.upstream.complete({ ...request.params, ref: { ...ref, uri: route.original } }, callOptions(ctx));
    }),
  );
  return server;
}
