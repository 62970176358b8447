// The merged, namespaced view of every ready upstream's tools, resources, resource templates and prompts,
// and the routing tables that send a call, read or get back to the server that owns it.
import type { Prompt, Resource, ResourceTemplateType as ResourceTemplate, Tool } from '@modelcontextprotocol/client';
import { McplexError } from '../../errors.js';
import type { ListChanges, Upstream } from '../upstream/upstream.js';
import { assignNames } from './naming.js';
import type { NameRequest } from './naming.js';

export const RESOURCE_SCHEME = 'mcplex:';

export interface Routed {
  upstream: Upstream;
  /** The name or URI as the upstream knows it. */
  original: string;
}

export type { ListChanges };

export interface CatalogView {
  readonly version: number;
  readonly tools: readonly Tool[];
  readonly resources: readonly Resource[];
  readonly resourceTemplates: readonly ResourceTemplate[];
  readonly prompts: readonly Prompt[];
}

const NAMESPACE = 'mcplex://';

/**
 * `mcplex://<server>/<original uri>`: readable, and routable without a lookup table for templates. An unprefixed
 * server's URIs stay as they are, unless they look namespaced themselves (then they are wrapped like any other).
 */
export function exposeUri(serverKey: string, uri: string, unprefixed = false): string {
  if (unprefixed && !uri.startsWith(NAMESPACE)) return uri;
  return `${NAMESPACE}${serverKey}/${uri}`;
}

/** The URI as clients see it, for a URI of this upstream. */
export function exposeUpstreamUri(upstream: Upstream, uri: string): string {
  return exposeUri(upstream.key, uri, upstream.config.prefix === '');
}

/** A content block's resource URI as clients see it: what a resource link or an embedded resource points at. */
function exposeBlock(upstream: Upstream, block: unknown): unknown {
  const typed = block as { type?: unknown; uri?: unknown; resource?: { uri?: unknown } };
  if (typed?.type === 'resource_link' && typeof typed.uri === 'string') {
    return { ...typed, uri: exposeUpstreamUri(upstream, typed.uri) };
  }
  if (typed?.type === 'resource' && typeof typed.resource?.uri === 'string') {
    return { ...typed, resource: { ...typed.resource, uri: exposeUpstreamUri(upstream, typed.resource.uri) } };
  }
  return block;
}

const linksResource = (block: unknown) => {
  const type = (block as { type?: unknown } | null)?.type;
  return type === 'resource_link' || type === 'resource';
};

/**
 * A tool result or prompt whose resource links and embedded resources name URIs as clients see them, so that a
 * client can read what it was pointed at through mcplex (as `resources/read` answers carry exposed URIs). Results
 * without such content are returned as they are.
 */
export function exposeContentUris<T extends object>(upstream: Upstream, result: T): T {
  const { content, messages } = result as { content?: unknown; messages?: unknown };
  if (Array.isArray(content) && content.some(linksResource)) {
    return { ...result, content: content.map((block) => exposeBlock(upstream, block)) };
  }
  if (Array.isArray(messages) && messages.some((m) => linksResource((m as { content?: unknown })?.content))) {
    const exposed = messages.map((m: { content?: unknown }) => ({ ...m, content: exposeBlock(upstream, m.content) }));
    return { ...result, messages: exposed };
  }
  return result;
}

export function parseExposedUri(uri: string): { serverKey: string; original: string } | undefined {
  if (!uri.startsWith(NAMESPACE)) return undefined;
  const rest = uri.slice(NAMESPACE.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return undefined;
  return { serverKey: rest.slice(0, slash), original: rest.slice(slash + 1) };
}

export class Catalog {
  private readonly upstreams: ReadonlyMap<string, Upstream>;
  /** The server configured with `prefix: ""` (the configuration allows one at most). */
  private readonly unprefixed: Upstream | undefined;
  private toolRoutes = new Map<string, Routed>();
  private exposedTools = new Map<string, Tool>();
  private promptRoutes = new Map<string, Routed>();
  private viewValue: CatalogView = { version: 0, tools: [], resources: [], resourceTemplates: [], prompts: [] };
  private readonly listeners = new Set<(view: CatalogView, changes: ListChanges) => void>();

  constructor(upstreams: readonly Upstream[]) {
    this.upstreams = new Map(upstreams.map((u) => [u.key, u]));
    this.unprefixed = upstreams.find((u) => u.config.prefix === '');
    this.rebuild();
  }

  get view(): CatalogView {
    return this.viewValue;
  }

  onChange(listener: (view: CatalogView, changes: ListChanges) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Recomputes the merged view from the upstreams' current catalogs; cheap enough to run on every change. */
  /**
   * `announced` names lists an upstream said changed: clients hear of them even when the merged view looks the
   * same (a server may know of changes its listing does not show, such as new content behind the same names).
   */
  rebuild(announced: Partial<ListChanges> = {}): void {
    // A server that waits for its first principal to sign in offers the tool that starts the sign-in.
    const ready = [...this.upstreams.values()]
      .filter((u) => u.isReady || u.awaitsSignIn)
      .sort((a, b) => compare(a.key, b.key));

    const toolRequests: { request: NameRequest; tool: Tool; upstream: Upstream }[] = [];
    const promptRequests: { request: NameRequest; prompt: Prompt; upstream: Upstream }[] = [];
    const resources: Resource[] = [];
    const resourceTemplates: ResourceTemplate[] = [];
    for (const upstream of ready) {
      const prefix = upstream.config.prefix ?? upstream.key;
      const { catalog } = upstream;
      for (const tool of catalog.tools) {
        if (!upstream.exposes(tool.name)) continue;
        toolRequests.push({ request: { serverKey: upstream.key, prefix, name: tool.name }, tool, upstream });
      }
      for (const prompt of catalog.prompts) {
        promptRequests.push({ request: { serverKey: upstream.key, prefix, name: prompt.name }, prompt, upstream });
      }
      for (const resource of catalog.resources)
        resources.push({ ...resource, uri: exposeUpstreamUri(upstream, resource.uri) });
      for (const template of catalog.resourceTemplates) {
        resourceTemplates.push({ ...template, uriTemplate: exposeUpstreamUri(upstream, template.uriTemplate) });
      }
    }

    const toolNames = assignNames(toolRequests.map((t) => t.request));
    const toolRoutes = new Map<string, Routed>();
    const exposedTools = new Map<string, Tool>();
    const tools: Tool[] = [];
    for (const { request, tool, upstream } of toolRequests) {
      const name = toolNames.get(request)!;
      const exposed = Object.freeze({ ...tool, name });
      toolRoutes.set(name, { upstream, original: tool.name });
      exposedTools.set(name, exposed);
      tools.push(exposed);
    }
    const promptNames = assignNames(promptRequests.map((p) => p.request));
    const promptRoutes = new Map<string, Routed>();
    const prompts: Prompt[] = [];
    for (const { request, prompt, upstream } of promptRequests) {
      const name = promptNames.get(request)!;
      promptRoutes.set(name, { upstream, original: prompt.name });
      prompts.push({ ...prompt, name });
    }

    tools.sort((a, b) => compare(a.name, b.name));
    prompts.sort((a, b) => compare(a.name, b.name));
    resources.sort((a, b) => compare(a.uri, b.uri));
    resourceTemplates.sort((a, b) => compare(a.uriTemplate, b.uriTemplate));

    const previous = this.viewValue;
    const changes: ListChanges = {
      tools: announced.tools === true || !sameJson(previous.tools, tools),
      resources:
        announced.resources === true ||
        !sameJson(previous.resources, resources) ||
        !sameJson(previous.resourceTemplates, resourceTemplates),
      prompts: announced.prompts === true || !sameJson(previous.prompts, prompts),
    };
    if (!changes.tools && !changes.resources && !changes.prompts && previous.version > 0) return;
    this.toolRoutes = toolRoutes;
    this.exposedTools = exposedTools;
    this.promptRoutes = promptRoutes;
    this.viewValue = Object.freeze({
      version: this.viewValue.version + 1,
      tools: Object.freeze(tools),
      resources: Object.freeze(resources),
      resourceTemplates: Object.freeze(resourceTemplates),
      prompts: Object.freeze(prompts),
    });
    for (const listener of this.listeners) listener(this.viewValue, changes);
  }

  /** The tool as listed under its exposed name. */
  tool(name: string): Tool | undefined {
    return this.exposedTools.get(name);
  }

  resolveTool(name: string): Routed {
    const route = this.toolRoutes.get(name);
    if (!route) throw new McplexError('UNKNOWN_TOOL', `unknown tool "${name}"`);
    return route;
  }

  resolvePrompt(name: string): Routed {
    const route = this.promptRoutes.get(name);
    if (!route) throw new McplexError('UNKNOWN_PROMPT', `unknown prompt "${name}"`);
    return route;
  }

  /**
   * Resources and template instances route by the server key inside the exposed URI; any other URI belongs to
   * the unprefixed server, if there is one.
   */
  resolveResource(uri: string): Routed {
    const parsed = parseExposedUri(uri);
    const upstream = parsed ? this.upstreams.get(parsed.serverKey) : this.unprefixed;
    if (!upstream || !upstream.isReady) {
      throw new McplexError('UNKNOWN_RESOURCE', `unknown resource "${uri}"`, { data: { uri } });
    }
    return { upstream, original: parsed ? parsed.original : uri };
  }
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
