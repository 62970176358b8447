// Loading the mcplex configuration: read a JSON/YAML file, expand `${VAR}`s, validate against the schema,
// report every problem at once (with did-you-mean hints for unknown keys) and return a deep-frozen Config.
import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { LineCounter, parseDocument } from 'yaml';
import * as z from 'zod';
import { ConfigError, formatPath } from './errors.js';
import type { ConfigProblem } from './errors.js';
import { expandEnv } from './expand-env.js';
import type { Env, UnsetReference } from './expand-env.js';
import { configSchema } from './schema.js';
import type { Config } from './schema.js';

type FileFormat = 'json' | 'yaml';

/**
 * Which unset `${VAR}`s a command can live with. `all` (the default) refuses every one. `servers` (serve, stdio):
 * a server whose settings name an unset variable is kept but marked unavailable (it does not start; its status
 * says which variable), everything else must resolve. `store` (keys, usage, migrate, which never connect to a
 * server or a model): only the store, Redis, auth and limits sections must resolve.
 */
export type UnsetVariables = 'all' | 'servers' | 'store';

export interface LoadOptions {
  unsetVariables?: UnsetVariables;
}

/** The sections every command that opens the store needs whole. */
const STORE_SECTIONS = new Set<PropertyKey>(['store', 'redis', 'auth', 'limits']);

const FORMATS: Record<string, FileFormat> = { '.json': 'json', '.yaml': 'yaml', '.yml': 'yaml' };

/** Read, parse, expand and validate a config file. Throws ConfigError (CONFIG_READ, CONFIG_PARSE or CONFIG_INVALID). */
export async function loadConfig(path: string, env: Env = process.env, options: LoadOptions = {}): Promise<Config> {
  const format = FORMATS[extname(path).toLowerCase()];
  if (format === undefined) {
    const problem = { path: '', message: `unsupported file extension "${extname(path)}" (use .json, .yaml or .yml)` };
    throw new ConfigError('CONFIG_READ', [problem], path);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError('CONFIG_READ', [{ path: '', message: describeReadError(error) }], path, { cause: error });
  }
  return parseConfig(parseText(text.replace(/^\uFEFF/, ''), format, path), env, path, options);
}

/** Validate an already-parsed config (expanding `${VAR}`s first). Throws ConfigError('CONFIG_INVALID'). */
export function parseConfig(raw: unknown, env: Env = process.env, source?: string, options: LoadOptions = {}): Config {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    const problem = { path: '', message: 'the configuration must be an object (a JSON object or YAML mapping)' };
    throw new ConfigError('CONFIG_INVALID', [problem], source);
  }
  const expanded = expandEnv(raw, env);
  const tolerable = tolerates(options.unsetVariables ?? 'all');
  const tolerated = expanded.unset.filter((reference) => tolerable(reference.path));
  const toleratedPaths = new Set(tolerated.map((reference) => formatPath(reference.path)));
  const problems: ConfigProblem[] = expanded.problems.filter((problem) => !toleratedPaths.has(problem.path));
  // What cannot be known stands in as a harmless value, so that the rest of the section is still checked.
  for (const reference of tolerated) setAt(expanded.value, reference.path, placeholderFor(reference.path));
  const result = configSchema.safeParse(expanded.value);
  if (!result.success) {
    // A string with an unset variable was left unexpanded; don't pile schema complaints about it on top.
    const envPaths = expanded.problems.map((p) => p.path);
    const coveredByEnv = (path: string) =>
      envPaths.some((p) => path === p || path.startsWith(`${p}.`) || path.startsWith(`${p}[`));
    for (const issue of result.error.issues) {
      for (const problem of issueToProblems(issue)) if (!coveredByEnv(problem.path)) problems.push(problem);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError('CONFIG_INVALID', problems, source);
  markUnavailable(result.data, tolerated);
  return deepFreeze(result.data);
}

function tolerates(mode: UnsetVariables): (path: readonly PropertyKey[]) => boolean {
  if (mode === 'servers') return (path) => path[0] === 'mcpServers' && path.length > 2;
  if (mode === 'store') return (path) => !STORE_SECTIONS.has(path[0] ?? '');
  return () => false;
}

/** A URL field needs a URL to pass its check; any other string field takes a word. */
function placeholderFor(path: readonly PropertyKey[]): string {
  return /url$/i.test(String(path.at(-1))) ? 'http://unset.invalid/' : 'unset';
}

function setAt(tree: unknown, path: readonly PropertyKey[], value: string): void {
  let node = tree as Record<PropertyKey, unknown>;
  for (const segment of path.slice(0, -1)) node = node[segment] as Record<PropertyKey, unknown>;
  const last = path.at(-1);
  if (last !== undefined) node[last] = value;
}

/** A server that names an unset variable does not start; its status says which variable and where. */
function markUnavailable(config: Config, tolerated: readonly UnsetReference[]): void {
  const byServer = new Map<string, string[]>();
  for (const { path, names } of tolerated) {
    if (path[0] !== 'mcpServers') continue;
    const key = String(path[1]);
    const reasons = byServer.get(key) ?? [];
    for (const name of names) reasons.push(`environment variable ${name} is not set (${formatPath(path)})`);
    byServer.set(key, reasons);
  }
  for (const [key, reasons] of byServer) {
    const server = config.mcpServers[key];
    if (server !== undefined) config.mcpServers[key] = { ...server, unavailable: reasons.join('; ') };
  }
}

function issueToProblems(issue: z.core.$ZodIssue): ConfigProblem[] {
  if (issue.code !== 'unrecognized_keys') return [{ path: formatPath(issue.path), message: issue.message }];
  const known = knownKeysAt(issue.path);
  return issue.keys.map((key) => {
    const hint = known === undefined ? undefined : suggestKey(key, known);
    const message = `unknown key "${key}"${hint === undefined ? '' : ` (did you mean "${hint}"?)`}`;
    return { path: formatPath([...issue.path, key]), message };
  });
}

/** The keys the schema allows for the object at `path`, found by walking the schema itself. */
function knownKeysAt(path: readonly PropertyKey[]): string[] | undefined {
  let node: unknown = configSchema;
  let index = 0;
  for (;;) {
    if (
      node instanceof z.ZodDefault ||
      node instanceof z.ZodPrefault ||
      node instanceof z.ZodOptional ||
      node instanceof z.ZodNullable
    ) {
      node = node.unwrap();
    } else if (node instanceof z.ZodPipe) {
      node = node.in;
    } else if (index === path.length) {
      return node instanceof z.ZodObject ? Object.keys(node.shape) : undefined;
    } else {
      const segment = path[index++];
      if (node instanceof z.ZodObject) node = (node.shape as Record<string, unknown>)[String(segment)];
      else if (node instanceof z.ZodRecord) node = node.valueType;
      else if (node instanceof z.ZodArray) node = node.element;
      else return undefined;
    }
  }
}

/** A close allowed key: same letters ignoring case, or within edit distance 2. */
function suggestKey(key: string, known: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const sameCase = known.find((candidate) => candidate.toLowerCase() === lower);
  if (sameCase !== undefined) return sameCase;
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = levenshtein(key, candidate);
    if (distance < bestDistance && distance < key.length) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function parseText(text: string, format: FileFormat, source: string): unknown {
  if (format === 'json') {
    try {
      return JSON.parse(text);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new ConfigError('CONFIG_PARSE', [{ path: '', message: describeJsonError(message, text) }], source, {
        cause: error,
      });
    }
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((error) => {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      return { path: '', message: `line ${line}, column ${col}: ${error.message}` };
    });
    throw new ConfigError('CONFIG_PARSE', problems, source);
  }
  try {
    return doc.toJS();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new ConfigError('CONFIG_PARSE', [{ path: '', message }], source, { cause: error });
  }
}

/** V8 reports a character offset for most JSON errors; turn it into line and column. */
function describeJsonError(message: string, text: string): string {
  const position = /\bat position (\d+)/.exec(message);
  if (position === null) return message;
  const offset = Number(position[1]);
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  const bare = message.replace(/\s*(in JSON )?at position \d+( \(line \d+ column \d+\))?/, '');
  return `line ${line}, column ${column}: ${bare}`;
}

function describeReadError(error: unknown): string {
  const code = typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a file';
  return error instanceof Error ? error.message : String(error);
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
