// Client requests checked against the MCP schemas before the SDK server sees them, so that a parameter of the
// wrong type gets -32602 with a short message naming the field (the SDK answers some of them with -32603 and a
// raw dump of the schema issues).
import { specTypeSchemas } from '@modelcontextprotocol/server';
import type { JSONRPCMessage, Server, SpecTypeName, Transport } from '@modelcontextprotocol/server';

/** The requests of one era only: in the other, the SDK answers them as unknown methods (404 / -32601 on HTTP). */
const LEGACY_ONLY = new Set(['initialize', 'logging/setLevel', 'resources/subscribe', 'resources/unsubscribe']);
const MODERN_ONLY = new Set(['server/discover', 'subscriptions/listen']);

/** The schema of each request a client may send, by method. */
const REQUEST_SCHEMAS: Readonly<Record<string, SpecTypeName>> = {
  initialize: 'InitializeRequest',
  ping: 'PingRequest',
  'server/discover': 'DiscoverRequest',
  'tools/list': 'ListToolsRequest',
  'tools/call': 'CallToolRequest',
  'resources/list': 'ListResourcesRequest',
  'resources/templates/list': 'ListResourceTemplatesRequest',
  'resources/read': 'ReadResourceRequest',
  'resources/subscribe': 'SubscribeRequest',
  'resources/unsubscribe': 'UnsubscribeRequest',
  'prompts/list': 'ListPromptsRequest',
  'prompts/get': 'GetPromptRequest',
  'completion/complete': 'CompleteRequest',
  'logging/setLevel': 'SetLevelRequest',
  'subscriptions/listen': 'SubscriptionsListenRequest',
};

export interface InvalidParams {
  id: string | number | null;
  error: { code: -32602; message: string; data: { code: 'INVALID_PARAMS'; field: string } };
}

/**
 * The error for a JSON-RPC request of a known method whose params do not fit its schema, or undefined when they
 * do (or when it is something else: a notification, an unknown method, a malformed message, all of which the SDK
 * answers itself).
 */
export function invalidParams(message: unknown, era: 'legacy' | 'modern'): InvalidParams | undefined {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return undefined;
  const { id, method } = message as { id?: unknown; method?: unknown };
  if (typeof method !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) return undefined;
  if ((era === 'legacy' ? MODERN_ONLY : LEGACY_ONLY).has(method)) return undefined;
  const schema = Object.hasOwn(REQUEST_SCHEMAS, method) ? REQUEST_SCHEMAS[method] : undefined;
  if (schema === undefined) return undefined;
  const outcome = specTypeSchemas[schema]['~standard'].validate(message);
  if (outcome instanceof Promise || !outcome.issues?.length) return undefined;
  const issue = outcome.issues[0]!;
  const field = (issue.path ?? []).map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.');
  const more = outcome.issues.length > 1 ? ` (and ${outcome.issues.length - 1} more)` : '';
  const reason = issue.message.replace(/^Invalid input: /, '').replace('expected record', 'expected an object');
  return {
    id,
    error: {
      code: -32602,
      message: `Invalid params for ${method}: ${field || 'the request'}: ${reason}${more}`,
      data: { code: 'INVALID_PARAMS', field },
    },
  };
}

/**
 * Makes `server` answer requests whose params do not fit with `invalidParams`' error on whatever transport it is
 * connected to: every message of stdio, the members of a batch in a 2025-era HTTP session.
 */
export function checkInboundParams(server: Server, era: 'legacy' | 'modern'): void {
  const connect = server.connect.bind(server);
  server.connect = async (transport: Transport) => {
    await connect(transport);
    const deliver = transport.onmessage;
    transport.onmessage = (message, extra) => {
      const invalid = invalidParams(message, era);
      if (invalid === undefined) deliver?.(message, extra);
      else void transport.send({ jsonrpc: '2.0', id: invalid.id ?? null, error: invalid.error } as JSONRPCMessage);
    };
  };
}
