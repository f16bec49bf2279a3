import { describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/oci/digest.js';
import { blobMembers } from '../../../src/bundle/blobs.js';
import { nameIndexEntries } from '../../../src/server/served-graph.js';
import type { TarEntry } from '../../../src/tar/reader.js';

const REF = 'org.opencontainers.image.ref.name';
const CTRD = 'io.containerd.image.name';
const M = 'application/vnd.oci.image.manifest.v1+json';
const d = (c: string): Digest => `sha256:${c.repeat(64)}` as Digest;
const desc = (c: string, annotations?: Record<string, string>) => ({
  mediaType: M,
  digest: d(c),
  size: 10,
  ...(annotations ? { annotations } : {}),
});

function entry(name: string, size: number, type: TarEntry['type'] = 'file'): TarEntry {
  return { name, rawName: name, type, size, mode: 0o644, headerOffset: 0, dataOffset: 512 };
}

describe('nameIndexEntries', () => {
  it('serves a full reference by repository and tag, dropping the registry host', () => {
    const r = nameIndexEntries(
      [
        desc('a', { [REF]: '127.0.0.1:5000/ferry-test/app:1.0' }),
        desc('b', { [REF]: 'docker.io/library/nginx:1.27' }),
        desc('c', { [REF]: 'ferry-test/raw:1' }),
      ],
      {},
      'bundle:/x',
    );
    expect(r.warnings).toEqual([]);
    // Keyed by origin; the server answers at the unscoped path too (mirror-names.ts).
    expect(r.named.map((e) => e.name)).toEqual([
      { repository: '127.0.0.1_5000/ferry-test/app', tag: '1.0' },
      { repository: 'docker.io/library/nginx', tag: '1.27' },
      { repository: 'docker.io/ferry-test/raw', tag: '1' },
    ]);
    expect(r.named.map((e) => e.origin)).toEqual([
      { registry: '127.0.0.1:5000', path: 'ferry-test/app' },
      { registry: 'docker.io', path: 'library/nginx' },
      { registry: 'docker.io', path: 'ferry-test/raw' },
    ]);
    expect(r.named[0]!.label).toBe('127.0.0.1:5000/ferry-test/app:1.0');
  });

  it('keeps the host with scoped, a port after _ (127.0.0.1_5000)', () => {
    const r = nameIndexEntries(
      [desc('a', { [REF]: 'docker.io/library/nginx:1.27' }), desc('b', { [REF]: '127.0.0.1:5000/x/y:1' })],
      { scoped: true },
      'bundle:/x',
    );
    expect(r.named.map((e) => e.name)).toEqual([
      { repository: 'docker.io/library/nginx', tag: '1.27' },
      { repository: '127.0.0.1_5000/x/y', tag: '1' },
    ]);
    expect(r.warnings).toEqual([]);
  });

  it('names bare tags by the containerd name or the given repository, else warns', () => {
    const entries = [desc('a', { [REF]: 'v1', [CTRD]: 'docker.io/team/app:v1' }), desc('b', { [REF]: 'v2' })];
    const r = nameIndexEntries(entries, {}, 'bundle:/x');
    expect(r.named.map((e) => e.name)).toEqual([{ repository: 'docker.io/team/app', tag: 'v1' }]);
    expect(r.warnings).toEqual([expect.stringMatching(/1 image\(s\) named by a bare tag \(v2\).*bundle:\/x:REPO/)]);
    const withRepo = nameIndexEntries(entries, { repository: 'mine/app' }, 'bundle:/x');
    expect(withRepo.named.map((e) => e.name)).toEqual([
      { repository: 'mine/app', tag: 'v1' },
      { repository: 'mine/app', tag: 'v2' },
    ]);
  });

  it('keeps unnamed entries apart (referrers join later) and skips bad digests and names', () => {
    const r = nameIndexEntries(
      [desc('a'), { mediaType: M, digest: 'md5:abc', size: 1, annotations: { [REF]: 'x/y:1' } }, desc('c', { [REF]: 'Bad/Name:1' })],
      {},
      'bundle:/x',
    );
    expect(r.unnamed.map((e) => e.digest)).toEqual([d('a')]);
    expect(r.named).toEqual([]);
    expect(r.warnings).toHaveLength(2);
    expect(r.warnings[0]).toMatch(/unsupported digest/);
  });
});

describe('blobMembers', () => {
  const zstd = new Map([[`ferry/zstd/sha256/${'b'.repeat(64)}.zst`, { digest: d('b'), uncompressedSize: 5000 }]]);

  it('finds raw blobs by name and zstd members by the bundle manifest', () => {
    const m = blobMembers(
      [
        entry('oci-layout', 30),
        entry('index.json', 100),
        entry(`blobs/sha256/${'a'.repeat(64)}`, 10),
        entry(`ferry/zstd/sha256/${'b'.repeat(64)}.zst`, 999),
        entry(`ferry/zstd/sha256/${'c'.repeat(64)}.zst`, 50), // not in the manifest: unknown size, not served
        entry(`blobs/sha256/${'d'.repeat(64)}`, 0, 'symlink'),
        entry('blobs/sha256/short', 1),
      ],
      zstd,
    );
    expect([...m.keys()].sort()).toEqual([d('a'), d('b')]);
    expect(m.get(d('a'))).toMatchObject({ storage: 'raw', entry: { size: 10 } });
    expect(m.get(d('b'))).toMatchObject({ storage: 'zstd', uncompressedSize: 5000, entry: { size: 999 } });
  });

  it('prefers a raw copy of a blob over a compressed one, and the last member of a name', () => {
    const m = blobMembers(
      [
        entry(`ferry/zstd/sha256/${'b'.repeat(64)}.zst`, 999),
        entry(`blobs/sha256/${'b'.repeat(64)}`, 5000),
        entry(`blobs/sha256/${'a'.repeat(64)}`, 1),
        entry(`blobs/sha256/${'a'.repeat(64)}`, 2),
      ],
      zstd,
    );
    expect(m.get(d('b'))).toMatchObject({ storage: 'raw', entry: { size: 5000 } });
    expect(m.get(d('a'))?.entry.size).toBe(2);
  });
});
