import { describe, expect, it } from 'vitest';
import { contentRange, parseRange } from '../../../src/server/range.js';

describe('parseRange', () => {
  const size = 1000;

  it('serves the whole blob without a Range header', () => {
    expect(parseRange(undefined, size)).toEqual({ kind: 'full' });
  });

  it('honours single ranges, clamping the end', () => {
    expect(parseRange('bytes=0-99', size)).toEqual({ kind: 'partial', start: 0, end: 99 });
    expect(parseRange('bytes=100-', size)).toEqual({ kind: 'partial', start: 100, end: 999 });
    expect(parseRange('bytes=0-', size)).toEqual({ kind: 'partial', start: 0, end: 999 });
    expect(parseRange('bytes=990-5000', size)).toEqual({ kind: 'partial', start: 990, end: 999 });
    expect(parseRange('bytes=999-999', size)).toEqual({ kind: 'partial', start: 999, end: 999 });
    expect(parseRange('bytes=0-99999999999999999999999', size)).toEqual({ kind: 'partial', start: 0, end: 999 });
    expect(parseRange('Bytes = 5-9 ', size)).toEqual({ kind: 'partial', start: 5, end: 9 });
  });

  it('honours suffix ranges', () => {
    expect(parseRange('bytes=-100', size)).toEqual({ kind: 'partial', start: 900, end: 999 });
    expect(parseRange('bytes=-5000', size)).toEqual({ kind: 'partial', start: 0, end: 999 });
  });

  it('reports unsatisfiable ranges', () => {
    expect(parseRange('bytes=1000-', size)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=1000-2000', size)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-0', size)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-1', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it('ignores what it may ignore: multiple ranges, other units, bad syntax', () => {
    for (const h of [
      'bytes=0-1,5-6',
      'bytes=0-1, 900-',
      'items=0-1',
      'bytes=',
      'bytes=-',
      'bytes=a-b',
      'bytes=5-1',
      'bytes 0-1',
      '0-1',
      'bytes=1-2-3',
    ]) {
      expect(parseRange(h, size), h).toEqual({ kind: 'full' });
    }
  });
});

describe('contentRange', () => {
  it('formats Content-Range', () => {
    expect(contentRange(0, 99, 1000)).toBe('bytes 0-99/1000');
  });
});
