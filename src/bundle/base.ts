/**
 * The base of a differential bundle (`ferry bundle --base FILE`): what the destination already
 * holds. An inventory (`ferry inventory` on the far side: confirmed by the far side itself), or,
 * when none came back, a previous bundle or its `ferry inspect --json` output (assumed: the
 * sender believes it was loaded). Only blobs named here are left out of the new bundle.
 */
import { open, readFile, stat } from 'node:fs/promises';
import { parseJsonBounded } from '../oci/manifest.js';
import { readInventory, INVENTORY_MEDIA_TYPE } from '../inventory/format.js';
import { errorMessage, IntegrityError, UsageError } from '../util/errors.js';
import { z } from '../util/zod.js';
import type { BundleManifest } from './format.js';
import { verifyBundle } from './verify.js';

export type BaseRecord = Omit<NonNullable<BundleManifest['base']>, 'blobs'>;

export interface BundleBase {
  record: BaseRecord;
  /** Digests the destination holds (or is assumed to). */
  present: ReadonlySet<string>;
  /**
   * Names the destination holds, with their digests: an image whose name is there at the same
   * digest is unchanged and not carried again. (A registry inventory names images under the
   * destination's host and prefix, so its images are matched by blobs only.)
   */
  images: ReadonlyMap<string, string>;
}

const Sha256 = z.string().regex(/^sha256:[a-f0-9]{64}$/);
/** What `ferry inspect --json` of a bundle prints, as far as a base needs it. */
const InspectJsonSchema = z.looseObject({
  kind: z.literal('bundle'),
  manifestDigest: Sha256,
  created: z.string().datetime({ offset: true }).optional(),
  images: z.array(z.looseObject({ ref: z.string().max(4096), digest: Sha256 })).max(2_000_000),
  blobDigests: z.array(Sha256).max(2_000_000),
  baseDigests: z.array(Sha256).max(2_000_000).optional(),
});

const MAX_INSPECT_JSON_BYTES = 256 * 1024 * 1024;

async function firstByte(file: string): Promise<number | undefined> {
  const fh = await open(file, 'r');
  try {
    const b = Buffer.alloc(1);
    const { bytesRead } = await fh.read(b, 0, 1, 0);
    return bytesRead === 1 ? b[0] : undefined;
  } finally {
    await fh.close();
  }
}

export async function readBase(file: string, opts: { key?: string } = {}): Promise<BundleBase> {
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`--base ${file}: ${err.code === 'ENOENT' ? 'no such file' : errorMessage(err)}`);
  });
  if (!st.isFile()) throw new UsageError(`--base ${file}: not a regular file`);
  if ((await firstByte(file)) === 0x7b /* { */) {
    // JSON: an inventory, or inspect --json output of a bundle.
    if (st.size > MAX_INSPECT_JSON_BYTES) throw new UsageError(`--base ${file}: ${st.size} bytes of JSON, more than any base ferry writes`);
    const text = await readFile(file);
    let doc: unknown;
    try {
      doc = parseJsonBounded(text, 16);
    } catch (err) {
      throw new IntegrityError('BASE_INVALID', `--base ${file}: not JSON: ${errorMessage(err)}`);
    }
    const lines = text.toString('utf8').trim().split('\n');
    if ((doc as { mediaType?: unknown } | null)?.mediaType === INVENTORY_MEDIA_TYPE) {
      const read = await readInventory(file, opts.key !== undefined ? { key: opts.key } : {});
      const inv = read.inventory;
      return {
        record: { kind: 'inventory', digest: read.digest, confirmed: true, location: inv.location, created: inv.created },
        present: new Set(inv.blobs),
        images: new Map(inv.images.map((i) => [i.name, i.digest])),
      };
    }
    if (opts.key !== undefined) throw new UsageError(`--base-key checks an inventory's signature; ${file} is not an inventory`);
    // inspect --json prints one document (its last line when piped with others).
    const last = lines.length > 1 ? JSON.parse(lines.at(-1)!) : doc;
    const parsed = InspectJsonSchema.safeParse(last);
    if (!parsed.success) {
      throw new IntegrityError(
        'BASE_INVALID',
        `--base ${file}: neither an inventory (ferry inventory -o) nor ferry inspect --json output of a bundle`,
      );
    }
    const v = parsed.data;
    return {
      record: { kind: 'bundle', digest: v.manifestDigest, confirmed: false, ...(v.created ? { created: v.created } : {}) },
      present: new Set([...v.blobDigests, ...(v.baseDigests ?? [])]),
      images: new Map(v.images.map((i) => [i.ref, i.digest])),
    };
  }
  if (opts.key !== undefined) throw new UsageError(`--base-key checks an inventory's signature; ${file} is not an inventory`);
  // A previous bundle: its head is checked as verify checks it (blob content is not needed).
  const checked = await verifyBundle(file, { deferBlobContent: true });
  if (!checked.manifest || !checked.manifestDigest) {
    throw new IntegrityError(
      'BASE_INVALID',
      `--base ${file}: not a bundle ferry can read (${checked.problems[0]?.message ?? 'no ferry-bundle.json'})`,
    );
  }
  const man = checked.manifest;
  return {
    record: { kind: 'bundle', digest: checked.manifestDigest, confirmed: false, created: man.created },
    present: bundleBlobDigests(man),
    images: new Map(man.images.map((i) => [i.ref, i.digest])),
  };
}

/** Every blob a bundle puts at a destination that loads it: what it carries, and what its own base had to hold. */
export function bundleBlobDigests(man: BundleManifest): Set<string> {
  const out = new Set<string>();
  for (const m of man.members) if (m.digest) out.add(m.digest);
  for (const b of man.base?.blobs ?? []) out.add(b.digest);
  return out;
}
