/** An OCI layout as an ImageSource: `oci:DIR[:REF]`, and the images of a layout for a copy. */
import type { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes, OpenedImages } from '../types.js';
import { OciLayout } from './layout.js';
import { lazyStream } from '../../util/streams.js';
import { isManifestType } from '../../oci/mediatypes.js';
import type { PlatformSpec } from '../../oci/platform.js';
import { UnsupportedMediaTypeError, UsageError } from '../../util/errors.js';
import { fullName, layoutImageName } from '../names.js';

export class LayoutSource implements ImageSource {
  readonly description: string;

  constructor(
    private readonly layout: OciLayout,
    private readonly ref: string | undefined,
    private readonly platforms: PlatformSpec[] = [],
  ) {
    this.description = `oci:${layout.dir}${ref ? `:${ref}` : ''}`;
  }

  static async open(dir: string, ref: string | undefined, platforms: PlatformSpec[] = []): Promise<LayoutSource> {
    return new LayoutSource(await OciLayout.open(dir), ref, platforms);
  }

  async getRootManifest(): Promise<ManifestBytes> {
    const desc = await this.rootDescriptor();
    if (!isManifestType(desc.mediaType)) {
      throw new UnsupportedMediaTypeError(desc.mediaType, `${this.description}: the entry is not an image manifest or index`);
    }
    const bytes = await this.layout.readBlobBytes(desc, `reading ${this.description}`);
    return { bytes, mediaType: desc.mediaType, digest: desc.digest as Digest };
  }

  /** The index.json entry the reference resolves to (its annotations carry names). */
  async rootDescriptor(): Promise<Descriptor> {
    return this.layout.resolve(this.ref, this.platforms);
  }

  async getManifest(digest: Digest, mediaType: string | undefined): Promise<ManifestBytes> {
    const bytes = await this.layout.readBlobBytes({ digest }, `reading manifest ${digest} from ${this.description}`);
    return { bytes, mediaType, digest };
  }

  openBlob(desc: Descriptor, opts: BlobOpenOptions): Readable {
    // A missing blob is a stream error, raised when the stream is first read.
    return lazyStream(() => this.layout.openBlob(desc.digest, opts.what, opts.start ?? 0));
  }

  async close(): Promise<void> {}
}

/** `oci:DIR[:REF]` as a copy source: the one image REF names, else every index.json entry. */
export async function openLayoutImages(dir: string, ref: string | undefined): Promise<OpenedImages> {
  const layout = await OciLayout.open(dir);
  const entries = ref !== undefined ? [await layout.resolve(ref)] : (await layout.readIndex()).manifests;
  if (entries.length === 0) throw new UsageError(`oci:${dir}${ref !== undefined ? `:${ref}` : ''} holds no images`);
  const images: OpenedImages['images'] = [];
  const seen = new Set<string>();
  for (const desc of entries) {
    const name = fullName(layoutImageName(desc, ref));
    if (seen.has(name)) continue;
    seen.add(name);
    // Address each entry by digest when it has no name of its own.
    const layoutRef = desc.annotations?.['org.opencontainers.image.ref.name'] ?? ref ?? desc.digest;
    images.push({ source: new LayoutSource(layout, layoutRef), name });
  }
  return { description: `oci:${layout.dir}`, images, allOrNothing: false, close: async () => {} };
}
