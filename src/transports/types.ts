/**
 * The contracts every transport implements (the transport table, table.ts, opens them).
 * Sources hand out exact manifest bytes and raw blob streams (callers verify); destinations
 * verify what they receive and discard it on failure. The order a copy MUST follow: blobs, then the manifests that reference them
 * (children before indexes), then names (tags, index.json entries) last.
 */
import { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { EventSink } from '../copy/events.js';
import type { CopyPlan } from '../copy/plan.js';

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

/** What a destination can do; the executor drives it accordingly. */
export interface DestinationCapabilities {
  /** putBlob may run for several blobs at once; otherwise calls come one after another. */
  parallelBlobs: boolean;
  /**
   * The destination can take a blob it holds elsewhere without its bytes (a registry mounting
   * from another repository). The destination decides when; the executor only counts it.
   */
  mount: boolean;
  /**
   * Everything goes into one ordered stream (Docker Engine's and containerd's archive
   * importers): blobs are put sequentially, and names take effect only at commit().
   */
  orderedStream: boolean;
  /**
   * hasBlob() answers from what is stored, so a blob it reports is never fetched again; a
   * destination that cannot tell (a stream) answers false for every blob.
   */
  knowsBlobs: boolean;
}

/** The plan images a call is for: indexes into `plan.images` (a blob shared by many images names them all). */
export interface ImageContext {
  images: readonly number[];
  signal?: AbortSignal;
}

export interface PutBlobOptions extends ImageContext {
  /** For messages: `blob sha256:… from docker://…`. */
  what: string;
  onProgress?: (bytes: number) => void;
}

/**
 * Opens the blob's bytes from its source, starting at byte `start` (0 for the whole blob). A
 * destination that resumes an interrupted upload opens it again at the offset it got to.
 */
export type BlobOpener = (start: number) => Readable;

export interface PutBlobResult {
  /** Bytes stored or sent. */
  bytes: number;
  /** False when nothing was transferred (the blob was present, or only mounted, everywhere it was needed). */
  sent: boolean;
  /** Cross-repository mounts made (registries). */
  mounts?: number;
}

/** The name an image gets at the destination, and the root manifest it names. */
export interface DestinationName {
  /** Index of the image in `plan.images`. */
  index: number;
  /** The image's name in the plan (a full reference, or `@sha256:…` for a nameless one). */
  name: string;
  root: { digest: Digest; mediaType: string; size: number };
  /** Set when --platform rewrote the index: the digest the source published. */
  originalDigest?: Digest;
}

/**
 * What is left to do for one image, as the destination sees it before anything is sent
 * (`prepare`). The executor does exactly this much.
 */
export type PreparedImage = {
  /** Where the image is found once named (reports); default `nameOf`. */
  destination?: string;
  /** The digest that identifies it there; default the root's (Docker Engine: the image ID). */
  destinationDigest?: Digest;
  /** Platforms the destination takes (Docker Engine: the one it chose); default the plan's. */
  platforms?: string[];
  /**
   * The image's blobs at this destination (Docker Engine: one platform's config and layers);
   * default the plan's. `copy` sends them; `name` and `done` count them skipped.
   */
  blobs?: readonly Descriptor[];
} & (
  | {
      /**
       * Blobs, then manifests, then the name. `blobs`/`manifests` narrow what is sent (Docker
       * Engine takes one platform's config and layers and no manifests); default the plan's.
       * `run`: with `orderedStream`, the stream (0, 1, …) the image goes in; default 0.
       */
      state: 'copy';
      manifests?: readonly ManifestBytes[];
      run?: number;
    }
  /** The content is there under another name: only setName (after every blob passed, all-or-nothing). */
  | { state: 'name' }
  /** Already named at this root and complete: nothing is done; reported as skipped. */
  | { state: 'done' }
  /** The destination cannot take it (its platform is missing, it is an artifact…): reported failed. */
  | { state: 'failed'; error: unknown }
);

/** What prepare() is told about the run. */
export interface PrepareContext {
  signal?: AbortSignal;
  /** Warnings (a name re-pointed, an image imported without unpacking) go here. */
  onEvent?: EventSink;
  allOrNothing?: boolean;
  /** The run's --concurrency: how many requests prepare may have in flight (registry probes). */
  concurrency?: number;
}

/** What commit() found: images it was asked to name that did not end up named, and why. */
export interface CommitResult {
  failed: ReadonlyMap<number, unknown>;
}

/**
 * The write side, as containers/image's ImageDestination: a per-run object opened by the
 * transport table (`openDestination`) with everything it needs. One executor
 * (copy/execute.ts) drives every destination. What it MUST do, in this order, and what the
 * destination MUST guarantee:
 *
 * 0. `prepare(plan)` once, if the destination has it, before anything else: the destination
 *    says per image what is left to do (PreparedImage): already there, only a name, or
 *    which blobs and manifests to send. Without it every image is `copy` with all of its
 *    blobs and manifests.
 * 1. `hasBlob(desc)` for each blob; a blob it reports present is not put again.
 * 2. `putBlob(desc, open)` for each missing blob, concurrently only when
 *    `capabilities.parallelBlobs`. The destination verifies size (when `desc.size >= 0`) and
 *    digest while the bytes stream, and on any failure keeps nothing of that blob (no file,
 *    no half-written member that could later be taken for it).
 * 3. `putManifest(m)` for each manifest of an image once all of that image's blobs are in,
 *    children before the indexes that list them. The destination checks the bytes against
 *    `m.digest`.
 * 4. `setName(image)` once its manifests are in: the only call that makes content visible
 *    under a name (tag, index.json entry, engine image). Returns true when a name was created
 *    or moved, false when it already named this root. With `orderedStream` the name takes
 *    effect only at commit().
 * 5. `commit()` once every image was named (or failed): flushes what was deferred and says
 *    which deferred names did not take effect. With `orderedStream`, commit() ends the
 *    current stream (images of `run` r are sent, named and committed before run r+1 starts;
 *    then the images that only need a name, and a last commit()); a putBlob that failed
 *    broke the stream: the destination has already killed it, so commit() names nothing of it.
 *    A destination that is closed without commit() names nothing it deferred.
 * 6. `close()` always, success or not.
 */
export interface ImageDestination {
  /** Human-readable location, e.g. oci:/store (no secrets). */
  readonly description: string;
  readonly capabilities: DestinationCapabilities;
  /**
   * How an image's failure names where it was going, after the image: `containerd (namespace
   * k8s.io)` makes "loading nginx:1 into containerd (namespace k8s.io): …". Default: nothing.
   */
  readonly into?: string;
  prepare?(plan: CopyPlan, ctx: PrepareContext): Promise<PreparedImage[]>;
  hasBlob(desc: Descriptor, ctx: ImageContext): Promise<boolean>;
  /**
   * Of these digests, the ones the destination holds in a content-addressed store that verified
   * them on the way in (containerd's content store), asked all at once. Optional: used to confirm
   * a differential bundle's base where hasBlob cannot answer (an ordered stream).
   */
  holding?(digests: readonly string[], signal?: AbortSignal): Promise<ReadonlySet<string>>;
  /** The size of a stored blob for image `image`, undefined when absent (checking declared sizes after a copy). */
  storedBlobSize(digest: string, image: number, signal?: AbortSignal): Promise<number | undefined>;
  putBlob(desc: Descriptor, open: BlobOpener, opts: PutBlobOptions): Promise<PutBlobResult>;
  putManifest(manifest: ManifestBytes, ctx: { image: number; signal?: AbortSignal }): Promise<void>;
  setName(image: DestinationName, signal?: AbortSignal): Promise<boolean>;
  /** Where a named image can now be found (`oci:/store:nginx:1.25`), for reports. */
  nameOf(image: Pick<DestinationName, 'name'>): string;
  commit(signal?: AbortSignal): Promise<CommitResult | undefined>;
  close(): Promise<void>;
}

/** The images a location holds, each readable as an ImageSource under the name a copy gives it. */
export interface OpenedImages {
  /** e.g. `oci:/store`, `bundle:/media/usb/images.ferry` (no secrets). */
  description: string;
  images: Array<{ source: ImageSource; name: string }>;
  /**
   * The location is one signed, checked unit (a bundle): if any blob fails its digest or size
   * check, no image of it may be named at the destination.
   */
  allOrNothing: boolean;
  /** Bundles: what was found of a signature. */
  signature?: 'none' | 'present' | 'valid' | 'invalid';
  /**
   * A differential bundle: blobs it does not carry and relies on the destination holding
   * (its base). The executor confirms them before writing anything (ExecuteOptions.external).
   */
  external?: ReadonlySet<string>;
  close(): Promise<void>;
}
