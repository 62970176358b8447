import { describe, expect, it } from 'vitest';
import { NAME_PATTERN, assignNames, preferredName } from './naming.js';
import type { NameRequest } from './naming.js';

const LONG = 'a_tool_with_a_deliberately_very_long_name_that_exceeds_the_limit_xxxxx';

describe('tool naming', () => {
  it('joins prefix and name with a double underscore', () => {
    expect(preferredName({ serverKey: 'everything', prefix: 'everything', name: 'echo' })).toBe('everything__echo');
  });

  it('keeps the bare name for an unprefixed server, which collides with nothing namespaced', () => {
    const plain = { serverKey: 'conf', prefix: '', name: 'echo' };
    const prefixed = { serverKey: 'b', prefix: 'b', name: 'echo' };
    const names = assignNames([plain, prefixed]);
    expect([names.get(plain), names.get(prefixed)]).toEqual(['echo', 'b__echo']);
    // A bare name that looks namespaced meets the namespaced one: both stay, deterministically.
    const lookalike = { serverKey: 'conf', prefix: '', name: 'b__echo' };
    const clash = assignNames([prefixed, lookalike]);
    expect(new Set(clash.values()).size).toBe(2);
    expect(assignNames([lookalike, prefixed]).get(lookalike)).toBe(clash.get(lookalike));
  });

  it('shortens a 70-character name deterministically to at most 64 valid characters', () => {
    expect(LONG).toHaveLength(70);
    const request = { serverKey: 'fixture', prefix: 'fixture', name: LONG };
    const name = preferredName(request);
    expect(name).toMatch(NAME_PATTERN);
    expect(name.length).toBeLessThanOrEqual(64);
    expect(preferredName({ ...request })).toBe(name);
    // Two long names that share their first 64 characters still get different names.
    const other = preferredName({ ...request, name: `${LONG}_other` });
    expect(other).not.toBe(name);
  });

  it('replaces characters that are not allowed', () => {
    const name = preferredName({ serverKey: 's', prefix: 's', name: 'read.file/v2' });
    expect(name).toMatch(NAME_PATTERN);
    expect(name.startsWith('s__read_file_v2')).toBe(true);
  });

  it('resolves collisions deterministically, whatever the input order, and drops nothing', () => {
    const requests: NameRequest[] = [
      { serverKey: 'a', prefix: 'a', name: 'get.item' },
      { serverKey: 'a', prefix: 'a', name: 'get_item' },
      { serverKey: 'a', prefix: 'a', name: 'get-item' },
      { serverKey: 'b', prefix: 'b', name: 'get_item' },
    ];
    const forward = assignNames(requests);
    const backward = assignNames([...requests].reverse());
    const names = requests.map((r) => forward.get(r));
    expect(requests.map((r) => backward.get(r))).toEqual(names);
    expect(new Set(names).size).toBe(requests.length);
    for (const name of names) expect(name).toMatch(NAME_PATTERN);
    // The entry whose name needed no rewriting keeps the plain name.
    expect(forward.get(requests[1]!)).toBe('a__get_item');
    expect(forward.get(requests[2]!)).toBe('a__get-item');
    expect(forward.get(requests[3]!)).toBe('b__get_item');
  });

  it('keeps every name valid for unusual prefixes and empty-looking names', () => {
    const result = assignNames([
      { serverKey: 'x', prefix: 'x', name: '' },
      { serverKey: 'x', prefix: 'x', name: 'ü' },
      { serverKey: 'x', prefix: 'x', name: '?' },
    ]);
    expect(new Set(result.values()).size).toBe(3);
    for (const name of result.values()) expect(name).toMatch(NAME_PATTERN);
  });
});
