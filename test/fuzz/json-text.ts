// JSON as the fuzz suite writes it: generated values may carry verbatim text (deep nesting, huge numbers, malformed
// JSON) and objects whose keys JavaScript objects cannot hold as own keys (`__proto__`) or hold only once.

/** JSON text inserted verbatim. */
export class RawJson {
  constructor(readonly text: string) {}
}

/** An object as a list of entries: `__proto__` stays an ordinary key, and a key may repeat. */
export class JsonEntries {
  constructor(readonly entries: readonly (readonly [string, Json])[]) {}
}

export type Json =
  null | boolean | number | string | RawJson | JsonEntries | readonly Json[] | { readonly [key: string]: Json };

/** The JSON text of a generated value (generated values are shallow: deep ones are RawJson). */
export function jsonText(value: Json): string {
  if (value instanceof RawJson) return value.text;
  if (value instanceof JsonEntries) {
    return `{${value.entries.map(([key, item]) => `${JSON.stringify(key)}:${jsonText(item)}`).join(',')}}`;
  }
  if (Array.isArray(value)) return `[${value.map((item: Json) => jsonText(item)).join(',')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value)
      .map(([key, item]) => `${JSON.stringify(key)}:${jsonText(item)}`)
      .join(',')}}`;
  }
  // Not-finite doubles have no JSON form; JSON.stringify writes null for them, as a client library would.
  return JSON.stringify(value);
}

/** A plain JavaScript object's own string field, for building headers that must repeat a body field. */
export function stringField(value: Json | undefined, key: string): string | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  if (value instanceof RawJson || value instanceof JsonEntries) return undefined;
  const field = (value as { readonly [key: string]: Json })[key];
  return typeof field === 'string' ? field : undefined;
}
