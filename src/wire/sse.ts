// A minimal incremental parser for server-sent events: feed it text as it arrives, get complete events back.

export interface SseEvent {
  event: string;
  data: string;
}

export function createSseParser(): { push(text: string): SseEvent[] } {
  let buffer = '';
  return {
    push(text) {
      buffer += text;
      const events: SseEvent[] = [];
      for (;;) {
        const match = /\r\n\r\n|\n\n|\r\r/.exec(buffer);
        if (match === null) break;
        const block = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split(/\r\n|\n|\r/)) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon === -1 ? line : line.slice(0, colon);
          const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length > 0) events.push({ event, data: data.join('\n') });
      }
      return events;
    },
  };
}
