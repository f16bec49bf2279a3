/**
 * The OCI image-layout destination: blobs and manifests written verified and atomically by
 * the store (layout.ts), names as index.json entries. Every name goes through the store's group
 * commit (queueIndexEntry) in setName, the one place index.json is changed from a copy. openLayoutDestination is the
 * transport table's entry point: executeCopy drives the ImageDestination.
 */
import { executeCopy } from '../../copy/execute.js';
import { ORIGINAL_INDEX_ANNOTATION } from '../../copy/plan.js';
import type { Descriptor } from '../../oci/manifest.js';
import { fileSize } from '../../util/fsutil.js';
import type { Readable } from 'node:stream';
import type {
  DestinationCapabilities,
  DestinationName,
  ImageDestination,
  ManifestBytes,
  PlanDestination,
  PutBlobOptions,
} from '../types.js';
import { CONTAINERD_NAME, OciLayout, REF_NAME } from './layout.js';

export class OciLayoutDestination implements ImageDestination {
  readonly capabilities: DestinationCapabilities = { parallelBlobs: true, mount: false, orderedStream: false, knowsBlobs: true };

  /** `ref`: the one name every image gets (`oci:DIR:REF`, a single-image copy); else each keeps its own. */
  constructor(
    readonly store: OciLayout,
    private readonly ref?: string,
  ) {}

  /** Open (creating if needed) the layout at `dir`, clearing temp files of dead writers. */
  static async open(dir: string, ref?: string): Promise<OciLayoutDestination> {
    const store = await OciLayout.open(dir, { create: true });
    await store.removeStaleTemps();
    return new OciLayoutDestination(store, ref);
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

  putBlob(desc: Descriptor, stream: Readable, opts: PutBlobOptions): Promise<number> {
    return this.store.putBlob(desc, stream, opts.what, opts.onProgress);
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

  async commit(): Promise<void> {}

  async close(): Promise<void> {}
}

/** `oci:DIR[:REF]` as a destination: the layout is created if needed. */
export async function openLayoutDestination(dir: string, ref: string | undefined): Promise<PlanDestination> {
  const dest = await OciLayoutDestination.open(dir, ref);
  return {
    description: `oci:${dir}${ref !== undefined ? `:${ref}` : ''}`,
    async write(plan, sources, opts) {
      const r = await executeCopy(plan, sources, dest, { ...opts, action: opts.action ?? 'loading' });
      return {
        ...r,
        images: r.images.map((i) => ({
          ...i,
          ...(i.status === 'done' ? { destination: dest.nameOf(i), destinationDigest: i.digest } : {}),
        })),
      };
    },
    close: () => dest.close(),
  };
}
