/**
 * What a copy reports per image and for its blobs (executeCopy over an ImageDestination in
 * transports/types.ts). Every destination verifies each blob while it streams, names an image
 * only once its content is in place, skips what is already there, and reports one LoadedImage
 * per planned image, failures included.
 */
import type { Digest } from '../oci/digest.js';
import type { ImageResult } from './execute.js';

export interface LoadedImage extends ImageResult {
  /** Where the image now is, e.g. `localhost:5000/mirror/library/nginx:1.25`, `docker-daemon:nginx:1.25`. */
  destination?: string;
  /**
   * The digest that identifies it there: the manifest or index digest for registries, OCI
   * layouts and containerd; the image ID (config digest) for Docker Engine.
   */
  destinationDigest?: Digest;
  /** Set when the destination already had the image and nothing was transferred. */
  skipped?: boolean;
}

export interface LoadBlobStats {
  total: number;
  fetched: number;
  skipped: number;
  failed: number;
  bytesFetched: number;
  bytesSkipped: number;
  /** Registry destinations: blobs cross-mounted from another repository. */
  mounted?: number;
}

export interface DestinationReport {
  images: LoadedImage[];
  blobs: LoadBlobStats;
  durationMs: number;
}
