// Resource subscriptions across the gateway: who is subscribed to each exposed URI, so that an update reaches
// only them. Each subscriber holds the owning upstream's subscription once; the upstream counts its holders.
import type { Catalog, Routed } from '../catalog/catalog.js';
import { exposeUpstreamUri } from '../catalog/catalog.js';
import type { Upstream } from '../upstream/upstream.js';

export interface Subscriber {
  /**
   * Tells the subscriber that `uri` changed. Subscribers that share one function (2026-07-28 listen streams,
   * which the SDK's listen router serves) are told once per update.
   */
  notifyUpdated(uri: string): void;
}

export interface Subscriptions {
  subscribe(exposedUri: string, subscriber: Subscriber): Promise<void>;
  unsubscribe(exposedUri: string, subscriber: Subscriber): Promise<void>;
  /** Forgets everything a subscriber (a closed session) subscribed to. */
  drop(subscriber: Subscriber): void;
  /** Called when an upstream reports `notifications/resources/updated` for one of its URIs. */
  updated(upstream: Upstream, uri: string): void;
}

interface Entry {
  /** Where the URI lives, kept so that the last unsubscribe reaches it even while it is down. */
  route: Routed;
  subscribers: Set<Subscriber>;
}

export function createSubscriptions(catalog: Catalog): Subscriptions {
  const byUri = new Map<string, Entry>();

  /** Forgets an exposed URI nobody is subscribed to any more (the upstream is released by each subscriber). */
  function forgetIfEmpty(exposedUri: string, entry: Entry): void {
    if (entry.subscribers.size === 0 && byUri.get(exposedUri) === entry) byUri.delete(exposedUri);
  }

  function release(exposedUri: string, entry: Entry): Promise<void> {
    forgetIfEmpty(exposedUri, entry);
    return entry.route.upstream.unsubscribe(entry.route.original).catch(() => {});
  }

  return {
    async subscribe(exposedUri, subscriber) {
      let entry = byUri.get(exposedUri);
      if (entry?.subscribers.has(subscriber)) return;
      if (!entry) {
        entry = { route: catalog.resolveResource(exposedUri), subscribers: new Set() };
        byUri.set(exposedUri, entry);
      }
      entry.subscribers.add(subscriber);
      try {
        await entry.route.upstream.subscribe(entry.route.original);
      } catch (error) {
        // The upstream did not count this holder. (A subscriber that left meanwhile was released already.)
        if (entry.subscribers.delete(subscriber)) forgetIfEmpty(exposedUri, entry);
        throw error;
      }
    },
    async unsubscribe(exposedUri, subscriber) {
      const entry = byUri.get(exposedUri);
      if (!entry?.subscribers.delete(subscriber)) return;
      await release(exposedUri, entry);
    },
    drop(subscriber) {
      for (const [uri, entry] of byUri) {
        if (entry.subscribers.delete(subscriber)) void release(uri, entry);
      }
    },
    updated(upstream, uri) {
      const exposedUri = exposeUpstreamUri(upstream, uri);
      const told = new Set<Subscriber['notifyUpdated']>();
      for (const { notifyUpdated } of byUri.get(exposedUri)?.subscribers ?? []) {
        if (told.has(notifyUpdated)) continue;
        told.add(notifyUpdated);
        notifyUpdated(exposedUri);
      }
    },
  };
}
