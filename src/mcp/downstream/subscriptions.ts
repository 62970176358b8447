// Resource subscriptions across the gateway: each downstream subscriber is recorded per exposed URI, the
// owning upstream is subscribed once however many clients want the URI, and an update reaches only the
// clients subscribed to it.
import type { Catalog } from '../catalog/catalog.js';
import { exposeUri } from '../catalog/catalog.js';
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

export function createSubscriptions(catalog: Catalog, onUpdated?: (exposedUri: string) => void): Subscriptions {
  const byUri = new Map<string, Set<Subscriber>>();

  async function release(exposedUri: string, subscribers: Set<Subscriber>): Promise<void> {
    if (subscribers.size > 0) return;
    byUri.delete(exposedUri);
    const route = safeResolve(catalog, exposedUri);
    await route?.upstream.unsubscribe(route.original).catch(() => {});
  }

  return {
    async subscribe(exposedUri, subscriber) {
      const route = catalog.resolveResource(exposedUri);
      let subscribers = byUri.get(exposedUri);
      if (!subscribers) {
        subscribers = new Set();
        byUri.set(exposedUri, subscribers);
      }
      subscribers.add(subscriber);
      try {
        await route.upstream.subscribe(route.original);
      } catch (error) {
        subscribers.delete(subscriber);
        await release(exposedUri, subscribers);
        throw error;
      }
    },
    async unsubscribe(exposedUri, subscriber) {
      const subscribers = byUri.get(exposedUri);
      if (!subscribers?.delete(subscriber)) return;
      await release(exposedUri, subscribers);
    },
    drop(subscriber) {
      for (const [uri, subscribers] of byUri) {
        if (subscribers.delete(subscriber)) void release(uri, subscribers);
      }
    },
    updated(upstream, uri) {
      const exposedUri = exposeUri(upstream.key, uri);
      for (const subscriber of byUri.get(exposedUri) ?? []) subscriber.notifyUpdated(exposedUri);
      onUpdated?.(exposedUri);
    },
  };
}

function safeResolve(catalog: Catalog, exposedUri: string) {
  try {
    return catalog.resolveResource(exposedUri);
  } catch {
    return undefined;
  }
}
