// The pure half of tag listing: Link header parsing (RFC 8288) and where a next page may be
// fetched from. The I/O half runs against real registries in test/integration/registry-tags.test.ts.
import { describe, expect, it } from 'vitest';
import { nextPageUrl, parseLinkHeader } from '../../../src/transports/registry/tags.js';

const ORIGIN = 'https://reg.example:5000';
const PAGE = `${ORIGIN}/v2/team/app/tags/list?n=5`;

describe('parseLinkHeader', () => {
  it('one link-value with a quoted rel', () => {
    expect(parseLinkHeader('</v2/team/app/tags/list?last=b&n=5>; rel="next"')).toEqual([
      { target: '/v2/team/app/tags/list?last=b&n=5', params: { rel: 'next' } },
    ]);
  });

  it('unquoted rel, parameter names in any case, spaces around = and ;', () => {
    expect(parseLinkHeader('<a> ;REL = next ; Title=x')).toEqual([{ target: 'a', params: { rel: 'next', title: 'x' } }]);
  });

  it('several link-values (several headers joined by commas), empty elements skipped', () => {
    expect(parseLinkHeader(' , <https://h/p1>; rel="prev",<https://h/p3>; rel=next , ')).toEqual([
      { target: 'https://h/p1', params: { rel: 'prev' } },
      { target: 'https://h/p3', params: { rel: 'next' } },
    ]);
  });

  it('quoted values may hold commas, semicolons, escaped quotes and backslashes', () => {
    expect(parseLinkHeader('<x>; title="a, b; \\"c\\" \\\\ d"; rel="next", <y>; rel=prev')).toEqual([
      { target: 'x', params: { title: 'a, b; "c" \\ d', rel: 'next' } },
      { target: 'y', params: { rel: 'prev' } },
    ]);
  });

  it('the first occurrence of a parameter wins; a parameter without a value is empty', () => {
    expect(parseLinkHeader('<x>; rel=prev; rel=next; crossorigin')).toEqual([{ target: 'x', params: { rel: 'prev', crossorigin: '' } }]);
  });

  it('a trailing semicolon is tolerated', () => {
    expect(parseLinkHeader('<x>; rel=next;, <y>;')).toEqual([
      { target: 'x', params: { rel: 'next' } },
      { target: 'y', params: {} },
    ]);
  });

  it('an empty header has no links', () => {
    expect(parseLinkHeader('')).toEqual([]);
    expect(parseLinkHeader('  ')).toEqual([]);
  });

  it.each([
    ['no angle brackets', '/v2/x/tags/list?last=a; rel="next"'],
    ['unclosed target', '</v2/x/tags/list; rel="next"'],
    ['unterminated quoted value', '<x>; rel="next'],
    ['backslash at the end of a quoted value', '<x>; rel="next\\'],
    ['text after the target', '<x> rel="next"'],
    ['garbage where a parameter name belongs', '<x>; ="next"'],
  ])('malformed: %s', (_label, value) => {
    expect(parseLinkHeader(value)).toBeUndefined();
  });
});

describe('nextPageUrl', () => {
  it('no header, an empty header, or no rel=next: no next page', () => {
    expect(nextPageUrl(undefined, PAGE, ORIGIN)).toEqual({ kind: 'none' });
    expect(nextPageUrl('', PAGE, ORIGIN)).toEqual({ kind: 'none' });
    expect(nextPageUrl('</v2/team/app/tags/list?last=a>; rel="prev"', PAGE, ORIGIN)).toEqual({ kind: 'none' });
  });

  it('a relative target is resolved against the page URL', () => {
    expect(nextPageUrl('</v2/team/app/tags/list?last=v1.2.3&n=5>; rel="next"', PAGE, ORIGIN)).toEqual({
      kind: 'next',
      url: `${ORIGIN}/v2/team/app/tags/list?last=v1.2.3&n=5`,
    });
    // Relative to the page's directory, as a browser would.
    expect(nextPageUrl('<list?last=b>; rel=next', PAGE, ORIGIN)).toEqual({ kind: 'next', url: `${ORIGIN}/v2/team/app/tags/list?last=b` });
  });

  it('an absolute target on the same origin is taken (a default port written out is the same origin); its fragment dropped', () => {
    expect(nextPageUrl(`<${ORIGIN}/v2/team/app/tags/list?last=b&n=5#frag>; rel="next"`, PAGE, ORIGIN)).toEqual({
      kind: 'next',
      url: `${ORIGIN}/v2/team/app/tags/list?last=b&n=5`,
    });
    expect(
      nextPageUrl('<https://reg.example:443/v2/a/tags/list?last=b>; rel=next', 'https://reg.example/v2/a/tags/list', 'https://reg.example'),
    ).toEqual({
      kind: 'next',
      url: 'https://reg.example/v2/a/tags/list?last=b',
    });
  });

  it.each([
    ['another host', 'https://evil.example:5000/v2/team/app/tags/list?last=b'],
    ['another port', 'https://reg.example:5001/v2/team/app/tags/list?last=b'],
    ['another scheme (plain HTTP)', 'http://reg.example:5000/v2/team/app/tags/list?last=b'],
    ['a scheme-relative URL to another host', '//evil.example/v2/team/app/tags/list?last=b'],
  ])('refused: %s', (_label, target) => {
    const r = nextPageUrl(`<${target}>; rel="next"`, PAGE, ORIGIN);
    expect(r.kind).toBe('refused');
    expect(r.kind === 'refused' && r.reason).toMatch(/is not on the registry \(https:\/\/reg\.example:5000\)/);
  });

  it('refused: credentials in the URL, and they are not repeated in the reason', () => {
    const r = nextPageUrl(`<https://user:s3cret@reg.example:5000/v2/team/app/tags/list?last=b>; rel="next"`, PAGE, ORIGIN);
    expect(r.kind).toBe('refused');
    expect(r.kind === 'refused' && r.reason).toMatch(/carries credentials/);
    expect(JSON.stringify(r)).not.toContain('s3cret');
  });

  it('several links: rel=next is found among others, also in a list of relation types', () => {
    const header = '</v2/team/app/tags/list?last=a>; rel="prev", </v2/team/app/tags/list?last=z&n=5>; rel="last next"';
    expect(nextPageUrl(header, PAGE, ORIGIN)).toEqual({ kind: 'next', url: `${ORIGIN}/v2/team/app/tags/list?last=z&n=5` });
    expect(nextPageUrl('<a?x=1>; rel=NEXT', PAGE, ORIGIN)).toEqual({ kind: 'next', url: `${ORIGIN}/v2/team/app/tags/a?x=1` });
  });

  it('the same next page named twice is one page; two different next pages are refused', () => {
    expect(
      nextPageUrl(`</v2/team/app/tags/list?last=b>; rel=next, <${ORIGIN}/v2/team/app/tags/list?last=b>; rel="next"`, PAGE, ORIGIN),
    ).toEqual({
      kind: 'next',
      url: `${ORIGIN}/v2/team/app/tags/list?last=b`,
    });
    expect(nextPageUrl('<?last=b>; rel=next, <?last=c>; rel=next', PAGE, ORIGIN)).toEqual({
      kind: 'refused',
      reason: 'the Link header names 2 different next pages',
    });
  });

  it('a malformed header is refused, not read as "no more pages" (that would truncate the list silently)', () => {
    const r = nextPageUrl('</v2/team/app/tags/list?last=b; rel="next"', PAGE, ORIGIN);
    expect(r).toEqual({ kind: 'refused', reason: expect.stringMatching(/^malformed Link header /) });
  });
});
