import { describe, expect, it } from 'vitest';
import { MAX_JSON_DEPTH, nestedDeeperThan, parseJsonObject, requestQuery } from './json.js';
import type { IncomingMessage } from 'node:http';

describe('nestedDeeperThan', () => {
  it('counts objects and arrays as levels, and nothing else', () => {
    expect(nestedDeeperThan('text', 0)).toBe(false);
    expect(nestedDeeperThan({}, 1)).toBe(false);
    expect(nestedDeeperThan({ a: [] }, 1)).toBe(true);
    expect(nestedDeeperThan({ a: [1, { b: 'x' }] }, 3)).toBe(false);
    expect(nestedDeeperThan({ a: [1, { b: 'x' }] }, 2)).toBe(true);
  });

  it('walks 100,000 levels without recursion', () => {
    const deep = JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`) as unknown;
    expect(nestedDeeperThan(deep, MAX_JSON_DEPTH)).toBe(true);
  });
});

describe('parseJsonObject', () => {
  it('refuses JSON nested deeper than the limit with a 400', () => {
    const deep = `{"a":${'['.repeat(MAX_JSON_DEPTH)}${']'.repeat(MAX_JSON_DEPTH)}}`;
    expect(() => parseJsonObject(deep)).toThrow(/nests deeper than 128 levels/);
    expect(parseJsonObject('{"a":[[1]]}')).toEqual({ a: [[1]] });
  });
});

describe('requestQuery', () => {
  it('reads the query of any request target without throwing', () => {
    const query = (url: string) => requestQuery({ url } as IncomingMessage);
    expect(query('/admin/usage?since=1&model=m').get('model')).toBe('m');
    expect(query('http://[bad/admin/usage?since=2').get('since')).toBe('2');
    expect([...query('/no-query').keys()]).toEqual([]);
  });
});
