// A bounded in-memory event store so that legacy clients can resume a dropped SSE stream with Last-Event-ID.
import { randomUUID } from 'node:crypto';
import type { EventStore, JSONRPCMessage } from '@modelcontextprotocol/server';

interface StoredEvent {
  id: string;
  streamId: string;
  message: JSONRPCMessage;
}

/** Keeps the newest `maxEvents` events of one session; older ones can no longer be replayed. */
export function createMemoryEventStore(maxEvents = 1000): EventStore {
  const events: StoredEvent[] = [];
  const byId = new Map<string, StoredEvent>();
  return {
    async storeEvent(streamId, message) {
      const event = { id: `${streamId}_${randomUUID()}`, streamId, message };
      events.push(event);
      byId.set(event.id, event);
      if (events.length > maxEvents) byId.delete(events.shift()!.id);
      return event.id;
    },
    async getStreamIdForEventId(eventId) {
      return byId.get(eventId)?.streamId;
    },
    async replayEventsAfter(lastEventId, { send }) {
      const last = byId.get(lastEventId);
      if (!last) throw new Error(`event ${lastEventId} is unknown or too old to replay`);
      let found = false;
      for (const event of events) {
        if (found && event.streamId === last.streamId) await send(event.id, event.message);
        if (event === last) found = true;
      }
      return last.streamId;
    },
  };
}
