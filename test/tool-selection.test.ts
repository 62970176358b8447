// Tool selection on a realistic catalog: 4 fixture servers expose ~350 tools through mcplex, and the selector the
// tool-running chat uses (bundled sentence embeddings) must put the right tool in the top 10 for at least 18 of 20
// tasks phrased as a user would ask them.
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTextEmbedder, createToolSelector } from '../src/agent/tool-selection/index.js';
import type { RunningServer } from '../src/main.js';
import { ROOT, startMcplex } from './support/harness.js';

const CATALOG_SERVER = fileURLToPath(new URL('./fixtures/catalog-server.ts', import.meta.url));
const PARTS = 4;
const TOP_K = 10;

const catalogStdio = (part: number) => ({
  command: process.execPath,
  args: ['--import', 'tsx', CATALOG_SERVER, '--part', String(part)],
  cwd: ROOT,
});

/** What a user asks, and the exposed name of the tool that does it. */
const TASKS: readonly { task: string; expected: string }[] = [
  { task: 'Will I need an umbrella in Lisbon tomorrow?', expected: 'c4__weather_get_forecast' },
  { task: 'File a bug in our GitHub repo: the login page crashes on Safari.', expected: 'c1__github_create_issue' },
  { task: 'How much is 250 euros in Japanese yen?', expected: 'c2__currency_convert' },
  { task: 'Put a meeting with Dana on my calendar next Tuesday at 3pm.', expected: 'c3__calendar_create_event' },
  { task: 'Email Bob that the quarterly report will be two days late.', expected: 'c3__email_send' },
  { task: 'What have people been saying in the #deploys channel today?', expected: 'c3__chat_get_channel_history' },
  { task: 'Which pods are crash-looping in the production cluster?', expected: 'c2__k8s_list_pods' },
  { task: 'Who changed what in this repository over the past week?', expected: 'c1__git_log' },
  { task: "Run a SQL query to count last month's orders.", expected: 'c2__db_execute_query' },
  { task: 'Translate this paragraph into German.', expected: 'c2__translate_text' },
  { task: 'How long is the drive from Berlin to Prague?', expected: 'c4__maps_get_directions' },
  { task: 'What street address is at 48.8584, 2.2945?', expected: 'c4__maps_reverse_geocode' },
  { task: 'Has Acme Corp paid invoice INV-1042 yet?', expected: 'c4__billing_get_invoice' },
  { task: 'Turn this voice memo into text.', expected: 'c3__audio_transcribe' },
  { task: 'Shrink this photo to 800 pixels wide.', expected: 'c3__image_resize' },
  { task: 'How many vacation days do I have left this year?', expected: 'c4__hr_get_time_off_balance' },
  { task: 'Mark the Globex deal as closed-won in the CRM.', expected: 'c4__crm_update_deal' },
  {
    task: 'The checkout service is throwing errors; pull up its logs from the last hour.',
    expected: 'c2__logs_search',
  },
  {
    task: 'Add a line with these numbers to the bottom of the budget spreadsheet.',
    expected: 'c3__sheets_append_row',
  },
  { task: 'Let the customer on support ticket 4821 know we shipped a fix.', expected: 'c4__helpdesk_reply_ticket' },
];

let mcplex: RunningServer;

beforeAll(async () => {
  const servers = Object.fromEntries(
    Array.from({ length: PARTS }, (_, i) => [`c${i + 1}`, catalogStdio(i + 1)] as const),
  );
  mcplex = await startMcplex({ mcpServers: servers });
  await mcplex.gateway.whenSettled();
});

afterAll(async () => {
  await mcplex?.close();
});

it('puts the right tool in the top 10 for at least 18 of 20 tasks over a 300+ tool catalog', async () => {
  const tools = mcplex.gateway.catalog.view.tools;
  expect(tools.length).toBeGreaterThanOrEqual(300);
  const names = new Set(tools.map((t) => t.name));
  for (const { expected } of TASKS) expect(names, expected).toContain(expected);

  // One selector for every task: the tools are embedded once, then each task costs one query vector.
  const selector = createToolSelector({ embedder: createTextEmbedder(), threshold: 40, topK: TOP_K });
  const started = performance.now();
  const lines: string[] = [];
  let hits = 0;
  for (const [i, { task, expected }] of TASKS.entries()) {
    const selection = await selector.select(tools, task);
    expect(selection.method).toBe('embeddings');
    expect(selection.tools).toHaveLength(TOP_K);
    const index = selection.tools.findIndex((t) => t.name === expected);
    if (index >= 0) hits++;
    const rank = index >= 0 ? String(index + 1) : `>${TOP_K}`;
    const top = selection.tools.slice(0, 3).map((t) => t.name);
    lines.push(
      `${String(i + 1).padStart(2)}  ${rank.padStart(4)}  ${expected.padEnd(29)}  ${task.padEnd(77)}  ${top.join(' ')}`,
    );
  }
  const elapsed = Math.round(performance.now() - started);
  console.log(
    [
      `tool selection over ${tools.length} tools: ${hits}/${TASKS.length} in the top ${TOP_K} (${elapsed} ms in all, ` +
        'the first task embedding the catalog)',
      ` #  rank  ${'expected'.padEnd(29)}  ${'task'.padEnd(77)}  top 3`,
      ...lines,
    ].join('\n'),
  );
  expect(hits).toBeGreaterThanOrEqual(18);
}, 120_000);
