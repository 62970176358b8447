// Convert a Claude Desktop / Cursor / VS Code MCP config file into an mcplex config object,
// keeping what mcplex understands and explaining (as warnings) everything it changed or dropped.
import { ConfigError, formatPath } from './errors.js';
import { SERVER_KEY_PATTERN, SERVER_KEYS } from './schema.js';

export interface ImportedDesktopConfig {
  /** Ready for parseConfig (or to be written out as mcplex.json). */
  config: { mcpServers: Record<string, Record<string, unknown>> };
  warnings: string[];
}

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const STDIO_ONLY = ['args', 'env', 'cwd'] as const;
const REMOTE_ONLY = ['headers'] as const;
const TYPES = new Set(['stdio', 'streamable-http', 'http', 'sse']);
/** VS Code / Cursor predefined variables that have no meaning outside the editor. */
const EDITOR_VARIABLES = new Set(['workspaceFolder', 'workspaceFolderBasename', 'workspaceRoot', 'pathSeparator']);
const MAX_KEY_LENGTH = 32;

export function importDesktopConfig(raw: unknown): ImportedDesktopConfig {
  if (!isRecord(raw)) {
    throw new ConfigError('CONFIG_INVALID', [{ path: '', message: 'expected an object at the top level' }], 'import');
  }
  const warnings: string[] = [];
  const found = findServers(raw, warnings);
  if (found === undefined) {
    const message = 'no "mcpServers", "servers" or "mcp.servers" object found';
    throw new ConfigError('CONFIG_INVALID', [{ path: '', message }], 'import');
  }

  const kept: [string, Json][] = [];
  for (const [name, entry] of Object.entries(found.servers)) {
    const server = convertServer(entry, [...found.path, name], warnings);
    if (server !== undefined) kept.push([name, server]);
  }

  // Names that are already valid keep them; the others are sanitised around them.
  const used = new Set(kept.map(([name]) => name).filter((name) => SERVER_KEY_PATTERN.test(name)));
  const mcpServers: Record<string, Json> = {};
  for (const [name, server] of kept) {
    let key = name;
    if (!SERVER_KEY_PATTERN.test(name)) {
      key = uniqueKey(sanitiseKey(name), used);
      used.add(key);
      warnings.push(`${formatPath([...found.path, name])}: renamed server "${name}" to "${key}"`);
    }
    Object.defineProperty(mcpServers, key, { value: server, enumerable: true, writable: true, configurable: true });
  }
  return { config: { mcpServers }, warnings };
}

function findServers(raw: Json, warnings: string[]): { servers: Json; path: string[] } | undefined {
  let found: { servers: Json; path: string[] } | undefined;
  let siblings: { owner: Json; path: string[] } = { owner: raw, path: [] };
  if (isRecord(raw.mcpServers)) found = { servers: raw.mcpServers, path: ['mcpServers'] };
  else if (isRecord(raw.servers)) found = { servers: raw.servers, path: ['servers'] };
  else if (isRecord(raw.mcp) && isRecord(raw.mcp.servers)) {
    // A VS Code settings.json: the other top-level keys are editor settings, only `mcp.*` is ours to comment on.
    found = { servers: raw.mcp.servers, path: ['mcp', 'servers'] };
    siblings = { owner: raw.mcp, path: ['mcp'] };
  }
  if (found === undefined) return undefined;
  const containerKey = found.path[found.path.length - 1];
  for (const key of Object.keys(siblings.owner)) {
    if (key !== containerKey)
      warnings.push(`${formatPath([...siblings.path, key])}: dropped (not supported by mcplex)`);
  }
  return found;
}

function convertServer(entry: unknown, path: string[], warnings: string[]): Json | undefined {
  const where = formatPath(path);
  if (!isRecord(entry)) {
    warnings.push(`${where}: skipped (not an object)`);
    return undefined;
  }
  const hasCommand = typeof entry.command === 'string' && entry.command !== '';
  const hasUrl = typeof entry.url === 'string' && entry.url !== '';
  if (hasCommand === hasUrl) {
    const why = hasCommand ? 'has both "command" and "url"' : 'has neither "command" nor "url"';
    warnings.push(`${where}: skipped (${why})`);
    return undefined;
  }

  const server: Json = {};
  for (const [key, value] of Object.entries(entry)) {
    const keyPath = formatPath([...path, key]);
    if (!SERVER_KEYS.includes(key)) {
      warnings.push(`${keyPath}: dropped (not supported by mcplex)`);
    } else if (hasUrl && (STDIO_ONLY as readonly string[]).includes(key)) {
      warnings.push(`${keyPath}: dropped (only applies to stdio servers)`);
    } else if (hasCommand && (REMOTE_ONLY as readonly string[]).includes(key)) {
      warnings.push(`${keyPath}: dropped (only applies to remote servers)`);
    } else if (
      key === 'type' &&
      !(typeof value === 'string' && TYPES.has(value) && (value === 'stdio') === hasCommand)
    ) {
      warnings.push(`${keyPath}: dropped type ${JSON.stringify(value)} (does not match the server's command/url)`);
    } else if (key === 'args') {
      server.args = stringList(value, [...path, key], warnings);
    } else if (key === 'env' || key === 'headers') {
      server[key] = stringMap(value, [...path, key], warnings);
    } else {
      server[key] = value;
    }
  }
  return translateVariables(server, path, warnings) as Json;
}

function stringList(value: unknown, path: PropertyKey[], warnings: string[]): string[] {
  if (!Array.isArray(value)) {
    warnings.push(`${formatPath(path)}: dropped (not a list)`);
    return [];
  }
  return value.flatMap((item, index) => {
    const text = scalarText(item);
    if (text === undefined) warnings.push(`${formatPath([...path, index])}: dropped (not a string)`);
    return text === undefined ? [] : [text];
  });
}

function stringMap(value: unknown, path: PropertyKey[], warnings: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(value)) {
    warnings.push(`${formatPath(path)}: dropped (not an object)`);
    return out;
  }
  for (const [key, item] of Object.entries(value)) {
    const text = scalarText(item);
    if (text === undefined) warnings.push(`${formatPath([...path, key])}: dropped (not a string)`);
    else Object.defineProperty(out, key, { value: text, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

const scalarText = (value: unknown): string | undefined =>
  typeof value === 'string'
    ? value
    : typeof value === 'number' || typeof value === 'boolean'
      ? String(value)
      : undefined;

/**
 * Editor-style variables: `${env:NAME}` becomes mcplex's `${NAME}`, `${userHome}` becomes `${HOME}`;
 * editor-only ones (`${input:...}`, `${workspaceFolder}`, ...) are escaped to literal text with a warning.
 */
function translateVariables(node: unknown, path: PropertyKey[], warnings: string[]): unknown {
  if (typeof node === 'string') {
    return node.replace(/\$?\$\{([^}]*)\}/g, (match: string, inner: string) => {
      if (match.startsWith('$$')) return match;
      const envName = /^env:([A-Za-z_][A-Za-z0-9_]*)$/.exec(inner);
      if (envName !== null) return `\${${envName[1] ?? ''}}`;
      if (inner === 'userHome') return '${HOME}';
      if (/^[A-Za-z_][A-Za-z0-9_]*(:-[\s\S]*)?$/.test(inner) && !EDITOR_VARIABLES.has(inner)) return match;
      warnings.push(
        `${formatPath(path)}: "${match}" is an editor variable mcplex cannot resolve; kept as literal text (use \${ENV_VAR} instead)`,
      );
      return `$${match}`;
    });
  }
  if (Array.isArray(node)) return node.map((item, index) => translateVariables(item, [...path, index], warnings));
  if (isRecord(node)) {
    const out: Json = {};
    for (const [key, value] of Object.entries(node)) {
      const converted = translateVariables(value, [...path, key], warnings);
      Object.defineProperty(out, key, { value: converted, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }
  return node;
}

function sanitiseKey(name: string): string {
  const cleaned = name
    .replace(/[^A-Za-z0-9_-]/g, '-')
    .replace(/^[_-]+/, '')
    .slice(0, MAX_KEY_LENGTH);
  return cleaned === '' ? 'server' : cleaned;
}

function uniqueKey(base: string, used: ReadonlySet<string>): string {
  if (!used.has(base)) return base;
  for (let n = 2; ; n++) {
    const suffix = `-${n}`;
    const candidate = base.slice(0, MAX_KEY_LENGTH - suffix.length) + suffix;
    if (!used.has(candidate)) return candidate;
  }
}
