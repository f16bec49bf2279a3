/**
 * The image-graph check, the last step of verifying a bundle: from every image's root, every
 * manifest reachable must be an intact raw blob member that parses, and every blob it names
 * must be a blob member of the bundle. Pure over what the Checker has learned (which members
 * are present and intact) plus a reader of manifest bytes; it reports, never throws.
 */
import { isDigest } from '../../oci/digest.js';
import { parseManifest, requiredBlobs, type ManifestDocument } from '../../oci/manifest.js';
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
  for (const img of man.images) {
    const missing = (digest: string, what: string): boolean => {
      if (store.blobByDigest.has(digest)) return false;
      store.problem({ code: 'BLOB_MISSING', image: img.ref, digest, message: `image ${img.ref}: ${what} ${digest} is not in the bundle` });
      return true;
    };
    const visited = new Set<string>();
    const walk = async (digest: string, mediaType: string | undefined, depth: number): Promise<void> => {
      if (visited.has(digest)) return;
      visited.add(digest);
      const what = depth === 0 ? 'root manifest' : 'manifest';
      if (missing(digest, what)) return;
      if (depth > 8) {
        store.problem({
          code: 'INDEX_TOO_DEEP',
          image: img.ref,
          digest,
          message: `image ${img.ref}: ${what} ${digest} is nested more than 8 indexes deep; not checked`,
        });
        return;
      }
      const m = store.blobByDigest.get(digest)!;
      if (m.storage !== 'raw') {
        store.problem({
          code: 'MANIFEST_COMPRESSED',
          image: img.ref,
          digest,
          member: m.path,
          message: `image ${img.ref}: ${what} ${digest} is stored zstd-compressed (${m.path}); manifests must be stored raw`,
        });
        return;
      }
      if (!store.goodMembers.has(m.path)) return; // absent or damaged: reported against its member
      if (m.size > LIMITS.maxManifestBytes) {
        store.problem({
          code: 'JSON_TOO_LARGE',
          image: img.ref,
          digest,
          member: m.path,
          message: `image ${img.ref}: ${what} ${digest} is ${m.size} bytes, over the ${LIMITS.maxManifestBytes}-byte limit`,
        });
        return;
      }
      const key = `${digest} ${mediaType ?? ''}`;
      let parsed = docs.get(key);
      if (!parsed) {
        if (unreadable.has(m.path)) return;
        const bytes = await read(m);
        if (!bytes) {
          if (!store.goodMembers.has(m.path)) return; // the reader found it damaged and said so
          store.problem({
            code: 'MANIFEST_UNCHECKED',
            image: img.ref,
            digest,
            member: m.path,
            message: `image ${img.ref}: ${what} ${digest} is in the bundle but was not kept to be parsed, so its content references are not checked`,
          });
          unreadable.add(m.path);
          return;
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
        return;
      }
      const doc = parsed.doc;
      if (doc.kind === 'index') {
        for (const c of doc.manifests) {
          if (isManifestType(c.mediaType)) await walk(c.digest, c.mediaType, depth + 1);
          else missing(c.digest, `index child (${c.mediaType})`);
        }
      } else {
        for (const b of requiredBlobs(doc)) {
          if (!isDigest(b.digest)) {
            store.problem({
              code: 'IMAGE_INVALID',
              image: img.ref,
              digest,
              message: `image ${img.ref}: manifest ${digest} names unsupported digest ${b.digest}`,
            });
            continue;
          }
          missing(b.digest, b === doc.config ? 'config' : 'layer');
        }
        // A missing `subject` is not an error: referrers travel without what they refer to.
      }
    };
    await walk(img.digest, img.mediaType, 0);
  }
}
