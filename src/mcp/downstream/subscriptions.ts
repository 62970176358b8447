// Resource subscriptions across the gateway: each downstream subscriber is recorded per exposed URI, the
// owning upstream is subscribed once however many clients want the URI, and an update reaches only the
// clients subscribed to it.
import type { Catalog, Routed } from '../catalog/catalog.js';
import { exposeUpstreamUri } from '../catalog/catalog.js';
import type { Upstream } from '../upstream/upstream.js';

export interface Subscriber {
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

  async function release(exposedUri: string, entry: Entry): Promise<void> {
    if (entry.subscribers.size > 0 || byUri.get(exposedUri) !== entry) return;
    byUri.delete(exposedUri);
    await entry.route.upstream.unsubscribe(entry.route.original).catch(() => {});
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
      // The upstream holds one subscription per URI, taken by the first subscriber.
      if (entry.subscribers.size > 1) return;
      try {
        await entry.route.upstream.subscribe(entry.route.original);
      } catch (error) {
        entry.subscribers.delete(subscriber);
        if (entry.subscribers.size === 0 && byUri.get(exposedUri) === entry) byUri.delete(exposedUri);
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
      for (const subscriber of byUri.get(exposedUri)?.subscribers ?? []) subscriber.notifyUpdated(exposedUri);
    },
  };
}
