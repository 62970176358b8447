// What a principal may reach: models on /v1; MCP servers and tools on /mcp and for tools used from /v1.
import { compileGlobs } from '../../wire/glob.js';
import type { KeyScopes } from '../../store/store.js';

export interface ScopeCheck {
  /** No restriction at all: the common case, which skips every per-item check. */
  readonly unrestricted: boolean;
  model(...names: string[]): boolean;
  server(key: string): boolean;
  tool(serverKey: string, exposedName: string): boolean;
}

const compiled = new WeakMap<KeyScopes, ScopeCheck>();

export function scopeCheck(scopes: KeyScopes): ScopeCheck {
  let check = compiled.get(scopes);
  if (check) return check;
  const models = scopes.models ? new Set(scopes.models) : undefined;
  const servers = scopes.servers ? new Set(scopes.servers) : undefined;
  const tools = scopes.tools ? compileGlobs(scopes.tools) : undefined;
  check = {
    unrestricted: !models && !servers && !tools,
    // A model is allowed when any of its names (the requested one, the canonical one) is listed.
    model: (...names) => !models || names.some((n) => models.has(n)),
    server: (key) => !servers || servers.has(key),
    tool: (serverKey, name) => (!servers || servers.has(serverKey)) && (!tools || tools(name)),
  };
  compiled.set(scopes, check);
  return check;
}
