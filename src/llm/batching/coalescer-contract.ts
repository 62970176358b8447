// The contract every Coalescer implementation must meet, as vitest blocks: each implementation's test file calls
// describeCoalescerContract with a function that makes a fresh, empty coalescer. What the checks look at is what a
// caller can observe through the flights it is handed (status, headers, bytes, end or error), never whether two
// callers hold the same object, so that an implementation may hand a follower its own Flight fed from elsewhere.

import { describe, expect, it } from 'vitest';
import type { OutgoingHttpHeaders } from 'node:http';
import { createFlight } from './coalescer.js';
import type { Coalescer, Flight, FlightChunk } from './coalescer.js';

/** What one subscriber of a flight was told. */
interface Received {
  status: number | undefined;
  headers: OutgoingHttpHeaders | undefined;
  text(): string;
  ended: boolean;
  error: unknown;
  unsubscribe(): void;
}

function receive(flight: Flight): Received {
  const chunks: FlightChunk[] = [];
  const got: Received = {
    status: undefined,
    headers: undefined,
    text: () => chunks.map((c) => (typeof c === 'string' ? c : Buffer.from(c).toString('utf8'))).join(''),
    ended: false,
    error: undefined,
    unsubscribe: () => {},
  };
  got.unsubscribe = flight.subscribe(
    (status, headers) => {
      got.status = status;
      got.headers = headers;
    },
    (chunk) => chunks.push(chunk),
    () => {
      got.ended = true;
    },
    (error) => {
      got.error = error;
    },
  );
  return got;
}

export function describeCoalescerContract(name: string, create: () => Coalescer): void {
  describe(`Coalescer contract: ${name}`, () => {
    /** A start function that counts how often it ran. */
    function starter(): { start: () => Flight; readonly starts: number } {
      let starts = 0;
      return {
        start: () => {
          starts++;
          return createFlight();
        },
        get starts() {
          return starts;
        },
      };
    }

    it('gives identical keys in flight one leader and one start', () => {
      const coalescer = create();
      const counted = starter();
      const joins = Array.from({ length: 20 }, () => coalescer.join('k', counted.start));
      expect(counted.starts).toBe(1);
      expect(joins.map((j) => j.leader)).toEqual([true, ...Array<boolean>(19).fill(false)]);
      expect(coalescer.size).toBe(1);
      expect(coalescer.get('k')).toBeDefined();
    });

    it("gives every follower the leader's status, headers and bytes, those who join mid-flight included", () => {
      const coalescer = create();
      const lead = coalescer.join('k', createFlight);
      const early = receive(coalescer.join('k', createFlight).flight);
      lead.flight.head(200, { 'content-type': 'text/event-stream' });
      lead.flight.write('data: 1\n\n');
      lead.flight.write(Buffer.from('data: "é"\n\n'));
      const late = receive(coalescer.join('k', createFlight).flight);
      lead.flight.write('data: [DONE]\n\n');
      lead.flight.end();
      for (const got of [early, late]) {
        expect(got.status).toBe(200);
        expect(got.headers).toEqual({ 'content-type': 'text/event-stream' });
        expect(got.text()).toBe('data: 1\n\ndata: "é"\n\ndata: [DONE]\n\n');
        expect(got.ended).toBe(true);
        expect(got.error).toBeUndefined();
      }
    });

    it('does not join a finished flight: the next request leads a new one, with none of the old bytes', () => {
      const coalescer = create();
      const counted = starter();
      const first = coalescer.join('k', counted.start);
      first.flight.write('old');
      first.flight.end();
      expect(coalescer.get('k')).toBeUndefined();
      expect(coalescer.size).toBe(0);
      const second = coalescer.join('k', counted.start);
      expect(second.leader).toBe(true);
      expect(counted.starts).toBe(2);
      const follower = receive(coalescer.join('k', counted.start).flight);
      second.flight.write('new');
      second.flight.end();
      expect(follower.text()).toBe('new');
    });

    it('fails every follower with the error of a failed leader, and frees the key', () => {
      const coalescer = create();
      const lead = coalescer.join('k', createFlight);
      const before = receive(coalescer.join('k', createFlight).flight);
      lead.flight.head(200, {});
      lead.flight.write('partial');
      const during = receive(coalescer.join('k', createFlight).flight);
      lead.flight.fail(new Error('upstream broke'));
      for (const got of [before, during]) {
        expect(got.error).toBeInstanceOf(Error);
        expect((got.error as Error).message).toBe('upstream broke');
        expect(got.ended).toBe(false);
        expect(got.text()).toBe('partial');
      }
      expect(coalescer.join('k', createFlight).leader).toBe(true);
    });

    it('keeps different keys apart', () => {
      const coalescer = create();
      const counted = starter();
      const a = coalescer.join('a', counted.start);
      const b = coalescer.join('b', counted.start);
      expect([a.leader, b.leader]).toEqual([true, true]);
      expect(counted.starts).toBe(2);
      expect(coalescer.size).toBe(2);
      const onA = receive(coalescer.join('a', counted.start).flight);
      const onB = receive(coalescer.join('b', counted.start).flight);
      a.flight.write('for a');
      b.flight.fail(new Error('b broke'));
      a.flight.end();
      expect(onA.text()).toBe('for a');
      expect(onA.ended).toBe(true);
      expect(onB.text()).toBe('');
      expect((onB.error as Error).message).toBe('b broke');
    });

    it('lets a follower go without disturbing the others or the leader', () => {
      const coalescer = create();
      const lead = coalescer.join('k', createFlight);
      const leaving = receive(coalescer.join('k', createFlight).flight);
      const staying = receive(coalescer.join('k', createFlight).flight);
      lead.flight.write('1');
      leaving.unsubscribe();
      leaving.unsubscribe();
      lead.flight.write('2');
      // The flight is still open and still joined.
      expect(coalescer.join('k', createFlight).leader).toBe(false);
      lead.flight.end();
      expect(leaving.text()).toBe('1');
      expect(leaving.ended).toBe(false);
      expect(staying.text()).toBe('12');
      expect(staying.ended).toBe(true);
    });

    it('frees the key of a flight every client left, so that the next request leads a new one', () => {
      const coalescer = create();
      const lead = coalescer.join('k', createFlight);
      const releaseLeader = lead.flight.hold();
      const follower = receive(coalescer.join('k', createFlight).flight);
      follower.unsubscribe();
      expect(coalescer.join('k', createFlight).leader).toBe(false);
      releaseLeader();
      expect(lead.flight.abandoned).toBe(true);
      expect(coalescer.get('k')).toBeUndefined();
      expect(coalescer.join('k', createFlight).leader).toBe(true);
    });

    it('does not keep a flight that was settled when started', () => {
      const coalescer = create();
      const joined = coalescer.join('k', () => {
        const flight = createFlight();
        flight.fail(new Error('at once'));
        return flight;
      });
      expect(joined.leader).toBe(true);
      expect(coalescer.size).toBe(0);
      expect(coalescer.join('k', createFlight).leader).toBe(true);
    });
  });
}
