/**
 * An OCI archive (a tar holding an OCI layout) as a BlobStore, read in place: manifests read
 * whole from their members and verified, blobs streamed from their offsets. A blob is the
 * member `blobs/sha256/<hex>`, found through symlinks and hard links within the archive
 * (OciArchive.blobEntry); one the archive lacks is a MissingBlobError, as in a layout.
 *
 * `handle`, when given, is a descriptor of the tar opened before it was indexed (`ferry serve`
 * keeps one): every blob is then read through it, never by opening the path again, so what is
 * read stays the file that was indexed even if the path is replaced.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import { MAX_MANIFEST_BYTES, type Descriptor } from '../../oci/manifest.js';
import type { PlatformSpec } from '../../oci/platform.js';
import { BlobGoneError, type BlobReadOptions, type BlobStore, type StoredBlob } from '../../store/blob-store.js';
import { openTarEntry, type TarEntry } from '../../tar/reader.js';
import { failingStream } from '../../util/streams.js';
import type { OciArchive } from './source.js';

export interface ArchiveStoreOptions {
  /** The tar's descriptor, opened before indexing: every blob is read through it. */
  handle?: FileHandle | undefined;
  /** Largest manifest read whole (default MAX_MANIFEST_BYTES). */
  manifestCap?: number;
  /** How the store is named (default the archive's label). */
  label?: string;
}

export class ArchiveStore implements BlobStore {
  readonly label: string;
  protected readonly handle: FileHandle | undefined;
  private readonly manifestCap: number;

  constructor(
    readonly archive: OciArchive,
    opts: ArchiveStoreOptions = {},
  ) {
    this.label = opts.label ?? archive.label;
    this.handle = opts.handle;
    this.manifestCap = opts.manifestCap ?? MAX_MANIFEST_BYTES;
  }

  async indexEntries(): Promise<readonly Descriptor[]> {
    return this.archive.listImages();
  }

  async resolve(ref: string | undefined, platforms: readonly PlatformSpec[]): Promise<Descriptor> {
    return this.archive.resolve(ref, platforms);
  }

  readBlob(desc: { digest: string; size?: number }, what: string): Promise<Buffer> {
    return this.archive.readBlobBytes(desc, what, this.manifestCap);
  }

  openBlob(digest: string, opts: BlobReadOptions): Readable {
    // A missing blob surfaces as a stream error, like any other read failure.
    try {
      return this.openRaw(this.archive.blobEntry(digest, opts.what), opts.start ?? 0);
    } catch (err) {
      return failingStream(err as Error);
    }
  }

  async statBlob(digest: Digest, size: number): Promise<StoredBlob | undefined> {
    let entry: TarEntry;
    try {
      entry = this.archive.blobEntry(digest, `blob ${digest}`);
    } catch {
      return undefined; // absent, or a link leaving the archive: not served
    }
    return this.statRaw(entry, digest, size);
  }

  async close(): Promise<void> {
    await this.archive.close();
  }

  /** A raw member's data from `start` (clamped to its size). */
  protected openRaw(entry: TarEntry, start: number): Readable {
    const from = Math.min(start, entry.size);
    return this.readMember(entry, from > 0 ? { start: from, end: entry.size } : undefined);
  }

  /** A raw member of the declared size for serving; a member of another size is not served. */
  protected statRaw(entry: TarEntry, digest: Digest, size: number): StoredBlob | undefined {
    if (entry.size !== size) return undefined;
    const handle = this.handle;
    return {
      digest,
      size,
      open: async (range) => {
        try {
          // ByteRange is inclusive; a member range's end is exclusive.
          return this.readMember(entry, range ? { start: range.start, end: range.end + 1 } : undefined);
        } catch (err) {
          throw new BlobGoneError(digest, { cause: err });
        }
      },
      ...(handle ? { file: { handle, offset: entry.dataOffset } } : {}),
    };
  }

  /** A member's bytes (or a range: start inclusive, end exclusive), through the kept descriptor when there is one. */
  protected readMember(entry: TarEntry, range?: { start: number; end: number }): Readable {
    return this.handle ? openTarEntry(this.archive.archive.tarFile, entry, range, this.handle) : this.archive.archive.open(entry, range);
  }
}
