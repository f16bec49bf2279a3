/**
 * The image-graph check, the last step of verifying a bundle: from every image's root, every
 * manifest reachable must be an intact raw blob member that parses, and every blob it names
 * must be a blob member of the bundle. Pure over what the Checker has learned (which members
 * are present and intact) plus a reader of manifest bytes; it reports, never throws.
 */
import { isDigest } from '../../oci/digest.js';
import { MAX_INDEX_DEPTH, parseManifest, requiredBlobs, type ManifestDocument } from '../../oci/manifest.js';
import { isManifestType } from '../../oci/mediatypes.js';
import { errorMessage } from '../../util/errors.js';
import { LIMITS, type BundleManifest, type BundleMember } from '../format.js';
import { MAX_KEPT_MANIFEST_BYTES, type ManifestReader, type Problem } from './problems.js';

/** What the graph walk needs to know of the members read. */
export interface GraphView {
  /** Blob members (valid blob path, digest matching it) by content digest. */
  readonly blobByDigest: ReadonlyMap<string, BundleMember>;
  /** Members whose stored bytes (and restored content) are intact, or deferred to the caller. */
  readonly goodMembers: ReadonlySet<string>;
  problem(p: Problem): void;
}

/**
 * Every image's graph, from its root: every manifest it reaches must be a raw blob member
 * that is intact and parses, every blob they name must be a blob member. Nothing reachable
 * is skipped silently.
 */
export async function checkImages(man: BundleManifest, read: ManifestReader, store: GraphView): Promise<void> {
  // Parsed manifests by digest and declared type, shared by images (bounded like `kept`).
  const docs = new Map<string, { doc: ManifestDocument } | { error: string }>();
  let docBytes = 0;
  const unreadable = new Set<string>();
  // A differential bundle relies on the destination for these layers (never for manifests or
  // configs, which it always carries); their sizes are what ferry-bundle.json declares.
  const relied = new Map((man.base?.blobs ?? []).map((b) => [b.digest, b.size]));
  // A volume of a span: layers (or non-image index children) that other volumes of its span
  // carry; checked there, expected here at the declared size.
  const away = new Map((man.volume?.spanBlobs ?? []).map((b) => [b.digest, b.size]));
  for (const img of man.images) {
    /** The member holding `digest` at the declared size, or undefined after reporting why not. */
    const present = (digest: string, size: number, what: string): BundleMember | undefined => {
      const m = store.blobByDigest.get(digest);
      if (!m && (what === 'layer' || what.startsWith('index child')) && away.has(digest)) {
        if (away.get(digest) !== size) {
          store.problem({
            code: 'SIZE_MISMATCH',
            image: img.ref,
            digest,
            message: `image ${img.ref}: ${what} ${digest} is described as ${size} bytes but the volume's spanBlobs list it as ${away.get(digest)}`,
          });
        }
        return undefined;
      }
      if (!m && what === 'layer' && relied.has(digest)) {
        if (relied.get(digest) !== size) {
          store.problem({
            code: 'SIZE_MISMATCH',
            image: img.ref,
            digest,
            message: `image ${img.ref}: layer ${digest} is described as ${size} bytes but the bundle's base lists it as ${relied.get(digest)}`,
          });
        }
        return undefined;
      }
      if (!m) {
        store.problem({
          code: 'BLOB_MISSING',
          image: img.ref,
          digest,
          message: `image ${img.ref}: ${what} ${digest} is not in the bundle`,
        });
        return undefined;
      }
      // What load's destinations check while streaming (and its planner when reading an index
      // child): the descriptor's size is the content's size.
      const actual = m.storage === 'raw' ? m.size : m.uncompressedSize;
      if (actual !== size) {
        store.problem({
          code: 'SIZE_MISMATCH',
          image: img.ref,
          digest,
          member: m.path,
          message: `image ${img.ref}: ${what} ${digest} is described as ${size} bytes but the bundle holds ${actual}`,
        });
        return undefined;
      }
      return m;
    };
    /** A document ferry reads whole (a manifest, or an index child of a type it does not know) must be stored raw, within the manifest limit. */
    const readable = (m: BundleMember, digest: string, what: string): boolean => {
      if (m.storage !== 'raw') {
        store.problem({
          code: 'MANIFEST_COMPRESSED',
          image: img.ref,
          digest,
          member: m.path,
          message: `image ${img.ref}: ${what} ${digest} is stored zstd-compressed (${m.path}); manifests and index children must be stored raw`,
        });
        return false;
      }
      if (m.size > LIMITS.maxManifestBytes) {
        store.problem({
          code: 'JSON_TOO_LARGE',
          image: img.ref,
          digest,
          member: m.path,
          message: `image ${img.ref}: ${what} ${digest} is ${m.size} bytes, over the ${LIMITS.maxManifestBytes}-byte limit`,
        });
        return false;
      }
      return true;
    };
    const visited = new Set<string>();
    // Iterative, depth-first: the depth is bounded (MAX_INDEX_DEPTH), never the call stack.
    const pending: Array<{ digest: string; size: number; mediaType: string | undefined; depth: number }> = [
      { digest: img.digest, size: img.size, mediaType: img.mediaType, depth: 0 },
    ];
    while (pending.length > 0) {
      const { digest, size, mediaType, depth } = pending.pop()!;
      if (visited.has(digest)) continue;
      visited.add(digest);
      const what = depth === 0 ? 'root manifest' : 'manifest';
      const m = present(digest, size, what);
      if (!m) continue;
      if (depth > MAX_INDEX_DEPTH) {
        store.problem({
          code: 'INDEX_TOO_DEEP',
          image: img.ref,
          digest,
          message: `image ${img.ref}: ${what} ${digest} is nested more than ${MAX_INDEX_DEPTH} indexes deep; not checked`,
        });
        continue;
      }
      if (!readable(m, digest, what)) continue;
      if (!store.goodMembers.has(m.path)) continue; // absent or damaged: reported against its member
      const key = `${digest} ${mediaType ?? ''}`;
      let parsed = docs.get(key);
      if (!parsed) {
        if (unreadable.has(m.path)) continue;
        const bytes = await read(m);
        if (!bytes) {
          if (!store.goodMembers.has(m.path)) continue; // the reader found it damaged and said so
          store.problem({
            code: 'MANIFEST_UNCHECKED',
            image: img.ref,
            digest,
            member: m.path,
            message: `image ${img.ref}: ${what} ${digest} is in the bundle but was not kept to be parsed, so its content references are not checked`,
          });
          unreadable.add(m.path);
          continue;
        }
        try {
          parsed = { doc: parseManifest(bytes, mediaType, `image ${img.ref}: manifest ${digest}`) };
        } catch (err) {
          parsed = { error: errorMessage(err) };
        }
        if (docBytes + bytes.length <= MAX_KEPT_MANIFEST_BYTES) {
          docBytes += bytes.length;
          docs.set(key, parsed);
        }
      }
      if ('error' in parsed) {
        store.problem({ code: 'IMAGE_INVALID', image: img.ref, digest, message: parsed.error });
        continue;
      }
      const doc = parsed.doc;
      const unsupported = (named: string): void =>
        store.problem({
          code: 'IMAGE_INVALID',
          image: img.ref,
          digest,
          message: `image ${img.ref}: ${doc.kind} ${digest} names unsupported digest ${JSON.stringify(named).slice(0, 80)}`,
        });
      if (doc.kind === 'index') {
        for (const c of [...doc.manifests].reverse()) {
          if (!isDigest(c.digest)) {
            unsupported(c.digest);
          } else if (isManifestType(c.mediaType)) {
            pending.push({ digest: c.digest, size: c.size, mediaType: c.mediaType, depth: depth + 1 });
          } else {
            // Carried as it is, not interpreted: load reads it whole, as it reads a manifest.
            const what = `index child (${c.mediaType.slice(0, 100)})`;
            const cm = present(c.digest, c.size, what);
            if (cm) readable(cm, c.digest, what);
          }
        }
      } else {
        for (const b of requiredBlobs(doc)) {
          if (!isDigest(b.digest)) {
            unsupported(b.digest);
            continue;
          }
          present(b.digest, b.size, b === doc.config ? 'config' : 'layer');
        }
        // A missing `subject` is not an error: referrers travel without what they refer to.
      }
    }
  }
}
