/**
 * Two entries of one pull that would be stored under one name: the same image is pulled once;
 * two different images are a usage error, before anything is stored (one used to replace the
 * other silently).
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '../../../src/commands/pull.js';
import { sha256 } from '../../../src/oci/digest.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { verifyBundle } from '../../../src/bundle/verify.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ferry-pull-names-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A layout holding one single-layer image named `name` (a bare tag, as many tools write). */
async function layoutWith(dir: string, name: string, content: string): Promise<string> {
  const store = await OciLayout.open(dir, { create: true });
  const layer = Buffer.from(content);
  const layerDigest = await store.putBytes(layer);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }));
  await store.putBytes(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    }),
  );
  const digest = await store.putBytes(manifest);
  await store.putIndexEntries([
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest,
      size: manifest.length,
      annotations: { 'org.opencontainers.image.ref.name': name },
    },
  ]);
  return dir;
}

describe('pull: two entries, one store name', () => {
  it('two different images named alike: a usage error naming both, nothing stored', async () => {
    const a = await layoutWith(path.join(work, 'a'), 'two', 'layer of a\n');
    const b = await layoutWith(path.join(work, 'b'), 'two', 'layer of b\n');
    const store = path.join(work, 'store-ab');
    await expect(pull({ refs: [`oci:${a}:two`, `oci:${b}:two`], store })).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringMatching(/oci:.*\/a:two and oci:.*\/b:two are different images that would both be stored as "two"/),
    });
    await expect(readdir(store)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('the same image from two copies of a layout: pulled once', async () => {
    const c = await layoutWith(path.join(work, 'c'), 'same', 'identical layer\n');
    const d = await layoutWith(path.join(work, 'd'), 'same', 'identical layer\n');
    const r = await pull({ refs: [`oci:${c}:same`, `oci:${d}:same`, `oci:${c}:same`], store: path.join(work, 'store-cd') });
    expect(r.failures).toEqual([]);
    expect(r.images.map((i) => i.name)).toEqual(['same']);
  });
});

describe('pull from a layout that lacks a blob', () => {
  it('the image fails with BLOB_MISSING and the run goes on (the missing blob used to crash the process with an unhandled error event)', async () => {
    const e = await layoutWith(path.join(work, 'e'), 'gap', 'a layer that will be removed\n');
    const ok = await layoutWith(path.join(work, 'f'), 'fine', 'a layer that stays\n');
    await rm(path.join(e, 'blobs', 'sha256', sha256(Buffer.from('a layer that will be removed\n')).slice(7)));
    const r = await pull({ refs: [`oci:${e}:gap`, `oci:${ok}:fine`], store: path.join(work, 'store-ef') });
    expect(r.failures).toEqual([expect.objectContaining({ name: 'gap', errorCode: 'BLOB_MISSING' })]);
    expect(r.images.filter((i) => i.status === 'done').map((i) => i.name)).toEqual(['fine']);
  });
});

describe('an index child of a media type ferry does not know', () => {
  it('is carried as it is (digest checked, not interpreted): the pull succeeds and the copied index is complete, and the bundle of it verifies', async () => {
    const dir = path.join(work, 'unknown-child');
    await layoutWith(dir, 'plain', 'the only layer\n');
    const store = await OciLayout.open(dir);
    const plain = (await store.readIndex()).manifests[0]!;
    const future = Buffer.from(JSON.stringify({ hello: 'world', note: 'a document of a type from the future' }));
    const futureDigest = await store.putBytes(future);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: plain.mediaType, digest: plain.digest, size: plain.size, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: 'application/vnd.example.future+json', digest: futureDigest, size: future.length },
        ],
      }),
    );
    const indexDigest = await store.putBytes(index);
    await store.putIndexEntries([
      {
        mediaType: 'application/vnd.oci.image.index.v1+json',
        digest: indexDigest,
        size: index.length,
        annotations: { 'org.opencontainers.image.ref.name': 'multi' },
      },
    ]);

    const out = path.join(work, 'unknown-child-store');
    const r = await pull({ refs: [`oci:${dir}:multi`], store: out });
    expect(r.failures).toEqual([]);
    expect(r.images.map((i) => i.digest)).toEqual([indexDigest]);
    const copied = await OciLayout.open(out);
    expect(await copied.hasBlob(futureDigest, future.length)).toBe(true);
    expect(await copied.hasBlob(plain.digest, plain.size)).toBe(true);

    const bundle = path.join(work, 'unknown-child.ferry');
    await writeBundle({ store: copied, output: bundle, compression: 'none' });
    const v = await verifyBundle(bundle);
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
  });
});
