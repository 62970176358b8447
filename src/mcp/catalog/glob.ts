// Glob patterns for tool allow/deny lists: `*` matches any run of characters, `?` exactly one.

export function compileGlob(pattern: string): RegExp {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${source}$`);
}

export interface ToolFilter {
  (name: string): boolean;
}

/** A tool is kept when it matches an allow pattern (or there are none) and no deny pattern. */
export function createToolFilter(
  rules: { allow?: readonly string[]; deny?: readonly string[] } | undefined,
): ToolFilter {
  const allow = (rules?.allow ?? []).map(compileGlob);
  const deny = (rules?.deny ?? []).map(compileGlob);
  return (name) => (allow.length === 0 || allow.some((re) => re.test(name))) && !deny.some((re) => re.test(name));
}
