/** An OCI layout as an ImageSource: `oci:DIR[:REF]`. */
import type { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes } from '../types.js';
import { OciLayout } from './layout.js';
import { lazyStream } from '../../util/streams.js';
import { isManifestType } from '../../oci/mediatypes.js';
import type { PlatformSpec } from '../../oci/platform.js';
import { UnsupportedMediaTypeError } from '../../util/errors.js';

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
