/**
 * Writes a volume set: plans each image's blobs, packs them (volumes.ts), then writeBundle once
 * per volume, so every volume is a complete bundle written (and signed) as any other.
 */
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { REF_NAME } from '../transports/oci/layout.js';
import { FerryError, NotFoundError } from '../util/errors.js';
import { NothingToCarryError, planBundle, writeBundle, type BundleReport, type WriteBundleOptions } from './writer.js';
import { removeStaleVolumes, staleVolumes } from './volume-files.js';
import { planVolumes, volumeFileName, type VolumeImageInput } from './volumes.js';

export interface VolumeSetReport {
  setId: string;
  volumeSize: number;
  volumes: Array<BundleReport & { number: number; fileSize: number }>;
  /** Content bytes of the set's unique blobs. */
  uniqueBytes: number;
  /** Content bytes carried in more than one volume (each extra copy counted). */
  duplicatedBytes: number;
  /** Images spread over several volumes (--allow-spanning): those volumes load only together. */
  spans: Array<{ ref: string; digest: string; volumes: number[] }>;
  /** Volumes of an earlier, larger run numbered above this set's count, removed (with their .sig). */
  removedStale: string[];
  /** Differential volumes (--base): the base, the layers every volume leaves out, the images not carried at all. */
  base?: { record: NonNullable<BundleReport['base']>['record']; blobs: number; bytes: number; unchanged: string[] };
}

export async function writeVolumeSet(opts: WriteBundleOptions & { volumeSize: number; allowSpanning?: boolean }): Promise<VolumeSetReport> {
  const { volumeSize, allowSpanning: _allowSpanning, ...rest } = opts;
  let refs = opts.refs;
  if (refs === undefined) {
    const index = await opts.store.readIndex();
    refs = [...new Set(index.manifests.map((d) => d.annotations?.[REF_NAME]).filter((r): r is string => typeof r === 'string'))];
    if (refs.length === 0) throw new NotFoundError(`store ${opts.store.dir} holds no named images to bundle`);
  }
  // Differential volumes: an image the base holds under its name at its digest is not carried
  // (as in one differential bundle), and layers the base holds are not packed: each volume
  // leaves them out and relies on them, so only what is carried counts against SIZE.
  const base = opts.base;
  const unchanged: string[] = [];
  if (base && base.images.size > 0) {
    const index = await opts.store.readIndex();
    const digestOf = new Map<string, string>();
    for (const d of index.manifests) {
      const name = d.annotations?.[REF_NAME];
      if (name !== undefined && !digestOf.has(name)) digestOf.set(name, d.digest);
    }
    refs = refs.filter((r) => {
      const same = digestOf.get(r) !== undefined && base.images.get(r) === digestOf.get(r);
      if (same) unchanged.push(r);
      return !same;
    });
    if (refs.length === 0) {
      throw new NothingToCarryError(
        `every image (${unchanged.length}) is already at the far side under its name and digest (base ${base.record.digest}): nothing to carry; no volume written`,
      );
    }
  }
  const inputs: VolumeImageInput[] = [];
  const relied = new Map<string, number>();
  for (const ref of [...new Set(refs)]) {
    opts.signal?.throwIfAborted();
    // Storage is decided per volume by writeBundle; here only the content sizes matter.
    const p = await planBundle(opts.store, [ref], 'none');
    const carried = new Map<string, number>();
    const shared = new Set(p.blobs.filter((b) => b.role !== 'layer').map((b) => b.digest));
    for (const b of p.blobs) {
      // What writeBundle leaves out of a differential bundle: layers only (manifests and configs always travel).
      if (base && b.role === 'layer' && base.present.has(b.digest)) relied.set(b.digest, b.size);
      else carried.set(b.digest, b.size);
    }
    inputs.push({ ref, digest: p.images[0]!.digest, blobs: carried, shared });
  }
  const plan = planVolumes(inputs, volumeSize, { allowSpanning: opts.allowSpanning === true });
  const spans = plan.spans.map((sp) => ({ ref: sp.ref, digest: sp.digest, volumes: sp.volumes }));
  // Checked before anything is written: a file under a volume's name that is not a volume stops the run.
  const stale = await staleVolumes(opts.output, plan.volumes.length);
  const listing = plan.volumes.map((v) => ({ volume: v.number, refs: v.refs }));
  const written: VolumeSetReport['volumes'] = [];
  for (const v of plan.volumes) {
    const output = volumeFileName(path.resolve(opts.output), v.number);
    const span = plan.spans.find((sp) => sp.volumes.includes(v.number));
    const report = await writeBundle({
      ...rest,
      refs: v.refs,
      output,
      volume: { setId: plan.setId, number: v.number, count: plan.volumes.length, images: listing, ...(spans.length > 0 ? { spans } : {}) },
      ...(span ? { spanElsewhere: new Map([...span.home].filter(([, n]) => n !== v.number)) } : {}),
    });
    const fileSize = (await stat(output)).size;
    if (fileSize > volumeSize) {
      // Never left behind: a volume over SIZE would not fit the medium it was cut for.
      await rm(output, { force: true });
      await rm(`${output}.sig`, { force: true });
      throw new FerryError(
        'VOLUME_TOO_LARGE',
        `volume ${v.number} (${output}) came out at ${fileSize} bytes, over --volume-size ${volumeSize}; it was removed`,
        { hint: 'this is a bug in the size estimate; choose a somewhat smaller --volume-size meanwhile' },
      );
    }
    written.push({ ...report, number: v.number, fileSize });
  }
  // Only once the whole new set is in place: a failed run leaves the earlier set's volumes be.
  const removedStale = await removeStaleVolumes(stale);
  const carried = written.reduce((n, r) => n + r.totals.uniqueBytes, 0);
  return {
    setId: plan.setId,
    volumeSize,
    volumes: written,
    uniqueBytes: plan.uniqueBytes,
    duplicatedBytes: carried - plan.uniqueBytes,
    removedStale,
    spans,
    ...(base
      ? { base: { record: base.record, blobs: relied.size, bytes: [...relied.values()].reduce((n, s) => n + s, 0), unchanged } }
      : {}),
  };
}
