// A complete starting configuration around imported servers (`mcplex import`): the servers, and the sections a
// new user decides next (where to listen, who may connect, which models, where state lives) set to their defaults.
import { stringify } from 'yaml';
import { expandEnv } from './expand-env.js';
import type { Env } from './expand-env.js';
import { formatPath } from './errors.js';

type Servers = Record<string, Record<string, unknown>>;

/** Where editors find the schema once mcplex is installed as a package. */
const SCHEMA_PATH = './node_modules/mcplex/schema/mcplex.schema.json';

export function configSkeleton(mcpServers: Servers): Record<string, unknown> {
  return {
    $schema: SCHEMA_PATH,
    mcpServers,
    server: { host: '127.0.0.1', port: 7070 },
    auth: { mode: 'none' },
    llm: { models: {} },
    store: 'sqlite:./mcplex.db',
  };
}

/** The same, as YAML with each section explained. */
export function configSkeletonYaml(mcpServers: Servers): string {
  const servers = stringify({ mcpServers }).trimEnd();
  return `# yaml-language-server: $schema=${SCHEMA_PATH}
# mcplex configuration. Every setting is in the README; \`mcplex serve --config mcplex.yaml\` runs it.
${servers}

# Where mcplex listens. Loopback only until auth.mode is "keys".
server:
  host: 127.0.0.1
  port: 7070

# "none": anyone who reaches the loopback address may connect (development).
# "keys": API keys on /mcp, /v1 and /admin (create them with \`mcplex keys create --name NAME\`).
auth:
  mode: none

# The shared LLM behind /v1, the tool-running chat and the servers' sampling requests, for example:
#   models:
#     gpt:
#       deployments:
#         - { provider: openai, apiKey: "\${OPENAI_API_KEY}", model: gpt-4o-mini }
llm:
  models: {}

# Keys, usage, limit counters and conversations: sqlite:<path>, postgres://…, or memory: (keeps nothing).
store: sqlite:./mcplex.db
`;
}

/** A warning for each `${VAR}` the imported servers name that this environment does not set. */
export function unsetVariableWarnings(mcpServers: Servers, env: Env = process.env): string[] {
  return expandEnv({ mcpServers }, env).unset.map(
    ({ path, names }) =>
      `${formatPath(path)}: ${names.map((name) => `\${${name}}`).join(', ')} not set in this environment; ` +
      'set it where mcplex runs (until then that server does not start)',
  );
}
