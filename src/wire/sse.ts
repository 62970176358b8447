// The one incremental parser for server-sent events (WHATWG rules), for every stream mcplex reads: MCP response
// streams, LLM backends' streams, cached streams. Feed it text as it arrives; get complete events back.

export interface SseEvent {
  event: string;
  data: string;
  /** The last event id as of this event (the stream's, not only this event's). */
  id: string | undefined;
}

export interface SseParser {
  push(text: string): SseEvent[];
  /** The stream's last event id and its `retry:` advice so far, whether or not an event carried data. */
  readonly lastEventId: string | undefined;
  readonly retryMs: number | undefined;
}

export function createSseParser(): SseParser {
  let pending = '';
  // A CR ended the previous text: an LF that starts the next one belongs to it (CRLF cut in two).
  let afterCr = false;
  let event = '';
  let data: string[] = [];
  let lastEventId: string | undefined;
  let retryMs: number | undefined;

  function line(text: string, out: SseEvent[]): void {
    if (text === '') {
      // An empty line ends an event; one without data lines dispatches nothing.
      if (data.length > 0) out.push({ event: event || 'message', data: data.join('\n'), id: lastEventId });
      event = '';
      data = [];
      return;
    }
    if (text.startsWith(':')) return;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data.push(value);
    else if (field === 'event') event = value;
    else if (field === 'id' && !value.includes('\0')) lastEventId = value;
    else if (field === 'retry' && /^\d+$/.test(value)) retryMs = Number(value);
  }

  return {
    push(text) {
      const out: SseEvent[] = [];
      let start = 0;
      if (afterCr && text.startsWith('\n')) start = 1;
      afterCr = false;
      let buffer = pending + text.slice(start);
      pending = '';
      let from = 0;
      // Native scanning for the line ends: a large event is not walked character by character in JavaScript.
      const ends = /\r\n?|\n/g;
      let end: RegExpExecArray | null;
      while ((end = ends.exec(buffer)) !== null) {
        line(buffer.slice(from, end.index), out);
        from = end.index + end[0].length;
        if (end[0] === '\r' && from === buffer.length) afterCr = true;
      }
      pending = buffer.slice(from);
      buffer = '';
      return out;
    },
    get lastEventId() {
      return lastEventId;
    },
    get retryMs() {
      return retryMs;
    },
  };
}
