/**
 * Writes a volume set: plans each image's blobs, packs them (volumes.ts), then writeBundle once
 * per volume, so every volume is a complete bundle written (and signed) as any other.
 */
import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { REF_NAME } from '../transports/oci/layout.js';
import { FerryError, NotFoundError } from '../util/errors.js';
import { planBundle, writeBundle, type BundleReport, type WriteBundleOptions } from './writer.js';
import { planVolumes, volumeFileName, type VolumeImageInput } from './volumes.js';

export interface VolumeSetReport {
  setId: string;
  volumeSize: number;
  volumes: Array<BundleReport & { number: number; fileSize: number }>;
  /** Content bytes of the set's unique blobs. */
  uniqueBytes: number;
  /** Content bytes carried in more than one volume (each extra copy counted). */
  duplicatedBytes: number;
}

export async function writeVolumeSet(opts: WriteBundleOptions & { volumeSize: number }): Promise<VolumeSetReport> {
  const { volumeSize, ...rest } = opts;
  let refs = opts.refs;
  if (refs === undefined) {
    const index = await opts.store.readIndex();
    refs = [...new Set(index.manifests.map((d) => d.annotations?.[REF_NAME]).filter((r): r is string => typeof r === 'string'))];
    if (refs.length === 0) throw new NotFoundError(`store ${opts.store.dir} holds no named images to bundle`);
  }
  const inputs: VolumeImageInput[] = [];
  for (const ref of [...new Set(refs)]) {
    opts.signal?.throwIfAborted();
    // Storage is decided per volume by writeBundle; here only the content sizes matter.
    const p = await planBundle(opts.store, [ref], 'none');
    inputs.push({ ref, digest: p.images[0]!.digest, blobs: new Map(p.blobs.map((b) => [b.digest, b.size])) });
  }
  const plan = planVolumes(inputs, volumeSize);
  const listing = plan.volumes.map((v) => ({ volume: v.number, refs: v.refs }));
  const written: VolumeSetReport['volumes'] = [];
  for (const v of plan.volumes) {
    const output = volumeFileName(path.resolve(opts.output), v.number);
    const report = await writeBundle({
      ...rest,
      refs: v.refs,
      output,
      volume: { setId: plan.setId, number: v.number, count: plan.volumes.length, images: listing },
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
  const carried = written.reduce((n, r) => n + r.totals.uniqueBytes, 0);
  return { setId: plan.setId, volumeSize, volumes: written, uniqueBytes: plan.uniqueBytes, duplicatedBytes: carried - plan.uniqueBytes };
}
