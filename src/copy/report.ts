/**
 * The contract every `ferry load` / `ferry mirror` destination implements. The caller has
 * already resolved the sources into a CopyPlan (plan.ts): every image's manifests (exact
 * bytes, children before parents) and one deduplicated blob list, each blob readable from
 * `sources[blob.sourceIndex].openBlob(desc)`. A destination:
 *
 * - verifies every blob's size and digest while it streams (DigestVerifier), and never names
 *   content that failed;
 * - makes an image visible under a name (tag, index.json entry, engine image) only after all
 *   of its content is in place;
 * - skips what is already there, so a rerun after an interruption finishes the job without
 *   redoing it;
 * - reports one LoadedImage per planned image, failures included (it throws only for problems
 *   that stop everything: the daemon is not running, the destination is unusable).
 */
import type { Digest } from '../oci/digest.js';
import type { CopyPlan } from './plan.js';
import type { EventSink } from './events.js';
import type { ImageResult } from './execute.js';
import type { ImageSource } from '../transports/types.js';

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

export interface DestinationOptions {
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
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

export type DestinationWriter = (plan: CopyPlan, sources: ImageSource[], opts: DestinationOptions) => Promise<DestinationReport>;
