import { once } from 'node:events';
import { createServer, request } from 'node:http';
import type { IncomingMessage, OutgoingHttpHeaders, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { createCoalescer, createFlight } from './coalescer.js';
import type { Flight, FlightChunk } from './coalescer.js';
import { describeCoalescerContract } from './coalescer-contract.js';

describeCoalescerContract('in-process', () => createCoalescer());

/** A subscriber that writes down everything it is told. */
function recorder(flight: Flight) {
  const log = {
    status: undefined as number | undefined,
    headers: undefined as OutgoingHttpHeaders | undefined,
    chunks: [] as FlightChunk[],
    ended: false,
    error: undefined as unknown,
    text: () => log.chunks.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('utf8'))).join(''),
    unsubscribe: () => {},
  };
  log.unsubscribe = flight.subscribe(
    (status, headers) => {
      log.status = status;
      log.headers = headers;
    },
    (chunk) => log.chunks.push(chunk),
    () => {
      log.ended = true;
    },
    (error) => {
      log.error = error;
    },
  );
  return log;
}

describe('createCoalescer', () => {
  it('starts one flight for 50 concurrent joiners', () => {
    const coalescer = createCoalescer();
    let starts = 0;
    const joins = Array.from({ length: 50 }, () =>
      coalescer.join('k', () => {
        starts++;
        return createFlight();
      }),
    );
    expect(starts).toBe(1);
    expect(joins.filter((j) => j.leader)).toHaveLength(1);
    expect(joins[0]!.leader).toBe(true);
    expect(new Set(joins.map((j) => j.flight)).size).toBe(1);
    expect(coalescer.size).toBe(1);
  });

  it('keeps different keys apart', () => {
    const coalescer = createCoalescer();
    const a = coalescer.join('a', createFlight);
    const b = coalescer.join('b', createFlight);
    expect(b.leader).toBe(true);
    expect(a.flight).not.toBe(b.flight);
  });

  it('frees the key when the flight ends, so a later request starts a new one', () => {
    const coalescer = createCoalescer();
    const first = coalescer.join('k', createFlight);
    first.flight.head(200, {});
    first.flight.write('x');
    expect(coalescer.get('k')).toBe(first.flight);
    first.flight.end();
    expect(coalescer.size).toBe(0);
    const second = coalescer.join('k', createFlight);
    expect(second.leader).toBe(true);
    expect(second.flight).not.toBe(first.flight);
  });

  it('frees the key when the flight fails', () => {
    const coalescer = createCoalescer();
    const { flight } = coalescer.join('k', createFlight);
    flight.fail(new Error('boom'));
    expect(coalescer.size).toBe(0);
    expect(coalescer.join('k', createFlight).leader).toBe(true);
  });
});

describe('Flight', () => {
  it('gives every subscriber the same head and the very same chunk objects, in order', () => {
    const flight = createFlight();
    const a = recorder(flight);
    const b = recorder(flight);
    const chunk = Buffer.from('data: 1\n\n');
    flight.head(200, { 'content-type': 'text/event-stream' });
    flight.write(chunk);
    flight.write('data: [DONE]\n\n');
    flight.end();
    for (const log of [a, b]) {
      expect(log.status).toBe(200);
      expect(log.headers).toEqual({ 'content-type': 'text/event-stream' });
      expect(log.chunks[0]).toBe(chunk); // relayed, not copied
      expect(log.text()).toBe('data: 1\n\ndata: [DONE]\n\n');
      expect(log.ended).toBe(true);
    }
  });

  it('replays everything so far to a late joiner, then relays live', () => {
    const flight = createFlight();
    const early = recorder(flight);
    flight.head(200, { 'content-type': 'text/event-stream' });
    flight.write('a');
    flight.write(Buffer.from('b'));
    const late = recorder(flight);
    expect(late.status).toBe(200);
    expect(late.text()).toBe('ab');
    expect(late.ended).toBe(false);
    flight.write('c');
    flight.end();
    expect(late.text()).toBe('abc');
    expect(late.text()).toBe(early.text());
    expect(late.ended).toBe(true);
    // Even after the end, the whole response can be replayed.
    const after = recorder(flight);
    expect(after.text()).toBe('abc');
    expect(after.ended).toBe(true);
  });

  it('propagates a failure to every subscriber, late ones included', () => {
    const flight = createFlight();
    const a = recorder(flight);
    flight.head(200, {});
    flight.write('partial');
    const error = new Error('upstream broke');
    flight.fail(error);
    expect(a.error).toBe(error);
    expect(a.ended).toBe(false);
    const late = recorder(flight);
    expect(late.text()).toBe('partial');
    expect(late.error).toBe(error);
    // Nothing after the failure counts.
    flight.write('more');
    flight.end();
    expect(a.text()).toBe('partial');
    expect(a.ended).toBe(false);
  });

  it('lets one subscriber go without affecting the others', () => {
    const flight = createFlight();
    const a = recorder(flight);
    const b = recorder(flight);
    flight.write('1');
    a.unsubscribe();
    a.unsubscribe();
    flight.write('2');
    flight.end();
    expect(a.text()).toBe('1');
    expect(a.ended).toBe(false);
    expect(b.text()).toBe('12');
    expect(b.ended).toBe(true);
    expect(flight.abandoned).toBe(false);
  });

  it('drops a subscriber whose callback throws, and goes on with the others', () => {
    const flight = createFlight();
    let calls = 0;
    flight.subscribe(
      () => {},
      () => {
        calls++;
        throw new Error('bad client');
      },
      () => {},
      () => {},
    );
    const good = recorder(flight);
    flight.write('1');
    flight.write('2');
    flight.end();
    expect(calls).toBe(1);
    expect(good.text()).toBe('12');
    expect(good.ended).toBe(true);
  });

  it('is abandoned when every subscriber and the leader are gone, which aborts its signal and frees the key', () => {
    const coalescer = createCoalescer();
    const { flight } = coalescer.join('k', createFlight);
    const release = flight.hold();
    const a = recorder(flight);
    const b = recorder(flight);
    const signal = flight.signal;
    a.unsubscribe();
    release();
    expect(flight.abandoned).toBe(false);
    expect(coalescer.size).toBe(1);
    b.unsubscribe();
    expect(flight.abandoned).toBe(true);
    expect(signal.aborted).toBe(true);
    expect(coalescer.size).toBe(0);
    expect(coalescer.join('k', createFlight).leader).toBe(true);
  });

  it('is not abandoned by stakes released after it ended', () => {
    const flight = createFlight();
    const release = flight.hold();
    const a = recorder(flight);
    flight.end();
    release();
    a.unsubscribe();
    expect(flight.abandoned).toBe(false);
    expect(flight.signal.aborted).toBe(false);
  });

  it('gives its body as text, whole even where a character was split across chunks', () => {
    const flight = createFlight();
    const bytes = Buffer.from('data: "é✓"\n\n');
    flight.write(bytes.subarray(0, 8)); // Cuts "é" in two.
    flight.write(bytes.subarray(8));
    flight.write('data: [DONE]\n\n');
    expect(flight.text()).toBe('data: "é✓"\n\ndata: [DONE]\n\n');
  });

  it('runs done listeners once, when the flight ends', () => {
    const flight = createFlight();
    let calls = 0;
    flight.onDone(() => calls++);
    flight.write('x');
    expect(calls).toBe(0);
    flight.end();
    flight.end();
    expect(calls).toBe(1);
    flight.onDone(() => calls++);
    expect(calls).toBe(2);
  });
});

describe('Flight.pipe over HTTP', () => {
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    server?.close();
    server = undefined;
  });

  interface Received {
    status: number;
    headers: IncomingMessage['headers'];
    body: Buffer;
    error?: Error;
  }

  function get(port: number, onResponse?: (res: IncomingMessage) => void): Promise<Received> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port, path: '/' }, (res) => {
        onResponse?.(res);
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts) }));
        res.on('error', (error) =>
          resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts), error }),
        );
        // A response cut short (by either side) ends with 'close' alone.
        res.on('close', () =>
          resolve({
            status: res.statusCode!,
            headers: res.headers,
            body: Buffer.concat(parts),
            error: new Error('cut'),
          }),
        );
      });
      req.on('error', (error) => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), error }));
      req.end();
    });
  }

  async function listen(handler: Parameters<typeof createServer>[1]): Promise<number> {
    server = createServer(handler);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return (server.address() as AddressInfo).port;
  }

  it('streams one upstream response to 50 concurrent clients, late joiners included, byte for byte', async () => {
    const coalescer = createCoalescer();
    let starts = 0;
    let joined = 0;
    const waiters: [number, () => void][] = [];
    const joins = (count: number) =>
      new Promise<void>((resolve) => (joined >= count ? resolve() : waiters.push([count, resolve])));
    const pieces = Array.from({ length: 20 }, (_, i) => `data: {"n":${i},"text":"piece ${'x'.repeat(i)}"}\n\n`);
    const port = await listen((_req, res) => {
      const { flight, leader } = coalescer.join('same', () => {
        starts++;
        return createFlight();
      });
      flight.pipe(res, { 'x-mcplex-coalesced': leader ? 'leader' : 'follower' });
      joined++;
      for (const [count, resolve] of waiters) if (joined >= count) resolve();
      if (!leader) return;
      void (async () => {
        await joins(40);
        flight.head(200, { 'content-type': 'text/event-stream' });
        for (const piece of pieces.slice(0, 10)) flight.write(Buffer.from(piece));
        lateGate();
        await joins(50); // The last ten join mid-stream.
        for (const piece of pieces.slice(10)) {
          flight.write(Buffer.from(piece));
          await sleep(1);
        }
        flight.write('data: [DONE]\n\n');
        flight.end();
      })();
    });
    let lateGate = () => {};
    const late = new Promise<void>((resolve) => (lateGate = resolve));
    const early = Array.from({ length: 40 }, () => get(port));
    const lateOnes = Array.from({ length: 10 }, async () => {
      await late;
      return get(port);
    });
    const results = await Promise.all([...early, ...lateOnes]);
    const expected = pieces.join('') + 'data: [DONE]\n\n';
    expect(starts).toBe(1);
    for (const result of results) {
      expect(result.status).toBe(200);
      expect(result.headers['content-type']).toBe('text/event-stream');
      expect(result.body.toString('utf8')).toBe(expected);
    }
    expect(results.filter((r) => r.headers['x-mcplex-coalesced'] === 'leader')).toHaveLength(1);
    expect(coalescer.size).toBe(0);
  });

  it('answers 502 to everyone when the flight fails before its head, and cuts a started response', async () => {
    const coalescer = createCoalescer();
    let mode: 'before' | 'after' = 'before';
    const port = await listen((_req, res) => {
      const { flight, leader } = coalescer.join(mode, createFlight);
      flight.pipe(res);
      if (!leader) return;
      setTimeout(() => {
        if (mode === 'after') {
          flight.head(200, { 'content-type': 'text/event-stream' });
          flight.write('data: {}\n\n');
        }
        setTimeout(() => flight.fail(new Error('upstream broke')), 10);
      }, 20);
    });
    const before = await Promise.all([get(port), get(port), get(port)]);
    for (const result of before) {
      expect(result.status).toBe(502);
      expect(JSON.parse(result.body.toString('utf8'))).toMatchObject({
        error: { type: 'server_error', code: 'upstream_error' },
      });
    }
    mode = 'after';
    const after = await Promise.all([get(port), get(port)]);
    for (const result of after) {
      expect(result.status).toBe(200);
      expect(result.error).toBeDefined();
    }
  });

  it('lets a disconnecting client go while the others get the whole answer; abandons when all are gone', async () => {
    const coalescer = createCoalescer();
    let flightRef: Flight | undefined;
    const port = await listen((_req, res) => {
      const { flight, leader } = coalescer.join('k', createFlight);
      flight.pipe(res);
      if (!leader) return;
      flightRef = flight;
      flight.head(200, { 'content-type': 'text/event-stream' });
      flight.write('data: first\n\n');
    });
    // One client leaves after the first chunk.
    const leaving = get(port, (res) => res.once('data', () => res.destroy()));
    const staying = get(port);
    await leaving;
    await sleep(20);
    expect(flightRef!.abandoned).toBe(false);
    flightRef!.write('data: second\n\n');
    flightRef!.end();
    expect((await staying).body.toString('utf8')).toBe('data: first\n\ndata: second\n\n');

    // Now every client leaves: the flight is abandoned and its signal aborts.
    const leavers = [1, 2, 3].map(() => get(port, (res) => res.once('data', () => res.destroy())));
    await Promise.all(leavers);
    for (let i = 0; i < 50 && !flightRef!.abandoned; i++) await sleep(5);
    expect(flightRef!.abandoned).toBe(true);
    expect(flightRef!.signal.aborted).toBe(true);
    expect(coalescer.size).toBe(0);
  });
});
