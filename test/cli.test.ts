// The `mcplex` command line: start-up progress, refusal to listen beyond loopback, config errors, import.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig, parseConfig } from '../src/config/load-config.js';
import type { UpstreamStatus } from '../src/mcp/upstream/upstream.js';
import { PG_MIGRATIONS } from '../src/store/postgres/migrations.js';
import { fixtureStdio, listeningUrl, spawnMcplex, tempDir, waitFor, writeConfig } from './support/harness.js';

const dir = tempDir();
afterAll(() => dir.remove());

describe('mcplex migrate', () => {
  it('brings a SQLite store up to date and says which version it is at', async () => {
    const file = join(dir.path, 'migrate.db');
    const config = writeConfig(dir.path, { store: `sqlite:${file}` }, 'migrate.json');
    const mcplex = spawnMcplex(['migrate', '--config', config]);
    expect(await mcplex.exited).toBe(0);
    expect(mcplex.stdout()).toMatch(/^sqlite:.*migrate\.db: schema version \d+, up to date\n$/);
    expect(existsSync(file)).toBe(true);
  });

  it('brings a PostgreSQL schema up to date, and reports a server it cannot reach without its password', async () => {
    const schema = `mcplex_cli_${process.pid}`;
    const base = process.env.MCPLEX_TEST_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test';
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: base });
    await client.connect();
    try {
      const config = writeConfig(dir.path, { store: `${base}?schema=${schema}` }, 'migrate-pg.json');
      const mcplex = spawnMcplex(['migrate', '--config', config]);
      expect(await mcplex.exited).toBe(0);
      const latest = PG_MIGRATIONS.at(-1)!.version;
      expect(mcplex.stdout()).toContain(`schema version ${latest}, up to date`);
      const { rows } = await client.query(`SELECT max(version)::int AS v FROM ${schema}.schema_version`);
      expect(rows[0].v).toBe(latest);
    } finally {
      await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await client.end();
    }
    const unreachable = writeConfig(dir.path, { store: 'postgres://mcplex:hunter2secret@127.0.0.1:1/x' }, 'down.json');
    const failed = spawnMcplex(['migrate', '--config', unreachable]);
    expect(await failed.exited).toBe(1);
    expect(failed.stderr()).toMatch(/cannot open the store postgres:\/\/mcplex:\*\*\*@127\.0\.0\.1:1\/x/);
    expect(failed.stderr() + failed.stdout()).not.toContain('hunter2secret');
  });
});

describe('mcplex serve', () => {
  it('shows each server connecting, then ready with its tool count or failed with the reason', async () => {
    const config = writeConfig(dir.path, {
      mcpServers: {
        good: fixtureStdio(),
        broken: { command: '/nonexistent/server' },
        // A path to a script that is not there: the child's own words say so.
        wrongpath: { command: process.execPath, args: ['/nonexistent/dir/server.js'] },
        // Counted as clients see it (regression: the log and /readyz counted the tools before tools.deny).
        filtered: { ...fixtureStdio(), tools: { deny: ['echo', 'add'] } },
      },
      server: { port: 0 },
      store: 'memory:',
    });
    const mcplex = spawnMcplex(['serve', '--config', config]);
    try {
      const url = await listeningUrl(mcplex);
      await waitFor(() => /filtered: ready with \d+ tools/.test(mcplex.stderr()), 'the filtered server to be ready');
      await waitFor(() => /good: ready with \d+ tools/.test(mcplex.stderr()), 'the good server to be ready');
      const log = mcplex.stderr();
      expect(log).toMatch(/good: connecting \(stdio\)/);
      expect(log).toMatch(/good: ready with 9 tools \((legacy|modern) era\)/);
      expect(log).toMatch(/filtered: ready with 7 tools \((legacy|modern) era; 2 more hidden by tools.allow\/deny\)/);
      expect(log).toMatch(/broken: failed: command not found/);
      const { servers } = (await (await fetch(`${url}/readyz`)).json()) as { servers: UpstreamStatus[] };
      expect(Object.fromEntries(servers.map((s) => [s.name, s.tools]))).toEqual({
        good: 9,
        broken: 0,
        wrongpath: 0,
        filtered: 7,
      });
      await waitFor(
        () => /wrongpath: failed: .*Cannot find module '\/nonexistent\/dir\/server\.js'/.test(mcplex.stderr()),
        'the wrong path to be reported',
      );
      const again = (await (await fetch(`${url}/readyz`)).json()) as { servers: UpstreamStatus[] };
      expect(again.servers.find((s) => s.name === 'wrongpath')?.lastError).toMatch(
        /Cannot find module '\/nonexistent\/dir\/server\.js'/,
      );
      // The listener came up without waiting for every server.
      expect(log).toMatch(
        /listening on http:\/\/127\.0\.0\.1:\d+\/mcp \(MCP\), http:\/\/127\.0\.0\.1:\d+\/v1 \(OpenAI-compatible; no models configured\)/,
      );
      // and names the console, which the build put in place.
      expect(log).toMatch(/readyz \(readiness\), http:\/\/127\.0\.0\.1:\d+\/ui\/ \(console\)/);
    } finally {
      expect(await mcplex.stop()).toBe(0);
    }
  });

  it('starts without a server whose variable is unset, naming the variable in the log and /readyz', async () => {
    const config = writeConfig(
      dir.path,
      {
        mcpServers: {
          good: fixtureStdio(),
          github: { url: 'https://api.example.com/mcp', headers: { Authorization: 'Bearer ${MCPLEX_TEST_UNSET}' } },
        },
        server: { port: 0 },
        store: 'memory:',
      },
      'unset-var.json',
    );
    const mcplex = spawnMcplex(['serve', '--config', config], { env: { MCPLEX_TEST_UNSET: undefined } });
    try {
      const url = await listeningUrl(mcplex);
      const readiness = await waitFor(async () => {
        const body = (await (await fetch(`${url}/readyz`)).json()) as { servers: UpstreamStatus[] };
        return body.servers.find((s) => s.name === 'good')?.state === 'ready' ? body : undefined;
      }, 'the good server to be ready');
      expect(readiness.servers.find((s) => s.name === 'github')).toMatchObject({
        state: 'failed',
        transport: 'streamable-http',
        lastError: 'environment variable MCPLEX_TEST_UNSET is not set (mcpServers.github.headers.Authorization)',
      });
      expect(mcplex.stderr()).toMatch(/github: not started: environment variable MCPLEX_TEST_UNSET is not set/);
    } finally {
      expect(await mcplex.stop()).toBe(0);
    }
  });

  it('refuses to listen beyond loopback and says why', async () => {
    const config = writeConfig(dir.path, { mcpServers: {} }, 'empty.json');
    const mcplex = spawnMcplex(['serve', '--config', config, '--host', '0.0.0.0']);
    expect(await mcplex.exited).toBe(1);
    expect(mcplex.stderr()).toMatch(
      /refusing to listen on 0\.0\.0\.0: without API keys mcplex only listens on loopback/,
    );
  });

  it('lists every configuration problem with its path and exits non-zero', async () => {
    const config = writeConfig(
      dir.path,
      {
        mcpServers: { fs: { comand: 'npx' }, web: { url: 'not a url' } },
        server: { port: 'x' },
        mcpServer: {},
      },
      'bad.json',
    );
    const mcplex = spawnMcplex(['serve', '--config', config]);
    expect(await mcplex.exited).toBe(1);
    const err = mcplex.stderr();
    expect(err).toContain(config);
    expect(err).toMatch(/mcpServers\.fs.*unknown key "comand" \(did you mean "command"\?\)/);
    expect(err).toMatch(/mcpServers\.web\.url/);
    expect(err).toMatch(/server\.port/);
    expect(err).toMatch(/unknown key "mcpServer" \(did you mean "mcpServers"\?\)/);
  });

  it('names a configuration file that cannot be read, and says how to make one', async () => {
    const mcplex = spawnMcplex(['serve', '--config', join(dir.path, 'missing.json')]);
    expect(await mcplex.exited).toBe(1);
    expect(mcplex.stderr()).toContain('missing.json');
    expect(mcplex.stderr()).toMatch(/mcplex import .*> mcplex\.json/);
    expect(mcplex.stderr()).toMatch(/cp examples\/mcplex\.json mcplex\.json/);
  });

  it('logs JSON lines when stderr is no terminal, readable lines with --log-format pretty, at --log-level', async () => {
    const config = writeConfig(dir.path, { mcpServers: {}, server: { port: 0 }, store: 'memory:' }, 'logs.json');
    const json = spawnMcplex(['serve', '--config', config]);
    await listeningUrl(json);
    expect(await json.stop()).toBe(0);
    expect(JSON.parse(json.stderr().split('\n')[0]!)).toMatchObject({ level: 40, name: 'mcplex' });

    const pretty = spawnMcplex(['serve', '--config', config, '--log-format', 'pretty', '--log-level', 'debug']);
    await listeningUrl(pretty);
    expect(await pretty.stop()).toBe(0);
    expect(pretty.stderr()).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: keyless development mode/m);
    expect(pretty.stderr()).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: listening on /m);

    const quiet = spawnMcplex(['serve', '--config', config, '--log-level', 'warn']);
    await waitFor(() => quiet.stderr().includes('keyless'), 'the first warning');
    // Time to listen (at info level the line would be there by now); the exit code is not the point here.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await quiet.stop();
    expect(quiet.stderr()).not.toMatch(/listening on/);

    const wrong = spawnMcplex(['serve', '--config', config, '--log-level', 'loud']);
    expect(await wrong.exited).toBe(1);
    expect(wrong.stderr()).toMatch(/expected one of fatal, error, warn, info, debug, trace, silent/);
  });

  it('shows examples in --help', async () => {
    for (const args of [['--help'], ['serve', '--help'], ['keys', 'create', '--help']]) {
      const help = spawnMcplex(args);
      expect(await help.exited).toBe(0);
      expect(help.stdout()).toMatch(/Examples:\n( {2}\$ mcplex .+\n)+/);
    }
  });
});

describe('mcplex import', () => {
  it('prints an equivalent mcplex configuration for a desktop client file', async () => {
    const desktop = join(dir.path, 'claude_desktop_config.json');
    writeFileSync(
      desktop,
      JSON.stringify({
        mcpServers: {
          filesystem: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', '/tmp'] },
          'my remote': { url: 'https://example.com/mcp', headers: { Authorization: 'Bearer ${TOKEN}' } },
        },
      }),
    );
    const mcplex = spawnMcplex(['import', desktop], { env: { TOKEN: undefined } });
    expect(await mcplex.exited).toBe(0);
    const printed = JSON.parse(mcplex.stdout()) as Record<string, unknown> & { mcpServers: Record<string, unknown> };
    expect(Object.keys(printed.mcpServers).sort()).toEqual(['filesystem', 'my-remote']);
    // A complete starting point: the sections decided next, at their defaults, and the schema for editors.
    expect(Object.keys(printed)).toEqual(['$schema', 'mcpServers', 'server', 'auth', 'llm', 'store']);
    const config = parseConfig(printed, { TOKEN: 'secret' });
    expect(config.mcpServers.filesystem).toMatchObject({ transport: 'stdio', command: 'npx' });
    expect(config.mcpServers['my-remote']).toMatchObject({
      transport: 'streamable-http',
      url: 'https://example.com/mcp',
    });
    expect(mcplex.stderr()).toMatch(/my remote/);
    expect(mcplex.stderr()).toMatch(
      /warning: mcpServers\.my-remote\.headers\.Authorization: \$\{TOKEN\} not set in this environment/,
    );

    // The same as YAML, each section explained, which mcplex reads as it is.
    const yaml = spawnMcplex(['import', '--yaml', desktop], { env: { TOKEN: 'set' } });
    expect(await yaml.exited).toBe(0);
    expect(yaml.stdout()).toMatch(/^# "keys": API keys on \/mcp, \/v1 and \/admin/m);
    expect(yaml.stderr()).not.toMatch(/not set/);
    const file = join(dir.path, 'imported.yaml');
    writeFileSync(file, yaml.stdout());
    const loaded = await loadConfig(file, { TOKEN: 'secret' });
    expect(Object.keys(loaded.mcpServers).sort()).toEqual(['filesystem', 'my-remote']);
    expect(loaded.auth.mode).toBe('none');
  });
});

describe('mcplex keys and usage', () => {
  it('keep keys in ./mcplex.db of the working folder when the configuration names no store', async () => {
    const folder = tempDir('mcplex-default-store-');
    try {
      const config = writeConfig(folder.path, { mcpServers: {} });
      const create = spawnMcplex(['keys', 'create', '--config', config, '--name', 'default'], { cwd: folder.path });
      expect(await create.exited).toBe(0);
      expect(existsSync(join(folder.path, 'mcplex.db'))).toBe(true);
      const list = spawnMcplex(['keys', 'list', '--config', config, '--json'], { cwd: folder.path });
      expect(await list.exited).toBe(0);
      expect((JSON.parse(list.stdout()) as { name: string }[]).map((k) => k.name)).toEqual(['default']);
    } finally {
      folder.remove();
    }
  });

  it('creates, lists and revokes keys in the SQLite store, which holds no key in plain text', async () => {
    const db = join(dir.path, 'keys.db');
    const config = writeConfig(
      dir.path,
      {
        store: `sqlite:${db}`,
        mcpServers: {},
        llm: { models: { m: { deployments: [{ provider: 'openai', baseUrl: 'http://127.0.0.1:9/v1', model: 'b' }] } } },
      },
      'keys.json',
    );
    const create = spawnMcplex([
      ...['keys', 'create', '--config', config, '--name', 'ci', '--models', 'm', '--tools', 'a__*'],
      ...['--rpm', '5', '--tpm', '1000', '--max-concurrent', '2', '--expires', '30d'],
    ]);
    expect(await create.exited).toBe(0);
    const token = create.stdout().trim();
    expect(token).toMatch(/^mcx_[a-z0-9]{12}_[A-Za-z0-9_-]{43}$/);
    const id = token.split('_')[1]!;
    // The secret is base64url, which may contain "_" itself: everything after the id is the secret.
    const secret = token.slice(`mcx_${id}_`.length);

    const list = spawnMcplex(['keys', 'list', '--config', config, '--json']);
    expect(await list.exited).toBe(0);
    const keys = JSON.parse(list.stdout()) as { id: string; expiresAt: number }[];
    // Every option given reaches the key, and nothing else is set.
    expect(keys).toEqual([
      expect.objectContaining({
        id,
        name: 'ci',
        scopes: { models: ['m'], tools: ['a__*'] },
        limits: { rpm: 5, tpm: 1000, maxConcurrent: 2 },
      }),
    ]);
    expect(keys[0]!.expiresAt).toBeGreaterThan(Date.now() + 29 * 86_400_000);
    expect(list.stdout()).not.toContain(secret);

    const revoke = spawnMcplex(['keys', 'revoke', '--config', config, id]);
    expect(await revoke.exited).toBe(0);
    const again = spawnMcplex(['keys', 'revoke', '--config', config, id]);
    expect(await again.exited).toBe(1);

    for (const file of [db, `${db}-wal`]) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch {
        continue;
      }
      expect(bytes.includes(secret)).toBe(false);
      expect(bytes.includes(token)).toBe(false);
    }
  });

  it("work when a server's or a model's variable is unset, and still need the store's", async () => {
    const raw = {
      store: '${MCPLEX_TEST_STORE}',
      mcpServers: { github: { command: 'npx', env: { GITHUB_TOKEN: '${MCPLEX_TEST_UNSET}' } } },
      llm: {
        models: { m: { deployments: [{ provider: 'openai', apiKey: '${MCPLEX_TEST_UNSET}', model: 'b' }] } },
      },
    };
    const config = writeConfig(dir.path, raw, 'keys-unset.json');
    const env = { MCPLEX_TEST_STORE: `sqlite:${join(dir.path, 'keys-unset.db')}`, MCPLEX_TEST_UNSET: undefined };
    const create = spawnMcplex(
      ['keys', 'create', '--config', config, '--name', 'gh', '--servers', 'github', '--models', 'm'],
      { env },
    );
    expect(await create.exited).toBe(0);
    const list = spawnMcplex(['keys', 'list', '--config', config, '--json'], { env });
    expect(await list.exited).toBe(0);
    expect(JSON.parse(list.stdout())).toEqual([expect.objectContaining({ name: 'gh' })]);
    const usage = spawnMcplex(['usage', '--config', config], { env });
    expect(await usage.exited).toBe(0);
    const noStore = spawnMcplex(['keys', 'list', '--config', config], {
      env: { ...env, MCPLEX_TEST_STORE: undefined },
    });
    expect(await noStore.exited).toBe(1);
    expect(noStore.stderr()).toMatch(/store: environment variable MCPLEX_TEST_STORE is not set/);
  });

  it('refuses an unknown model, an unknown server and a limit of 0 with clear errors', async () => {
    const config = writeConfig(dir.path, { store: 'memory:', mcpServers: {} }, 'bad-keys.json');
    const unknownModel = spawnMcplex(['keys', 'create', '--config', config, '--name', 'x', '--models', 'nope']);
    expect(await unknownModel.exited).toBe(1);
    expect(unknownModel.stderr()).toMatch(/unknown model "nope"/);
    const unknownServer = spawnMcplex(['keys', 'create', '--config', config, '--name', 'x', '--servers', 'nope']);
    expect(await unknownServer.exited).toBe(1);
    expect(unknownServer.stderr()).toMatch(/unknown MCP server "nope"/);
    const zero = spawnMcplex(['keys', 'create', '--config', config, '--name', 'x', '--rpm', '0']);
    expect(await zero.exited).toBe(1);
    expect(zero.stderr()).toMatch(/expected a whole number above 0/);
  });

  it('names the store path when it cannot be opened at start-up', async () => {
    const config = writeConfig(
      dir.path,
      { store: 'sqlite:/nonexistent-dir/mcplex.db', mcpServers: {}, server: { port: 0 } },
      'bad-store.json',
    );
    const mcplex = spawnMcplex(['serve', '--config', config]);
    expect(await mcplex.exited).toBe(1);
    expect(mcplex.stderr()).toMatch(/cannot open the store sqlite:\/nonexistent-dir\/mcplex\.db/);
  });
});
