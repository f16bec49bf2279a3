import { describe, expect, it } from 'vitest';
import { MAX_PAGE_SIZE, nextLink, paginate, parsePageRequest } from '../../../src/server/pagination.js';

const tags = ['1', '1.0', '2', 'a', 'b', 'latest'];

function req(query: string) {
  const r = parsePageRequest(new URLSearchParams(query));
  if ('status' in r) throw new Error(r.message);
  return r;
}

describe('pagination', () => {
  it('returns everything without n', () => {
    expect(paginate(tags, req(''))).toEqual({ items: tags, next: undefined });
  });

  it('pages with n and last, signalling the next page', () => {
    expect(paginate(tags, req('n=2'))).toEqual({ items: ['1', '1.0'], next: '1.0' });
    expect(paginate(tags, req('n=2&last=1.0'))).toEqual({ items: ['2', 'a'], next: 'a' });
    expect(paginate(tags, req('n=2&last=a'))).toEqual({ items: ['b', 'latest'], next: undefined });
    expect(paginate(tags, req('n=10&last=a'))).toEqual({ items: ['b', 'latest'], next: undefined });
  });

  it('starts strictly after last, which need not exist', () => {
    expect(paginate(tags, req('last=1'))).toEqual({ items: ['1.0', '2', 'a', 'b', 'latest'], next: undefined });
    expect(paginate(tags, req('last=0'))).toEqual({ items: tags, next: undefined });
    expect(paginate(tags, req('last=aa&n=1'))).toEqual({ items: ['b'], next: 'b' });
    expect(paginate(tags, req('last=zzz'))).toEqual({ items: [], next: undefined });
  });

  it('walks every page exactly once', () => {
    const all = Array.from({ length: 57 }, (_, i) => `t${String(i).padStart(3, '0')}`);
    const seen: string[] = [];
    let last: string | undefined;
    for (let i = 0; i < 100; i++) {
      const page = paginate(all, { n: 10, last });
      seen.push(...page.items);
      if (page.next === undefined) break;
      last = page.next;
    }
    expect(seen).toEqual(all);
  });

  it('treats n=0 as an empty page with no successor', () => {
    expect(paginate(tags, req('n=0'))).toEqual({ items: [], next: undefined });
  });

  it('refuses n that is not a non-negative integer, and caps large ones', () => {
    for (const n of ['-1', 'x', '1.5', '1e3', ' 1']) {
      const r = parsePageRequest(new URLSearchParams({ n }));
      expect('status' in r && r.code, n).toBe('PAGINATION_NUMBER_INVALID');
    }
    expect(req('n=999999999').n).toBe(MAX_PAGE_SIZE);
    expect(req(`n=${'9'.repeat(400)}`).n).toBe(MAX_PAGE_SIZE);
  });

  it('builds Link headers with the last value encoded', () => {
    expect(nextLink('/v2/app/tags/list', 'v1', 2)).toBe('</v2/app/tags/list?last=v1&n=2>; rel="next"');
    expect(nextLink('/v2/_catalog', 'library/nginx', 5)).toBe('</v2/_catalog?last=library%2Fnginx&n=5>; rel="next"');
    // A mirror request's next page must resolve to the same registry's repository.
    expect(nextLink('/v2/org/x/tags/list', 'v1', 2, '127.0.0.1:5000')).toBe(
      '</v2/org/x/tags/list?last=v1&n=2&ns=127.0.0.1%3A5000>; rel="next"',
    );
  });
});
