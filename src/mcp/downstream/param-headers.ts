// 2026-07-28 tools may map an argument to an `Mcp-Param-{Name}` header (`x-mcp-header` in the input schema), so
// that intermediaries can route on it without reading the body. mcplex is the server its clients talk to: it
// checks that those headers agree with the arguments, as the specification requires of a server, before the call
// goes anywhere. (The SDK runs this check only for its high-level McpServer, and does not export it.)
import type { IncomingHttpHeaders } from 'node:http';
import type { Tool } from '@modelcontextprotocol/client';

export const HEADER_MISMATCH = -32020;

export interface ParamHeader {
  /** The header name after `Mcp-Param-`, as declared. */
  name: string;
  /** The argument's path through nested `properties`. */
  path: string[];
  type: unknown;
}

export interface ParamHeaderRejection {
  code: typeof HEADER_MISMATCH;
  message: string;
  data: { mismatch: { header: string; body: string } };
}

const declarationsByTool = new WeakMap<Tool, ParamHeader[]>();

/**
 * The `x-mcp-header` declarations of a tool, found along chains of `properties` only (where the specification
 * allows them). Catalog tools are frozen objects, so the scan runs once per tool.
 */
export function paramHeaders(tool: Tool): ParamHeader[] {
  let found = declarationsByTool.get(tool);
  if (found === undefined) {
    found = [];
    scan(tool.inputSchema as Record<string, unknown>, [], found);
    declarationsByTool.set(tool, found);
  }
  return found;
}

function scan(schema: Record<string, unknown>, path: string[], into: ParamHeader[]): void {
  const properties = schema.properties;
  if (typeof properties !== 'object' || properties === null) return;
  for (const [key, value] of Object.entries(properties as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) continue;
    const property = value as Record<string, unknown>;
    const name = property['x-mcp-header'];
    if (typeof name === 'string' && name.length > 0) into.push({ name, path: [...path, key], type: property.type });
    scan(property, [...path, key], into);
  }
}

const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';
const CANONICAL_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const DECIMAL = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?$/;
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A header value as the client meant it: Base64 between the sentinels, else literal; undefined when malformed. */
export function decodeParamValue(value: string): string | undefined {
  if (!value.startsWith(SENTINEL_PREFIX) || !value.endsWith(SENTINEL_SUFFIX)) return value;
  const encoded = value.slice(SENTINEL_PREFIX.length, value.length - SENTINEL_SUFFIX.length);
  if (!CANONICAL_BASE64.test(encoded)) return undefined;
  try {
    return utf8.decode(Buffer.from(encoded, 'base64'));
  } catch {
    return undefined;
  }
}

function primitiveText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return undefined;
}

function at(root: unknown, path: string[]): unknown {
  let node = root;
  for (const key of path) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}

/**
 * Checks every declared header against the arguments: an argument with a value needs its header, decoding to the
 * same value (numbers compare numerically); an absent or null argument needs none. Returns the rejection to send
 * (HTTP 400 with JSON-RPC error -32020), or undefined when the request is consistent.
 */
export function checkParamHeaders(
  declarations: readonly ParamHeader[],
  args: unknown,
  headers: IncomingHttpHeaders,
): ParamHeaderRejection | undefined {
  for (const declaration of declarations) {
    const header = `Mcp-Param-${declaration.name}`;
    const body = at(args, declaration.path);
    const expected = body === null ? undefined : primitiveText(body);
    if (expected === undefined) continue;
    const raw = headers[header.toLowerCase()];
    const sent = Array.isArray(raw) ? raw[0] : raw;
    const reject = (why: string): ParamHeaderRejection => ({
      code: HEADER_MISMATCH,
      message: `Bad Request: the request headers and body disagree: ${why}`,
      data: { mismatch: { header, body: declaration.path.join('.') } },
    });
    if (sent === undefined) return reject(`argument ${declaration.path.join('.')} is set but ${header} is missing`);
    const decoded = decodeParamValue(sent);
    if (decoded === undefined) return reject(`${header} carries malformed Base64`);
    const numeric = (declaration.type === 'integer' || declaration.type === 'number') && typeof body === 'number';
    const same = numeric && DECIMAL.test(decoded) ? Number(decoded) === body : decoded === expected;
    if (!same) return reject(`${header} is ${JSON.stringify(decoded)} but the argument is ${JSON.stringify(body)}`);
  }
  return undefined;
}

const PARAM_PREFIX = 'mcp-param-';

/**
 * The `Mcp-Param-*` headers of a request that the tool does not declare: an intermediary must pass on what it
 * does not know (2026-07-28). Declared ones are not copied: mcplex's client sends its own from the arguments.
 */
export function unknownParamHeaders(
  tool: Tool | undefined,
  headers: IncomingHttpHeaders | Headers | undefined,
): Record<string, string> | undefined {
  if (headers === undefined) return undefined;
  const entries: [string, string][] =
    headers instanceof Headers
      ? [...headers.entries()]
      : Object.entries(headers).flatMap(([k, v]) => (typeof v === 'string' ? [[k, v] as [string, string]] : []));
  let found: Record<string, string> | undefined;
  for (const [name, value] of entries) {
    const lower = name.toLowerCase();
    if (!lower.startsWith(PARAM_PREFIX)) continue;
    const suffix = lower.slice(PARAM_PREFIX.length);
    if (tool && paramHeaders(tool).some((d) => d.name.toLowerCase() === suffix)) continue;
    (found ??= {})[name] = value;
  }
  return found;
}
