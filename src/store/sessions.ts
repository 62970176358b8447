// The session directory: 2025-11-25 MCP sessions as shared records, so that whichever process receives a request
// with a session id can serve it. A session is its record (who opened it, what the client said at initialize, its
// log level), its resource subscriptions and its event log (the SSE events sent on its streams, bounded, which any
// process can append to and replay from). Nothing here knows MCP: the endpoint owns what the state means.
import type { Unsubscribe } from './coordination.js';

export interface SessionBounds {
  /** Open sessions in all. */
  max: number;
  /** Open sessions of one principal (unless it opens them uncapped: keyless mode's one principal). */
  maxPerPrincipal: number;
  /** A session not touched for this long is gone. */
  idleMs: number;
  /** When a cap is reached, sessions not touched for this long are ended to make room. */
  pressureIdleMs: number;
  /** Events one session's log keeps, newest first. */
  replayEvents: number;
  /** Size one session's log keeps (characters of JSON); a bigger event is never kept. */
  replayBytes: number;
  /** Size all logs together keep; past it the oldest events of any session go first. */
  replayTotalBytes: number;
}

export interface SessionRecord {
  id: string;
  /** The principal that opened it: only the same principal may use it. */
  principal: string;
  /** What the endpoint keeps about the session (JSON-compatible, shallow-merged by `update`). */
  state: Record<string, unknown>;
  createdAt: number;
  lastSeen: number;
}

export interface NewSession {
  id: string;
  principal: string;
  state: Record<string, unknown>;
  /** False: the principal's cap does not apply (the total does). Default true. */
  capped?: boolean;
}

export type OpenOutcome = 'opened' | 'principal-full' | 'full';

export type SubscribeOutcome = 'added' | 'held' | 'full' | 'gone';

export interface SessionEvent {
  /** Unique in its session's log, increasing in the order appended. */
  id: string;
  stream: string;
  /** What the endpoint sent (JSON text), or its own marker. */
  message: string;
  /** The endpoint's label for the event (a marker that is not sent, say). */
  tag?: string;
}

export interface EventAppend {
  stream: string;
  message: string;
  tag?: string;
}

export interface SessionDirectory {
  /**
   * Records a new session unless a cap refuses it: its principal's (`principal-full`), then the total (`full`).
   * At a cap, sessions untouched for `pressureIdleMs` are ended first to make room.
   */
  open(session: NewSession, now: number): Promise<OpenOutcome>;
  /** The live session with its `lastSeen` moved to `now`; undefined when it is unknown, expired or ended. */
  touch(id: string, now: number): Promise<SessionRecord | undefined>;
  /** Moves `lastSeen` of the live sessions among `ids` to `now` (sessions in use stay out of the idle count). */
  touchAll(ids: readonly string[], now: number): Promise<void>;
  /** Merges `patch` into a live session's state; false when the session is gone. */
  update(id: string, patch: Record<string, unknown>): Promise<boolean>;
  /** Ends a session and forgets its subscriptions and log; false when it was not live. */
  end(id: string): Promise<boolean>;
  /** Live sessions in all. */
  count(now: number): Promise<number>;
  /** Adds a URI to a live session's subscriptions, unless it holds `max` already. */
  subscribe(id: string, uri: string, max: number): Promise<SubscribeOutcome>;
  /** Removes a URI; false when the session did not hold it. */
  unsubscribe(id: string, uri: string): Promise<boolean>;
  subscriptions(id: string): Promise<string[]>;
  /**
   * Appends events to a live session's log (in order), evicting its oldest past its bounds and the oldest of any
   * session past the total, and wakes the session's watchers. An event too big to keep is not kept, and the earlier
   * events of its stream are forgotten, so that a resume from before it is refused rather than silently skipping
   * it. The ids, one per event, kept or not; none when the session is not live.
   */
  append(id: string, events: readonly EventAppend[]): Promise<string[]>;
  /** The stream of `eventId` and its later events in the session's log; undefined when the log does not hold it. */
  after(id: string, eventId: string): Promise<{ stream: string; events: SessionEvent[] } | undefined>;
  /** The events of `stream` in the session's log after `eventId` (all of them without it). */
  streamAfter(id: string, stream: string, eventId: string | undefined): Promise<SessionEvent[]>;
  /**
   * Calls `wake` after events are appended to the session's log (by any process), at most once per append, possibly
   * late and, over a network, not at all during a disconnect: a watcher reads the log, never trusts the wake-up.
   */
  watch(id: string, wake: () => void): Promise<Unsubscribe>;
  /** What all logs keep now (characters of JSON). */
  logBytes(): Promise<number>;
  close(): Promise<void>;
}
