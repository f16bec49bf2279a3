import { describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/oci/digest.js';
import { mergeContent, ServeConflictError, type ReferrerDescriptor, type ServedContent } from '../../../src/server/content.js';

const d = (c: string): Digest => `sha256:${c.repeat(64)}`;

/** An in-memory ServedContent: repo → tag → digest, plus referrers. */
function fake(
  description: string,
  repos: Record<string, Record<string, Digest>>,
  referrers: Record<string, ReferrerDescriptor[]> = {},
): ServedContent {
  return {
    description,
    warnings: [`${description}: a warning`],
    repositories: () => Object.keys(repos).sort(),
    tags: (r) => (repos[r] ? Object.keys(repos[r]).sort() : undefined),
    resolveTag: (r, t) => {
      const digest = repos[r]?.[t];
      return digest ? { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: 1 } : undefined;
    },
    manifest: async (r, digest) =>
      Object.values(repos[r] ?? {}).includes(digest) ? { digest, mediaType: description, bytes: Buffer.from(description) } : undefined,
    blob: async () => undefined,
    referrers: (r, subject) => referrers[`${r}@${subject}`] ?? [],
    close: async () => {},
  };
}

describe('mergeContent', () => {
  it('unions repositories and tags across sources', () => {
    const m = mergeContent([
      fake('oci:/a', { 'library/nginx': { '1': d('1') }, 'team/app': { v1: d('2') } }),
      fake('oci:/b', { 'library/nginx': { '2': d('3'), '1': d('1') }, 'org/x': {} }),
    ]);
    expect(m.repositories()).toEqual(['library/nginx', 'org/x', 'team/app']);
    expect(m.tags('library/nginx')).toEqual(['1', '2']);
    expect(m.tags('org/x')).toEqual([]);
    expect(m.tags('nope')).toBeUndefined();
    expect(m.resolveTag('library/nginx', '2')?.digest).toBe(d('3'));
    expect(m.warnings).toEqual(['oci:/a: a warning', 'oci:/b: a warning']);
  });

  it('looks content up in the sources that hold the repository, in order', async () => {
    const m = mergeContent([fake('oci:/a', { r: { a: d('1') } }), fake('oci:/b', { r: { b: d('2') } })]);
    expect((await m.manifest('r', d('1')))?.mediaType).toBe('oci:/a');
    expect((await m.manifest('r', d('2')))?.mediaType).toBe('oci:/b');
    expect(await m.manifest('other', d('1'))).toBeUndefined();
  });

  it('refuses one repository:tag with two digests, naming both sources', () => {
    let err: unknown;
    try {
      mergeContent([fake('oci:/a', { 'library/nginx': { '1': d('1') } }), fake('oci:/b', { 'library/nginx': { '1': d('2') } })]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ServeConflictError);
    const msg = (err as Error).message;
    expect(msg).toContain('library/nginx:1');
    expect(msg).toContain('oci:/a');
    expect(msg).toContain('oci:/b');
    expect(msg).toContain(d('1'));
    expect(msg).toContain(d('2'));
  });

  it('merges referrers without duplicates', () => {
    const ref = (c: string): ReferrerDescriptor => ({ mediaType: 'x', digest: d(c), size: 1 });
    const m = mergeContent([
      fake('oci:/a', { r: {} }, { [`r@${d('9')}`]: [ref('1'), ref('2')] }),
      fake('oci:/b', { r: {} }, { [`r@${d('9')}`]: [ref('2'), ref('3')] }),
    ]);
    expect(m.referrers('r', d('9')).map((x) => x.digest)).toEqual([d('1'), d('2'), d('3')]);
  });
});
