// Unit tests for parseConfig / loadConfig: defaults, normalisation, env expansion, error reporting, freezing.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from './errors.js';
import { loadConfig, parseConfig } from './load-config.js';
import type { ServerConfig } from './schema.js';

const DEFAULT_EXTRAS = {
  tools: {},
  timeouts: { startup: 30_000, call: 300_000 },
  disabled: false,
  protocol: 'auto',
  restart: { initialDelay: 500, maxDelay: 30_000 },
};

/** Run `fn`, expect a ConfigError and return it. */
function catchConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

async function catchConfigErrorAsync(promise: Promise<unknown>): Promise<ConfigError> {
  const error: unknown = await promise.then(
    () => new Error('expected a ConfigError'),
    (caught: unknown) => caught,
  );
  if (error instanceof ConfigError) return error;
  throw error;
}

describe('parseConfig', () => {
  it('fills defaults for an empty config', () => {
    expect(parseConfig({}, {})).toEqual({
      mcpServers: {},
      cluster: { heartbeatMs: 1000 },
      server: {
        host: '127.0.0.1',
        port: 7070,
        maxBodyBytes: 4_194_304,
        allowedOrigins: [],
        allowedHosts: [],
        pageSize: 500,
        drainMs: 10_000,
        maxSubscriptions: 1000,
        startupWaitMs: 5000,
        sessions: {
          max: 10_000,
          maxPerPrincipal: 1000,
          maxListensPerPrincipal: 100,
          idleMs: 1_800_000,
          pressureIdleMs: 60_000,
          replayEvents: 200,
          replayBytes: 1_048_576,
          replayTotalBytes: 67_108_864,
        },
        timeouts: { headersMs: 10_000, requestMs: 30_000, keepAliveMs: 5000 },
        requestState: { ttlMs: 600_000 },
        maxConnections: 10_000,
      },
      llm: {
        models: {},
        retries: { attempts: 2, initialDelayMs: 50, maxDelayMs: 2000, maxRetryAfterMs: 10_000 },
        breaker: { failures: 5, cooldownMs: 30_000 },
        keepAliveMs: 15_000,
        cache: { enabled: true, ttlMs: 300_000, store: 'memory', maxBytes: 67_108_864, shared: false },
        batching: { windowMs: 2, maxInputs: 64 },
      },
      auth: { mode: 'none', keyCacheMs: 5000 },
      limits: { counters: 'store', leaseTtlMs: 30_000 },
      agent: { selectionThreshold: 40, topK: 20, embeddings: true, warmEmbeddings: false, embeddingsIdleMs: 600_000 },
      logLevel: 'info',
    });
  });

  it('normalises a stdio server and fills its defaults', () => {
    const config = parseConfig({ mcpServers: { fs: { command: 'npx', args: ['-y', 'server-fs'] } } }, {});
    expect(config.mcpServers.fs).toEqual({
      transport: 'stdio',
      command: 'npx',
      args: ['-y', 'server-fs'],
      env: {},
      prefix: 'fs',
      ...DEFAULT_EXTRAS,
    });
  });

  it('keeps stdio env and cwd and the mcplex extras', () => {
    const config = parseConfig(
      {
        mcpServers: {
          mem: {
            type: 'stdio',
            command: 'node',
            env: { A: '1' },
            cwd: '/tmp',
            prefix: 'memory',
            tools: { allow: ['read_*'], deny: ['*delete?'] },
            timeouts: { call: 1000 },
            disabled: true,
            protocol: 'legacy',
            restart: { maxDelay: 5000 },
          },
        },
        server: { port: 0, allowedOrigins: ['http://localhost:3000'] },
        logLevel: 'debug',
      },
      {},
    );
    expect(config.mcpServers.mem).toEqual({
      transport: 'stdio',
      command: 'node',
      args: [],
      env: { A: '1' },
      cwd: '/tmp',
      prefix: 'memory',
      tools: { allow: ['read_*'], deny: ['*delete?'] },
      timeouts: { startup: 30_000, call: 1000 },
      disabled: true,
      protocol: 'legacy',
      restart: { initialDelay: 500, maxDelay: 5000 },
    });
    expect(config.server.port).toBe(0);
    expect(config.server.allowedOrigins).toEqual(['http://localhost:3000']);
    expect(config.logLevel).toBe('debug');
  });

  it('normalises remote servers: no type and "http" mean streamable-http, "sse" stays sse', () => {
    const config = parseConfig(
      {
        mcpServers: {
          a: { url: 'https://example.com/mcp', headers: { Authorization: 'Bearer x' } },
          b: { type: 'http', url: 'http://localhost:8080/mcp' },
          c: { type: 'streamable-http', url: 'http://localhost:8080/mcp' },
          d: { type: 'sse', url: 'http://localhost:8080/sse' },
        },
      },
      {},
    );
    expect(config.mcpServers.a).toEqual({
      transport: 'streamable-http',
      url: 'https://example.com/mcp',
      headers: { Authorization: 'Bearer x' },
      prefix: 'a',
      ...DEFAULT_EXTRAS,
    });
    expect(config.mcpServers.b?.transport).toBe('streamable-http');
    expect(config.mcpServers.c?.transport).toBe('streamable-http');
    expect(config.mcpServers.d).toMatchObject({ transport: 'sse', url: 'http://localhost:8080/sse', headers: {} });
  });

  it('gives a discriminated union downstream code can switch on', () => {
    const config = parseConfig({ mcpServers: { fs: { command: 'x' }, web: { url: 'http://h/mcp' } } }, {});
    const describe = (server: ServerConfig): string =>
      server.transport === 'stdio' ? `run ${server.command}` : `connect ${server.url}`;
    expect(Object.values(config.mcpServers).map(describe)).toEqual(['run x', 'connect http://h/mcp']);
  });

  it('expands environment variables before validation', () => {
    const config = parseConfig(
      {
        mcpServers: {
          gh: {
            url: '${GH_URL:-https://api.example.com/mcp}',
            headers: { Authorization: 'Bearer ${TOKEN}', Literal: '$${TOKEN}' },
          },
        },
      },
      { TOKEN: 't0k' },
    );
    expect(config.mcpServers.gh).toMatchObject({
      url: 'https://api.example.com/mcp',
      headers: { Authorization: 'Bearer t0k', Literal: '${TOKEN}' },
    });
  });

  it('reports a missing variable once, without follow-on schema complaints', () => {
    const error = catchConfigError(() => parseConfig({ mcpServers: { gh: { url: '${GH_URL}' } } }, {}));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.problems).toEqual([{ path: 'mcpServers.gh.url', message: 'environment variable GH_URL is not set' }]);
  });

  it('keeps a server whose variable is unset as unavailable, naming the variable, when serving', () => {
    const raw = {
      mcpServers: {
        gh: { url: 'https://${GH_HOST}/mcp', headers: { Authorization: 'Bearer ${GITHUB_TOKEN}' } },
        fs: { command: 'npx', args: ['server', '${ROOT:-/srv}'], env: { A: '${A_TOKEN}' } },
        ok: { command: 'npx' },
      },
    };
    const config = parseConfig(raw, {}, undefined, { unsetVariables: 'servers' });
    expect(config.mcpServers.gh?.unavailable).toBe(
      'environment variable GH_HOST is not set (mcpServers.gh.url); ' +
        'environment variable GITHUB_TOKEN is not set (mcpServers.gh.headers.Authorization)',
    );
    expect(config.mcpServers.fs?.unavailable).toBe('environment variable A_TOKEN is not set (mcpServers.fs.env.A)');
    expect(config.mcpServers.fs).toMatchObject({ transport: 'stdio', args: ['server', '/srv'] });
    expect(config.mcpServers.ok?.unavailable).toBeUndefined();
    // The rest of such a server is still checked, and the other sections still need their variables.
    const typo = catchConfigError(() =>
      parseConfig({ mcpServers: { gh: { url: '${GH_URL}', heders: {} } } }, {}, undefined, {
        unsetVariables: 'servers',
      }),
    );
    expect(typo.problems).toEqual([{ path: 'mcpServers.gh.heders', message: expect.stringContaining('unknown key') }]);
    const needed = catchConfigError(() =>
      parseConfig({ store: '${DATABASE_URL}', mcpServers: {} }, {}, undefined, { unsetVariables: 'servers' }),
    );
    expect(needed.problems).toEqual([{ path: 'store', message: 'environment variable DATABASE_URL is not set' }]);
    // Without the option every unset variable is a problem, as before.
    expect(catchConfigError(() => parseConfig(raw, {})).problems).toHaveLength(3);
  });

  it('needs only the store, Redis, auth and limits variables for commands on the store', () => {
    const raw = {
      store: '${DATABASE_URL}',
      mcpServers: { gh: { url: '${GH_URL}' } },
      llm: {
        models: { m: { deployments: [{ provider: 'openai', baseUrl: '${LLM_URL}', apiKey: '${KEY}', model: 'x' }] } },
      },
    };
    const config = parseConfig(raw, { DATABASE_URL: 'memory:' }, undefined, { unsetVariables: 'store' });
    expect(config.store).toBe('memory:');
    expect(Object.keys(config.llm.models)).toEqual(['m']);
    expect(config.mcpServers.gh?.unavailable).toMatch(/GH_URL is not set/);
    const error = catchConfigError(() => parseConfig(raw, {}, undefined, { unsetVariables: 'store' }));
    expect(error.problems).toEqual([{ path: 'store', message: 'environment variable DATABASE_URL is not set' }]);
  });

  it('reports every problem with its path', () => {
    const error = catchConfigError(() =>
      parseConfig(
        {
          mcpServers: {
            fs: { command: '', args: 'nope' },
            web: { url: 'not a url', timeouts: { call: -5 } },
          },
          server: { port: 70000 },
          logLevel: 'loud',
        },
        {},
        'mcplex.json',
      ),
    );
    const paths = error.problems.map((p) => p.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'mcpServers.fs.command',
        'mcpServers.fs.args',
        'mcpServers.web.url',
        'mcpServers.web.timeouts.call',
        'server.port',
        'logLevel',
      ]),
    );
    expect(error.message.split('\n')[0]).toBe('mcplex.json: invalid configuration');
    for (const problem of error.problems) expect(error.message).toContain(`\n  ${problem.path}: ${problem.message}`);
  });

  it('takes auth.oauth with API keys only, HTTPS issuers (HTTP on loopback), and issuer names that differ', () => {
    const oauth = {
      resource: 'https://gateway.example.com',
      issuers: [{ issuer: 'https://login.example.com/tenant', requiredScopes: ['mcp:use'] }],
    };
    const config = parseConfig({ auth: { mode: 'keys', oauth } }, {}, 'mcplex.json');
    expect(config.auth.oauth).toMatchObject({ clockToleranceSec: 30, issuers: [{ subjectClaim: 'sub' }] });
    expect(
      parseConfig(
        { auth: { mode: 'keys', oauth: { ...oauth, issuers: [{ issuer: 'http://127.0.0.1:8080' }] } } },
        {},
        'mcplex.json',
      ).auth.oauth?.issuers[0]?.issuer,
    ).toBe('http://127.0.0.1:8080');
    const error = catchConfigError(() =>
      parseConfig(
        {
          auth: {
            mode: 'none',
            oauth: {
              ...oauth,
              issuers: [
                { issuer: 'http://login.example.com', name: 'corp' },
                { issuer: 'https://other.example.com', name: 'corp', jwksUri: 'http://keys.example.com/jwks' },
                { issuer: 'https://third.example.com', requiredScopes: ['has space'] },
              ],
            },
          },
        },
        {},
        'mcplex.json',
      ),
    );
    expect(error.problems.map((p) => p.path)).toEqual(
      expect.arrayContaining([
        'auth.mode',
        'auth.oauth.issuers[0].issuer',
        'auth.oauth.issuers[1].name',
        'auth.oauth.issuers[1].jwksUri',
        'auth.oauth.issuers[2].requiredScopes[0]',
      ]),
    );
  });

  it('takes per-principal OAuth for remote servers, with a sealing key and a public URL, and refuses what breaks it', () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    const config = parseConfig(
      {
        auth: { upstreamOAuth: { credentialKey: '${KEY}', publicUrl: 'https://mcplex.example.com' } },
        mcpServers: { gh: { url: 'https://mcp.example.com/mcp', auth: { type: 'oauth', scopes: ['repo'] } } },
      },
      { KEY: key },
      'mcplex.json',
    );
    expect(config.auth.upstreamOAuth).toMatchObject({ credentialKey: key, timeoutMs: 10_000, signInTtlMs: 600_000 });
    expect(config.mcpServers.gh).toMatchObject({ auth: { type: 'oauth', scopes: ['repo'] } });
    const error = catchConfigError(() =>
      parseConfig(
        {
          auth: { upstreamOAuth: { credentialKey: 'changeme', publicUrl: 'http://mcplex.example.com' } },
          mcpServers: {
            sse: { type: 'sse', url: 'https://a.example.com/sse', auth: { type: 'oauth' } },
            header: {
              url: 'https://b.example.com/mcp',
              headers: { Authorization: 'Bearer x' },
              auth: { type: 'oauth' },
            },
            secret: { url: 'https://c.example.com/mcp', auth: { type: 'oauth', clientSecret: 's' } },
            local: { command: 'x', auth: { type: 'oauth' } },
          },
        },
        {},
        'mcplex.json',
      ),
    );
    expect(error.problems.map((p) => p.path)).toEqual(
      expect.arrayContaining([
        'auth.upstreamOAuth.credentialKey',
        'auth.upstreamOAuth.publicUrl',
        'mcpServers.sse.auth',
        'mcpServers.header.headers',
        'mcpServers.secret.auth.clientSecret',
        'mcpServers.local.auth',
      ]),
    );
    expect(JSON.stringify(error.problems)).not.toContain('changeme');
    const missing = catchConfigError(() =>
      parseConfig(
        { mcpServers: { gh: { url: 'https://mcp.example.com/mcp', auth: { type: 'oauth' } } } },
        {},
        'x.json',
      ),
    );
    expect(missing.problems.map((p) => p.path)).toEqual(['mcpServers.gh.auth']);
  });

  it('suggests the right key for a misspelt server key', () => {
    const error = catchConfigError(() => parseConfig({ mcpServers: { fs: { comand: 'npx' } } }, {}));
    expect(error.problems).toContainEqual({
      path: 'mcpServers.fs.comand',
      message: 'unknown key "comand" (did you mean "command"?)',
    });
    expect(error.message).toContain('  mcpServers.fs.comand: unknown key "comand" (did you mean "command"?)');
  });

  it('suggests the right key for a misspelt top-level key, and for nested and case-only typos', () => {
    const error = catchConfigError(() =>
      parseConfig(
        {
          mcpServer: {},
          server: { Port: 1 },
          mcpServers: { a: { command: 'x', timeouts: { startp: 1 } } },
          zzzzzz: 1,
        },
        {},
      ),
    );
    expect(error.problems).toEqual(
      expect.arrayContaining([
        { path: 'mcpServer', message: 'unknown key "mcpServer" (did you mean "mcpServers"?)' },
        { path: 'server.Port', message: 'unknown key "Port" (did you mean "port"?)' },
        { path: 'mcpServers.a.timeouts.startp', message: 'unknown key "startp" (did you mean "startup"?)' },
        { path: 'zzzzzz', message: 'unknown key "zzzzzz"' },
      ]),
    );
  });

  it('rejects a server with both command and url, or neither', () => {
    const error = catchConfigError(() =>
      parseConfig({ mcpServers: { both: { command: 'x', url: 'http://h/mcp' }, none: { args: [] } } }, {}),
    );
    expect(error.problems).toEqual([
      {
        path: 'mcpServers.both',
        message: 'has both "command" and "url"; a server is either stdio ("command") or remote ("url")',
      },
      { path: 'mcpServers.none', message: 'needs either "command" (stdio server) or "url" (remote server)' },
    ]);
  });

  it('rejects transport-specific keys on the wrong kind of server and mismatched types', () => {
    const error = catchConfigError(() =>
      parseConfig(
        {
          mcpServers: {
            a: { url: 'http://h/mcp', args: ['x'] },
            b: { command: 'x', headers: {} },
            c: { type: 'sse', command: 'x' },
            d: { type: 'stdio', url: 'http://h/mcp' },
          },
        },
        {},
      ),
    );
    expect(error.problems.map((p) => p.path)).toEqual([
      'mcpServers.a.args',
      'mcpServers.b.headers',
      'mcpServers.c.type',
      'mcpServers.d.type',
    ]);
  });

  it('rejects invalid and non-http URLs', () => {
    for (const url of ['not a url', 'ftp://example.com/mcp', 'localhost:8080']) {
      const error = catchConfigError(() => parseConfig({ mcpServers: { web: { url } } }, {}));
      expect(error.problems).toEqual([
        { path: 'mcpServers.web.url', message: 'must be a valid http:// or https:// URL' },
      ]);
    }
  });

  it('rejects bad server keys, saying which key and why', () => {
    const error = catchConfigError(() =>
      parseConfig({ mcpServers: { 'my server': { command: 'x' }, ['a'.repeat(33)]: { command: 'x' } } }, {}),
    );
    expect(error.problems).toHaveLength(2);
    expect(error.problems[0]?.path).toBe('mcpServers["my server"]');
    expect(error.problems[0]?.message).toMatch(/^invalid server key "my server": must be 1-32 letters, digits/);
    expect(error.problems[1]?.message).toContain(`invalid server key "${'a'.repeat(33)}"`);
  });

  it('still validates the entries of badly named servers', () => {
    const error = catchConfigError(() => parseConfig({ mcpServers: { 'a b': { command: 5 } } }, {}));
    expect(error.problems.map((p) => p.path)).toEqual(['mcpServers["a b"].command', 'mcpServers["a b"]']);
  });

  it('rejects bad prefixes, duplicate prefixes and bad tool patterns', () => {
    const error = catchConfigError(() =>
      parseConfig(
        {
          mcpServers: {
            a: { command: 'x', prefix: 'bad prefix' },
            b: { command: 'x' },
            c: { command: 'x', prefix: 'b' },
            d: { command: 'x', tools: { allow: ['read_[ab]'] } },
          },
        },
        {},
      ),
    );
    expect(error.problems).toEqual([
      { path: 'mcpServers.a.prefix', message: expect.stringContaining('invalid prefix "bad prefix"') as unknown },
      { path: 'mcpServers.d.tools.allow[0]', message: expect.stringContaining('only "*" and "?"') as unknown },
      { path: 'mcpServers.c.prefix', message: 'prefix "b" is already used by server "b"' },
    ]);
  });

  it('accepts one unprefixed server (prefix "") and rejects a second', () => {
    const servers = { a: { command: 'x', prefix: '' }, b: { command: 'x' } };
    expect(parseConfig({ mcpServers: servers }, {}).mcpServers.a?.prefix).toBe('');
    const error = catchConfigError(() =>
      parseConfig({ mcpServers: { ...servers, c: { command: 'x', prefix: '' } } }, {}),
    );
    expect(error.problems).toEqual([
      { path: 'mcpServers.c.prefix', message: 'only one server can be unprefixed (prefix ""), and "a" already is' },
    ]);
  });

  it('rejects a non-object configuration', () => {
    for (const raw of [null, [], 'x', 3]) {
      expect(catchConfigError(() => parseConfig(raw, {})).code).toBe('CONFIG_INVALID');
    }
  });

  it('returns a deep-frozen result', () => {
    const config = parseConfig({ mcpServers: { fs: { command: 'x', args: ['a'] } } }, {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(() => {
      config.logLevel = 'debug';
    }).toThrow(TypeError);
    expect(() => {
      config.server.port = 1;
    }).toThrow(TypeError);
    const fs = config.mcpServers.fs;
    if (fs?.transport !== 'stdio') throw new Error('expected a stdio server');
    expect(() => fs.args.push('b')).toThrow(TypeError);
    expect(() => {
      fs.timeouts.call = 1;
    }).toThrow(TypeError);
  });

  it('does not share default objects between results', () => {
    const a = parseConfig({}, {});
    const b = parseConfig({}, {});
    expect(a.server.allowedHosts).not.toBe(b.server.allowedHosts);
  });
});

describe('loadConfig', () => {
  let dir = '';
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'mcplex-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const write = async (name: string, text: string): Promise<string> => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  it('loads a JSON file', async () => {
    const path = await write('a.json', JSON.stringify({ mcpServers: { fs: { command: '${CMD}' } } }));
    const config = await loadConfig(path, { CMD: 'node' });
    expect(config.mcpServers.fs).toMatchObject({ transport: 'stdio', command: 'node' });
    expect(Object.isFrozen(config.mcpServers)).toBe(true);
  });

  it('loads a YAML file (.yaml and .yml)', async () => {
    const yaml = [
      'logLevel: warn',
      'server:',
      '  port: 8080',
      'mcpServers:',
      '  fs:',
      '    command: npx',
      '    args: [-y, "@modelcontextprotocol/server-filesystem", "${HOME:-/root}"]',
      '  remote:',
      '    type: sse',
      '    url: https://example.com/sse',
      '',
    ].join('\n');
    for (const name of ['b.yaml', 'c.yml']) {
      const config = await loadConfig(await write(name, yaml), { HOME: '/home/me' });
      expect(config.logLevel).toBe('warn');
      expect(config.server.port).toBe(8080);
      expect(config.mcpServers.fs).toMatchObject({
        args: ['-y', '@modelcontextprotocol/server-filesystem', '/home/me'],
      });
      expect(config.mcpServers.remote).toMatchObject({ transport: 'sse', url: 'https://example.com/sse' });
    }
  });

  it('reports validation problems prefixed by the file path', async () => {
    const path = await write('bad.json', JSON.stringify({ mcpServers: { fs: { comand: 'x' } } }));
    const error = await catchConfigErrorAsync(loadConfig(path, {}));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.source).toBe(path);
    expect(error.message).toContain(`${path}: invalid configuration\n`);
    expect(error.message).toContain('  mcpServers.fs.comand: unknown key "comand" (did you mean "command"?)');
  });

  it('reports JSON syntax errors with line and column', async () => {
    const path = await write('syntax.json', '{\n  "mcpServers": {\n    "fs": { "command": "x", }\n  }\n}\n');
    const error = await catchConfigErrorAsync(loadConfig(path, {}));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message.startsWith(`${path}: cannot parse configuration\n`)).toBe(true);
    expect(error.problems[0]?.message).toMatch(/^line 3, column 29: /);
  });

  it('reports YAML syntax errors with line and column', async () => {
    const path = await write('syntax.yaml', 'mcpServers:\n  fs:\n    command: x\n    command: y\n');
    const error = await catchConfigErrorAsync(loadConfig(path, {}));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.problems[0]?.message).toMatch(/^line 4, column 5: /);
    expect(error.message).toContain(path);
  });

  it('reports a missing file and an unsupported extension as CONFIG_READ', async () => {
    const missing = await catchConfigErrorAsync(loadConfig(join(dir, 'nope.json'), {}));
    expect(missing.code).toBe('CONFIG_READ');
    expect(missing.message).toContain('file not found');
    const toml = await catchConfigErrorAsync(loadConfig(await write('x.toml', ''), {}));
    expect(toml.code).toBe('CONFIG_READ');
    expect(toml.message).toContain('unsupported file extension ".toml"');
  });
});

describe('the llm section', () => {
  const deployment = { provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', model: 'b' };

  it('fills in defaults and expands the key from the environment', () => {
    const config = parseConfig(
      { llm: { models: { m: { deployments: [{ ...deployment, apiKey: '${KEY}' }] } } } },
      { KEY: 'sk-secret' },
    );
    const model = config.llm.models.m!;
    expect(model.strategy).toBe('latency');
    expect(model.deployments[0]).toMatchObject({ apiKey: 'sk-secret', weight: 1, timeouts: { connect: 5000 } });
    expect(config.llm.retries.attempts).toBe(2);
  });

  it('reports a bad provider and an empty deployment list with their paths', () => {
    const error = catchConfigError(() =>
      parseConfig(
        {
          llm: {
            models: {
              a: { deployments: [deployment], aliases: ['b'], fallbacks: ['nowhere'] },
              b: { deployments: [{ ...deployment, provider: 'cohere' }] },
              c: { deployments: [] },
            },
          },
        },
        {},
      ),
    );
    const paths = error.problems.map((p) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['llm.models.b.deployments[0].provider', 'llm.models.c.deployments']));
  });

  it('rejects a name used twice and a fallback that names no model', () => {
    const error = catchConfigError(() =>
      parseConfig(
        {
          llm: {
            models: {
              a: { deployments: [deployment], aliases: ['b'], fallbacks: ['nowhere'] },
              b: { deployments: [deployment] },
            },
          },
        },
        {},
      ),
    );
    expect(error.problems).toEqual(
      expect.arrayContaining([
        { path: 'llm.models.b', message: 'model name "b" is already used by "a"' },
        { path: 'llm.models.a.fallbacks[0]', message: 'unknown fallback model "nowhere"' },
      ]),
    );
  });
});
