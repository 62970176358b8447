// Glob patterns for tool names (allow/deny lists, key scopes, a chat request's mcp.tools): `*` matches any run of
// characters, `?` exactly one. Matched without a regular expression, so that no pattern can make matching slow.

/** Longest pattern accepted anywhere: patterns come from clients too (key scopes, chat requests). */
export const MAX_GLOB_LENGTH = 256;
/** Most patterns in one list from a client (key scopes, mcp.tools), and their characters in all. */
export const MAX_GLOBS = 64;
export const MAX_GLOB_CHARS = 1024;

/** Why a pattern is refused, or undefined when it is acceptable. */
export function globProblem(pattern: string): string | undefined {
  if (pattern === '') return 'tool pattern must not be empty';
  if (pattern.length > MAX_GLOB_LENGTH) return `tool pattern is longer than ${MAX_GLOB_LENGTH} characters`;
  if (/[[\]{}]/.test(pattern)) return `invalid tool pattern "${pattern}": only "*" and "?" wildcards are supported`;
  return undefined;
}

/**
 * Why a client's list of patterns is refused, or undefined. Matching costs up to name length x pattern length per
 * tool and pattern, so the list is bounded in all: at most 64-character names x 1024 characters per tool.
 */
export function globsProblem(patterns: readonly string[]): string | undefined {
  if (patterns.length > MAX_GLOBS) return `at most ${MAX_GLOBS} tool patterns`;
  let chars = 0;
  for (const pattern of patterns) {
    const problem = globProblem(pattern);
    if (problem) return problem;
    chars += pattern.length;
  }
  return chars > MAX_GLOB_CHARS ? `tool patterns of more than ${MAX_GLOB_CHARS} characters in all` : undefined;
}

export type GlobMatcher = (name: string) => boolean;

/** Whether `segment` (where `?` stands for any one character) matches `name` at `at`. */
function segmentAt(name: string, segment: string, at: number): boolean {
  for (let i = 0; i < segment.length; i++) {
    const c = segment.charCodeAt(i);
    if (c !== 63 /* ? */ && c !== name.charCodeAt(at + i)) return false;
  }
  return true;
}

/** The first position at or after `from` where `segment` matches, or -1. */
function findSegment(name: string, segment: string, from: number): number {
  if (!segment.includes('?')) return name.indexOf(segment, from);
  for (let at = from; at + segment.length <= name.length; at++) if (segmentAt(name, segment, at)) return at;
  return -1;
}

/**
 * A matcher for one pattern. The pattern is cut at its stars: the first piece must start the name, the last must
 * end it, and each one between is taken at its leftmost place after the previous one. Taking the leftmost place
 * never loses a match (a later piece can only gain room), so no choice is ever revisited: the cost is at most the
 * name's length times the pattern's, with no backtracking whatever the stars.
 */
export function compileGlob(pattern: string): GlobMatcher {
  const pieces = pattern.split('*');
  if (pieces.length === 1) return (name) => name.length === pattern.length && segmentAt(name, pattern, 0);
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  const middle = pieces.slice(1, -1).filter((piece) => piece !== '');
  const fixed = first.length + last.length;
  return (name) => {
    if (name.length < fixed || !segmentAt(name, first, 0) || !segmentAt(name, last, name.length - last.length)) {
      return false;
    }
    let at = first.length;
    const end = name.length - last.length;
    for (const piece of middle) {
      const found = findSegment(name, piece, at);
      if (found < 0 || found + piece.length > end) return false;
      at = found + piece.length;
    }
    return true;
  };
}

/** A matcher for a list of patterns: a name matches when any pattern does. */
export function compileGlobs(patterns: readonly string[]): GlobMatcher {
  const matchers = [...new Set(patterns)].map(compileGlob);
  return (name) => matchers.some((matches) => matches(name));
}

export interface ToolFilter {
  (name: string): boolean;
}

/** A tool is kept when it matches an allow pattern (or there are none) and no deny pattern. */
export function createToolFilter(
  rules: { allow?: readonly string[]; deny?: readonly string[] } | undefined,
): ToolFilter {
  const allow = rules?.allow?.length ? compileGlobs(rules.allow) : undefined;
  const deny = rules?.deny?.length ? compileGlobs(rules.deny) : undefined;
  return (name) => (!allow || allow(name)) && !(deny && deny(name));
}
