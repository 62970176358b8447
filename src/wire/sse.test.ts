import { describe, expect, it } from 'vitest';
import { createSseParser } from './sse.js';

const all = (chunks: string[]) => {
  const parser = createSseParser();
  return chunks.flatMap((chunk) => parser.push(chunk));
};

describe('createSseParser', () => {
  it('ends an event at an empty line whatever the line ends (LF, CR, CRLF, mixed)', () => {
    for (const end of ['\n', '\r', '\r\n']) {
      expect(all([`data: a${end}data: b${end}${end}data: c${end}${end}`]).map((e) => e.data)).toEqual(['a\nb', 'c']);
    }
    expect(all(['data: x\r\n\ndata: y\n\r\n']).map((e) => e.data)).toEqual(['x', 'y']);
  });

  it('joins text cut anywhere, a CRLF cut in two included', () => {
    const text = 'event: delta\r\ndata: {"a":1}\r\n\r\ndata: two\r\n\r\n';
    for (let cut = 0; cut <= text.length; cut++) {
      const events = all([text.slice(0, cut), text.slice(cut)]);
      expect(events, `cut at ${cut}`).toEqual([
        { event: 'delta', data: '{"a":1}', id: undefined },
        { event: 'message', data: 'two', id: undefined },
      ]);
    }
  });

  it('dispatches an event ended by a lone CR at once, without waiting for what follows', () => {
    const parser = createSseParser();
    expect(parser.push('data: now\r\r').map((e) => e.data)).toEqual(['now']);
    expect(parser.push('\ndata: next\n\n').map((e) => e.data)).toEqual(['next']);
  });

  it('keeps the last event id and retry advice, also from events without data', () => {
    const parser = createSseParser();
    const events = parser.push('id: 1\nretry: 1000\n\ndata: a\n\nid: 2\ndata: b\n\nid: bad\0id\nretry: soon\n\n');
    expect(events.map((e) => [e.data, e.id])).toEqual([
      ['a', '1'],
      ['b', '2'],
    ]);
    expect(parser.lastEventId).toBe('2');
    expect(parser.retryMs).toBe(1000);
  });

  it('skips comments, strips one leading space, and takes a field without a colon as empty', () => {
    expect(all([': keep-alive\n\ndata:  two spaces\ndata\n\n'])).toEqual([
      { event: 'message', data: ' two spaces\n', id: undefined },
    ]);
  });
});
