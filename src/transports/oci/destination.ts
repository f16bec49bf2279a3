/**
 * The OCI image-layout destination: blobs and manifests written verified and atomically by
 * the store (layout.ts), names as index.json entries. Every name goes through the store's group
 * commit (queueIndexEntry) in setName, the one place index.json is changed from a copy. openLayoutDestination is the
 * transport table's entry point: executeCopy drives the ImageDestination.
 */
import { ORIGINAL_INDEX_ANNOTATION } from '../../copy/plan.js';
import type { Descriptor } from '../../oci/manifest.js';
import { acquireWriterLease, type WriterLease } from '../../store/leases.js';
import { fileSize } from '../../util/fsutil.js';
import type {
  BlobOpener,
  DestinationCapabilities,
  DestinationName,
  ImageDestination,
  ManifestBytes,
  PutBlobOptions,
  PutBlobResult,
} from '../types.js';
import { CONTAINERD_NAME, OciLayout, REF_NAME } from './layout.js';

export class OciLayoutDestination implements ImageDestination {
  readonly capabilities: DestinationCapabilities = { parallelBlobs: true, mount: false, orderedStream: false, knowsBlobs: true };

  /** `ref`: the one name every image gets (`oci:DIR:REF`, a single-image copy); else each keeps its own. */
  constructor(
    readonly store: OciLayout,
    private readonly ref?: string,
    /** Held from open to close: `ferry store gc` does not run while blobs may be unnamed (store/leases.ts). */
    private readonly lease?: WriterLease,
  ) {}

  /**
   * Open (creating if needed) the layout at `dir`, clearing temp files of dead writers. Takes a
   * writer lease first (waiting while a gc runs); close() gives it back.
   */
  static async open(dir: string, ref?: string): Promise<OciLayoutDestination> {
    const store = await OciLayout.open(dir, { create: true });
    const lease = await acquireWriterLease(store.dir);
    try {
      await store.removeStaleTemps();
      // The names read once are safe to trust while the lease is held: only gc removes blobs,
      // and gc does not run while a writer holds a lease.
      await store.knowBlobNames();
    } catch (err) {
      await lease.release();
      throw err;
    }
    return new OciLayoutDestination(store, ref, lease);
  }

  get description(): string {
    return `oci:${this.store.dir}`;
  }

  hasBlob(desc: Descriptor): Promise<boolean> {
    return this.store.hasBlob(desc.digest, desc.size);
  }

  storedBlobSize(digest: string): Promise<number | undefined> {
    return fileSize(this.store.blobPath(digest));
  }

  async putBlob(desc: Descriptor, open: BlobOpener, opts: PutBlobOptions): Promise<PutBlobResult> {
    // The opener, not a stream: the store resumes a partial download a dead run left.
    return { bytes: await this.store.putBlob(desc, open, opts.what, opts.onProgress), sent: true };
  }

  async putManifest(m: ManifestBytes): Promise<void> {
    await this.store.putBytes(m.bytes, m.digest);
  }

  async setName(image: DestinationName): Promise<boolean> {
    const name = this.ref ?? image.name;
    const annotations: Record<string, string> = { [REF_NAME]: name, [CONTAINERD_NAME]: name };
    if (image.originalDigest) annotations[ORIGINAL_INDEX_ANNOTATION] = image.originalDigest;
    return this.store.queueIndexEntry({ mediaType: image.root.mediaType, digest: image.root.digest, size: image.root.size, annotations });
  }

  nameOf(image: Pick<DestinationName, 'name'>): string {
    return `oci:${this.store.dir}:${this.ref ?? image.name}`;
  }

  async commit(): Promise<undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    await this.lease?.release();
  }
}

/** `oci:DIR[:REF]` as a destination: the layout is created if needed. */
export function openLayoutDestination(dir: string, ref: string | undefined): Promise<OciLayoutDestination> {
  return OciLayoutDestination.open(dir, ref);
}
