// Tool selection for large catalogs: the public entry of this folder.

export { conversationQuery } from './conversation-query.js';
export type { ConversationQueryOptions, QueryMessage } from './conversation-query.js';
export { createTextEmbedder, DEFAULT_EMBEDDING_MODEL, loadBundledEmbeddingModel } from './embedder.js';
export type { EmbeddingModel, TextEmbedder, TextEmbedderOptions } from './embedder.js';
export { lexicalScores, tokenize } from './lexical.js';
export type { LexicalItem } from './lexical.js';
export { createToolSelector, toolText } from './select-tools.js';
export type {
  SelectableTool,
  SelectionMethod,
  ToolSelection,
  ToolSelector,
  ToolSelectorOptions,
} from './select-tools.js';
