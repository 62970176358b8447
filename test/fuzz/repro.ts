// A finding's input as a runnable snippet (undici's request, which may send any Host and method), with runs such as
// '['.repeat(20000) written as expressions so that hostile bodies stay short enough to read.
import type { FuzzRequest } from './arbitraries.js';

/** A well-formed key that names no key. */
export const UNKNOWN_KEY = `mcx_000000000000_${'A'.repeat(43)}`;

type Segment = { literal: string } | { unit: string; count: number };

/** The text as literals and repeated units (a unit of up to 8 characters, 48 characters or more in all). */
export function segments(text: string): Segment[] {
  const out: Segment[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    let best: { unit: string; count: number } | undefined;
    for (let length = 1; length <= 8 && i + length * 2 <= text.length; length++) {
      const unit = text.slice(i, i + length);
      let count = 1;
      while (text.startsWith(unit, i + count * length)) count++;
      const covered = count * length;
      if (covered >= 48 && count >= 6 && (!best || covered > best.count * best.unit.length)) best = { unit, count };
    }
    if (best) {
      if (literal !== '') out.push({ literal });
      literal = '';
      out.push(best);
      i += best.unit.length * best.count;
    } else {
      literal += text[i];
      i++;
    }
  }
  if (literal !== '') out.push({ literal });
  return out;
}

/** A JavaScript expression for the text; literal stretches over `maxLiteral` characters are cut (and say so). */
export function textExpression(text: string, maxLiteral = 2000): string {
  const parts = segments(text).map((segment) => {
    if ('unit' in segment) return `${JSON.stringify(segment.unit)}.repeat(${segment.count})`;
    const { literal } = segment;
    if (literal.length <= maxLiteral) return JSON.stringify(literal);
    const half = Math.floor(maxLiteral / 2);
    const cut = literal.length - 2 * half;
    return `${JSON.stringify(literal.slice(0, half))} /* ${cut} characters left out */ + ${JSON.stringify(literal.slice(-half))}`;
  });
  return parts.length === 0 ? "''" : parts.join(' + ');
}

const AUTH_HEADERS: Record<FuzzRequest['auth'], [string, string] | undefined> = {
  plain: ['authorization', 'Bearer {{key}}'],
  scoped: ['authorization', 'Bearer {{scoped}}'],
  admin: ['authorization', 'Bearer {{admin}}'],
  'plain-lowercase': ['authorization', 'bearer {{key}}'],
  'plain-uppercase': ['authorization', 'BEARER {{key}}'],
  'plain-spaces': ['authorization', 'Bearer   {{key}}'],
  'plain-x-api-key': ['x-api-key', '{{key}}'],
  missing: undefined,
  malformed: ['authorization', 'Bearer not-a-key'],
  'unknown-key': ['authorization', `Bearer ${UNKNOWN_KEY}`],
  basic: ['authorization', 'Basic dXNlcjpwYXNz'],
  'bearer-empty': ['authorization', 'Bearer '],
};

/** The reader's variables for the runner's placeholders. */
const VARIABLES: Record<string, string> = {
  '{{session}}': 'SESSION',
  '{{conversation}}': 'CONVERSATION',
  '{{port}}': 'PORT',
  '{{key}}': 'KEY',
  '{{scoped}}': 'SCOPED_KEY',
  '{{admin}}': 'ADMIN_KEY',
};

function expression(text: string): string {
  const parts = text
    .split(/(\{\{\w+\}\})/)
    .filter((part) => part !== '')
    .map((part) => VARIABLES[part] ?? textExpression(part));
  return parts.length === 0 ? "''" : parts.join(' + ');
}

/**
 * `await request(...)` (undici) for a generated request in auth mode `mode`. BASE, PORT, KEY (SCOPED_KEY: servers
 * ["fixture"], tools ["*__echo"], models ["small"]; ADMIN_KEY: admin), SESSION (a live 2025-11-25 session opened
 * with KEY) and CONVERSATION (a conversation of KEY) are the reader's to fill in.
 */
export function reproduction(request: FuzzRequest, mode: 'none' | 'keys'): string {
  const headers: string[] = [];
  const auth = AUTH_HEADERS[request.auth];
  // In keyless mode the runner sends a made-up key where a real one would go: it must not matter.
  const credential = (value: string) => (mode === 'keys' ? value : value.replace(/\{\{\w+\}\}/, UNKNOWN_KEY));
  if (auth) headers.push(`${JSON.stringify(auth[0])}: ${expression(credential(auth[1]))}`);
  for (const [name, value] of Object.entries(request.headers))
    headers.push(`${JSON.stringify(name)}: ${expression(value)}`);
  const body = request.body === undefined ? '' : `, body: ${expression(request.body)}`;
  return `await request(BASE + ${expression(request.path)}, { method: ${JSON.stringify(request.method)}, headers: { ${headers.join(', ')} }${body} })`;
}
