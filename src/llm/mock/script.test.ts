// How replies are cut into streamed pieces and trimmed to max_tokens.
import { describe, expect, it } from 'vitest';
import { splitPieces, textCompletion } from './script.js';

describe('splitPieces', () => {
  it('cuts text into at most `count` non-empty pieces that join back to it', () => {
    expect(splitPieces('abcdefgh', 4)).toEqual(['ab', 'cd', 'ef', 'gh']);
    expect(splitPieces('abc', 4)).toEqual(['a', 'b', 'c']);
    expect(splitPieces('', 4)).toEqual([]);
    expect(splitPieces('abc', 1)).toEqual(['abc']);
  });

  it('never cuts inside a surrogate pair', () => {
    const text = '😀😀😀';
    const pieces = splitPieces(text, 5);
    expect(pieces.join('')).toBe(text);
    for (const piece of pieces) expect(/^(?:[\uD800-\uDBFF][\uDC00-\uDFFF])+$/.test(piece)).toBe(true);
  });
});

describe('textCompletion', () => {
  it('keeps text within max_tokens and cuts longer text, marking it truncated', () => {
    expect(textCompletion('12345678', 2)).toEqual({ kind: 'text', text: '12345678', truncated: false });
    expect(textCompletion('123456789', 2)).toEqual({ kind: 'text', text: '12345678', truncated: true });
    expect(textCompletion('123456789', undefined)).toMatchObject({ truncated: false });
  });
});
