/**
 * Inventories: what a far-side destination holds, written there by `ferry inventory` and carried
 * back so the next bundle carries only what is missing (`ferry bundle --base FILE`). One JSON
 * document, small (digests only: a 10,000-blob inventory is well under 2 MB), optionally signed
 * with the same keys as bundles (a detached `FILE.sig` over the exact bytes). Read with a schema
 * and limits: an inventory comes back across the air gap and is untrusted input.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { loadPrivateKey, loadPublicKey, signManifest, verifyManifestSignature } from '../bundle/sign.js';
import type { Digest } from '../oci/digest.js';
import { parseJsonBounded } from '../oci/manifest.js';
import { errorMessage, IntegrityError, UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsutil.js';
import { z } from '../util/zod.js';

export const INVENTORY_MEDIA_TYPE = 'application/vnd.ferry.inventory.v1+json';
export const INVENTORY_FORMAT_VERSION = 1;

export const INVENTORY_LIMITS = {
  /** Bytes of an inventory file (a million blobs is about 75 MB). */
  maxBytes: 128 * 1024 * 1024,
  maxBlobs: 1_000_000,
  maxImages: 1_000_000,
  maxNotes: 1000,
} as const;

const Sha256 = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'want sha256:<64 hex>');

export const InventorySchema = z.strictObject({
  mediaType: z.literal(INVENTORY_MEDIA_TYPE),
  formatVersion: z.literal(INVENTORY_FORMAT_VERSION),
  tool: z.strictObject({ name: z.string().max(256), version: z.string().max(256) }),
  created: z.string().datetime({ offset: true }),
  /** The destination, as `ferry load --to` names it: oci:DIR, docker://HOST[/PREFIX], containerd[:SOCKET], docker-daemon[:SOCKET]. */
  location: z.string().min(1).max(4096),
  kind: z.enum(['oci', 'registry', 'containerd', 'docker-daemon']),
  /** Named images there: the name as the destination records it, and its manifest or index digest. */
  images: z.array(z.strictObject({ name: z.string().min(1).max(1024), digest: Sha256 })).max(INVENTORY_LIMITS.maxImages),
  /**
   * Blobs (layers, configs, manifests) confirmed present there: a differential bundle leaves
   * these out. Sorted, each once.
   */
  blobs: z.array(Sha256).max(INVENTORY_LIMITS.maxBlobs),
  /** What could not be confirmed, in words (Docker Engine keeps no compressed layers, say). */
  notes: z.array(z.string().max(4096)).max(INVENTORY_LIMITS.maxNotes),
});
export type Inventory = z.infer<typeof InventorySchema>;

export interface ReadInventory {
  inventory: Inventory;
  /** sha256 of the file's bytes: what a differential bundle records as its base. */
  digest: Digest;
  /** valid: FILE.sig verified with the key given; none: no key given (or no signature and none required). */
  signature: 'valid' | 'none';
}

/** Serialise: fixed key order, blobs sorted, one trailing newline (same inventory, same bytes). */
export function formatInventory(inv: Inventory): Buffer {
  const sorted: Inventory = {
    ...inv,
    images: [...inv.images].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    blobs: [...new Set(inv.blobs)].sort(),
  };
  return Buffer.from(`${JSON.stringify(sorted, null, 1)}\n`, 'utf8');
}

/** Write FILE (and FILE.sig with a key) atomically; returns the file's digest. */
export async function writeInventory(file: string, inv: Inventory, signKey?: string): Promise<{ digest: Digest; signature?: string }> {
  const bytes = formatInventory(inv);
  const key = signKey !== undefined ? await loadPrivateKey(signKey) : undefined;
  await writeFileAtomic(file, bytes);
  let signature: string | undefined;
  if (key) {
    signature = `${file}.sig`;
    await writeFileAtomic(signature, signManifest(bytes, key));
  }
  return { digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest, ...(signature ? { signature } : {}) };
}

function invalid(file: string, message: string): IntegrityError {
  return new IntegrityError('INVENTORY_INVALID', `inventory ${file}: ${message}`);
}

/**
 * Read an inventory. With `key`, FILE.sig must exist and verify (exit 3 otherwise); without, a
 * signature present is not checked.
 */
export async function readInventory(file: string, opts: { key?: string } = {}): Promise<ReadInventory> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`inventory ${file}: ${err.code === 'ENOENT' ? 'no such file' : errorMessage(err)}`);
  });
  if (!st.isFile()) throw new UsageError(`inventory ${file}: not a regular file`);
  if (st.size > INVENTORY_LIMITS.maxBytes) throw invalid(file, `${st.size} bytes, over the ${INVENTORY_LIMITS.maxBytes}-byte limit`);
  const bytes = await readFile(file);
  let doc: unknown;
  try {
    doc = parseJsonBounded(bytes, 8);
  } catch (err) {
    throw invalid(file, `not JSON: ${errorMessage(err)}`);
  }
  const fv = (doc as { formatVersion?: unknown } | null)?.formatVersion;
  if (fv !== INVENTORY_FORMAT_VERSION) {
    throw new IntegrityError(
      'FORMAT_VERSION_UNSUPPORTED',
      `inventory ${file}: formatVersion ${JSON.stringify(fv)}; this ferry reads version ${INVENTORY_FORMAT_VERSION}`,
    );
  }
  const parsed = InventorySchema.safeParse(doc);
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw invalid(file, `${i.path.join('.') || '(root)'}: ${i.message}`);
  }
  let signature: ReadInventory['signature'] = 'none';
  if (opts.key !== undefined) {
    const key = await loadPublicKey(opts.key);
    const sig = await readFile(`${file}.sig`).catch(() => undefined);
    if (!sig) throw new IntegrityError('SIGNATURE_MISSING', `inventory ${file}: no signature (${file}.sig) to check with ${opts.key}`);
    if (sig.length > 1024 || !verifyManifestSignature(bytes, sig, key)) {
      throw new IntegrityError('SIGNATURE_INVALID', `inventory ${file}: the signature in ${file}.sig does not verify with ${opts.key}`);
    }
    signature = 'valid';
  }
  return { inventory: parsed.data, digest: `sha256:${createHash('sha256').update(bytes).digest('hex')}` as Digest, signature };
}
