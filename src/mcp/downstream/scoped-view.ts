// The catalog as one API key sees it: only the servers and tools its scopes allow. Entries outside the scope are
// neither listed nor reachable (they answer as unknown). Views are computed once per catalog version and scope.
import { McplexError } from '../../errors.js';
import type { ScopeCheck } from '../../policy/auth/scopes.js';
import type { Catalog, CatalogView, Routed } from '../catalog/catalog.js';

const views = new WeakMap<ScopeCheck, CatalogView>();

export function scopedView(catalog: Catalog, scope: ScopeCheck): CatalogView {
  const view = catalog.view;
  if (scope.unrestricted) return view;
  const cached = views.get(scope);
  if (cached && cached.version === view.version) return cached;
  const serverOf = (resolve: () => Routed): string | undefined => {
    try {
      return resolve().upstream.key;
    } catch {
      return undefined;
    }
  };
  const allowed = (key: string | undefined) => key !== undefined && scope.server(key);
  const scoped: CatalogView = Object.freeze({
    version: view.version,
    tools: view.tools.filter((t) => {
      const key = serverOf(() => catalog.resolveTool(t.name));
      return key !== undefined && scope.tool(key, t.name);
    }),
    resources: view.resources.filter((r) => allowed(serverOf(() => catalog.resolveResource(r.uri)))),
    resourceTemplates: view.resourceTemplates.filter((t) =>
      allowed(serverOf(() => catalog.resolveResource(t.uriTemplate))),
    ),
    prompts: view.prompts.filter((p) => allowed(serverOf(() => catalog.resolvePrompt(p.name)))),
  });
  views.set(scope, scoped);
  return scoped;
}

/** A resource route the scope allows, else the same error as for a resource that does not exist. */
export function scopedResource(catalog: Catalog, scope: ScopeCheck, uri: string): Routed {
  const route = catalog.resolveResource(uri);
  if (!scope.server(route.upstream.key)) {
    throw new McplexError('UNKNOWN_RESOURCE', `unknown resource "${uri}"`, { data: { uri } });
  }
  return route;
}

export function scopedPrompt(catalog: Catalog, scope: ScopeCheck, name: string): Routed {
  const route = catalog.resolvePrompt(name);
  if (!scope.server(route.upstream.key)) {
    throw new McplexError('UNKNOWN_PROMPT', `unknown prompt "${name}"`);
  }
  return route;
}
