/**
 * Planning a copy: walk each source's manifest graph (indexes, children, configs, layers),
 * apply platform filters, and list every blob once. Network reads happen here (manifests
 * only); the resulting plan is plain data that can be printed (--dry-run) or executed.
 */
import { isDigest, sha256, type Digest } from '../oci/digest.js';
import {
  MAX_INDEX_DEPTH,
  assertFetchable,
  isPlaceholderDescriptor,
  parseJsonObject,
  parseManifest,
  requiredBlobs,
  type Descriptor,
  type ManifestDocument,
} from '../oci/manifest.js';
import { isManifestType } from '../oci/mediatypes.js';
import { formatPlatform, platformMatches, type PlatformSpec } from '../oci/platform.js';
import type { ImageSource } from '../transports/types.js';
import { InvalidManifestError, NotFoundError, SizeMismatchError, wrap } from '../util/errors.js';
import type { EventSink } from './events.js';
import { eachLimit } from './scheduler.js';

export const ORIGINAL_INDEX_ANNOTATION = 'dev.ferry.original-index.digest';

export interface CopyItem {
  source: ImageSource;
  /** The name the destination records (full normalised reference for a store). */
  name: string;
  platforms?: PlatformSpec[];
}

export interface PlannedManifest {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
}

export interface PlannedImage {
  name: string;
  source: string;
  sourceIndex: number;
  root: { digest: Digest; mediaType: string; size: number };
  /** Set when --platform rewrote an index: the digest the source published. */
  originalDigest?: Digest;
  platforms: string[];
  /** Children before parents: the order manifests must be written in. */
  manifests: PlannedManifest[];
  blobs: Descriptor[];
  /** Sum of manifest and blob sizes (shared blobs counted in each image). */
  totalBytes: number;
}

export interface PlannedBlob {
  desc: Descriptor;
  sourceIndex: number;
  images: string[];
  /**
   * Images disagree about this blob's size (one manifest lies). It is then fetched checked
   * by digest only, and each image checks its own declared size against the stored bytes.
   */
  sizeConflict?: boolean;
}

export interface CopyPlan {
  images: PlannedImage[];
  failures: Array<{ name: string; source: string; error: unknown }>;
  blobs: PlannedBlob[];
}

interface Walk {
  manifests: PlannedManifest[];
  blobs: Map<string, Descriptor>;
  platforms: Set<string>;
  seen: Set<string>;
}

/**
 * Manifest bytes the destination already holds, by digest (verified by the caller), so a rerun
 * reads an index's children locally: an image already present costs one request, its root's.
 */
export type LocalManifests = (digest: Digest) => Promise<Buffer | undefined>;

async function walk(
  source: ImageSource,
  doc: ManifestDocument,
  digest: Digest,
  bytes: Buffer,
  w: Walk,
  signal: AbortSignal | undefined,
  platform?: string,
  local?: LocalManifests,
  depth = 0,
): Promise<void> {
  if (w.seen.has(digest)) return;
  w.seen.add(digest);
  // The recursion is bounded by MAX_INDEX_DEPTH, never by what the input nests.
  if (doc.kind === 'index' && depth >= MAX_INDEX_DEPTH) {
    throw new InvalidManifestError(`index ${digest}`, `indexes nested more than ${MAX_INDEX_DEPTH} deep`);
  }
  if (doc.kind === 'manifest') {
    for (const d of requiredBlobs(doc)) {
      assertFetchable(d, `manifest ${digest}`);
      if (!w.blobs.has(d.digest)) w.blobs.set(d.digest, d);
    }
    if (platform) w.platforms.add(platform);
  } else {
    for (const child of doc.manifests) {
      if (isPlaceholderDescriptor(child)) continue;
      assertFetchable(child, `index ${digest}`);
      if (w.seen.has(child.digest)) continue;
      const have = isDigest(child.digest) ? await local?.(child.digest) : undefined;
      const got = have
        ? { bytes: have, digest: child.digest as Digest }
        : await source.getManifest(child.digest as Digest, child.mediaType, signal);
      if (got.bytes.length !== child.size) {
        throw new SizeMismatchError(child.size, got.bytes.length, `index ${digest}: child ${child.digest}`);
      }
      if (!isManifestType(child.mediaType)) {
        // The image spec: a child of a media type the reader does not know MUST be ignored, that
        // is not interpreted. It is carried as it is (checked against its digest above), so the
        // copied index stays complete, and not walked: what it refers to is not copied.
        w.seen.add(child.digest);
        w.manifests.push({ digest: got.digest, mediaType: child.mediaType, bytes: got.bytes });
        continue;
      }
      const childDoc = parseManifest(got.bytes, child.mediaType, `manifest ${child.digest}`);
      await walk(
        source,
        childDoc,
        got.digest,
        got.bytes,
        w,
        signal,
        child.platform ? formatPlatform(child.platform) : undefined,
        local,
        depth + 1,
      );
    }
  }
  w.manifests.push({ digest, mediaType: doc.mediaType, bytes });
}

/** Rewrite an index to list only the chosen children; everything else stays as published. */
function filterIndex(bytes: Buffer, keep: Descriptor[], originalDigest: Digest): Buffer {
  const doc = parseJsonObject(bytes, 'index');
  const keepDigests = new Set(keep.map((d) => d.digest));
  const manifests = (doc.manifests as Array<{ digest: string }>).filter((m) => keepDigests.has(m.digest));
  const annotations = { ...((doc.annotations as Record<string, string> | undefined) ?? {}), [ORIGINAL_INDEX_ANNOTATION]: originalDigest };
  return Buffer.from(JSON.stringify({ ...doc, manifests, annotations }));
}

async function planOne(
  item: CopyItem,
  sourceIndex: number,
  signal: AbortSignal | undefined,
  local: LocalManifests | undefined,
): Promise<PlannedImage> {
  const root = await item.source.getRootManifest(signal);
  let doc = parseManifest(root.bytes, root.mediaType, `${item.source.description}`);
  let rootBytes = root.bytes;
  let rootDigest = root.digest;
  let originalDigest: Digest | undefined;
  if (doc.kind === 'index' && item.platforms && item.platforms.length > 0) {
    const index = doc;
    const keep = index.manifests.filter((d) => item.platforms!.some((p) => platformMatches(p, d.platform)));
    const missing = item.platforms.filter((p) => !index.manifests.some((d) => platformMatches(p, d.platform)));
    if (missing.length > 0) {
      const has = [...new Set(index.manifests.map((d) => (d.platform ? formatPlatform(d.platform) : 'unknown')))];
      throw new NotFoundError(`${item.source.description} has no image for platform ${missing.map(formatPlatform).join(', ')}`, {
        hint: `it has: ${has.join(', ')}`,
      });
    }
    if (keep.length !== index.manifests.length) {
      originalDigest = root.digest;
      rootBytes = filterIndex(root.bytes, keep, root.digest);
      rootDigest = sha256(rootBytes);
      doc = { ...index, manifests: keep };
    }
  }
  const w: Walk = { manifests: [], blobs: new Map(), platforms: new Set(), seen: new Set() };
  await walk(item.source, doc, rootDigest, rootBytes, w, signal, undefined, local);
  const blobs = [...w.blobs.values()];
  const totalBytes = blobs.reduce((n, b) => n + b.size, 0) + w.manifests.reduce((n, m) => n + m.bytes.length, 0);
  return {
    name: item.name,
    source: item.source.description,
    sourceIndex,
    root: { digest: rootDigest, mediaType: doc.mediaType, size: rootBytes.length },
    ...(originalDigest ? { originalDigest } : {}),
    platforms: [...w.platforms].sort(),
    manifests: w.manifests,
    blobs,
    totalBytes,
  };
}

/** Resolve every item (concurrently) and merge their blobs into one deduplicated list. */
export async function planCopy(
  items: CopyItem[],
  opts: { concurrency?: number; signal?: AbortSignal; onEvent?: EventSink; localManifests?: LocalManifests } = {},
): Promise<CopyPlan> {
  opts.onEvent?.({ kind: 'images', names: items.map((i) => i.name) });
  const results: Array<PlannedImage | { error: unknown }> = new Array(items.length);
  await eachLimit(items, opts.concurrency ?? 8, async (item, i) => {
    opts.onEvent?.({ kind: 'image', state: 'resolving', image: item.name });
    try {
      const planned = await planOne(item, i, opts.signal, opts.localManifests);
      results[i] = planned;
      opts.onEvent?.({
        kind: 'image',
        state: 'resolved',
        image: item.name,
        digest: planned.root.digest,
        blobs: planned.blobs.map((b) => b.digest),
        total: planned.totalBytes,
        platforms: planned.platforms,
        ...(planned.originalDigest ? { originalDigest: planned.originalDigest } : {}),
      });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      // Context only where the inner message does not already name the image.
      const named = err instanceof Error && err.message.includes(item.name);
      results[i] = { error: named ? err : wrap(err, `resolving ${item.name}`) };
      opts.onEvent?.({ kind: 'image', state: 'failed', image: item.name, error: (err as Error).message });
    }
  });
  const images: PlannedImage[] = [];
  const failures: CopyPlan['failures'] = [];
  const blobs = new Map<string, PlannedBlob>();
  results.forEach((r, i) => {
    if ('error' in r) {
      failures.push({ name: items[i]!.name, source: items[i]!.source.description, error: r.error });
      return;
    }
    images.push(r);
    for (const d of r.blobs) {
      const have = blobs.get(d.digest);
      if (have) {
        have.images.push(r.name);
        if (have.desc.size !== d.size) have.sizeConflict = true;
      } else {
        blobs.set(d.digest, { desc: d, sourceIndex: i, images: [r.name] });
      }
    }
  });
  return { images, failures, blobs: [...blobs.values()] };
}
