/**
 * ferry reads third-party OCI layouts the way SOURCES.md says a correct tool does: every
 * valid image copies byte-for-byte into a store; each deliberate flaw fails with a named error.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pull, type PullReport } from '../../../src/commands/pull.js';
import { parsePlatform } from '../../../src/oci/platform.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { LayoutSource } from '../../../src/transports/oci/source.js';
import { HAVE_FIXTURES, fixture } from '../../helpers/fixtures.js';

const temps: string[] = [];
async function tempStore(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'ferry-layout-'));
  temps.push(d);
  return path.join(d, 'store');
}
afterEach(async () => {
  await Promise.all(temps.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function pullLayout(dir: string, refs: Array<string | undefined>, platforms: string[] = []): Promise<PullReport> {
  return pull({
    refs: refs.map((r) => `oci:${dir}${r === undefined ? '' : `:${r}`}`),
    store: await tempStore(),
    platforms: platforms.map(parsePlatform),
    concurrency: 4,
  });
}

function codes(r: PullReport): Record<string, string | undefined> {
  return Object.fromEntries(r.failures.map((f) => [f.name, f.errorCode]));
}

const CI = (...p: string[]): string => fixture('containers-image', 'oci', 'layout', 'fixtures', ...p);
const GGCR = (...p: string[]): string => fixture('go-containerregistry', 'pkg', 'v1', 'layout', 'testdata', ...p);
const ZARF = (...p: string[]): string => fixture('zarf', 'src', 'pkg', 'images', 'testdata', ...p);

describe.skipIf(!HAVE_FIXTURES)('OCI layout fixtures (containers/image)', () => {
  it('delete_image_multiple_images: six refs copy, 1.0.0 fails on the config size flaw, blobs stored once', async () => {
    const refs = ['latest', '3.18.3', '3', '3.18', '3.17.5', '3.16.7', '1.0.0'];
    const r = await pullLayout(CI('delete_image_multiple_images'), refs);
    expect(
      r.images
        .filter((i) => i.status === 'done')
        .map((i) => i.name)
        .sort(),
    ).toEqual(refs.filter((x) => x !== '1.0.0').sort());
    expect(codes(r)).toEqual({ '1.0.0': 'SIZE_MISMATCH' });
    expect(r.failures[0]!.error).toMatch(/expected 585 bytes, got 584/);
    // Every stored blob is byte-identical to the source's file of the same name.
    const stored = (await readdir(path.join(r.store, 'blobs', 'sha256'))).filter((n) => !n.startsWith('.'));
    for (const name of stored) {
      const a = await readFile(path.join(r.store, 'blobs', 'sha256', name));
      const b = await readFile(CI('delete_image_multiple_images', 'blobs', 'sha256', name));
      expect(a.equals(b)).toBe(true);
    }
    expect(new Set(stored).size).toBe(stored.length);
  });

  it('delete_image_only_one_image: size mismatch is refused (585 declared, 740 stored)', async () => {
    const r = await pullLayout(CI('delete_image_only_one_image'), ['latest']);
    expect(codes(r)).toEqual({ latest: 'SIZE_MISMATCH' });
    expect(r.failures[0]!.error).toMatch(/expected 585 bytes, got 740/);
    const index = await (await OciLayout.open(r.store)).readIndex();
    expect(index.manifests).toEqual([]);
  });

  it('delete_image_shared_blobs_dir: the manifest outside blobs/ is reported missing, not searched for', async () => {
    const r = await pullLayout(CI('delete_image_shared_blobs_dir'), ['latest']);
    expect(codes(r)).toEqual({ latest: 'BLOB_MISSING' });
    expect(r.failures[0]!.error).toContain('sha256:eaa95f3c');
  });

  it('delete_image_two_identical_references: the first entry wins, deterministically', async () => {
    const r = await pullLayout(CI('delete_image_two_identical_references'), ['1.0.0']);
    expect(r.failures).toEqual([]);
    expect(r.images[0]!.digest).toMatch(/^sha256:49d15844/);
  });

  it('name_lookups: a, b, c, d resolve; invalid-mime is an unsupported media type', async () => {
    const layout = await OciLayout.open(CI('name_lookups'));
    for (const [ref, mt] of [
      ['a', 'application/vnd.oci.image.index.v1+json'],
      ['b', 'application/vnd.oci.image.manifest.v1+json'],
      ['c', 'application/vnd.docker.distribution.manifest.list.v2+json'],
      ['d', 'application/vnd.docker.distribution.manifest.v2+json'],
    ] as const) {
      expect((await layout.resolve(ref)).mediaType).toBe(mt);
    }
    const src = await LayoutSource.open(CI('name_lookups'), 'invalid-mime');
    await expect(src.getRootManifest()).rejects.toMatchObject({
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: expect.stringContaining('x-completely-unknown'),
    });
  });

  it('two_images_manifest: no ref is ambiguous; a platform picks one', async () => {
    const layout = await OciLayout.open(CI('two_images_manifest'));
    await expect(layout.resolve(undefined)).rejects.toMatchObject({
      code: 'LAYOUT_AMBIGUOUS',
      message: expect.stringContaining('more than one image'),
    });
    const d = await layout.resolve(undefined, [parsePlatform('linux/ppc64le')]);
    expect(d.platform?.architecture).toBe('ppc64le');
  });

  it('manifest: index.json without mediaType parses', async () => {
    const layout = await OciLayout.open(CI('manifest'));
    expect((await layout.resolve('v0.1.1')).platform?.os).toBe('linux');
  });
});

describe.skipIf(!HAVE_FIXTURES)('OCI layout fixtures (go-containerregistry)', () => {
  it('test_index: refs 1, 3 (nested index) and 4 (Docker list) copy; ref 2 is not an image', async () => {
    const r = await pullLayout(GGCR('test_index'), ['1', '2', '3', '4']);
    expect(
      r.images
        .filter((i) => i.status === 'done')
        .map((i) => i.name)
        .sort(),
    ).toEqual(['1', '3', '4']);
    expect(codes(r)).toEqual({ '2': 'UNSUPPORTED_MEDIA_TYPE' });
  });

  it('test_index_one_image: the only image resolves with no ref', async () => {
    const r = await pullLayout(GGCR('test_index_one_image'), [undefined]);
    expect(r.failures).toEqual([]);
    expect(r.images).toHaveLength(1);
  });

  it('test_index_media_type: a Helm chart artifact copies untouched', async () => {
    const r = await pullLayout(GGCR('test_index_media_type'), [undefined]);
    expect(r.failures).toEqual([]);
    const entry = (await (await OciLayout.open(r.store)).readIndex()).manifests[0]!;
    expect(entry.digest).toBe(r.images[0]!.digest);
  });

  it('test_gc_image_unknown_mediatype: does not crash; names the missing blob', async () => {
    const r = await pullLayout(GGCR('test_gc_image_unknown_mediatype'), [undefined]);
    expect(r.images.filter((i) => i.status === 'done')).toHaveLength(0);
    expect(r.failures).toHaveLength(1);
    expect(['BLOB_MISSING', 'UNSUPPORTED_MEDIA_TYPE']).toContain(r.failures[0]!.errorCode);
  });
});

describe.skipIf(!HAVE_FIXTURES)('OCI layout fixtures (regclient, zarf)', () => {
  it('regclient testrepo: every ref copies byte-identically; all 91 blobs arrive once', async () => {
    const dir = fixture('regclient', 'testdata', 'testrepo');
    const index = await (await OciLayout.open(dir)).readIndex();
    const refs = index.manifests.map((d) => d.annotations?.['org.opencontainers.image.ref.name'] ?? d.digest);
    const r = await pullLayout(dir, refs);
    expect(r.failures).toEqual([]);
    expect(r.images).toHaveLength(26);
    const stored = (await readdir(path.join(r.store, 'blobs', 'sha256'))).filter((n) => !n.startsWith('.')).sort();
    const source = (await readdir(path.join(dir, 'blobs', 'sha256'))).sort();
    expect(stored).toEqual(source);
    for (const name of stored) {
      const a = await readFile(path.join(r.store, 'blobs', 'sha256', name));
      expect(a.equals(await readFile(path.join(dir, 'blobs', 'sha256', name)))).toBe(true);
    }
  });

  it('regclient testrepo v1 with --platform linux/arm64: the index is rewritten, the original digest kept', async () => {
    const dir = fixture('regclient', 'testdata', 'testrepo');
    const orig = await (await OciLayout.open(dir)).resolve('v1');
    const r = await pullLayout(dir, ['v1'], ['linux/arm64']);
    expect(r.failures).toEqual([]);
    const img = r.images[0]!;
    expect(img.originalDigest).toBe(orig.digest);
    expect(img.digest).not.toBe(orig.digest);
    expect(img.platforms).toEqual(['linux/arm64']);
    const store = await OciLayout.open(r.store);
    const entry = (await store.readIndex()).manifests[0]!;
    expect(entry.annotations?.['dev.ferry.original-index.digest']).toBe(orig.digest);
    const rewritten = JSON.parse((await store.readBlobBytes(entry, 'test')).toString()) as {
      manifests: Array<{ platform?: { architecture: string } }>;
    };
    expect(rewritten.manifests.map((m) => m.platform?.architecture)).toEqual(['arm64']);
  });

  it('regclient external: artifacts whose subject is absent still copy', async () => {
    const r = await pullLayout(fixture('regclient', 'testdata', 'external'), ['a3', 'a4']);
    expect(r.failures).toEqual([]);
  });

  it('zarf containerd image store: sparse index fails whole, works for linux/amd64', async () => {
    const whole = await pullLayout(ZARF('docker-containerd-image-store'), ['linux']);
    expect(whole.failures.map((f) => f.errorCode)).toEqual(['BLOB_MISSING']);
    const amd64 = await pullLayout(ZARF('docker-containerd-image-store'), ['linux'], ['linux/amd64']);
    expect(amd64.failures).toEqual([]);
    // The full name comes from io.containerd.image.name.
    expect(amd64.images[0]!.name).toBe('docker.io/library/hello-world:linux');
  });

  it('zarf graph-driver store: uncompressed layers, full name from io.containerd.image.name', async () => {
    const r = await pullLayout(ZARF('docker-graph-driver-image-store'), ['linux']);
    expect(r.failures).toEqual([]);
    expect(r.images[0]!.name).toBe('docker.io/library/hello-world:linux');
  });

  it('oras layout: ref names holding full references with / : and @', async () => {
    const dir = ZARF('oras-oci-layout', 'images');
    const index = await (await OciLayout.open(dir)).readIndex();
    const names = index.manifests.map((d) => d.annotations?.['org.opencontainers.image.ref.name']).filter((n): n is string => !!n);
    expect(names.some((n) => n.includes('@sha256:'))).toBe(true);
    const r = await pullLayout(dir, names);
    expect(r.failures).toEqual([]);
    expect(r.images.map((i) => i.name).sort()).toEqual([...new Set(names)].sort());
  });

  it('crane layout: no ref.name; duplicates by digest are not double-counted', async () => {
    const dir = ZARF('crane-oci-layout', 'images');
    const index = await (await OciLayout.open(dir)).readIndex();
    const digests = [...new Set(index.manifests.map((d) => d.digest))];
    const r = await pullLayout(dir, digests);
    expect(r.failures).toEqual([]);
    expect(r.images).toHaveLength(digests.length);
  });
});
