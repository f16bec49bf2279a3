/**
 * The contracts every transport implements. Sources hand out exact manifest bytes and raw
 * blob streams (callers verify); destinations verify what they receive and discard it on
 * failure. The order a copy MUST follow: blobs, then the manifests that reference them
 * (children before indexes), then names (tags, index.json entries) last.
 */
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';

export interface ManifestBytes {
  bytes: Buffer;
  /** Media type as served or described; the document's own field is authoritative. */
  mediaType: string | undefined;
  digest: Digest;
}

export interface BlobOpenOptions {
  signal?: AbortSignal;
  what: string;
  onResume?: (offset: number, reason: string) => void;
}

export interface ImageSource {
  /** Human-readable location, e.g. docker://ghcr.io/x/y:1 or oci:/store:ref (no secrets). */
  readonly description: string;
  /** The manifest the location names (tag, digest, or layout ref). */
  getRootManifest(signal?: AbortSignal): Promise<ManifestBytes>;
  /** A manifest by digest (index children). The digest is verified by the source. */
  getManifest(digest: Digest, mediaType: string | undefined, signal?: AbortSignal): Promise<ManifestBytes>;
  /** The raw bytes of a blob, unverified. */
  openBlob(desc: Descriptor, opts: BlobOpenOptions): Readable;
  close(): Promise<void>;
}
