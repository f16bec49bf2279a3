/** A registry repository as an ImageSource: `docker://HOST/REPO[:TAG|@DIGEST]`. */
import type { Readable } from 'node:stream';
import type { Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import type { Reference } from '../../ref/reference.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes } from '../types.js';
import { openBlob } from './blob.js';
import type { RegistryClient } from './client.js';
import { getManifest } from './manifest.js';

export class RegistrySource implements ImageSource {
  readonly description: string;

  constructor(
    private readonly client: RegistryClient,
    readonly ref: Reference,
  ) {
    this.description = `docker://${ref.toString()}`;
  }

  getRootManifest(signal?: AbortSignal): Promise<ManifestBytes> {
    // A digest pins the content; the tag, when also given, only names it.
    const reference = this.ref.digest ?? this.ref.tag ?? 'latest';
    return getManifest(this.client, this.ref.path, reference, `fetching manifest for ${this.ref.toString()}`, signal);
  }

  getManifest(digest: Digest, mediaType: string | undefined, signal?: AbortSignal): Promise<ManifestBytes> {
    // A child of a type ferry does not know is asked for by its own type too (it is carried as is).
    return getManifest(this.client, this.ref.path, digest, `fetching manifest ${digest} for ${this.ref.name}`, signal, mediaType);
  }

  openBlob(desc: Descriptor, opts: BlobOpenOptions): Readable {
    return openBlob(this.client, this.ref.path, desc, opts);
  }

  async close(): Promise<void> {}
}
