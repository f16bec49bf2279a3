/**
 * One ImageSource over any BlobStore: the image a reference names in the store (or a root
 * descriptor given by the caller, as a bundle's manifest gives each image's), its manifests
 * read whole and verified, its blobs streamed raw (callers verify). LayoutSource,
 * OciArchiveSource and a bundle's images are this reader over their stores.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { isManifestType } from '../oci/mediatypes.js';
import type { PlatformSpec } from '../oci/platform.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes } from '../transports/types.js';
import { UnsupportedMediaTypeError } from '../util/errors.js';
import type { BlobStore } from './blob-store.js';

/** Which image of the store: resolved from a reference, or a descriptor the caller already trusts. */
export type StoreRoot = { ref: string | undefined; platforms: readonly PlatformSpec[] } | { descriptor: Descriptor };

export class StoreSource implements ImageSource {
  constructor(
    protected readonly store: BlobStore,
    private readonly root: StoreRoot,
    readonly description: string,
  ) {}

  /** The index.json entry the reference resolves to (its annotations carry names). */
  async rootDescriptor(): Promise<Descriptor> {
    return 'descriptor' in this.root ? this.root.descriptor : this.store.resolve(this.root.ref, this.root.platforms);
  }

  async getRootManifest(): Promise<ManifestBytes> {
    const desc = await this.rootDescriptor();
    // A reference may name an index.json entry of any type; a given root is a manifest already.
    if (!('descriptor' in this.root) && !isManifestType(desc.mediaType)) {
      throw new UnsupportedMediaTypeError(desc.mediaType, `${this.description}: the entry is not an image manifest or index`);
    }
    const bytes = await this.store.readBlob(desc, `reading ${this.description}`);
    return { bytes, mediaType: desc.mediaType, digest: desc.digest as Digest };
  }

  async getManifest(digest: Digest, mediaType: string | undefined): Promise<ManifestBytes> {
    const bytes = await this.store.readBlob({ digest }, `reading manifest ${digest} from ${this.description}`);
    return { bytes, mediaType, digest };
  }

  openBlob(desc: Descriptor, opts: BlobOpenOptions): Readable {
    return this.store.openBlob(desc.digest, { what: opts.what, ...(opts.start !== undefined ? { start: opts.start } : {}) });
  }

  /** The store belongs to whoever opened it (several sources may share one). */
  async close(): Promise<void> {}
}
