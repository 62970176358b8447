import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { classifyInboundRequest } from '@modelcontextprotocol/server';
import { plainModernToolCall } from './fast-tool-call.js';

const VERSION = '2026-07-28';

function envelope(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    'io.modelcontextprotocol/protocolVersion': VERSION,
    'io.modelcontextprotocol/clientInfo': { name: 'test', version: '1.0.0' },
    'io.modelcontextprotocol/clientCapabilities': {},
    ...overrides,
  };
}

/** As it arrives: parsed from JSON (a key set to undefined is absent). */
function body(
  meta: Record<string, unknown> = envelope(),
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const message = {
    jsonrpc: '2.0',
    id: 7,
    method: 'tools/call',
    params: { name: 'a__echo', arguments: {}, _meta: meta },
  };
  return JSON.parse(JSON.stringify({ ...message, ...extra })) as Record<string, unknown>;
}

function request(headers: Record<string, string> = {}): IncomingMessage {
  return {
    headers: {
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': VERSION,
      'mcp-method': 'tools/call',
      'mcp-name': 'a__echo',
      ...headers,
    },
  } as unknown as IncomingMessage;
}

/** What the SDK's own classification says of the same request: the shortcut must never be laxer. */
function sdkAccepts(req: IncomingMessage, message: unknown): boolean {
  const outcome = classifyInboundRequest({
    httpMethod: 'POST',
    body: message,
    protocolVersionHeader: req.headers['mcp-protocol-version'] as string | undefined,
    mcpMethodHeader: req.headers['mcp-method'] as string | undefined,
    mcpNameHeader: req.headers['mcp-name'] as string | undefined,
  });
  return outcome.kind === 'modern' && outcome.messageKind === 'request';
}

describe('the modern tools/call shortcut', () => {
  it('takes a plain, well-formed 2026-07-28 call, as the SDK would', () => {
    const req = request();
    const message = body();
    expect(sdkAccepts(req, message)).toBe(true);
    expect(plainModernToolCall(req, message)).toMatchObject({ id: 7, params: { name: 'a__echo' } });
    // The verdict on the envelope is remembered; asking again gives the same answer.
    expect(plainModernToolCall(req, body())).toMatchObject({ id: 7 });
  });

  it.each<[string, IncomingMessage, unknown]>([
    [
      'an envelope whose clientInfo is not an object',
      request(),
      body(envelope({ 'io.modelcontextprotocol/clientInfo': 3 })),
    ],
    [
      'an envelope whose capabilities are not an object',
      request(),
      body(envelope({ 'io.modelcontextprotocol/clientCapabilities': 'all' })),
    ],
    ['a top-level key JSON-RPC does not have', request(), body(envelope(), { extra: true })],
    ['a fractional id', request(), { ...body(), id: 1.5 }],
    ['an id beyond the safe integers', request(), { ...body(), id: 2 ** 53 }],
    ['a header naming another version', request({ 'mcp-protocol-version': '2025-11-25' }), body()],
    ['a method header that disagrees', request({ 'mcp-method': 'tools/list' }), body()],
    ['a legacy session id', request({ 'mcp-session-id': 'abc' }), body()],
    ['a progress token', request(), body(envelope({ progressToken: 'p' }))],
    ['an envelope too large to remember', request(), body(envelope({ 'example.com/trace': 'x'.repeat(5000) }))],
  ])('leaves %s to the SDK', (_case, req, message) => {
    expect(plainModernToolCall(req, message)).toBeUndefined();
  });

  it('agrees with the SDK on envelopes it accepts and rejects', () => {
    const metas = [
      envelope({ 'io.modelcontextprotocol/clientInfo': undefined }),
      envelope({ 'io.modelcontextprotocol/protocolVersion': 20260728 }),
      envelope({ 'io.modelcontextprotocol/clientInfo': 3 }),
      envelope({ 'io.modelcontextprotocol/clientCapabilities': 'all' }),
      envelope({ 'io.modelcontextprotocol/logLevel': 'loud' }),
    ];
    for (const meta of metas) {
      const message = body(meta);
      expect(plainModernToolCall(request(), message) !== undefined).toBe(sdkAccepts(request(), message));
    }
  });
});
