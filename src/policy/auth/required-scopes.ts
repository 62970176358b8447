// The OAuth scopes an MCP call needs beyond its issuer's: per server (`auth.oauth.serverScopes`) and per exposed
// tool name or pattern (`auth.oauth.toolScopes`). A token short of them gets 403 insufficient_scope naming every
// scope the call needs, so that a client can ask its user for more (step-up authorization).
import { compileGlobs } from '../../wire/glob.js';
import type { Principal } from './keys.js';

export interface ScopeRequirements {
  /** The scopes a call to `server` (and `tool`, its exposed name, for tools/call) needs; empty when none. */
  needed(server: string, tool: string | undefined): readonly string[];
  /** Those of them `principal` lacks: none for an API key, which OAuth scopes do not concern. */
  missing(principal: Principal, server: string, tool: string | undefined): readonly string[];
}

export function scopeRequirements(
  servers: Readonly<Record<string, readonly string[]>> = {},
  tools: Readonly<Record<string, readonly string[]>> = {},
): ScopeRequirements | undefined {
  const toolRules = Object.entries(tools).map(([pattern, scopes]) => ({ matches: compileGlobs([pattern]), scopes }));
  if (Object.keys(servers).length === 0 && toolRules.length === 0) return undefined;
  const needed = (server: string, tool: string | undefined): readonly string[] => {
    const all = new Set(servers[server] ?? []);
    if (tool !== undefined)
      for (const rule of toolRules) if (rule.matches(tool)) for (const s of rule.scopes) all.add(s);
    return [...all];
  };
  return {
    needed,
    missing(principal, server, tool) {
      if (!principal.grants) return [];
      return needed(server, tool).filter((scope) => !principal.grants!.has(scope));
    },
  };
}
