// The web console in a real browser (Debian's Chromium driven by playwright-core) against a real mcplex: the three
// example MCP servers over stdio, API keys in SQLite, and the mock LLM. Each step leaves a screenshot in
// test-output/console/. The second suite serves the same console under a sub-path through nginx.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium } from 'playwright-core';
import type { Browser, Locator, Page } from 'playwright-core';
import { startMockLlm } from '../src/llm/mock/mock-llm.js';
import type { MockLlm } from '../src/llm/mock/mock-llm.js';
import { ensureNginx } from '../src/cli/cluster.js';
import { ROOT, listeningUrl, spawnMcplex, tempDir, waitFor, writeConfig } from './support/harness.js';
import type { SpawnedMcplex } from './support/harness.js';

const SHOTS = join(ROOT, 'test-output', 'console');
const CHROMIUM = '/usr/bin/chromium';

/** Debian's Chromium, installed by the project's script when missing (never a browser download). */
function ensureChromium(): void {
  execFileSync('sh', [join(ROOT, 'scripts', 'ensure-chromium.sh')], { stdio: 'inherit' });
}

function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      '--no-first-run',
    ],
  });
}

/** The example configuration (everything, memory, filesystem over stdio) with API keys and the mock LLM. */
function consoleConfig(dir: string, mock: MockLlm): string {
  const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'mcplex.json'), 'utf8')) as {
    mcpServers: Record<string, { env?: Record<string, string> }>;
  };
  const servers = example.mcpServers;
  if (servers.memory?.env) servers.memory.env.MEMORY_FILE_PATH = join(dir, 'memory.jsonl');
  return writeConfig(dir, {
    mcpServers: servers,
    server: { host: '127.0.0.1', port: 0 },
    auth: { mode: 'keys' },
    store: `sqlite:${join(dir, 'mcplex.db')}`,
    llm: { models: { demo: { deployments: [{ provider: 'openai', baseUrl: `${mock.url}/v1`, model: 'mock' }] } } },
  });
}

function createKey(config: string, name: string, admin: boolean): string {
  const out = execFileSync(
    process.execPath,
    [join(ROOT, 'bin', 'mcplex.js'), 'keys', 'create', '--name', name, ...(admin ? ['--admin'] : []), '-c', config],
    { cwd: ROOT, encoding: 'utf8' },
  );
  const token = /mcx_\S+/.exec(out)?.[0];
  if (!token) throw new Error(`no key in: ${out}`);
  return token;
}

/**
 * Waits until the first element of `locator` has text matching `expected` (a string: contained; a RegExp: tested),
 * or not matching it with `absent`.
 */
async function shows(locator: Locator, expected: string | RegExp, timeoutMs = 20_000, absent = false): Promise<void> {
  let last = '';
  try {
    await waitFor(
      async () => {
        last =
          (await locator
            .first()
            .textContent({ timeout: 500 })
            .catch(() => null)) ?? '';
        const match = typeof expected === 'string' ? last.includes(expected) : expected.test(last);
        return match !== absent;
      },
      `${String(locator)} ${absent ? 'not ' : ''}to show ${String(expected)}`,
      timeoutMs,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message} (it shows "${last}")`, { cause: error });
  }
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

async function signIn(page: Page, url: string, key: string): Promise<void> {
  await page.goto(url);
  await page.locator('input[name="key"]').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('nav').waitFor();
}

describe('the web console', () => {
  let dir: ReturnType<typeof tempDir>;
  let mock: MockLlm;
  let mcplex: SpawnedMcplex;
  let base: string;
  let admin: string;
  let browser: Browser;
  let page: Page;

  beforeAll(async () => {
    ensureChromium();
    mkdirSync(SHOTS, { recursive: true });
    dir = tempDir('mcplex-console-');
    mock = await startMockLlm({ name: 'console-mock', autoTools: true, chunkDelayMs: 5 });
    const config = consoleConfig(dir.path, mock);
    admin = createKey(config, 'console-admin', true);
    mcplex = spawnMcplex(['serve', '-c', config]);
    base = await listeningUrl(mcplex);
    browser = await launch();
    page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await mcplex?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('asks for an admin key and refuses one that is not', async () => {
    const plain = createKey(join(dir.path, 'mcplex.json'), 'not-admin', false);
    await page.goto(`${base}/ui/`);
    await page.locator('input[name="key"]').fill(plain);
    await shot(page, '01-sign-in');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await shows(page.locator('.signin .error'), /not an admin key/, 10_000);
    expect(await page.evaluate('sessionStorage.length')).toBe(0);
    await signIn(page, `${base}/ui/`, admin);
    // The key is in no URL the console has visited.
    expect(page.url()).not.toContain(admin);
  });

  it('shows the three example servers ready', async () => {
    await page.goto(`${base}/ui/#/servers`);
    for (const name of ['everything', 'memory', 'filesystem']) {
      await page.locator(`tr[data-server="${name}"] [data-state="ready"]`).waitFor({ timeout: 60_000 });
    }
    await shot(page, '02-servers');
  });

  it('finds everything__echo, runs it from its form and shows the echoed text', async () => {
    await page.goto(`${base}/ui/#/tools`);
    await page.locator('input[name="search"]').fill('echo');
    await page.locator('button[data-tool="everything__echo"]').click();
    await page.locator('form.tool-form input[name="message"]').fill('hello from the console');
    await page.getByRole('button', { name: 'Run' }).click();
    await shows(page.getByTestId('tool-result'), 'Echo: hello from the console');
    await shot(page, '03-tools');
  });

  it('creates a key, shows its secret once, revokes it, and a request with it is refused', async () => {
    await page.goto(`${base}/ui/#/keys`);
    await page.locator('summary', { hasText: 'New key' }).click();
    await page.locator('.grid-form input[name="name"]').fill('made-in-console');
    await page.locator('.grid-form input[name="rpm"]').fill('120');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = (await page.locator('.secret-value').textContent()) ?? '';
    expect(secret).toMatch(/^mcx_/);
    await shot(page, '04-keys-created');
    const models = (key: string) => fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    expect((await models(secret)).status).toBe(200);

    // Shown once: after Done, and after a reload, it is nowhere on the page.
    await page.getByRole('button', { name: 'Done' }).click();
    await page.reload();
    await page.locator('tr[data-key="made-in-console"]').waitFor();
    expect(await page.content()).not.toContain(secret);

    page.once('dialog', (dialog) => void dialog.accept());
    await page.locator('tr[data-key="made-in-console"] button', { hasText: 'Revoke' }).click();
    await shows(page.locator('tr[data-key="made-in-console"] [data-state]'), /^revoked$/);
    await shot(page, '05-keys-revoked');
    const refused = await models(secret);
    expect(refused.status).toBe(401);
  });

  it('runs a playground chat that calls a tool and shows the tool round', async () => {
    await page.goto(`${base}/ui/#/playground`);
    await page.locator('select[name="model"]').selectOption('demo');
    await page.locator('input[name="server-everything"]').check();
    await page.locator('textarea[name="message"]').fill('playground round trip');
    await page.getByRole('button', { name: 'Send' }).click();
    const round = page.getByTestId('tool-round').first();
    await shows(round, 'everything__echo');
    await shows(round, 'playground round trip');
    await shows(page.getByTestId('answer').last(), /^…?$/, 20_000, true);
    await shot(page, '06-playground');
  });

  it('shows the usage chart change after requests', async () => {
    await page.goto(`${base}/ui/#/usage`);
    const total = page.getByTestId('usage-total');
    await total.waitFor();
    await page.locator('[data-testid="usage-chart"] canvas').waitFor();
    const chart = page.getByTestId('usage-chart');
    const drawn = await chart.screenshot();
    const before = Number.parseInt((await total.textContent()) ?? '', 10);
    for (let i = 0; i < 3; i += 1) {
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: `usage ${i}` }] }),
      });
      expect(res.status).toBe(200);
    }
    // The page refreshes on its own: the total grows by at least the three requests, without a reload.
    await page.evaluate('window.unreloaded = true');
    await waitFor(
      async () => Number.parseInt((await total.textContent()) ?? '', 10) >= before + 3,
      'the usage total to grow',
      30_000,
    );
    expect(await page.evaluate('window.unreloaded')).toBe(true);
    // And the chart itself was drawn again with the new counts.
    await waitFor(async () => !(await chart.screenshot()).equals(drawn), 'the chart to change', 10_000);
    await shot(page, '07-usage');
  });

  it('lists the recent requests with filters and paging on the server', async () => {
    await page.goto(`${base}/ui/#/requests`);
    await page.locator('input[name="route"]').fill('mcp');
    await page.getByRole('button', { name: 'Filter' }).click();
    await shows(page.locator('table.requests tbody tr').first(), 'everything/echo');
    const routes = await page
      .locator('table.requests tbody tr')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-route')));
    expect(new Set(routes)).toEqual(new Set(['mcp']));
    await page.locator('input[name="route"]').fill('');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.locator('table.requests tbody tr[data-route="chat"]').first().waitFor({ timeout: 20_000 });
    await shot(page, '08-requests');
  });

  it('shows the replicas', async () => {
    await page.goto(`${base}/ui/#/cluster`);
    await shows(page.locator('main'), '1 replica');
    await shot(page, '09-cluster');
  });

  it("shows an upstream's state change live when its process is killed", async () => {
    await page.goto(`${base}/ui/#/servers`);
    const state = page.locator('tr[data-server="memory"] [data-state]');
    await shows(state, /^ready$/, 30_000);
    await page.evaluate('window.unreloaded = true');
    const servers = (await (
      await fetch(`${base}/admin/servers`, { headers: { authorization: `Bearer ${admin}` } })
    ).json()) as { data: { name: string; pid: number | null; restarts: number }[] };
    const memory = servers.data.find((s) => s.name === 'memory');
    expect(memory?.pid).toBeGreaterThan(0);
    process.kill(memory!.pid!, 'SIGKILL');
    await shows(state, /^ready$/, 20_000, true);
    await shot(page, '10-servers-killed');
    // It comes back on its own (a restart), still without a reload.
    await shows(state, /^ready$/, 60_000);
    await shows(
      page.locator('tr[data-server="memory"] td').nth(7),
      new RegExp(`^${String(memory!.restarts)}$`),
      20_000,
      true,
    );
    expect(await page.evaluate('window.unreloaded')).toBe(true);
    await shot(page, '11-servers-recovered');
  });

  it('restarts a server from its button', async () => {
    await page.goto(`${base}/ui/#/servers`);
    const row = page.locator('tr[data-server="filesystem"]');
    await shows(row.locator('[data-state]'), /^ready$/, 30_000);
    const restarts = Number(await row.locator('td').nth(7).textContent());
    await row.getByRole('button', { name: 'Restart' }).click();
    await shows(row.locator('td').nth(7), new RegExp(`^${String(restarts + 1)}$`), 30_000);
    await shows(row.locator('[data-state]'), /^ready$/, 30_000);
  });
});

describe('the web console under a sub-path behind nginx', () => {
  let dir: ReturnType<typeof tempDir>;
  let mock: MockLlm;
  let mcplex: SpawnedMcplex;
  let nginx: ChildProcess;
  let front: string;
  let admin: string;
  let browser: Browser;

  beforeAll(async () => {
    ensureChromium();
    const binary = await ensureNginx();
    mkdirSync(SHOTS, { recursive: true });
    dir = tempDir('mcplex-console-nginx-');
    mock = await startMockLlm({ name: 'console-nginx-mock' });
    const config = consoleConfig(dir.path, mock);
    admin = createKey(config, 'console-admin', true);
    mcplex = spawnMcplex(['serve', '-c', config]);
    const upstream = new URL(await listeningUrl(mcplex)).host;
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const conf = readFileSync(join(ROOT, 'deploy', 'nginx-subpath.conf'), 'utf8')
      .replaceAll('{{PREFIX}}', dir.path)
      .replaceAll('{{LISTEN}}', `127.0.0.1:${port}`)
      .replaceAll('{{UPSTREAM}}', upstream);
    const file = join(dir.path, 'nginx.conf');
    writeFileSync(file, conf);
    nginx = spawn(binary, ['-p', dir.path, '-c', file, '-g', `daemon off; pid ${join(dir.path, 'nginx.pid')};`], {
      stdio: 'ignore',
    });
    front = `http://127.0.0.1:${port}/mcplex`;
    await waitFor(async () => (await fetch(`${front}/healthz`).catch(() => undefined))?.ok, 'nginx to proxy', 15_000);
    browser = await launch();
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((resolve) => nginx.once('exit', resolve));
      nginx.kill('SIGQUIT');
      await exited;
    }
    await mcplex?.stop();
    await mock?.close();
    dir?.remove();
  });

  it('signs in, follows the servers live, lists and runs tools, all through the prefix', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
    const outside: string[] = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(`${front}/`)) outside.push(request.url());
    });
    // /mcplex/ui without the slash is redirected relative to the prefix.
    await signIn(page, `${front}/ui`, admin);
    expect(page.url()).toBe(`${front}/ui/`);
    for (const name of ['everything', 'memory', 'filesystem']) {
      await page.locator(`tr[data-server="${name}"] [data-state="ready"]`).waitFor({ timeout: 60_000 });
    }
    await shows(page.locator('h2 .badge'), /^live$/);
    await page.goto(`${front}/ui/#/tools`);
    await page.locator('input[name="search"]').fill('echo');
    await page.locator('button[data-tool="everything__echo"]').click();
    await page.locator('form.tool-form input[name="message"]').fill('through nginx');
    await page.getByRole('button', { name: 'Run' }).click();
    await shows(page.getByTestId('tool-result'), 'Echo: through nginx');
    await shot(page, '12-sub-path-tools');
    // Every request the console made stayed under the prefix.
    expect(outside).toEqual([]);
    await page.close();
  });
});
