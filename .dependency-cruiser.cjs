// The layers of src/, written down and checked by `npm test` (npm run deps): no import cycles, and nothing imports
// upward. From the floor up: config/ and errors; wire/ (JSON, bodies, SSE, globs); store/ and policy/; llm/ and
// mcp/upstream/; mcp/catalog/ and mcp/bridge/; mcp/downstream/; agent/; http/ (ingress, with the /v1 front in
// http/v1/ on the LLM core and the agent); gateway.ts and main.ts
// (composition); cli/.
const TOP = 'src/(main|gateway)\\.ts$|^src/cli/';

/** A rule that `from` may not import any of `to` (paths under src/, as regular expressions). */
const never = (name, comment, from, to) => ({
  name,
  comment,
  severity: 'error',
  from: { path: from },
  to: { path: to },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle hides the order in which parts must be built.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    never('config-is-a-floor', 'config/ depends on nothing else in src/.', '^src/config/', '^src/(?!config/)'),
    never(
      'wire-is-a-floor',
      'wire/ holds the helpers everything uses; it uses nothing of mcplex but errors.',
      '^src/wire/',
      '^src/(?!wire/|errors\\.ts$)',
    ),
    never(
      'telemetry-is-a-floor',
      'telemetry/ (tracing) is called from every flow and knows none of them: it uses nothing of mcplex.',
      '^src/telemetry/',
      '^src/(?!telemetry/)',
    ),
    never(
      'store-and-policy-know-no-flow',
      'Stores and policies serve every flow and know none of them.',
      '^src/(store|policy)/',
      `^src/(mcp|llm|agent|http)/|${TOP}`,
    ),
    never(
      'llm-knows-no-mcp',
      'llm/ is the OpenAI-compatible side: it knows nothing of MCP, of the tool-running chat or of ingress.',
      '^src/llm/',
      `^src/(mcp|agent|http)/|${TOP}`,
    ),
    never(
      'upstream-knows-no-clients',
      'mcp/upstream/ knows nothing about downstream clients, the catalog or the LLM.',
      '^src/mcp/upstream/',
      `^src/(mcp/(catalog|downstream|bridge)|llm|agent|http|store|policy)/|${TOP}`,
    ),
    never(
      'catalog-reads-upstreams-only',
      'mcp/catalog/ reads the upstreams and serves the downstream side, never the other way round.',
      '^src/mcp/catalog/',
      `^src/(mcp/(downstream|bridge)|llm|agent|http)/|${TOP}`,
    ),
    never(
      'bridge-below-downstream',
      'mcp/bridge/ is used by the downstream side and the composition root.',
      '^src/mcp/bridge/',
      `^src/(mcp/downstream|agent|http)/|${TOP}`,
    ),
    never(
      'downstream-below-agent-and-ingress',
      'mcp/downstream/ serves clients; ingress and the tool-running chat sit above it.',
      '^src/mcp/downstream/',
      `^src/(llm|agent|http)/|${TOP}`,
    ),
    never(
      'agent-below-ingress',
      'The tool-running chat is used by ingress, never the reverse.',
      '^src/agent/',
      `^src/http/|${TOP}`,
    ),
    never('ingress-below-composition', 'http/ is built by the composition root.', '^src/http/', TOP),
    never(
      'only-the-cli-starts-mcplex',
      'main.ts is the composition root of the command line.',
      '^src/(?!cli/)',
      '^src/cli/',
    ),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports count: a cycle of types is still a cycle in the design.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '\\.test\\.ts$' },
  },
};
