import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { MAX_GLOB_LENGTH, compileGlob, compileGlobs, createToolFilter, globProblem, globsProblem } from './glob.js';

/** The textbook translation to a regular expression, as a reference on inputs small enough for it. */
function reference(pattern: string): RegExp {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '[\\s\\S]*')
    .replace(/\?/g, '[\\s\\S]');
  return new RegExp(`^${source}$`);
}

describe('compileGlob', () => {
  it('matches stars, question marks and literal characters', () => {
    const cases: [string, string, boolean][] = [
      ['everything__*', 'everything__echo', true],
      ['everything__*', 'memory__read', false],
      ['*echo', 'everything__echo', true],
      ['*__e?ho', 'everything__echo', true],
      ['*__e?ho', 'everything__eho', false],
      ['a*b*c', 'abc', true],
      ['a*b*c', 'aXbYc', true],
      ['a*b*c', 'acb', false],
      ['a*a', 'a', false],
      ['a*a', 'aa', true],
      ['*', '', true],
      ['?', '', false],
      ['exact', 'exact', true],
      ['exact', 'exactly', false],
      ['a.b', 'aXb', false],
      ['(x)+', '(x)+', true],
    ];
    for (const [pattern, name, expected] of cases)
      expect(compileGlob(pattern)(name), `${pattern} ~ ${name}`).toBe(expected);
  });

  it('agrees with the regular-expression translation on random patterns and names', () => {
    const alphabet = fc.constantFrom('a', 'b', '_', '*', '?');
    const text = fc.constantFrom('a', 'b', '_');
    fc.assert(
      fc.property(fc.string({ unit: alphabet, maxLength: 8 }), fc.string({ unit: text, maxLength: 12 }), (p, n) => {
        expect(compileGlob(p)(n)).toBe(reference(p).test(n));
      }),
      { numRuns: 5000 },
    );
  });

  // The regular expression this replaced backtracked exponentially in the number of stars: ten stars took about a
  // minute per tool name, a few hundred never finished, and the process answered nothing meanwhile.
  it('regression: many stars before a character the name lacks do not freeze matching', () => {
    const names = ['everything__get-resource-reference-with-a-long-name', 'x'.repeat(64).replace(/x$/, 'y')];
    for (const stars of [8, 10, 40, MAX_GLOB_LENGTH - 1]) {
      const matches = compileGlob(`${'*'.repeat(stars)}x`);
      for (const name of names) expect(matches(name)).toBe(false);
    }
    expect(compileGlob(`${'*?'.repeat(100)}z`)('a'.repeat(10_000))).toBe(false);
    expect(compileGlob(`${'a*'.repeat(100)}`)('a'.repeat(10_000))).toBe(true);
  });
});

describe('globProblem', () => {
  it('refuses empty, overlong and bracketed patterns, and accepts the rest', () => {
    expect(globProblem('')).toMatch(/empty/);
    expect(globProblem('*'.repeat(MAX_GLOB_LENGTH + 1))).toMatch(/longer than 256/);
    expect(globProblem('tool[ab]')).toMatch(/only "\*" and "\?"/);
    expect(globProblem('*'.repeat(MAX_GLOB_LENGTH))).toBeUndefined();
    expect(globProblem('everything__*')).toBeUndefined();
  });
});

describe('globsProblem', () => {
  it('bounds a list in count and in characters', () => {
    expect(globsProblem(['a*', 'b*'])).toBeUndefined();
    expect(globsProblem(Array.from({ length: 65 }, (_, i) => `t${i}`))).toMatch(/at most 64/);
    expect(globsProblem(Array(5).fill('*'.repeat(250)))).toMatch(/1024 characters in all/);
    expect(globsProblem(['ok', ''])).toMatch(/empty/);
  });
});

describe('lists and filters', () => {
  it('a list matches when any pattern does; a filter allows, then denies', () => {
    const any = compileGlobs(['a*', '*z']);
    expect([any('abc'), any('xyz'), any('mmm')]).toEqual([true, true, false]);
    const filter = createToolFilter({ allow: ['get-*', 'echo'], deny: ['get-secret*'] });
    expect(['get-env', 'echo', 'get-secret-key', 'add'].map(filter)).toEqual([true, true, false, false]);
    expect(createToolFilter(undefined)('anything')).toBe(true);
  });
});
