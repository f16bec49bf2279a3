/**
 * One conformance suite for every BlobStore: an OCI layout directory, the same layout as an
 * OCI archive, and a bundle of it (zstd layer), read through the same contract and the one
 * StoreSource, must hand out the same bytes.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blobMembers, readZstdMembers } from '../../../src/bundle/blobs.js';
import { BundleStore } from '../../../src/bundle/store.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { type Digest, sha256 } from '../../../src/oci/digest.js';
import type { BlobStore } from '../../../src/store/blob-store.js';
import { StoreSource } from '../../../src/store/source.js';
import { TarWriter } from '../../../src/tar/writer.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { LayoutStore } from '../../../src/transports/oci/store.js';
import { OciArchive } from '../../../src/transports/oci-archive/source.js';
import { ArchiveStore } from '../../../src/transports/oci-archive/store.js';
import { collect, rejection } from '../../helpers/streams.js';

let work: string;
const layer = Buffer.alloc(300_000, 'layer bytes, compressible ');
const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  }),
);
const REF = 'example.com/team/app:1';
const stores: Array<{ kind: string; open: () => Promise<BlobStore> }> = [];

beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ferry-stores-'));
  const dir = path.join(work, 'layout');
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: sha256(manifest),
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': REF },
      },
    ],
  };
  await writeFile(path.join(dir, 'index.json'), JSON.stringify(index));
  for (const b of [layer, config, manifest]) await writeFile(path.join(dir, 'blobs', 'sha256', sha256(b).slice(7)), b);

  const archiveFile = path.join(work, 'layout.tar');
  const t = new TarWriter();
  const out = collect(t.output);
  for (const name of ['oci-layout', 'index.json']) await t.addFile(name, await readFile(path.join(dir, name)));
  for (const name of await readdir(path.join(dir, 'blobs', 'sha256'))) {
    await t.addFile(`blobs/sha256/${name}`, await readFile(path.join(dir, 'blobs', 'sha256', name)));
  }
  await t.finish();
  await writeFile(archiveFile, await out);

  const bundleFile = path.join(work, 'bundle.tar');
  await writeBundle({ store: await OciLayout.open(dir), output: bundleFile, compression: 'zstd' });

  stores.push(
    { kind: 'layout', open: async () => new LayoutStore(await OciLayout.open(dir)) },
    { kind: 'oci-archive', open: async () => new ArchiveStore(await OciArchive.open(archiveFile)) },
    {
      kind: 'bundle',
      open: async () => {
        const archive = await OciArchive.open(bundleFile);
        return new BundleStore(archive, blobMembers(archive.archive.entries, await readZstdMembers(archive, 'bundle')));
      },
    },
  );
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe.each(['layout', 'oci-archive', 'bundle'])('%s store', (kind) => {
  const open = () => stores.find((s) => s.kind === kind)!.open();

  it('lists and resolves its index entries', async () => {
    const store = await open();
    try {
      const entries = await store.indexEntries();
      expect(entries.map((e) => e.digest)).toEqual([sha256(manifest)]);
      for (const ref of [undefined, REF, sha256(manifest)]) expect((await store.resolve(ref, [])).digest).toBe(sha256(manifest));
      const err = await rejection(store.resolve('other:2', []));
      expect(err.code).toBe('NOT_FOUND');
      expect(err.hint).toBe(`it has: ${REF}`);
    } finally {
      await store.close();
    }
  });

  it('reads a small blob verified, refusing a wrong declared size', async () => {
    const store = await open();
    try {
      expect(await store.readBlob({ digest: sha256(manifest), size: manifest.length }, 'm')).toEqual(manifest);
      const err = await rejection(store.readBlob({ digest: sha256(manifest), size: manifest.length + 1 }, 'm'));
      expect(err.code).toBe('SIZE_MISMATCH');
    } finally {
      await store.close();
    }
  });

  it('opens a blob from any offset, and a missing one as a stream error', async () => {
    const store = await open();
    try {
      expect(sha256(await collect(store.openBlob(sha256(layer), { what: 'layer' })))).toBe(sha256(layer));
      expect(await collect(store.openBlob(sha256(layer), { what: 'layer', start: 123_456 }))).toEqual(layer.subarray(123_456));
      const missing = `sha256:${'0'.repeat(64)}`;
      const err = await rejection(collect(store.openBlob(missing, { what: 'gone' })));
      expect(err.code).toBe('BLOB_MISSING');
    } finally {
      await store.close();
    }
  });

  it('stats a blob only at its declared size, and serves byte ranges of it', async () => {
    const store = await open();
    try {
      const digest = sha256(layer) as Digest;
      expect(await store.statBlob(digest, layer.length + 1)).toBeUndefined();
      expect(await store.statBlob(`sha256:${'0'.repeat(64)}` as Digest, 1)).toBeUndefined();
      const blob = await store.statBlob(digest, layer.length);
      expect(blob?.size).toBe(layer.length);
      expect(blob?.restore ?? false).toBe(kind === 'bundle');
      expect(await collect(await blob!.open({ start: 1000, end: 1999 }))).toEqual(layer.subarray(1000, 2000));
      expect(await collect(await blob!.open())).toEqual(layer);
    } finally {
      await store.close();
    }
  });

  it('is an ImageSource through StoreSource: root manifest, children, blobs', async () => {
    const store = await open();
    try {
      const src = new StoreSource(store, { ref: REF, platforms: [] }, `${kind} source`);
      const root = await src.getRootManifest();
      expect(root.bytes).toEqual(manifest);
      expect(root.digest).toBe(sha256(manifest));
      expect((await src.getManifest(sha256(manifest) as Digest, undefined)).bytes).toEqual(manifest);
      const cfg = await collect(src.openBlob({ mediaType: 'x', digest: sha256(config), size: config.length }, { what: 'config' }));
      expect(cfg).toEqual(config);
    } finally {
      await store.close();
    }
  });
});

describe('layout store strictness', () => {
  it('does not serve a blob file replaced by a symlink', async () => {
    const dir = path.join(work, 'layout');
    const store = new LayoutStore(await OciLayout.open(dir));
    const file = path.join(dir, 'blobs', 'sha256', sha256(config).slice(7));
    const copy = path.join(work, 'config-copy');
    await writeFile(copy, config);
    await unlink(file);
    await symlink(copy, file);
    try {
      expect(await store.statBlob(sha256(config) as Digest, config.length)).toBeUndefined();
    } finally {
      await unlink(file);
      await writeFile(file, config);
    }
  });
});
