/**
 * A ferry bundle (or a plain OCI archive being served) as a BlobStore: the archive store, with
 * blobs found through the bundle's own map (bundle/blobs.ts: raw members as regular files,
 * and zstd members the bundle manifest describes, restored on the fly through `zstd -d`).
 * Manifests are raw members, read whole under the bundle's manifest limit and verified.
 *
 * Without a zstd command, a zstd member fails when opened for loading (ZSTD_UNAVAILABLE) and
 * is not served (`canRestore` false: the server warns once at start-up instead).
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { BlobGoneError, type BlobReadOptions, type StoredBlob } from '../store/blob-store.js';
import { MissingBlobError } from '../transports/oci/layout.js';
import { ArchiveStore, type ArchiveStoreOptions } from '../transports/oci-archive/store.js';
import type { OciArchive } from '../transports/oci-archive/source.js';
import { FerryError } from '../util/errors.js';
import { failingStream } from '../util/streams.js';
import { openRestored, type BlobMember } from './blobs.js';
import { LIMITS } from './format.js';
import { zstdAvailable } from './reader.js';

export interface BundleStoreOptions extends Omit<ArchiveStoreOptions, 'manifestCap'> {
  /** Serve zstd members (a zstd command was found when the store was opened). Default: true. */
  canRestore?: boolean;
}

export class BundleStore extends ArchiveStore {
  private readonly canRestore: boolean;

  constructor(
    archive: OciArchive,
    private readonly blobs: ReadonlyMap<Digest, BlobMember>,
    opts: BundleStoreOptions = {},
  ) {
    super(archive, { ...opts, manifestCap: LIMITS.maxManifestBytes });
    this.canRestore = opts.canRestore ?? true;
  }

  override openBlob(digest: string, opts: BlobReadOptions): Readable {
    const start = opts.start ?? 0;
    try {
      const m = this.blobs.get(digest as Digest);
      if (!m) throw new MissingBlobError(digest, opts.what);
      if (m.storage === 'raw') return this.openRaw(m.entry, start);
      if (!zstdAvailable()) {
        throw new FerryError(
          'ZSTD_UNAVAILABLE',
          `${opts.what}: the blob is stored zstd-compressed in the bundle and no zstd command is on PATH`,
          { hint: 'install zstd (Debian: apt-get install zstd)' },
        );
      }
      return openRestored(
        this.archive,
        m.entry,
        m.uncompressedSize,
        start > 0 ? { start, end: m.uncompressedSize } : undefined,
        this.handle,
      );
    } catch (err) {
      // Failures surface on the stream when it is read, like any read failure.
      return failingStream(err as Error);
    }
  }

  override async statBlob(digest: Digest, size: number): Promise<StoredBlob | undefined> {
    const m = this.blobs.get(digest);
    if (!m) return undefined;
    if (m.storage === 'raw') return this.statRaw(m.entry, digest, size);
    if (!this.canRestore || m.uncompressedSize !== size) return undefined;
    return {
      digest,
      size,
      restore: true,
      open: async (range) => {
        if (!zstdAvailable()) throw new BlobGoneError(digest, { cause: new Error('zstd is not on PATH') });
        return openRestored(this.archive, m.entry, size, range ? { start: range.start, end: range.end + 1 } : undefined, this.handle);
      },
    };
  }
}
