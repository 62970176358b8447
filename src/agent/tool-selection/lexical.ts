// Lexical relevance of tools to a conversation: Okapi BM25 over each tool's name (split into words) and description.
// The fallback when the embedding model is unavailable, and the tie-breaker between equal embedding scores.

export interface LexicalItem {
  name: string;
  description?: string | undefined;
}

const K1 = 1.2;
const B = 0.75;

const STOP_WORDS = new Set(
  (
    'a an and are as at be by can could do does for from has have how i if in into is it its me my of on or our ' +
    'please should so that the their them then there these this to was we what when where which who will with ' +
    'would you your'
  ).split(' '),
);

/**
 * Words of a text, lower-cased: identifiers are split at `_`, `-`, `.`, `/` and camelCase humps (`readFile`,
 * `HTMLParser`), stop words dropped, and a light suffix stemming so that "files" meets "file" and "reading" "read".
 */
export function tokenize(text: string): string[] {
  const spaced = text
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .toLowerCase();
  const words: string[] = [];
  for (const word of spaced.split(/[^\p{L}\p{N}]+/u)) {
    if (word === '' || STOP_WORDS.has(word)) continue;
    words.push(stem(word));
  }
  return words;
}

function stem(word: string): string {
  if (word.length > 4 && word.endsWith('ies')) return `${word.slice(0, -3)}y`;
  if (word.length > 5 && word.endsWith('ing')) return word.slice(0, -3);
  if (word.length > 4 && word.endsWith('ed')) return word.slice(0, -2);
  if (word.length > 3 && word.endsWith('s') && !word.endsWith('ss') && !word.endsWith('us')) return word.slice(0, -1);
  return word;
}

/** The BM25 score of each item for the query, in the order of the items; 0 when they share no word. */
export function lexicalScores(items: readonly LexicalItem[], query: string): number[] {
  // The name says what the tool does in the fewest words, so its words count twice (a poor man's BM25F).
  const documents = items.map((item) => {
    const nameWords = tokenize(item.name);
    return [...nameWords, ...nameWords, ...tokenize(item.description ?? '')];
  });
  const queryWords = [...new Set(tokenize(query))];
  if (documents.length === 0 || queryWords.length === 0) return items.map(() => 0);

  const averageLength = documents.reduce((sum, words) => sum + words.length, 0) / documents.length || 1;
  const frequencies = documents.map((words) => {
    const counts = new Map<string, number>();
    for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1);
    return counts;
  });
  const idf = new Map<string, number>();
  for (const word of queryWords) {
    const df = frequencies.reduce((n, counts) => n + (counts.has(word) ? 1 : 0), 0);
    idf.set(word, Math.log(1 + (documents.length - df + 0.5) / (df + 0.5)));
  }

  return frequencies.map((counts, i) => {
    const length = documents[i]?.length ?? 0;
    let score = 0;
    for (const word of queryWords) {
      const tf = counts.get(word) ?? 0;
      if (tf === 0) continue;
      score += ((idf.get(word) ?? 0) * tf * (K1 + 1)) / (tf + K1 * (1 - B + (B * length) / averageLength));
    }
    return score;
  });
}
