// Resource subscriptions held on one upstream server: the one place that counts, per URI, how many holders want
// it, and keeps the server's subscription in step with that count, across slow answers and reconnects.
import type { Client, McpSubscription } from '@modelcontextprotocol/client';
import type { Logger } from '../../log/logger.js';
import { errorMessage } from '../../errors.js';

/** The connection the subscriptions live on. */
export interface SubscriptionLink {
  /** The live client, or undefined while there is none. */
  current(): Client | undefined;
  /** Runs a request on the live client (re-initialising an expired session); throws while there is none. */
  run<T>(work: (client: Client) => Promise<T>): Promise<T>;
  /** How long the server may take to answer a subscribe or unsubscribe. */
  timeoutMs: number;
}

interface Entry {
  /** How many holders want the URI subscribed. */
  holders: number;
  /** The client the server-side subscription was taken on; one taken on an older connection is gone. */
  on: Client | undefined;
  /** 2026-07-28 servers have no resources/subscribe: the subscriptions/listen stream that stands for it. */
  listen: McpSubscription | undefined;
  /** The subscribe or unsubscribe in flight: they never overlap for one URI, so the last one sent wins. */
  settling: Promise<void> | undefined;
}

export class ResourceSubscriptions {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly link: SubscriptionLink,
    private readonly logger: Logger,
  ) {}

  /** How many holders want `uri` subscribed. */
  holders(uri: string): number {
    return this.entries.get(uri)?.holders ?? 0;
  }

  /**
   * Adds a holder of `uri`; resolves once the server is subscribed. When the server cannot be subscribed, the
   * holder is not counted and the error is thrown.
   */
  async subscribe(uri: string): Promise<void> {
    const entry = this.entry(uri);
    entry.holders++;
    try {
      await this.settle(uri, entry);
    } catch (error) {
      // Holders that left meanwhile were already taken off; a count never goes below zero.
      if (entry.holders > 0) entry.holders--;
      this.forgetIdle(uri, entry);
      throw error;
    }
  }

  /** Removes a holder of `uri`; the last one unsubscribes the server. */
  async unsubscribe(uri: string): Promise<void> {
    const entry = this.entries.get(uri);
    if (!entry || entry.holders === 0) return;
    entry.holders--;
    await this.settle(uri, entry);
  }

  /** After a new connection: it starts with no subscriptions, so each URI still held is subscribed again. */
  async renew(): Promise<void> {
    await Promise.all(
      [...this.entries].map(([uri, entry]) =>
        this.settle(uri, entry).catch((error: unknown) => {
          this.logger.warn({ uri, err: errorMessage(error) }, 'could not renew a resource subscription');
        }),
      ),
    );
  }

  private entry(uri: string): Entry {
    let entry = this.entries.get(uri);
    if (!entry) {
      entry = { holders: 0, on: undefined, listen: undefined, settling: undefined };
      this.entries.set(uri, entry);
    }
    return entry;
  }

  private forgetIdle(uri: string, entry: Entry): void {
    if (entry.holders === 0 && entry.on === undefined && entry.settling === undefined) this.entries.delete(uri);
  }

  /**
   * Brings the server's subscription in line with the count, one request at a time. Joining a run in progress
   * is enough: it looks at the count again after each answer, so a holder that came or went meanwhile is seen.
   */
  private settle(uri: string, entry: Entry): Promise<void> {
    entry.settling ??= this.converge(uri, entry).finally(() => {
      entry.settling = undefined;
      this.forgetIdle(uri, entry);
    });
    return entry.settling;
  }

  private async converge(uri: string, entry: Entry): Promise<void> {
    for (;;) {
      if (entry.on !== undefined && entry.on !== this.link.current()) {
        // Taken on a connection that has since closed: nothing is left of it on the server.
        entry.on = undefined;
        entry.listen = undefined;
      }
      if (entry.holders > 0 && entry.on === undefined) {
        await this.link.run(async (client) => {
          entry.listen = await this.subscribeOn(client, uri);
          entry.on = client;
        });
      } else if (entry.holders === 0 && entry.on !== undefined) {
        const { on, listen } = entry;
        entry.on = undefined;
        entry.listen = undefined;
        // A failed unsubscribe leaves nothing to retry: the server either dropped the subscription with its
        // connection, or keeps one nobody here follows, whose updates reach no subscriber.
        await this.unsubscribeOn(on, uri, listen).catch((error: unknown) => {
          this.logger.debug({ uri, err: errorMessage(error) }, 'resource unsubscribe failed');
        });
      } else {
        return;
      }
    }
  }

  private async subscribeOn(client: Client, uri: string): Promise<McpSubscription | undefined> {
    if (client.getProtocolEra() === 'modern') return client.listen({ resourceSubscriptions: [uri] });
    await client.subscribeResource({ uri }, { timeout: this.link.timeoutMs });
    return undefined;
  }

  private async unsubscribeOn(client: Client, uri: string, listen: McpSubscription | undefined): Promise<void> {
    if (listen) await listen.close();
    else await client.unsubscribeResource({ uri }, { timeout: this.link.timeoutMs });
  }
}
