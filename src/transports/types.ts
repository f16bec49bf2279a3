/**
 * The contracts every transport implements. Sources hand out exact manifest bytes and raw
 * blob streams (callers verify); destinations verify what they receive and discard it on
 * failure. The order a copy MUST follow: blobs, then the manifests that reference them
 * (children before indexes), then names (tags, index.json entries) last.
 */
import { Readable } from 'node:stream';
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
  /**
   * Start at this byte (resuming an upload). Every source honours it: those that can seek do,
   * the others read and drop the bytes before it (dropPrefix).
   */
  start?: number;
}

/** The bytes of `stream` after its first `n` (for sources that cannot seek). */
export function dropPrefix(stream: Readable, n: number): Readable {
  if (n <= 0) return stream;
  async function* gen(): AsyncGenerator<Buffer> {
    let skip = n;
    for await (const raw of stream as AsyncIterable<Buffer>) {
      if (skip >= raw.length) {
        skip -= raw.length;
        continue;
      }
      yield skip > 0 ? raw.subarray(skip) : raw;
      skip = 0;
    }
  }
  return Readable.from(gen(), { objectMode: false });
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
