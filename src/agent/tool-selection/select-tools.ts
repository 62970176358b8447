// Tool selection for large catalogs: past `threshold` tools, only the `topK` most relevant to the conversation reach
// the model, ranked by embedding similarity, or by BM25 when the embedder cannot answer.

import { errorMessage } from '../../errors.js';
import type { TextEmbedder } from './embedder.js';
import { lexicalScores } from './lexical.js';

export interface SelectableTool {
  name: string;
  description?: string | undefined;
  inputSchema?: unknown;
}

export type SelectionMethod = 'all' | 'embeddings' | 'lexical';

export interface ToolSelection<T extends SelectableTool> {
  /** The chosen tools, most relevant first (or the catalog as given, under the threshold). */
  tools: T[];
  method: SelectionMethod;
}

export interface ToolSelector {
  select<T extends SelectableTool>(tools: readonly T[], query: string): Promise<ToolSelection<T>>;
  /**
   * Embeds a catalog that selection would rank, ahead of the first chat that needs it (the texts land in the
   * embedder's cache); a failure is left for `select` to report.
   */
  warm(tools: readonly SelectableTool[]): Promise<void>;
}

export interface ToolSelectorOptions {
  /** Absent: lexical ranking only. */
  embedder?: TextEmbedder;
  /** Catalogs of at most this many tools pass whole. */
  threshold: number;
  /** How many tools a larger catalog is cut down to. */
  topK: number;
  logger?: { warn(obj: object, msg: string): void };
}

/**
 * Long descriptions (some servers put a manual there) cost embedding time and blur the vector; the opening lines
 * say what the tool is for.
 */
const MAX_DESCRIPTION_CHARS = 1000;

/** How much the (normalised) BM25 score adds to the cosine similarity in hybrid ranking. */
const LEXICAL_WEIGHT = 0.1;

export function createToolSelector(options: ToolSelectorOptions): ToolSelector {
  const { embedder, logger } = options;
  const threshold = nonNegativeInteger('threshold', options.threshold);
  const topK = nonNegativeInteger('topK', options.topK);
  let warned = false;

  async function embeddingScores(tools: readonly SelectableTool[], query: string): Promise<number[] | undefined> {
    if (embedder === undefined || query.trim() === '') return undefined;
    try {
      // One call, so that the texts the embedder has not seen yet (at best only the query) go to the model together.
      const [queryVector = [], ...toolVectors] = await embedder.embed([query, ...tools.map(toolText)]);
      return toolVectors.map((vector) => dot(queryVector, vector));
    } catch (error) {
      // Once: a model that failed to load fails the same way on every request.
      if (!warned) {
        warned = true;
        logger?.warn(
          { err: errorMessage(error), model: embedder.model },
          'tool selection: the embedder failed; ranking tools lexically',
        );
      }
      return undefined;
    }
  }

  return {
    async warm(tools) {
      if (embedder === undefined || tools.length <= threshold) return;
      await embedder.embed(tools.map(toolText)).catch(() => {});
    },
    async select(tools, query) {
      if (tools.length <= threshold) return { tools: [...tools], method: 'all' };
      const lexical = lexicalScores(tools, query);
      const semantic = await embeddingScores(tools, query);
      // Hybrid ranking, dense plus a little sparse: the sentence model misses exact words a tool name carries
      // ("logs", "row", "deal") that BM25 sees. The lexical score is scaled to the best match of the query.
      const best = Math.max(0, ...lexical);
      const primary = semantic
        ? semantic.map((score, i) => score + (best > 0 ? (LEXICAL_WEIGHT * (lexical[i] ?? 0)) / best : 0))
        : lexical;
      const order = tools.map((_, i) => i);
      order.sort((a, b) => {
        const byPrimary = (primary[b] ?? 0) - (primary[a] ?? 0);
        if (byPrimary !== 0) return byPrimary;
        const byLexical = (lexical[b] ?? 0) - (lexical[a] ?? 0);
        if (byLexical !== 0) return byLexical;
        const nameA = tools[a]?.name ?? '';
        const nameB = tools[b]?.name ?? '';
        if (nameA !== nameB) return nameA < nameB ? -1 : 1;
        return a - b;
      });
      return {
        tools: order.slice(0, topK).flatMap((i) => tools[i] ?? []),
        method: semantic === undefined ? 'lexical' : 'embeddings',
      };
    },
  };
}

/** What a tool is embedded as: `name: description`. */
export function toolText(tool: SelectableTool): string {
  const description = (tool.description ?? '').trim().slice(0, MAX_DESCRIPTION_CHARS);
  return description === '' ? tool.name : `${tool.name}: ${description}`;
}

function dot(a: readonly number[], b: readonly number[]): number {
  let sum = 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) sum += (a[i] ?? 0) * (b[i] ?? 0);
  return sum;
}

function nonNegativeInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new RangeError(`${name} must be an integer ≥ 0, got ${value}`);
  return value;
}
