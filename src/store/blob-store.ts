/**
 * The blob-store contract: what an image store must offer for ferry to read images out of it,
 * whatever holds the bytes (an OCI layout directory, an OCI archive, a bundle). A store lists
 * its index entries, resolves a reference among them, reads small blobs (manifests) whole and
 * verified, opens any blob as a raw stream, and says where a blob is for serving (stat).
 *
 * One reader sits on top of it: `StoreSource` (source.ts) is the ImageSource for every store,
 * and `storeContent` (server/store-content.ts) is what `ferry serve` serves from every store.
 * An implementation lives beside its format (transports/oci/store.ts,
 * transports/oci-archive/store.ts, bundle/store.ts) and keeps that format's strictness rules.
 */
import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { isDigest } from '../oci/digest.js';
import { platformMatches, type PlatformSpec } from '../oci/platform.js';
import { REF_NAME } from '../transports/oci/layout.js';
import { FerryError, LayoutError, NotFoundError } from '../util/errors.js';

/** Inclusive byte range, as in `Range: bytes=start-end`. */
export interface ByteRange {
  start: number;
  end: number;
}

/** A blob present in a store, as `stat` finds it: its size and how to read it. */
export interface StoredBlob {
  digest: Digest;
  size: number;
  /**
   * Open the blob, or a byte range of it, for streaming. Resolves once the content is open, so
   * a blob that vanished since the store was opened is reported before any response is
   * committed (rejects with BlobGoneError).
   */
  open(range?: ByteRange): Promise<Readable>;
  /**
   * Set when the blob's bytes are `[offset, offset + size)` of a regular file as they are: a
   * server may then send them itself, through reused buffers instead of a fresh one per chunk.
   * Either a path opened per request (a layout's blob file; opened with O_NOFOLLOW, a symlink
   * is not served), or a descriptor the store keeps open for its whole life (a bundle, opened
   * once: a file replaced on disk since is not read).
   */
  file?: { path: string; offset: number; handle?: undefined } | { handle: FileHandle; offset: number; path?: undefined };
  /**
   * Set when `open` restores the blob through `zstd -d` (a zstd bundle member): costly (a
   * process, and a range costs everything before it too), so a server caps how many run at once.
   */
  restore?: boolean;
}

export interface BlobReadOptions {
  /** What is being done, for messages. */
  what: string;
  /** Start at this byte (resuming). */
  start?: number;
}

export interface BlobStore {
  /** How the user names the store: `oci:/srv/store`, `oci-archive:/x.tar`, `bundle:/x.tar`. */
  readonly label: string;
  /** The index.json entries: the images the store names. */
  indexEntries(): Promise<readonly Descriptor[]>;
  /** The entry a reference names (ref.name, digest, or the only image), or NotFoundError / LAYOUT_AMBIGUOUS. */
  resolve(ref: string | undefined, platforms: readonly PlatformSpec[]): Promise<Descriptor>;
  /** A small blob (a manifest) read whole, size-capped, and verified against `desc` (digest, and size when given). */
  readBlob(desc: { digest: string; size?: number }, what: string): Promise<Buffer>;
  /**
   * A blob's raw bytes from `opts.start`, unverified (callers verify). A missing blob, or one
   * that cannot be read, is an error of the stream (MissingBlobError when absent).
   */
  openBlob(digest: string, opts: BlobReadOptions): Readable;
  /**
   * Where a blob of the declared size is, or undefined when the store does not hold it with
   * that size (absent, another size, a symlink in a layout, a zstd member with no zstd to
   * restore it). Throws only when the store itself fails (EACCES, EIO, a directory in place).
   */
  statBlob(digest: Digest, size: number): Promise<StoredBlob | undefined>;
  close(): Promise<void>;
}

/** A blob known when the store was opened could not be opened when it was asked for. */
export class BlobGoneError extends FerryError {
  constructor(
    readonly digest: string,
    options?: { cause?: unknown },
  ) {
    super('BLOB_MISSING', `blob ${digest} is no longer readable`, options);
  }
}

/** ENOENT, ENOTDIR (a path component is gone), ELOOP (a symlink where O_NOFOLLOW refuses one). */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP';
}

/** A blob path that holds something other than a regular file: an EISDIR-like error. */
export function notAFile(file: string, isDirectory: boolean): NodeJS.ErrnoException {
  return Object.assign(new Error(`${file} is ${isDirectory ? 'a directory' : 'not a regular file'}, not a blob file`), {
    code: isDirectory ? 'EISDIR' : 'EINVAL',
    path: file,
  });
}

/** How resolveIndexEntry names the store in its messages. */
export interface ResolveWording {
  /** The store in a sentence: `OCI layout /srv/store`, `oci-archive:/x.tar`. */
  store: string;
  /** The location to add `:REF` to: `oci:/srv/store`. */
  location: string;
  /** A hint when the store holds no images at all. */
  emptyHint?: string | undefined;
}

/**
 * The index entry a reference names, by the rules every OCI store follows (as skopeo's oci:
 * transport): no reference picks the only image (or the only one of the given platforms); a
 * digest picks that entry; anything else is an `org.opencontainers.image.ref.name`.
 */
export function resolveIndexEntry(
  manifests: readonly Descriptor[],
  ref: string | undefined,
  platforms: readonly PlatformSpec[],
  wording: ResolveWording,
): Descriptor {
  if (ref === undefined || ref === '') {
    if (manifests.length === 1) return manifests[0]!;
    if (manifests.length === 0) {
      throw new NotFoundError(`${wording.store} holds no images`, wording.emptyHint ? { hint: wording.emptyHint } : {});
    }
    // Untagged per-platform entries (as some tools write): a platform choice can pick one.
    const byPlatform = manifests.filter((d) => platforms.some((p) => platformMatches(p, d.platform)));
    if (platforms.length > 0 && byPlatform.length === 1) return byPlatform[0]!;
    throw new LayoutError(
      'LAYOUT_AMBIGUOUS',
      `${wording.store} holds more than one image (${manifests.length}); name one: ${wording.location}:REF`,
    );
  }
  if (isDigest(ref)) {
    const hit = manifests.find((d) => d.digest === ref);
    if (hit) return hit;
    throw new NotFoundError(`no image with digest ${ref} in ${wording.store}`);
  }
  const hit = manifests.find((d) => d.annotations?.[REF_NAME] === ref);
  if (hit) return hit;
  const names = manifests.map((d) => d.annotations?.[REF_NAME]).filter((n): n is string => !!n);
  throw new NotFoundError(`no image named ${JSON.stringify(ref)} in ${wording.store}`, {
    hint: names.length ? `it has: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}` : 'it has no named images',
  });
}
