import { describe, expect, it } from 'vitest';
import { parsePlatform } from '../../../src/oci/platform.js';
import { resolveIndexEntry } from '../../../src/store/blob-store.js';
import { rejection } from '../../helpers/streams.js';

const REF = 'org.opencontainers.image.ref.name';
const M = 'application/vnd.oci.image.manifest.v1+json';
const entry = (c: string, extra: Record<string, unknown> = {}) => ({ mediaType: M, digest: `sha256:${c.repeat(64)}`, size: 1, ...extra });
const wording = { store: 'OCI layout /s', location: 'oci:/s' };
const resolve = (...args: Parameters<typeof resolveIndexEntry>) => Promise.resolve().then(() => resolveIndexEntry(...args));

describe('resolveIndexEntry', () => {
  const a = entry('a', { annotations: { [REF]: 'x/a:1' }, platform: { os: 'linux', architecture: 'amd64' } });
  const b = entry('b', { annotations: { [REF]: 'x/b:1' }, platform: { os: 'linux', architecture: 'arm64' } });

  it('picks by ref name, by digest, and the only image without a reference', () => {
    expect(resolveIndexEntry([a, b], 'x/b:1', [], wording)).toBe(b);
    expect(resolveIndexEntry([a, b], b.digest, [], wording)).toBe(b);
    expect(resolveIndexEntry([a], undefined, [], wording)).toBe(a);
  });

  it('without a reference, picks the only entry of the given platform, else refuses to guess', async () => {
    expect(resolveIndexEntry([a, b], undefined, [parsePlatform('linux/arm64')], wording)).toBe(b);
    const err = await rejection(resolve([a, b], '', [], wording));
    expect(err.code).toBe('LAYOUT_AMBIGUOUS');
    expect(err.message).toBe('OCI layout /s holds more than one image (2); name one: oci:/s:REF');
  });

  it('names what is there when a reference is not found, and hints for an empty store', async () => {
    const named = await rejection(resolve([a, b], 'x/c:1', [], wording));
    expect(named.code).toBe('NOT_FOUND');
    expect(named.hint).toBe('it has: x/a:1, x/b:1');
    const digest = await rejection(resolve([a], `sha256:${'c'.repeat(64)}`, [], wording));
    expect(digest.message).toBe(`no image with digest sha256:${'c'.repeat(64)} in OCI layout /s`);
    const empty = await rejection(resolve([], undefined, [], { ...wording, emptyHint: 'try docker-archive:' }));
    expect(empty.message).toBe('OCI layout /s holds no images');
    expect(empty.hint).toBe('try docker-archive:');
  });
});
