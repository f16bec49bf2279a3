/**
 * OciLayout.putBlob's path for small blobs (up to SMALL_BLOB_BYTES: read whole, checked, one
 * O_DSYNC write, rename): the same outcomes as the stream path, and nothing left behind on a
 * failure.
 */
import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../../../src/oci/digest.js';
import { OciLayout, SMALL_BLOB_BYTES } from '../../../src/transports/oci/layout.js';
import { DigestMismatchError, SizeMismatchError } from '../../../src/util/errors.js';

async function store(): Promise<{ layout: OciLayout; blobs: string }> {
  const dir = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-small-blob-')), 'store');
  const layout = await OciLayout.open(dir, { create: true });
  return { layout, blobs: path.join(dir, 'blobs', 'sha256') };
}

/** A source that sends `parts` as separate chunks (and then fails, with `fail`). */
const chunked =
  (parts: Buffer[], fail?: Error) =>
  (start: number): Readable => {
    expect(start).toBe(0);
    return Readable.from(
      (async function* () {
        for (const p of parts) yield p;
        if (fail) throw fail;
      })(),
    );
  };

describe('small blobs in an OCI layout', () => {
  it('stores a blob sent in several chunks, at its digest, reporting its size once, with no temp file left', async () => {
    const { layout, blobs } = await store();
    const data = Buffer.alloc(SMALL_BLOB_BYTES, 7);
    const digest = sha256(data);
    const progress: number[] = [];
    const n = await layout.putBlob({ digest, size: data.length }, chunked([data.subarray(0, 1000), data.subarray(1000)]), 'blob', (b) =>
      progress.push(b),
    );
    expect(n).toBe(SMALL_BLOB_BYTES);
    expect(progress).toEqual([SMALL_BLOB_BYTES]);
    expect((await readFile(path.join(blobs, digest.slice(7)))).equals(data)).toBe(true);
    expect(await readdir(blobs)).toEqual([digest.slice(7)]);
    expect(await layout.hasBlob(digest, data.length)).toBe(true);
  });

  it('stores an empty blob', async () => {
    const { layout, blobs } = await store();
    const digest = sha256(Buffer.alloc(0));
    expect(await layout.putBlob({ digest, size: 0 }, chunked([]), 'blob')).toBe(0);
    expect(await readdir(blobs)).toEqual([digest.slice(7)]);
  });

  it('refuses bytes that are not the blob, and more or fewer bytes than declared, leaving blobs/sha256 empty', async () => {
    const { layout, blobs } = await store();
    const data = Buffer.from('{"config":true}');
    const digest = sha256(data);
    const other = Buffer.from('{"config":fals}');
    await expect(layout.putBlob({ digest, size: data.length }, chunked([other]), 'blob X')).rejects.toBeInstanceOf(DigestMismatchError);
    const longer = layout.putBlob({ digest, size: data.length }, chunked([data, Buffer.from('!')]), 'blob X');
    await expect(longer).rejects.toBeInstanceOf(SizeMismatchError);
    await expect(longer).rejects.toThrow('blob X (more bytes than declared)');
    await expect(layout.putBlob({ digest, size: data.length }, chunked([data.subarray(1)]), 'blob X')).rejects.toBeInstanceOf(
      SizeMismatchError,
    );
    expect(await readdir(blobs)).toEqual([]);
  });

  it('passes on a download that breaks, with no temp file left', async () => {
    const { layout, blobs } = await store();
    const data = Buffer.from('0123456789');
    const broken = new Error('connection reset');
    await expect(layout.putBlob({ digest: sha256(data), size: 10 }, chunked([data.subarray(0, 4)], broken), 'blob')).rejects.toBe(broken);
    expect(await readdir(blobs)).toEqual([]);
  });

  it('writes a manifest given as bytes (putBytes) once, at its digest', async () => {
    const { layout, blobs } = await store();
    const bytes = Buffer.from('{"schemaVersion":2}');
    const digest = await layout.putBytes(bytes, sha256(bytes));
    expect(digest).toBe(sha256(bytes));
    await layout.putBytes(bytes, digest);
    expect(await readdir(blobs)).toEqual([digest.slice(7)]);
    expect((await readFile(path.join(blobs, digest.slice(7)))).equals(bytes)).toBe(true);
  });

  it('knowBlobNames: absent blobs need no stat; present and newly written ones are found; one written meanwhile elsewhere is written again', async () => {
    const { layout, blobs } = await store();
    const a = Buffer.from('a');
    const b = Buffer.from('b');
    const c = Buffer.from('c');
    await layout.putBytes(a);
    await layout.knowBlobNames();
    expect(await layout.hasBlob(sha256(a), 1)).toBe(true);
    expect(await layout.hasBlob(sha256(a), 2)).toBe(false);
    expect(await layout.hasBlob(sha256(b), 1)).toBe(false);
    await layout.putBlob({ digest: sha256(b), size: 1 }, chunked([b]), 'blob');
    expect(await layout.hasBlob(sha256(b), 1)).toBe(true);
    // Another writer (another process) stores c after the names were read: not seen, so c is
    // written again, over the same name, with the same bytes.
    const other = await OciLayout.open(path.dirname(path.dirname(blobs)));
    await other.putBytes(c);
    expect(await layout.hasBlob(sha256(c), 1)).toBe(false);
    expect(await layout.putBytes(c)).toBe(sha256(c));
    expect(await layout.hasBlob(sha256(c), 1)).toBe(true);
    expect((await readdir(blobs)).sort()).toEqual([sha256(a), sha256(b), sha256(c)].map((d) => d.slice(7)).sort());
  });
});
