// `${VAR}` / `${VAR:-default}` expansion over every string value of a parsed config tree (keys are left alone);
// `$${...}` is an escape for a literal `${...}`. Problems are collected, not thrown.
import { formatPath } from './errors.js';
import type { ConfigProblem } from './errors.js';

export type Env = Readonly<Record<string, string | undefined>>;

export interface ExpandEnvResult {
  /** A copy of the input with strings expanded; strings with unresolvable references are left as they were. */
  value: unknown;
  problems: ConfigProblem[];
  /** Each string left unexpanded because a variable it names is not set, and the variables' names. */
  unset: UnsetReference[];
}

export interface UnsetReference {
  path: readonly PropertyKey[];
  names: string[];
}

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;
const NAME_AND_DEFAULT = /^([A-Za-z_][A-Za-z0-9_]*)(?::-([\s\S]*))?$/;

const isPlainObject = (node: object): boolean => {
  const proto: unknown = Object.getPrototypeOf(node);
  return proto === Object.prototype || proto === null;
};

export function expandEnv(value: unknown, env: Env = process.env): ExpandEnvResult {
  const problems: ConfigProblem[] = [];
  const unset: UnsetReference[] = [];

  const expandString = (text: string, path: readonly PropertyKey[]): string => {
    let failed = false;
    const missing: string[] = [];
    const expanded = text.replace(REFERENCE, (match: string, inner: string | undefined) => {
      if (inner === undefined) return '${'; // `$${` escape
      const parsed = NAME_AND_DEFAULT.exec(inner);
      if (parsed === null) {
        failed = true;
        problems.push({
          path: formatPath(path),
          message: `invalid environment variable reference "${match}" (write $\${...} for a literal "\${...}")`,
        });
        return match;
      }
      const name = parsed[1] ?? '';
      const fallback = parsed[2];
      const current = env[name];
      if (fallback !== undefined) return current === undefined || current === '' ? fallback : current;
      if (current !== undefined) return current;
      failed = true;
      missing.push(name);
      problems.push({ path: formatPath(path), message: `environment variable ${name} is not set` });
      return match;
    });
    if (missing.length > 0) unset.push({ path, names: missing });
    return failed ? text : expanded;
  };

  const walk = (node: unknown, path: PropertyKey[]): unknown => {
    if (typeof node === 'string') return expandString(node, path);
    if (Array.isArray(node)) return node.map((item, index) => walk(item, [...path, index]));
    if (typeof node === 'object' && node !== null && isPlainObject(node)) {
      // fromEntries defines own properties, so a `__proto__` key stays a plain key.
      return Object.fromEntries(Object.entries(node).map(([key, item]) => [key, walk(item, [...path, key])]));
    }
    return node;
  };

  return { value: walk(value, []), problems, unset };
}
