/** `inspect oci:DIR[:REF]`: the location goes through the transport table's oci: grammar. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inspect } from '../../../src/bundle/inspect.js';
import { OciLayout, REF_NAME } from '../../../src/transports/oci/layout.js';
import { NotFoundError, UsageError } from '../../../src/util/errors.js';

let root: string;
let dir: string;

/** A layout with two single-layer images, named `a:1` and `team/b:2`. */
beforeAll(async () => {
  root = mkdtempSync(path.join(tmpdir(), 'ferry-inspect-'));
  dir = path.join(root, 'store');
  const store = await OciLayout.open(dir, { create: true });
  const entries = [];
  for (const name of ['a:1', 'team/b:2']) {
    const layer = Buffer.from(`layer of ${name}`);
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, name }));
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await store.putBytes(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: await store.putBytes(layer), size: layer.length }],
      }),
    );
    entries.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: await store.putBytes(manifest),
      size: manifest.length,
      annotations: { [REF_NAME]: name },
    });
  }
  await store.putIndexEntries(entries);
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('inspect oci:DIR[:REF]', () => {
  it('oci:DIR shows every named image of the store', async () => {
    const r = await inspect(`oci:${dir}`);
    expect(r.kind).toBe('oci-layout');
    expect(r.images.map((i) => i.ref)).toEqual(['a:1', 'team/b:2']);
    expect(r.blobs).toBe(6); // manifest, config and layer of each
  });

  it('oci:DIR:REF shows the one image REF names (the path ends at the first colon, as skopeo reads it)', async () => {
    const r = await inspect(`oci:${dir}:team/b:2`);
    expect(r.images.map((i) => i.ref)).toEqual(['team/b:2']);
    expect(r.blobs).toBe(3);
  });

  it('refuses an empty path, an invalid reference and an unknown name', async () => {
    await expect(inspect('oci:')).rejects.toThrow(UsageError);
    await expect(inspect(`oci:${dir}:bad ref`)).rejects.toThrow(/invalid reference/);
    await expect(inspect(`oci:${dir}:nope:1`)).rejects.toThrow(NotFoundError);
  });
});
