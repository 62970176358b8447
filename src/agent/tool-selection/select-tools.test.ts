import { beforeAll, describe, expect, it, vi } from 'vitest';
import { createMemoryStore } from '../../store/memory/memory-store.js';
import { createTextEmbedder, loadBundledEmbeddingModel } from './embedder.js';
import type { EmbeddingModel, TextEmbedder } from './embedder.js';
import { createToolSelector, toolText } from './select-tools.js';

/** A catalog the size of a few aggregated MCP servers, with descriptions in the style real servers write. */
const CATALOG = [
  { name: 'get_weather_forecast', description: 'Get the weather forecast (temperature, rain, wind) for a city.' },
  { name: 'get_current_weather', description: 'Current temperature and conditions at a location.' },
  { name: 'read_file', description: 'Read the complete contents of a file from the file system.' },
  { name: 'write_file', description: 'Create a new file or overwrite an existing file with new content.' },
  { name: 'edit_file', description: 'Make line-based edits to a text file, replacing exact text.' },
  { name: 'list_directory', description: 'List the files and subdirectories in a directory.' },
  { name: 'move_file', description: 'Move or rename files and directories.' },
  { name: 'search_files', description: 'Recursively search for files and directories matching a pattern.' },
  { name: 'git_status', description: 'Show the working tree status of a git repository.' },
  { name: 'git_commit', description: 'Record changes to the repository with a commit message.' },
  { name: 'git_log', description: 'Show the commit history of a git repository.' },
  { name: 'git_diff', description: 'Show the differences between commits or the working tree.' },
  { name: 'git_create_branch', description: 'Create a new branch in a git repository.' },
  { name: 'create_calendar_event', description: 'Schedule a new event or meeting in the calendar.' },
  { name: 'list_calendar_events', description: 'List upcoming events and meetings from the calendar.' },
  { name: 'delete_calendar_event', description: 'Cancel and remove an event from the calendar.' },
  { name: 'send_email', description: 'Send an email message to one or more recipients.' },
  { name: 'search_email', description: 'Search the mailbox for email messages matching a query.' },
  { name: 'read_email', description: 'Read the full body of an email message by its id.' },
  { name: 'calculate', description: 'Evaluate a mathematical expression and return the numeric result.' },
  { name: 'convert_units', description: 'Convert a quantity between units, such as miles to kilometres.' },
  { name: 'solve_equation', description: 'Solve an algebraic equation for an unknown variable.' },
  { name: 'web_search', description: 'Search the web and return the top results with snippets.' },
  { name: 'fetch_url', description: 'Fetch a web page by URL and return its content as markdown.' },
  { name: 'translate_text', description: 'Translate text from one language to another.' },
  { name: 'create_issue', description: 'Open a new issue in a GitHub repository.' },
  { name: 'list_pull_requests', description: 'List open pull requests of a GitHub repository.' },
  { name: 'merge_pull_request', description: 'Merge a pull request into its base branch.' },
  { name: 'run_sql_query', description: 'Run a read-only SQL query against the database and return the rows.' },
  { name: 'list_tables', description: 'List the tables in the database schema.' },
  { name: 'send_slack_message', description: 'Post a message to a Slack channel.' },
  { name: 'create_reminder', description: 'Set a reminder that notifies the user at a given time.' },
  { name: 'get_stock_price', description: 'Get the latest stock price for a ticker symbol.' },
  { name: 'convert_currency', description: 'Convert an amount of money from one currency to another.' },
  { name: 'get_directions', description: 'Driving or walking directions between two places on a map.' },
  { name: 'search_restaurants', description: 'Find restaurants nearby by cuisine, price and rating.' },
  { name: 'book_flight', description: 'Search for and book airline flights between two airports.' },
  { name: 'create_note', description: 'Save a short note in the notes app.' },
  { name: 'take_screenshot', description: 'Capture a screenshot of the current browser page.' },
  { name: 'run_shell_command', description: 'Execute a shell command and return its output.' },
];

describe('createToolSelector with the bundled model', () => {
  let model: EmbeddingModel;
  /** One embedder for the ranking tests, so that the catalog is embedded once for all of them. */
  let shared: TextEmbedder;
  beforeAll(async () => {
    model = await loadBundledEmbeddingModel();
    shared = createTextEmbedder({ loadModel: async () => model });
  });

  /** The bundled model behind a counter of the texts each call sends it. */
  function countingEmbedder(): { embedder: TextEmbedder; calls: string[][] } {
    const calls: string[][] = [];
    const embedder = createTextEmbedder({
      loadModel: async () => ({
        embed: (texts) => {
          calls.push(texts);
          return model.embed(texts);
        },
      }),
    });
    return { embedder, calls };
  }

  it('ranks the weather forecast tool in the top 3 for a forecast question', async () => {
    const selector = createToolSelector({ embedder: shared, threshold: 10, topK: 5 });
    const { tools, method } = await selector.select(CATALOG, "what's the forecast in Oslo tomorrow?");
    expect(method).toBe('embeddings');
    expect(tools).toHaveLength(5);
    expect(tools.slice(0, 3).map((t) => t.name)).toContain('get_weather_forecast');
  });

  it('ranks read_file first for "read the file notes.txt"', async () => {
    const selector = createToolSelector({ embedder: shared, threshold: 10, topK: 5 });
    const { tools } = await selector.select(CATALOG, 'read the file notes.txt');
    expect(tools[0]?.name).toBe('read_file');
  });

  it.each([
    ['send an email to Alice saying I will be late', 'send_email'],
    ['what is 17% of 2340?', 'calculate'],
    ['show me what changed in the repo since the last commit', 'git_diff'],
    ['put a meeting with Bob on my calendar for Friday at 3pm', 'create_calendar_event'],
    ['how much is 100 dollars in euros', 'convert_currency'],
    ['open a bug report on github about the crash', 'create_issue'],
  ])('puts the right tool in the top 3 for %j', async (query, expected) => {
    const selector = createToolSelector({ embedder: shared, threshold: 10, topK: 3 });
    const { tools } = await selector.select(CATALOG, query);
    expect(tools.map((t) => t.name)).toContain(expected);
  });

  it('embeds the catalog once: a second selection sends only the new query to the model', async () => {
    const { embedder, calls } = countingEmbedder();
    const selector = createToolSelector({ embedder, threshold: 10, topK: 5 });
    await selector.select(CATALOG, 'read the file notes.txt');
    expect(calls.flat()).toHaveLength(CATALOG.length + 1);
    calls.length = 0;
    const { tools } = await selector.select(CATALOG, 'list the files in my home directory');
    expect(calls).toEqual([['list the files in my home directory']]);
    expect(tools[0]?.name).toBe('list_directory');
  });

  it('keeps tool vectors in the shared cache, so another process with the same store skips the model for them', async () => {
    const store = createMemoryStore();
    await createToolSelector({
      embedder: createTextEmbedder({ cache: store.cache, loadModel: async () => model }),
      threshold: 10,
      topK: 5,
    }).select(CATALOG, 'read the file notes.txt');

    const calls: string[][] = [];
    const second = createTextEmbedder({
      cache: store.cache,
      loadModel: async () => ({ embed: (texts) => (calls.push(texts), model.embed(texts)) }),
    });
    const { tools } = await createToolSelector({ embedder: second, threshold: 10, topK: 5 }).select(
      CATALOG,
      'how much is 100 dollars in euros',
    );
    expect(calls).toEqual([['how much is 100 dollars in euros']]);
    expect(tools[0]?.name).toBe('convert_currency');
    await store.close();
  });
});

describe('createToolSelector', () => {
  const failing: TextEmbedder = {
    model: 'broken',
    embed: () => Promise.reject(new Error('model failed to load')),
  };

  it('warms the embedder with a catalog that selection would rank, and not with a small one', async () => {
    const embed = vi.fn(async (texts: string[]) => texts.map(() => [1]));
    await createToolSelector({ embedder: { model: 'x', embed }, threshold: 40, topK: 5 }).warm(CATALOG);
    expect(embed).not.toHaveBeenCalled();
    await createToolSelector({ embedder: { model: 'x', embed }, threshold: 3, topK: 5 }).warm(CATALOG);
    expect(embed).toHaveBeenCalledWith(CATALOG.map(toolText));
    // A failing model is left for select to report.
    await expect(createToolSelector({ embedder: failing, threshold: 3, topK: 5 }).warm(CATALOG)).resolves.toBe(
      undefined,
    );
  });

  it('returns every tool, in catalog order, when there are no more than the threshold', async () => {
    const embed = vi.fn();
    const selector = createToolSelector({ embedder: { model: 'x', embed }, threshold: 40, topK: 5 });
    const { tools, method } = await selector.select(CATALOG, 'read the file notes.txt');
    expect(method).toBe('all');
    expect(tools).toEqual(CATALOG);
    expect(tools).not.toBe(CATALOG);
    expect(embed).not.toHaveBeenCalled();
  });

  it('ranks lexically when the embedder throws, and warns only once', async () => {
    const warn = vi.fn();
    const selector = createToolSelector({ embedder: failing, threshold: 10, topK: 3, logger: { warn } });
    const first = await selector.select(CATALOG, 'read the file notes.txt');
    expect(first.method).toBe('lexical');
    expect(first.tools[0]?.name).toBe('read_file');
    const second = await selector.select(CATALOG, 'create a new branch called release');
    expect(second.method).toBe('lexical');
    expect(second.tools[0]?.name).toBe('git_create_branch');
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0]?.[0]).toMatchObject({ err: 'model failed to load', model: 'broken' });
  });

  it('ranks lexically without an embedder', async () => {
    const selector = createToolSelector({ threshold: 10, topK: 3 });
    const { tools, method } = await selector.select(CATALOG, 'send an email to Alice');
    expect(method).toBe('lexical');
    expect(tools[0]?.name).toBe('send_email');
  });

  it('orders equal scores by lexical score, then by name, whatever the catalog order', async () => {
    // Every tool gets the same vector: embeddings cannot tell them apart.
    const flat: TextEmbedder = { model: 'flat', embed: async (texts) => texts.map(() => [1, 0]) };
    const tools = [
      { name: 'zeta', description: 'unrelated' },
      { name: 'beta', description: 'unrelated' },
      { name: 'alpha', description: 'unrelated' },
      { name: 'omega', description: 'reads a file' },
    ];
    const selector = createToolSelector({ embedder: flat, threshold: 2, topK: 3 });
    const forward = await selector.select(tools, 'read the file');
    const backward = await selector.select([...tools].reverse(), 'read the file');
    expect(forward.tools.map((t) => t.name)).toEqual(['omega', 'alpha', 'beta']);
    expect(backward.tools.map((t) => t.name)).toEqual(['omega', 'alpha', 'beta']);
  });

  it('ranks lexically, without asking the embedder, when the conversation has no text yet', async () => {
    const embed = vi.fn();
    const selector = createToolSelector({ embedder: { model: 'x', embed }, threshold: 2, topK: 2 });
    const { tools, method } = await selector.select(CATALOG, '  ');
    expect(method).toBe('lexical');
    expect(tools.map((t) => t.name)).toEqual(['book_flight', 'calculate']);
    expect(embed).not.toHaveBeenCalled();
  });

  it('refuses a negative or fractional threshold or topK', () => {
    expect(() => createToolSelector({ threshold: -1, topK: 5 })).toThrow(RangeError);
    expect(() => createToolSelector({ threshold: 10, topK: 2.5 })).toThrow(RangeError);
  });
});

describe('toolText', () => {
  it('is "name: description", or the name alone, with long descriptions cut', () => {
    expect(toolText({ name: 'read_file', description: ' Read a file. ' })).toBe('read_file: Read a file.');
    expect(toolText({ name: 'ping' })).toBe('ping');
    expect(toolText({ name: 'manual', description: 'x'.repeat(5000) })).toHaveLength('manual: '.length + 1000);
  });
});
