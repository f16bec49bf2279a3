/**
 * An OCI image layout directory as a BlobStore. Manifests are read whole and verified
 * (OciLayout.readBlobBytes); blobs are streamed from their files, opened only when first read.
 * For serving, a blob is stat'ed with lstat, and a blob that is absent (sparse layout), a
 * symlink (it could point anywhere on this machine) or not the size its descriptors declare is
 * not served; the file is then opened with O_NOFOLLOW, so it cannot have been swapped for a
 * symlink since.
 */
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import type { PlatformSpec } from '../../oci/platform.js';
import {
  BlobGoneError,
  type BlobReadOptions,
  type BlobStore,
  type ByteRange,
  isMissing,
  notAFile,
  resolveIndexEntry,
  type StoredBlob,
} from '../../store/blob-store.js';
import { lazyStream } from '../../util/streams.js';
import type { OciLayout } from './layout.js';

const STREAM_CHUNK = 1024 * 1024;

export class LayoutStore implements BlobStore {
  readonly label: string;

  constructor(readonly layout: OciLayout) {
    this.label = `oci:${layout.dir}`;
  }

  async indexEntries(): Promise<readonly Descriptor[]> {
    return (await this.layout.readIndex()).manifests;
  }

  async resolve(ref: string | undefined, platforms: readonly PlatformSpec[]): Promise<Descriptor> {
    return resolveIndexEntry(await this.indexEntries(), ref, platforms, {
      store: `OCI layout ${this.layout.dir}`,
      location: `oci:${this.layout.dir}`,
    });
  }

  readBlob(desc: { digest: string; size?: number }, what: string): Promise<Buffer> {
    return this.layout.readBlobBytes(desc, what);
  }

  openBlob(digest: string, opts: BlobReadOptions): Readable {
    // A missing blob is a stream error, raised when the stream is first read.
    return lazyStream(() => this.layout.openBlob(digest, opts.what, opts.start ?? 0));
  }

  async statBlob(digest: Digest, size: number): Promise<StoredBlob | undefined> {
    const file = this.layout.blobPath(digest);
    // Anything other than absence that keeps the file from being read (EACCES, EIO, EMFILE, a
    // directory in its place) is the store's problem, not a missing blob: it is thrown.
    let st;
    try {
      st = await lstat(file);
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
    if (st.isSymbolicLink()) return undefined;
    if (!st.isFile()) throw notAFile(file, st.isDirectory());
    if (st.size !== size) return undefined;
    return { digest, size, open: (range) => openFile(file, digest, range), file: { path: file, offset: 0 } };
  }

  async close(): Promise<void> {}
}

/** Open a blob file for streaming, resolving once the file is open. */
async function openFile(file: string, digest: string, range: ByteRange | undefined): Promise<Readable> {
  let handle;
  try {
    // O_NOFOLLOW: the file checked with lstat cannot have been swapped for a symlink since.
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (isMissing(err)) throw new BlobGoneError(digest, { cause: err });
    throw err;
  }
  // The stream owns the descriptor from here: it is closed when the stream ends or is destroyed.
  return handle.createReadStream({ highWaterMark: STREAM_CHUNK, ...(range ? { start: range.start, end: range.end } : {}) });
}
