import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it, vi } from 'vitest';
import { sha256 } from '../../../src/oci/digest.js';

/** Every directory fsync the layout asks for, with what index.json named at that moment. */
const syncs = vi.hoisted(() => [] as Array<{ dir: string; index: string }>);

vi.mock('../../../src/util/fsutil.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../../src/util/fsutil.js')>();
  const { readFile: read } = await import('node:fs/promises');
  const { join } = await import('node:path');
  return {
    ...orig,
    fsyncDir: async (dir: string) => {
      const index = await read(join(dir, '..', '..', 'index.json'), 'utf8').catch(() => '');
      syncs.push({ dir, index });
      return orig.fsyncDir(dir);
    },
  };
});

const { OciLayout } = await import('../../../src/transports/oci/layout.js');

const entry = (name: string, digest: string) => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest,
  size: 2,
  annotations: { 'org.opencontainers.image.ref.name': name },
});

describe('durability of blob names', () => {
  it('fsyncs blobs/sha256 once per index.json update, before index.json names the blobs', async () => {
    const dir = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-fsync-')), 'store');
    const store = await OciLayout.open(dir, { create: true });
    const blobs = path.join(dir, 'blobs', 'sha256');
    syncs.length = 0;

    const config = await store.putBytes(Buffer.from('{"a":1}'));
    await store.putBytes(Buffer.from('{"b":2}'));
    const layer = Buffer.from('layer bytes');
    await store.putBlob({ digest: sha256(layer), size: layer.length }, Readable.from([layer]), 'layer');
    expect(syncs).toEqual([]); // not once per blob

    expect(await store.putIndexEntries([entry('example.com/a:1', config)])).toBe(true);
    expect(syncs.map((s) => s.dir)).toEqual([blobs]);
    expect(syncs[0]!.index).not.toContain('example.com/a:1'); // before index.json changed
    expect(await readFile(path.join(dir, 'index.json'), 'utf8')).toContain('example.com/a:1');

    // Nothing new: no fsync at all (a run with nothing to do stays cheap).
    syncs.length = 0;
    await store.putBytes(Buffer.from('{"a":1}'));
    expect(await store.putIndexEntries([entry('example.com/a:1', config)])).toBe(false);
    expect(syncs).toEqual([]);

    // A blob rewritten for an image index.json already names (a repair): made durable too.
    const repaired = await store.putBytes(Buffer.from('{"c":3}'));
    await store.putIndexEntries([entry('example.com/c:1', repaired)]);
    syncs.length = 0;
    const { rm } = await import('node:fs/promises');
    await rm(store.blobPath(repaired));
    await store.putBytes(Buffer.from('{"c":3}'));
    expect(await store.putIndexEntries([entry('example.com/c:1', repaired)])).toBe(false);
    expect(syncs.map((s) => s.dir)).toEqual([blobs]);

    // A new name for blobs this process did not write (another process may have): fsynced.
    syncs.length = 0;
    expect(await store.putIndexEntries([entry('example.com/b:1', config)])).toBe(true);
    expect(syncs.map((s) => s.dir)).toEqual([blobs]);
  });
});
