// The client side of the official MCP conformance suite, played by mcplex's own upstream connection: the suite
// runs this command against its mock server (`conformance client --command "…" --scenario S`, the server URL
// appended as the last argument, the scenario in MCP_CONFORMANCE_SCENARIO, tool calls it wants made in
// MCP_CONFORMANCE_CONTEXT). The URL becomes a `streamable-http` server of an mcplex configuration, read by the
// project's config parser; an `Upstream` connects to it as the gateway does (era negotiated, catalog listed) and
// the scenario's requests go through the methods mcplex forwards downstream requests with. Exit code 0 when
// everything the scenario asked for succeeded, 1 otherwise.
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { UrlElicitationRequiredError } from '@modelcontextprotocol/client';
import type { ClientCapabilities } from '@modelcontextprotocol/client';
import { parseConfig } from '../../src/config/load-config.js';
import { errorMessage } from '../../src/errors.js';
import { createLogger } from '../../src/log/logger.js';
import { Upstream } from '../../src/mcp/upstream/upstream.js';
import { principalAuthFor } from '../../src/policy/upstream-oauth/principal-auth.js';
import { createUpstreamOAuth } from '../../src/policy/upstream-oauth/upstream-oauth.js';
import { createVault } from '../../src/policy/upstream-oauth/vault.js';
import { createMemoryStore } from '../../src/store/memory/memory-store.js';
import type { CallOptions, DownstreamRelay } from '../../src/mcp/upstream/upstream.js';
import { VERSION } from '../../src/version.js';

/** The server key in the generated configuration (unprefixed, as the conformance run of the server side has it). */
const SERVER_KEY = 'conformance';

/** What the suite passes in MCP_CONFORMANCE_CONTEXT (only the part the scenarios here use). */
interface ScenarioContext {
  name?: string;
  toolCalls?: { name: string; arguments?: Record<string, unknown> }[];
  /** A client registered in advance (auth/pre-registration). */
  client_id?: string;
  client_secret?: string;
}

/** The principal the auth scenarios sign in as, and the client ID metadata document URL the suite knows. */
const PRINCIPAL = 'conformance';
const CLIENT_METADATA_URL = 'https://conformance-test.local/client-metadata.json';
/** Where the authorization server sends the browser back; the scripted browser reads the redirect, not the page. */
const CALLBACK = 'http://localhost:3000/oauth/callback';

/**
 * The auth scenarios: mcplex signs the principal in as it does for `auth.type: "oauth"` servers (its OAuth client,
 * tokens sealed in a memory store), the browser's part played by following the authorization URL, which the
 * suite's authorization server answers at once with a redirect to the callback; then the Upstream connects with
 * that principal's token and calls the scenario's tool as that principal.
 */
async function signedInUpstream(
  url: string,
  timeoutMs: number,
  context: ScenarioContext,
  logger: ReturnType<typeof createLogger>,
): Promise<{ upstream: Upstream; stepUp(error: unknown): Promise<boolean>; close(): Promise<void> }> {
  const auth = {
    type: 'oauth' as const,
    clientMetadataUrl: CLIENT_METADATA_URL,
    ...(context.client_id === undefined ? {} : { clientId: context.client_id }),
    ...(context.client_secret === undefined ? {} : { clientSecret: context.client_secret }),
  };
  const config = parseConfig(
    {
      auth: {
        upstreamOAuth: { credentialKey: randomBytes(32).toString('base64'), publicUrl: 'http://localhost:3000' },
      },
      mcpServers: { [SERVER_KEY]: { url, prefix: '', timeouts: { startup: timeoutMs, call: timeoutMs }, auth } },
    },
    {},
    'conformance client',
  );
  const serverConfig = config.mcpServers[SERVER_KEY]!;
  const store = createMemoryStore();
  const oauth = createUpstreamOAuth([{ name: SERVER_KEY, url, ...auth }], {
    store: store.credentials,
    vault: createVault(randomBytes(32)),
    callbackUrl: CALLBACK,
    // The suite's servers run on this machine.
    fetchPolicy: {
      allowPrivate: ['localhost', '127.0.0.1'],
      insecureHosts: ['localhost', '127.0.0.1'],
      timeoutMs,
      maxBytes: 1 << 20,
    },
    flowTtlMs: 60_000,
  });
  /** The browser's part: the authorization server answers the authorization URL with the callback at once. */
  const signIn = async (scope?: string) => {
    const started = await oauth.begin(PRINCIPAL, SERVER_KEY, undefined, scope);
    const redirect = await fetch(started.authorizationUrl, { redirect: 'manual' });
    const location = redirect.headers.get('location');
    if (location === null) throw new Error(`the authorization endpoint answered ${redirect.status}, not a redirect`);
    await oauth.complete(Object.fromEntries(new URL(location).searchParams));
  };
  await signIn();
  const upstream = new Upstream(SERVER_KEY, serverConfig, {
    logger,
    clientInfo: { name: 'mcplex', version: VERSION },
    onChange: () => {},
    principalAuth: principalAuthFor(oauth, SERVER_KEY, 'http://localhost:3000'),
  });
  return {
    upstream,
    // A URL elicitation after a 403 insufficient_scope: the user signs in again for the scope its ticket names.
    async stepUp(error) {
      if (!(error instanceof UrlElicitationRequiredError)) return false;
      const ticket = /\/oauth\/sign-in\/([A-Za-z0-9_-]+)$/.exec(error.elicitations[0]?.url ?? '')?.[1];
      const found = ticket === undefined ? undefined : await oauth.redeemTicket(ticket);
      if (!found) return false;
      await signIn(found.scope);
      return true;
    },
    close: () => store.close(),
  };
}

/**
 * The downstream client behind each forwarded request, as the aggregate server provides one: a plain client that
 * declares no sampling, elicitation or roots (none of the scenarios here asks for them), so any request the server
 * sends back during a call is refused with a clear error.
 */
function plainClientRelay(log: (line: string) => void): DownstreamRelay {
  const capabilities: ClientCapabilities = {};
  return {
    capabilities,
    request: (method) => Promise.reject(new Error(`the conformance client does not answer ${method}`)),
    log: (message) => log(`server log (${message.level}): ${JSON.stringify(message.data)}`),
  };
}

export interface ClientRunOptions {
  url: string;
  scenario: string;
  context?: ScenarioContext;
  /** pino level for mcplex's own logs (stderr). */
  logLevel?: string;
  /** Timeout for connecting and for each call, in ms (kept under the suite's 30 s client timeout). */
  timeoutMs?: number;
}

/** Connects through mcplex's Upstream, does what the scenario asks, closes; throws on the first failure. */
export async function runScenario(options: ClientRunOptions): Promise<void> {
  const { url, scenario, context = {} } = options;
  const timeoutMs = options.timeoutMs ?? 20_000;
  const config = parseConfig(
    {
      mcpServers: {
        [SERVER_KEY]: {
          type: 'streamable-http',
          url,
          prefix: '',
          timeouts: { startup: timeoutMs, call: timeoutMs },
        },
      },
      logLevel: options.logLevel ?? 'warn',
    },
    {},
    'conformance client',
  );
  const serverConfig = config.mcpServers[SERVER_KEY];
  if (serverConfig === undefined || serverConfig.transport !== 'streamable-http') {
    throw new Error(`the configuration did not yield a streamable-http server (got ${serverConfig?.transport})`);
  }
  const logger = createLogger(config.logLevel);
  const say = (line: string) => console.error(`[upstream-client] ${line}`);
  const signedIn = scenario.startsWith('auth/') ? await signedInUpstream(url, timeoutMs, context, logger) : undefined;
  const upstream =
    signedIn?.upstream ??
    new Upstream(SERVER_KEY, serverConfig, {
      logger,
      clientInfo: { name: 'mcplex', version: VERSION },
      onChange: () => {},
    });
  const callOptions = (): CallOptions => ({
    relay: plainClientRelay(say),
    signal: AbortSignal.timeout(timeoutMs),
    ...(signedIn ? { principal: PRINCIPAL } : {}),
  });
  try {
    upstream.start();
    await upstream.whenSettled();
    const status = upstream.status();
    if (!upstream.isReady) throw new Error(`upstream not ready (${status.state}): ${status.lastError ?? 'no error'}`);
    const { tools, resources, prompts } = upstream.catalog;
    say(
      `ready: ${status.era} era, protocol ${status.protocolVersion}; ` +
        `${tools.length} tools (${tools.map((t) => t.name).join(', ')}), ${resources.length} resources, ` +
        `${prompts.length} prompts`,
    );

    /** Step-up sign-ins a call may need, at most: an upstream that keeps asking for more is not followed for ever. */
    const MAX_STEP_UPS = 2;
    const callTool = async (name: string, args: Record<string, unknown>) => {
      let result;
      for (let attempt = 0; ; attempt++) {
        try {
          result = await upstream.callTool({ name, arguments: args }, callOptions());
          break;
        } catch (error) {
          say(
            `attempt ${attempt} failed: ${(error as Error).constructor.name} ${(error as Error).stack?.split('\n').slice(0, 8).join(' / ')}`,
          );
          if (attempt >= MAX_STEP_UPS || !signedIn || !(await signedIn.stepUp(error))) throw error;
          say(`signed in again for more scope (${errorMessage(error)})`);
        }
      }
      if (result.isError) throw new Error(`tool ${name} returned an error: ${JSON.stringify(result.content)}`);
      say(`called ${name}: ${JSON.stringify(result.content)}`);
      return result;
    };

    switch (scenario) {
      case 'initialize':
      case 'request-metadata':
        // Connecting (initialize or server/discover) and listing the catalog is the whole scenario.
        break;
      case 'tools_call': {
        const result = await callTool('add_numbers', { a: 5, b: 7 });
        const text = JSON.stringify(result.content);
        if (!text.includes('12')) throw new Error(`add_numbers(5, 7) did not answer 12: ${text}`);
        break;
      }
      case 'sse-retry':
        // The server ends the call's SSE stream after a priming event; the result comes on a resumed stream.
        await callTool('test_reconnection', {});
        break;
      case 'http-standard-headers':
        // Every method that carries Mcp-Method and Mcp-Name: the catalog listing sent the list requests.
        for (const tool of tools) await callTool(tool.name, {});
        for (const resource of resources) {
          await upstream.readResource({ uri: resource.uri }, callOptions());
          say(`read ${resource.uri}`);
        }
        for (const prompt of prompts) {
          await upstream.getPrompt({ name: prompt.name }, callOptions());
          say(`got prompt ${prompt.name}`);
        }
        break;
      case 'http-custom-headers': {
        const calls = context.toolCalls ?? [];
        if (calls.length === 0) throw new Error('MCP_CONFORMANCE_CONTEXT has no toolCalls');
        for (const call of calls) await callTool(call.name, call.arguments ?? {});
        break;
      }
      case 'auth/metadata-default':
      case 'auth/metadata-var1':
      case 'auth/metadata-var2':
      case 'auth/metadata-var3':
      case 'auth/basic-cimd':
      case 'auth/scope-from-www-authenticate':
      case 'auth/scope-from-scopes-supported':
      case 'auth/scope-omitted-when-undefined':
      case 'auth/scope-step-up':
      case 'auth/scope-retry-limit':
      case 'auth/token-endpoint-auth-basic':
      case 'auth/token-endpoint-auth-post':
      case 'auth/token-endpoint-auth-none':
      case 'auth/pre-registration':
        // Signed in before connecting; the catalog was listed and each tool is called with the principal's token.
        for (const tool of tools) await callTool(tool.name, {});
        break;
      case 'http-invalid-tool-headers':
        // Whatever mcplex would offer downstream may be called: tools with malformed x-mcp-header annotations
        // must not be in its catalog.
        for (const tool of tools) await callTool(tool.name, { region: 'us-west1' });
        break;
      default:
        throw new Error(`no client behaviour for scenario "${scenario}"`);
    }
  } finally {
    await upstream.close();
    await signedIn?.close();
    logger.flush();
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      scenario: { type: 'string' },
      'log-level': { type: 'string' },
      timeout: { type: 'string' },
    },
  });
  const url = positionals.at(-1);
  if (url === undefined) throw new Error('usage: upstream-client.ts [--scenario NAME] SERVER_URL');
  const scenario = values.scenario ?? process.env.MCP_CONFORMANCE_SCENARIO;
  if (!scenario) throw new Error('no scenario: pass --scenario or set MCP_CONFORMANCE_SCENARIO');
  const rawContext = process.env.MCP_CONFORMANCE_CONTEXT;
  await runScenario({
    url,
    scenario,
    ...(rawContext ? { context: JSON.parse(rawContext) as ScenarioContext } : {}),
    logLevel: values['log-level'] ?? process.env.MCPLEX_CONFORMANCE_LOG ?? 'debug',
    ...(values.timeout ? { timeoutMs: Number(values.timeout) } : {}),
  });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then(
    () => {
      process.exitCode = 0;
      // A clean shutdown leaves nothing running; whatever still holds the process open after close() is a leak.
      setTimeout(() => {
        console.error('[upstream-client] FAILED: the process did not exit by itself after Upstream.close()');
        process.exit(1);
      }, 5_000).unref();
    },
    (error: unknown) => {
      console.error(`[upstream-client] FAILED: ${errorMessage(error)}`);
      if (error instanceof Error && error.stack) console.error(error.stack);
      process.exit(1);
    },
  );
}
