/**
 * Manifest and index documents: schema-checked parsing of untrusted bytes into a neutral
 * model. The raw bytes are always kept by callers; nothing here re-serialises a document.
 */
import { z } from '../util/zod.js';
import { isDigest } from './digest.js';
import { INDEX_TYPES, IMAGE_MANIFEST_TYPES, MediaType, SCHEMA1_TYPES, isIndexType, isImageManifestType } from './mediatypes.js';
import { InvalidManifestError, Schema1UnsupportedError, UnsupportedMediaTypeError } from '../util/errors.js';
import { PlatformSchema, type Platform } from './platform.js';

/** Largest manifest or index ferry will read (the distribution registry caps at 4 MiB too). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/**
 * Deepest nesting of arrays and objects ferry reads in any JSON document it is handed (an
 * index's descriptor's platform's features is 5 deep): checked on the bytes, before parsing,
 * so nothing downstream (schemas, JSON.stringify of a rewritten index) recurses on a hostile depth.
 */
export const MAX_JSON_DEPTH = 64;
/** Indexes nested in indexes, at most (what ferry walks, copies, verifies or serves). */
export const MAX_INDEX_DEPTH = 8;

/**
 * The nesting depth of JSON text, if it exceeds `max` (else undefined): one iterative pass
 * over the bytes, skipping strings. Malformed text is left for JSON.parse to refuse.
 */
export function jsonDepthOver(bytes: Uint8Array, max = MAX_JSON_DEPTH): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c)
        i++; // backslash: skip the escaped byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) return depth;
    } else if (b === 0x5d || b === 0x7d) depth--;
  }
  return undefined;
}

/** JSON.parse of untrusted bytes, refusing a nesting deeper than MAX_JSON_DEPTH first. Throws SyntaxError-like Errors. */
export function parseJsonBounded(bytes: Uint8Array, max = MAX_JSON_DEPTH): unknown {
  if (jsonDepthOver(bytes, max) !== undefined) throw new Error(`JSON nested more than ${max} levels deep`);
  return JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
}

const Annotations = z.record(z.string(), z.string());

export const DescriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: z.string(),
  size: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  urls: z.array(z.string()).nullish(),
  annotations: Annotations.nullish(),
  data: z.string().nullish(),
  artifactType: z.string().nullish(),
  platform: PlatformSchema.nullish(),
});
export type Descriptor = z.infer<typeof DescriptorSchema>;

const ImageManifestSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  config: DescriptorSchema,
  layers: z.array(DescriptorSchema).nullable(),
  subject: DescriptorSchema.optional(),
  annotations: Annotations.nullish(),
});

const IndexSchema = z.looseObject({
  schemaVersion: z.literal(2),
  mediaType: z.string().optional(),
  artifactType: z.string().optional(),
  manifests: z.array(DescriptorSchema),
  subject: DescriptorSchema.optional(),
  annotations: Annotations.nullish(),
});

export interface ImageManifest {
  kind: 'manifest';
  mediaType: string;
  artifactType: string | undefined;
  config: Descriptor;
  layers: Descriptor[];
  subject: Descriptor | undefined;
  annotations: Record<string, string>;
}

export interface ImageIndex {
  kind: 'index';
  mediaType: string;
  artifactType: string | undefined;
  manifests: Descriptor[];
  subject: Descriptor | undefined;
  annotations: Record<string, string>;
}

export type ManifestDocument = ImageManifest | ImageIndex;

function zodDetail(err: z.ZodError): string {
  return err.issues
    .slice(0, 3)
    .map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Parse JSON text that must be an object, with a size cap checked before parsing. */
export function parseJsonObject(bytes: Uint8Array, what: string, cap = MAX_MANIFEST_BYTES): Record<string, unknown> {
  if (bytes.byteLength > cap) {
    throw new InvalidManifestError(what, `document is ${bytes.byteLength} bytes, over the ${cap}-byte limit`);
  }
  let value: unknown;
  try {
    value = parseJsonBounded(bytes);
  } catch (err) {
    throw new InvalidManifestError(what, `not valid JSON (${(err as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new InvalidManifestError(what, 'not a JSON object');
  }
  return value as Record<string, unknown>;
}

/**
 * Decide the media type of a manifest document: its own `mediaType` field wins; else the
 * type it was served or described with; else its shape (OCI allows omitting mediaType).
 */
function detectMediaType(doc: Record<string, unknown>, declared: string | undefined, what: string): string {
  const own = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
  if (doc.schemaVersion === 1 || (own !== undefined && SCHEMA1_TYPES.includes(own) && own !== 'application/json')) {
    throw new Schema1UnsupportedError(what);
  }
  if (own !== undefined && own !== '') {
    if (declared !== undefined && isKnownManifestType(declared) && isKnownManifestType(own)) {
      if (isIndexType(declared) !== isIndexType(own)) {
        throw new InvalidManifestError(what, `described as ${declared} but the document says ${own}`);
      }
    }
    return own;
  }
  if (declared !== undefined && isKnownManifestType(declared)) return declared;
  if (Array.isArray(doc.manifests)) return MediaType.OciIndex;
  if ('config' in doc) return MediaType.OciManifest;
  if (declared !== undefined && SCHEMA1_TYPES.includes(declared) && declared !== 'application/json') {
    throw new Schema1UnsupportedError(what);
  }
  throw new InvalidManifestError(what, 'cannot tell what kind of document this is (no mediaType, manifests or config)');
}

function isKnownManifestType(mt: string): boolean {
  return INDEX_TYPES.includes(mt) || IMAGE_MANIFEST_TYPES.includes(mt);
}

/**
 * Parse manifest or index bytes. `declaredMediaType` is the Content-Type or descriptor type.
 * Throws Schema1UnsupportedError, UnsupportedMediaTypeError, InvalidManifestError.
 */
export function parseManifest(bytes: Uint8Array, declaredMediaType: string | undefined, what: string): ManifestDocument {
  const doc = parseJsonObject(bytes, what);
  if (doc.schemaVersion !== 1 && doc.schemaVersion !== 2) {
    throw new InvalidManifestError(what, `unsupported schemaVersion ${JSON.stringify(doc.schemaVersion)}`);
  }
  const mediaType = detectMediaType(doc, declaredMediaType, what);
  // A document with both shapes is ambiguous (CVE-2021-41190): one reader would take it for an
  // index, another for a manifest, and the part ferry did not walk would go unchecked.
  // containerd refuses such documents; so does ferry, whatever its media type says.
  const hasManifests = 'manifests' in doc;
  const hasImageParts = 'config' in doc || 'layers' in doc;
  if (hasManifests && hasImageParts) {
    throw new InvalidManifestError(
      what,
      `ambiguous document: it has both "manifests" (an index) and ${'config' in doc ? '"config"' : '"layers"'} (an image manifest)`,
    );
  }
  if (isIndexType(mediaType)) {
    const r = IndexSchema.safeParse(doc);
    if (!r.success) throw new InvalidManifestError(what, zodDetail(r.error));
    return {
      kind: 'index',
      mediaType,
      artifactType: r.data.artifactType,
      manifests: r.data.manifests,
      subject: r.data.subject,
      annotations: r.data.annotations ?? {},
    };
  }
  if (isImageManifestType(mediaType)) {
    const r = ImageManifestSchema.safeParse(doc);
    if (!r.success) throw new InvalidManifestError(what, zodDetail(r.error));
    return {
      kind: 'manifest',
      mediaType,
      artifactType: r.data.artifactType,
      config: r.data.config,
      layers: r.data.layers ?? [],
      subject: r.data.subject,
      annotations: r.data.annotations ?? {},
    };
  }
  throw new UnsupportedMediaTypeError(mediaType, what);
}

/** Descriptors a manifest needs present for the image to be complete (config, then layers). */
export function requiredBlobs(m: ImageManifest): Descriptor[] {
  return [m.config, ...m.layers].filter((d) => !isPlaceholderDescriptor(d));
}

/**
 * Artifacts in the wild carry `{digest: "", size: 0}` configs (containers/image fixtures);
 * there is nothing to copy for them, and nothing to verify.
 */
export function isPlaceholderDescriptor(d: Descriptor): boolean {
  return d.digest === '' && d.size === 0;
}

/** Checks that a descriptor names content ferry can fetch and verify: a sha256 digest. */
export function assertFetchable(d: Descriptor, what: string): void {
  if (!isDigest(d.digest)) {
    throw new InvalidManifestError(what, `descriptor for ${d.mediaType} has unsupported digest ${JSON.stringify(d.digest)}`);
  }
}

export type { Platform };
