/**
 * Lock files: what a plan selected, every image pinned to the digest it had when planned, so a
 * later pull, bundle or mirror carries exactly that (a tag that moved upstream is still carried
 * at its locked digest). JSON, written deterministically and atomically; its sha256 is what a
 * bundle records to say which plan it came from.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isDigest, type Digest } from '../oci/digest.js';
import { parseJsonBounded } from '../oci/manifest.js';
import { formatPlatform, parsePlatform } from '../oci/platform.js';
import { parseNormalizedNamed } from '../ref/reference.js';
import { errorMessage, UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { z } from '../util/zod.js';
import { PROFILE_LIMITS } from './schema.js';
import type { SetImage } from './resolve.js';

export const LOCK_KIND = 'ImageSetLock';
/** A lock of 100,000 images is about 40 MB; anything larger is not one ferry wrote. */
const MAX_LOCK_BYTES = 64 * 1024 * 1024;

const Sha256 = z.string().refine(isDigest, 'want sha256:<64 hex>');

export const LockSchema = z.strictObject({
  apiVersion: z.literal('ferry/v1'),
  kind: z.literal(LOCK_KIND),
  created: z.string().datetime({ offset: true }),
  /** The profiles planned, with the sha256 of each file's bytes (includes listed too). */
  profiles: z.array(z.strictObject({ name: z.string().max(256), file: z.string().max(4096), digest: Sha256 })).max(PROFILE_LIMITS.maxFiles),
  images: z
    .array(
      z.strictObject({
        /** The name the image is recorded as at the destination. */
        name: z.string().min(1).max(1024),
        /** What is fetched: repository[:tag]@digest. */
        ref: z.string().min(1).max(1024),
        digest: Sha256,
        mediaType: z.string().max(256),
        /** The platforms asked for; absent: every platform. */
        platforms: z.array(z.string().max(256)).max(64).optional(),
        /** Manifests and blobs of the image (what the plan found), informative. */
        size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
        from: z.array(z.string().max(4096)).max(PROFILE_LIMITS.maxFiles).optional(),
      }),
    )
    .max(PROFILE_LIMITS.maxImages),
});
export type Lock = z.infer<typeof LockSchema>;
export type LockedImage = Lock['images'][number];

export interface ReadLock {
  lock: Lock;
  /** sha256 of the lock file's bytes. */
  digest: Digest;
  images: SetImage[];
}

/** Serialise a lock: stable key order, two-space indent, one trailing newline. */
export function formatLock(lock: Lock): string {
  return `${JSON.stringify(lock, null, 2)}\n`;
}

export async function writeLock(file: string, lock: Lock): Promise<Digest> {
  const text = formatLock(lock);
  await writeFileAtomic(file, text);
  return `sha256:${createHash('sha256').update(text).digest('hex')}` as Digest;
}

function lockError(file: string, message: string, cause?: unknown): UsageError {
  return new UsageError(`lock file ${file}: ${message}`, {
    hint: 'write it again with ferry plan -p PROFILE -o LOCK',
    ...(cause === undefined ? {} : { cause }),
  });
}

export async function readLock(file: string): Promise<ReadLock> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw lockError(file, err.code === 'ENOENT' ? 'no such file' : errorMessage(err), err);
  });
  if (!st.isFile()) throw lockError(file, 'not a regular file');
  if (st.size > MAX_LOCK_BYTES) throw lockError(file, `${st.size} bytes, over the ${MAX_LOCK_BYTES}-byte limit`);
  const bytes = await readFile(file);
  let doc: unknown;
  try {
    doc = parseJsonBounded(bytes, 8);
  } catch (err) {
    throw lockError(file, `not JSON: ${errorMessage(err)}`, err);
  }
  const parsed = LockSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw lockError(file, `${issue.path.join('.') || '(document)'}: ${issue.message}`);
  }
  const lock = parsed.data;
  const seen = new Set<string>();
  const images = lock.images.map((img, i) => {
    const at = `images[${i}]`;
    let ref;
    try {
      ref = parseNormalizedNamed(img.ref);
    } catch (err) {
      throw lockError(file, `${at}.ref: ${errorMessage(err)}`);
    }
    // A lock pins: the digest fetched is the digest recorded, never a tag.
    if (ref.digest !== img.digest) throw lockError(file, `${at}.ref ${img.ref} is not pinned to ${img.digest}`);
    if (seen.has(img.name)) throw lockError(file, `${at}.name ${img.name} is listed twice`);
    seen.add(img.name);
    let platforms;
    try {
      platforms = img.platforms?.map(parsePlatform);
    } catch (err) {
      throw lockError(file, `${at}.platforms: ${errorMessage(err)}`);
    }
    return { ref, name: img.name, ...(platforms ? { platforms } : {}), from: img.from ?? [file] };
  });
  return { lock, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest, images };
}

/** The lock entry of a planned image. */
export function lockedImage(image: SetImage, root: { digest: Digest; mediaType: string }, size: number): LockedImage {
  const ref = image.ref;
  return {
    name: image.name,
    ref: `${ref.name}${ref.tag !== undefined ? `:${ref.tag}` : ''}@${root.digest}`,
    digest: root.digest,
    mediaType: root.mediaType,
    ...(image.platforms ? { platforms: image.platforms.map(formatPlatform) } : {}),
    size,
    from: image.from,
  };
}
