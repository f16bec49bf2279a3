/**
 * The ferry bundle format, version 1: constants and the schema of the bundle manifest
 * (`ferry-bundle.json`). docs/bundle-format.md is the normative description; this module is
 * its machine-checked form. Pure values, no I/O.
 */
import { z } from '../util/zod.js';
import { IntegrityError } from '../util/errors.js';
import { parseJsonBounded } from '../oci/manifest.js';
import { REFERENCE_MAX_LENGTH } from '../ref/reference.js';

export const BUNDLE_FORMAT_VERSION = 1;
/**
 * Version 2 is version 1 plus `imageSet` (the profiles and lock a bundle was planned from) and
 * `base` (a differential bundle's base and the blobs it relies on). A writer uses 2 only when it
 * records one of them, so other bundles stay readable by readers of version 1.
 */
export const BUNDLE_FORMAT_VERSION_IMAGE_SET = 2;
export const BUNDLE_FORMAT_VERSIONS: readonly number[] = [BUNDLE_FORMAT_VERSION, BUNDLE_FORMAT_VERSION_IMAGE_SET];
export const BUNDLE_MANIFEST_MEDIA_TYPE = 'application/vnd.ferry.bundle.manifest.v1+json';

/** Member names, in the order a writer emits them. */
export const MEMBER = {
  layoutHeader: 'oci-layout',
  manifest: 'ferry-bundle.json',
  signature: 'ferry-bundle.json.sig',
  index: 'index.json',
  checksums: 'SHA256SUMS',
} as const;

/** Where blobs stored as they are live (the OCI layout path). */
export function rawBlobPath(hex: string): string {
  return `blobs/sha256/${hex}`;
}
/** Where blobs that ferry compressed inside the bundle live (outside blobs/, so nothing mistakes them for content). */
export function zstdBlobPath(hex: string): string {
  return `ferry/zstd/sha256/${hex}.zst`;
}

export const RAW_BLOB_RE = /^blobs\/sha256\/([a-f0-9]{64})$/;
export const ZSTD_BLOB_RE = /^ferry\/zstd\/sha256\/([a-f0-9]{64})\.zst$/;

/** Caps a reader applies before trusting anything. */
export const LIMITS = {
  /** ferry-bundle.json, index.json, SHA256SUMS and every manifest/config. */
  maxJsonBytes: 64 * 1024 * 1024,
  maxManifestBytes: 4 * 1024 * 1024,
  /**
   * Members of a bundle (its blobs + 5). Reading a member costs memory (its index entry, the
   * checker's record of it): 100,000 keep verify and load of the largest bundle under 200 MB.
   */
  maxMembers: 100_000,
  maxNameLength: 4096,
  /** A zstd member may restore to at most its declared uncompressedSize; never more than this. */
  maxRestoredBytes: 1024 ** 4,
  maxSignatureBytes: 4096,
  /** Images ferry-bundle.json may list (each names a root; several may share one). */
  maxImages: 1_000_000,
  /**
   * An image reference: the longest the reference grammar allows (ref/reference.ts: a host
   * with a port, a 255-character repository path, a 128-character tag and a digest). Each ref
   * must also parse as a reference (verify checks it).
   */
  maxReferenceLength: REFERENCE_MAX_LENGTH,
  /** Media types (RFC 6838: 127 + "/" + 127). */
  maxMediaTypeLength: 255,
  /** Platforms listed per image, and the length of each ("os/arch/variant", with os.version). */
  maxPlatforms: 1024,
  maxPlatformLength: 256,
  /** Deepest JSON nesting ferry-bundle.json may have (it needs 3). */
  maxJsonDepth: 16,
} as const;

const Hex64 = z.string().regex(/^[a-f0-9]{64}$/, 'want 64 lower-case hex digits');
const Sha256Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'want sha256:<64 hex>');
const Size = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);

export const BundleMemberSchema = z.strictObject({
  /** Path inside the tar, exactly as written (no leading ./). */
  path: z.string().min(1).max(LIMITS.maxNameLength),
  /** Bytes of the member as stored in the tar. */
  size: Size,
  /** sha256 (hex) of the member as stored in the tar: what SHA256SUMS lists. */
  sha256: Hex64,
  /** raw: the bytes are the content; zstd: a zstd frame whose decompression is the content. */
  storage: z.enum(['raw', 'zstd']),
  /** For blobs: the OCI digest of the content (after restoring, for zstd members). */
  digest: Sha256Digest.optional(),
  /** For zstd members: the exact size of the restored content. */
  uncompressedSize: Size.optional(),
  /** For blobs: what the content is (as the manifests that reference it say), informative. */
  mediaType: z.string().max(LIMITS.maxMediaTypeLength).optional(),
});
export type BundleMember = z.infer<typeof BundleMemberSchema>;

export const BundleImageSchema = z.strictObject({
  /** Full normalised reference the image was bundled as, e.g. docker.io/library/nginx:1.27. */
  ref: z.string().min(1).max(LIMITS.maxReferenceLength),
  digest: Sha256Digest,
  mediaType: z.string().max(LIMITS.maxMediaTypeLength),
  /** Size of the root manifest or index. */
  size: Size,
  /** os/arch[/variant] of every image manifest reachable from the root. */
  platforms: z.array(z.string().max(LIMITS.maxPlatformLength)).max(LIMITS.maxPlatforms),
  /** Manifests plus blobs reachable from the root, each counted once for this image. */
  totalSize: Size,
  /** When --platform rewrote an index: the digest the source published. */
  originalDigest: Sha256Digest.optional(),
});
export type BundleImage = z.infer<typeof BundleImageSchema>;

export const BundleManifestSchema = z.strictObject({
  mediaType: z.literal(BUNDLE_MANIFEST_MEDIA_TYPE),
  formatVersion: z.union([z.literal(BUNDLE_FORMAT_VERSION), z.literal(BUNDLE_FORMAT_VERSION_IMAGE_SET)]),
  tool: z.strictObject({ name: z.string().max(256), version: z.string().max(256) }),
  created: z.string().datetime({ offset: true }),
  images: z.array(BundleImageSchema).max(LIMITS.maxImages),
  /** Every member of the tar except ferry-bundle.json and ferry-bundle.json.sig, in tar order. */
  members: z.array(BundleMemberSchema).max(LIMITS.maxMembers),
  /**
   * Where the set came from when it was planned from profiles or a lock: the profiles' names and
   * file digests, and the sha256 of the lock file, so the far side can tell which plan it is.
   */
  imageSet: z
    .strictObject({
      profiles: z.array(z.strictObject({ name: z.string().max(256), digest: Sha256Digest })).max(256),
      lock: z.strictObject({ digest: Sha256Digest }).optional(),
    })
    .optional(),
  /**
   * A differential bundle: what it was built against, and the blobs (layers) it relies on the
   * destination already holding instead of carrying them. Version 2.
   */
  base: z
    .strictObject({
      /** inventory: the far side's own report (confirmed); bundle: a previous bundle, assumed loaded. */
      kind: z.enum(['inventory', 'bundle']),
      /** sha256 of the inventory file's bytes, or of the base bundle's ferry-bundle.json. */
      digest: Sha256Digest,
      confirmed: z.boolean(),
      /** The inventory's location (the destination it describes). */
      location: z.string().max(4096).optional(),
      created: z.string().datetime({ offset: true }).optional(),
      blobs: z
        .array(z.strictObject({ digest: Sha256Digest, size: Size, mediaType: z.string().max(LIMITS.maxMediaTypeLength).optional() }))
        .max(LIMITS.maxMembers),
    })
    .optional(),
  /**
   * One volume of a set written with --volume-size: the set's id (sha256 of its sorted
   * `ref@digest` lines), this volume's number (1-based), the count, and which images every
   * volume of the set holds. Version 2.
   */
  volume: z
    .strictObject({
      setId: Sha256Digest,
      number: z.number().int().min(1).max(100_000),
      count: z.number().int().min(1).max(100_000),
      images: z
        .array(
          z.strictObject({
            volume: z.number().int().min(1).max(100_000),
            refs: z.array(z.string().min(1).max(LIMITS.maxReferenceLength)).max(LIMITS.maxImages),
          }),
        )
        .max(100_000),
      /**
       * Images of the set larger than one volume (--allow-spanning), each spread over a run of
       * consecutive volumes that load only together. Every volume of the set lists them all.
       */
      spans: z
        .array(
          z.strictObject({
            ref: z.string().min(1).max(LIMITS.maxReferenceLength),
            digest: Sha256Digest,
            volumes: z.array(z.number().int().min(1).max(100_000)).min(2).max(100_000),
          }),
        )
        .max(100_000)
        .optional(),
      /**
       * A volume of a span: the layers its image needs that other volumes of the span carry
       * instead (each in exactly one), and which volume that is. Like a base's blobs, they are
       * not members of this volume.
       */
      spanBlobs: z
        .array(
          z.strictObject({
            digest: Sha256Digest,
            size: Size,
            mediaType: z.string().max(LIMITS.maxMediaTypeLength).optional(),
            volume: z.number().int().min(1).max(100_000),
          }),
        )
        .max(LIMITS.maxMembers)
        .optional(),
    })
    .refine((v) => v.number <= v.count, 'number must be at most count')
    .refine(
      (v) => (v.spanBlobs ?? []).every((b) => b.volume !== v.number && b.volume <= v.count),
      'spanBlobs must name other volumes of the set',
    )
    .refine(
      (v) => (v.spans ?? []).every((s) => s.volumes.every((n, i) => n <= v.count && (i === 0 || n === s.volumes[i - 1]! + 1))),
      'spans must be runs of consecutive volumes of the set',
    )
    .optional(),
  totals: z.strictObject({
    images: Size,
    /** Unique blobs (manifests, configs, layers). */
    blobs: Size,
    /** Sum over images of their totalSize: what separate per-image archives would hold. */
    referencedBytes: Size,
    /** Sum of unique blob sizes (content bytes, after dedup, before in-bundle compression). */
    uniqueBytes: Size,
    /** Sum of member sizes as stored. */
    storedBytes: Size,
  }),
});
export type BundleManifest = z.infer<typeof BundleManifestSchema>;

export type SignatureAlgorithm = 'ecdsa-p256-sha256' | 'ed25519';

/**
 * Parse ferry-bundle.json bytes (already size-capped by the caller). Throws IntegrityError with
 * code MANIFEST_INVALID (not JSON, or not the v1 schema) or FORMAT_VERSION_UNSUPPORTED.
 */
export function parseBundleManifest(bytes: Uint8Array, label: string): BundleManifest {
  let doc: unknown;
  try {
    doc = parseJsonBounded(bytes, LIMITS.maxJsonDepth);
  } catch (err) {
    throw new IntegrityError('MANIFEST_INVALID', `${label}: ferry-bundle.json is not valid JSON: ${(err as Error).message}`);
  }
  const fv = (doc as { formatVersion?: unknown } | null)?.formatVersion;
  if (typeof fv !== 'number' || !BUNDLE_FORMAT_VERSIONS.includes(fv)) {
    throw new IntegrityError(
      'FORMAT_VERSION_UNSUPPORTED',
      `${label}: ferry-bundle.json has formatVersion ${JSON.stringify(fv)}; this ferry reads versions ${BUNDLE_FORMAT_VERSIONS.join(' and ')}`,
    );
  }
  const r = BundleManifestSchema.safeParse(doc);
  if (!r.success) {
    const detail = r.error.issues
      .slice(0, 3)
      .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
      .join('; ');
    throw new IntegrityError('MANIFEST_INVALID', `${label}: ferry-bundle.json does not match the format v${fv} schema: ${detail}`);
  }
  // Each version exactly: imageSet, base and volume are version 2 fields.
  if (r.data.formatVersion !== BUNDLE_FORMAT_VERSION_IMAGE_SET) {
    for (const field of ['imageSet', 'base', 'volume'] as const) {
      if (r.data[field] === undefined) continue;
      throw new IntegrityError(
        'MANIFEST_INVALID',
        `${label}: ferry-bundle.json does not match the format v${fv} schema: ${field}: unknown field`,
      );
    }
  }
  return r.data;
}
