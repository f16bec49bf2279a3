/**
 * A ferry bundle (or a plain OCI archive being served) as a BlobStore: the archive store, with
 * blobs found through the bundle's own map (bundle/blobs.ts: raw members as regular files,
 * and zstd members the bundle manifest describes, restored on the fly by zstd/restore.ts,
 * which needs no zstd command). Manifests are raw members, read whole under the bundle's
 * manifest limit and verified.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { BlobReadOptions, StoredBlob } from '../store/blob-store.js';
import { MissingBlobError } from '../transports/oci/layout.js';
import { ArchiveStore, type ArchiveStoreOptions } from '../transports/oci-archive/store.js';
import type { OciArchive } from '../transports/oci-archive/source.js';
import { failingStream } from '../util/streams.js';
import { openRestored, type BlobMember } from './blobs.js';
import { LIMITS } from './format.js';

export type BundleStoreOptions = Omit<ArchiveStoreOptions, 'manifestCap'>;

export class BundleStore extends ArchiveStore {
  constructor(
    archive: OciArchive,
    private readonly blobs: ReadonlyMap<Digest, BlobMember>,
    opts: BundleStoreOptions = {},
  ) {
    super(archive, { ...opts, manifestCap: LIMITS.maxManifestBytes });
  }

  override openBlob(digest: string, opts: BlobReadOptions): Readable {
    const start = opts.start ?? 0;
    try {
      const m = this.blobs.get(digest as Digest);
      if (!m) throw new MissingBlobError(digest, opts.what);
      if (m.storage === 'raw') return this.openRaw(m.entry, start);
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
    if (m.uncompressedSize !== size) return undefined;
    return {
      digest,
      size,
      restore: true,
      open: async (range) => {
        return openRestored(this.archive, m.entry, size, range ? { start: range.start, end: range.end + 1 } : undefined, this.handle);
      },
    };
  }
}
