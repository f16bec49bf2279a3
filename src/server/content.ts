/**
 * What `ferry serve` serves, independent of where it is stored: repositories, their tags, and
 * the manifests and blobs reachable from each repository's images. The HTTP side only ever
 * talks to this interface; layouts, OCI archives and bundles implement it through their
 * BlobStores (store-content.ts).
 *
 * Everything a repository can hand out is decided when the content is opened: a repository
 * serves only manifests and blobs reachable from its own images, never arbitrary store content.
 */
import type { Digest } from '../oci/digest.js';
import type { StoredBlob } from '../store/blob-store.js';
import { FerryError } from '../util/errors.js';
import type { ImageOrigin } from './names.js';

// The store layer defines blobs as stored; the server serves them as they are.
export { BlobGoneError, type ByteRange, isMissing, notAFile } from '../store/blob-store.js';

/** The descriptor a tag points at. */
export interface TagTarget {
  mediaType: string;
  digest: Digest;
  size: number;
}

export interface ServedManifest {
  digest: Digest;
  /** The media type the manifest is served with (its own mediaType, else how it was described). */
  mediaType: string;
  /** The exact stored bytes. */
  bytes: Buffer;
}

/** A blob as served: where it is in its store, its size, and how to open it. */
export type ServedBlob = StoredBlob;

/** A descriptor in a referrers response (image-spec descriptor plus artifactType and annotations). */
export interface ReferrerDescriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ServedContent {
  /** For messages: `oci:/srv/store`. */
  readonly description: string;
  /** Things skipped while opening (unnamed images, broken manifests), for the operator. */
  readonly warnings: readonly string[];
  /**
   * Repository keys, sorted: the scoped name of an image's origin (`docker.io/library/nginx`,
   * names.ts originKey), or the name given with the source (`oci:DIR:team/app`). The server
   * maps request names onto them (mirror-names.ts).
   */
  repositories(): readonly string[];
  /** Where a repository's images came from; undefined for a name given with the source. */
  origin?(repository: string): ImageOrigin | undefined;
  /** Tags of a repository, sorted; undefined when the repository does not exist. */
  tags(repository: string): readonly string[] | undefined;
  resolveTag(repository: string, tag: string): TagTarget | undefined;
  /** A manifest reachable from the repository's images, or undefined. */
  manifest(repository: string, digest: Digest): Promise<ServedManifest | undefined>;
  /** A blob (config, layer, or manifest) reachable from the repository's images and present, or undefined. */
  blob(repository: string, digest: Digest): Promise<ServedBlob | undefined>;
  /** The size the repository's images declare for `digest` when they reference it (present or not). */
  referencedSize?(repository: string, digest: Digest): number | undefined;
  /**
   * The blob from this source's store by digest alone, whatever repository holds it, at exactly
   * `size`: how a differential bundle's repositories are served the base layers another source
   * (the store or bundle its base was loaded from) holds.
   */
  storedBlob?(digest: Digest, size: number): Promise<ServedBlob | undefined>;
  /** Manifests in the repository whose `subject` is `subject`. */
  referrers(repository: string, subject: Digest): ReferrerDescriptor[];
  close(): Promise<void>;
}

/**
 * Two images claim one repository:tag of one registry with different digests: no client could
 * tell them apart (neither ns nor a scoped path does), so the server refuses to start.
 */
export class ServeConflictError extends FerryError {
  override readonly exitCode = 2 as const;
  constructor(message: string) {
    super('SERVE_CONFLICT', message, { hint: 'serve the two sources separately (on two ports), or leave one of the images out' });
  }
}

/** Sorted copy with a stable byte-wise order (tags and names are ASCII). */
export function sortedNames(names: Iterable<string>): string[] {
  return [...names].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * Serve several sources as one registry. A repository may span sources; a tag may be given by
 * more than one source only if they agree on its digest (checked here, at start-up). Lookups
 * go to the sources holding the repository, in the order given.
 */
export function mergeContent(sources: readonly ServedContent[]): ServedContent {
  if (sources.length === 1) return sources[0]!;
  const owners = new Map<string, ServedContent[]>();
  for (const src of sources) {
    for (const repo of src.repositories()) {
      const list = owners.get(repo) ?? [];
      list.push(src);
      owners.set(repo, list);
    }
  }
  const tagSets = new Map<string, readonly string[]>();
  for (const [repo, list] of owners) {
    const seen = new Map<string, { digest: string; src: ServedContent }>();
    for (const src of list) {
      for (const tag of src.tags(repo) ?? []) {
        const target = src.resolveTag(repo, tag);
        if (!target) continue;
        const prev = seen.get(tag);
        if (prev && prev.digest !== target.digest) {
          throw new ServeConflictError(
            `${repo}:${tag} is ${prev.digest} in ${prev.src.description} but ${target.digest} in ${src.description}`,
          );
        }
        if (!prev) seen.set(tag, { digest: target.digest, src });
      }
    }
    tagSets.set(repo, Object.freeze(sortedNames(seen.keys())));
  }
  const repos = Object.freeze(sortedNames(owners.keys()));
  const origins = new Map<string, ImageOrigin>();
  for (const [repo, list] of owners) {
    for (const src of list) {
      const o = src.origin?.(repo);
      if (o) {
        origins.set(repo, o);
        break;
      }
    }
  }
  return {
    description: sources.map((s) => s.description).join(', '),
    warnings: sources.flatMap((s) => s.warnings),
    repositories: () => repos,
    origin: (repo) => origins.get(repo),
    tags: (repo) => tagSets.get(repo),
    resolveTag: (repo, tag) => {
      for (const src of owners.get(repo) ?? []) {
        const t = src.resolveTag(repo, tag);
        if (t) return t;
      }
      return undefined;
    },
    manifest: async (repo, digest) => {
      for (const src of owners.get(repo) ?? []) {
        const m = await src.manifest(repo, digest);
        if (m) return m;
      }
      return undefined;
    },
    blob: async (repo, digest) => {
      const mine = owners.get(repo) ?? [];
      for (const src of mine) {
        const b = await src.blob(repo, digest);
        if (b) return b;
      }
      // Referenced here but not stored with it (a differential bundle's base): any source
      // holding exactly those bytes serves them; the server hashes every blob as it is sent.
      let size: number | undefined;
      for (const src of mine) size ??= src.referencedSize?.(repo, digest);
      if (size === undefined) return undefined;
      for (const src of sources) {
        const b = await src.storedBlob?.(digest, size);
        if (b) return b;
      }
      return undefined;
    },
    referrers: (repo, subject) => {
      const out = new Map<string, ReferrerDescriptor>();
      for (const src of owners.get(repo) ?? []) {
        for (const d of src.referrers(repo, subject)) if (!out.has(d.digest)) out.set(d.digest, d);
      }
      return [...out.values()];
    },
    close: async () => {
      await Promise.all(sources.map((s) => s.close()));
    },
  };
}
