// Diagnostic HTTP shim for the conformance comparison: sits between the suite and mcplex and maps the suite's fixed
// names to mcplex's namespaced ones (test_x ⇄ <key>__test_x, test://… ⇄ mcplex://<key>/test://…), nothing else.
import { request as httpRequest } from 'node:http';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface NameShim {
  url: string;
  close(): Promise<void>;
}

/** Headers that describe one hop, or a body length the rewrite changes. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade']);

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Runs a scenario against mcplex as if mcplex exposed its one upstream without a namespace. A scenario that passes
 * through this shim but not through mcplex alone fails only because of the names; one that fails here too has
 * another cause. Only names and URIs change: methods, ids, headers, status codes and streams pass through as they
 * are (the Host and Origin headers too, so mcplex's own DNS-rebinding guard still decides).
 */
export async function startNameShim(targetUrl: string, serverKey: string): Promise<NameShim> {
  const target = new URL(targetUrl);
  const namePrefix = `${serverKey}__`;
  const uriPrefix = `mcplex://${serverKey}/`;
  const prefixName = (name: unknown) => (typeof name === 'string' ? namePrefix + name : name);
  const prefixUri = (uri: unknown) => (typeof uri === 'string' ? uriPrefix + uri : uri);

  /** Rewrites one client→server JSON-RPC message; responses (to server→client requests) pass unchanged. */
  const rewriteMessage = (message: unknown): void => {
    if (!isObject(message) || typeof message.method !== 'string' || !isObject(message.params)) return;
    const params = message.params;
    switch (message.method) {
      case 'tools/call':
      case 'prompts/get':
        params.name = prefixName(params.name);
        break;
      case 'resources/read':
      case 'resources/subscribe':
      case 'resources/unsubscribe':
        params.uri = prefixUri(params.uri);
        break;
      case 'completion/complete':
        if (isObject(params.ref) && params.ref.type === 'ref/prompt') params.ref.name = prefixName(params.ref.name);
        if (isObject(params.ref) && params.ref.type === 'ref/resource') params.ref.uri = prefixUri(params.ref.uri);
        break;
    }
  };

  /** The Mcp-Name header mirrors params.name or params.uri (SEP-2243); keep its surrounding whitespace as sent. */
  const rewriteNameHeader = (value: string, method: unknown): string => {
    const match = /^(\s*)(.*?)(\s*)$/s.exec(value);
    if (!match) return value;
    const [, before = '', core = '', after = ''] = match;
    if (method === 'tools/call' || method === 'prompts/get') return before + namePrefix + core + after;
    if (method === 'resources/read') return before + uriPrefix + core + after;
    return value;
  };

  /** server→client text: drop the namespace wherever it appears (names, URIs, error messages and data). */
  const unmap = (text: string): string => text.split(uriPrefix).join('').split(namePrefix).join('');

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body = Buffer.concat(chunks);
    let method: unknown;
    if (body.length > 0) {
      try {
        const parsed: unknown = JSON.parse(body.toString('utf8'));
        for (const message of Array.isArray(parsed) ? parsed : [parsed]) rewriteMessage(message);
        method = isObject(parsed) ? parsed.method : undefined;
        body = Buffer.from(JSON.stringify(parsed));
      } catch {
        // Not JSON: the suite is probing mcplex's parse errors; forward the bytes untouched.
      }
    }

    const headers: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers as IncomingHttpHeaders)) {
      if (value === undefined || HOP_HEADERS.has(name)) continue;
      headers[name] = name === 'mcp-name' && typeof value === 'string' ? rewriteNameHeader(value, method) : value;
    }
    if (body.length > 0) headers['content-length'] = body.length;

    const upstream = httpRequest({
      host: target.hostname,
      port: target.port,
      path: req.url,
      method: req.method,
      headers,
    });
    // The suite ends listen streams and SSE reads by disconnecting; pass that on.
    res.on('close', () => upstream.destroy());
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    upstream.on('response', (answer) => {
      const responseHeaders: OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_HEADERS.has(name)) responseHeaders[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, responseHeaders);
      res.flushHeaders();
      // SSE and line-delimited streams are rewritten line by line so nothing is held back longer than a line.
      let pending = '';
      answer.setEncoding('utf8');
      answer.on('data', (data: string) => {
        pending += data;
        const end = pending.lastIndexOf('\n');
        if (end >= 0) {
          res.write(unmap(pending.slice(0, end + 1)));
          pending = pending.slice(end + 1);
        }
      });
      answer.on('end', () => res.end(unmap(pending)));
      answer.on('error', () => res.destroy());
    });
    upstream.end(body);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500).end();
      else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${target.pathname}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
