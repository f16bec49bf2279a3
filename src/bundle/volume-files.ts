/**
 * Volume files on disk: the `NAME.NNN.ferry` naming, a cheap read of a volume's head (its
 * ferry-bundle.json, the 2nd tar member, without touching the blobs), the stale volumes of an
 * earlier, larger run beside a new set, and which of the given volumes belong to which set.
 * Nothing here verifies a bundle: what it reads only decides what to say or what to remove.
 * Also the span words shared by load (multi-source.ts, source.ts) and inspect.
 */
import { open, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { TAR_BLOCK_SIZE, padded, parseHeader } from '../tar/format.js';
import { FerryError, UsageError, errorMessage } from '../util/errors.js';
import { LIMITS, MEMBER, parseBundleManifest, type BundleManifest } from './format.js';

/** `DIR/NAME.003.ferry` → its stem `DIR/NAME` and number 3; undefined for any other name. */
export function parseVolumeFileName(file: string): { stem: string; number: number } | undefined {
  const m = /^(.*)\.(\d{3,})\.ferry$/.exec(file);
  if (!m || m[1] === '' || m[1]!.endsWith('/')) return undefined;
  const number = Number(m[2]);
  return Number.isSafeInteger(number) && number >= 1 ? { stem: m[1]!, number } : undefined;
}

/** The stem of the volumes written for `-o output`: `DIR/NAME.ferry` (or `DIR/NAME`) → `DIR/NAME`. */
export function volumeStem(output: string): string {
  return output.endsWith('.ferry') ? output.slice(0, -'.ferry'.length) : output;
}

/** The file a volume of the stem's set has: `DIR/NAME` + 4 → `DIR/NAME.004.ferry`. */
export function volumeFileOf(stem: string, number: number): string {
  return `${stem}.${String(number).padStart(3, '0')}.ferry`;
}

/**
 * The ferry-bundle.json of a bundle file as its head holds it (oci-layout, then
 * ferry-bundle.json, as ferry writes them), parsed and schema-checked; undefined when the file
 * is not one (another tar, not a tar, unreadable, damaged head). Reads at most the head.
 */
export async function readBundleHead(file: string): Promise<BundleManifest | undefined> {
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    // Never opened unless a regular file: opening a FIFO (`<(…)`) would block or consume it.
    if (!(await stat(file)).isFile()) return undefined;
    fh = await open(file, 'r');
    if (!(await fh.stat()).isFile()) return undefined;
    const block = Buffer.alloc(TAR_BLOCK_SIZE);
    const header = async (offset: number): Promise<ReturnType<typeof parseHeader> | undefined> => {
      const { bytesRead } = await fh!.read(block, 0, TAR_BLOCK_SIZE, offset);
      if (bytesRead !== TAR_BLOCK_SIZE) return undefined;
      return parseHeader(block, offset, undefined);
    };
    const first = await header(0);
    if (first?.name !== MEMBER.layoutHeader || first.typeflag !== '0' || first.size > TAR_BLOCK_SIZE) return undefined;
    const at = TAR_BLOCK_SIZE + padded(first.size);
    const second = await header(at);
    if (second?.name !== MEMBER.manifest || second.typeflag !== '0' || second.size > LIMITS.maxJsonBytes) return undefined;
    const data = Buffer.alloc(second.size);
    const { bytesRead } = await fh.read(data, 0, second.size, at + TAR_BLOCK_SIZE);
    if (bytesRead !== second.size) return undefined;
    return parseBundleManifest(data, file);
  } catch {
    // Not a bundle ferry can read the head of: the caller decides what that means.
    return undefined;
  } finally {
    await fh?.close();
  }
}

/**
 * `NAME.NNN.ferry` files beside `output`'s volumes numbered above `count`: volumes of an
 * earlier, larger run that would otherwise sit among the new set as if they belonged to it.
 * Each must be a ferry volume (its head says so); any other file under that name is refused,
 * never removed (usage error, exit 2, before anything is written).
 */
export async function staleVolumes(output: string, count: number): Promise<string[]> {
  const abs = path.resolve(output);
  const stem = volumeStem(abs);
  const dir = path.dirname(stem);
  const base = path.basename(stem);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const stale: string[] = [];
  for (const name of names.sort()) {
    if (!name.startsWith(`${base}.`)) continue;
    const parsed = parseVolumeFileName(path.join(dir, name));
    if (!parsed || parsed.stem !== stem || parsed.number <= count) continue;
    const file = path.join(dir, name);
    const head = await readBundleHead(file);
    if (!head?.volume) {
      throw new UsageError(
        `${file} is named like volume ${parsed.number} of this set but is not a ferry volume; it is not removed, and no volume was written`,
        { hint: 'move or remove it yourself, or write the set under another -o NAME' },
      );
    }
    stale.push(file);
  }
  return stale;
}

/** Removes stale volumes (and their .sig files); returns the volume files removed. */
export async function removeStaleVolumes(files: readonly string[]): Promise<string[]> {
  for (const f of files) {
    await rm(`${f}.sig`, { force: true });
    await rm(f, { force: true });
  }
  return [...files];
}

/**
 * Given volume files, those under one NAME pattern whose heads name more than one set: one
 * warning per pattern, saying which file belongs to which set (volumes of an earlier run mixed
 * with the new set look alike by name). Loading them together stays legal.
 */
export function mixedSetWarnings(heads: ReadonlyArray<{ file: string; manifest: BundleManifest | undefined }>): string[] {
  const byStem = new Map<string, Map<string, string[]>>();
  for (const { file, manifest } of heads) {
    const parsed = parseVolumeFileName(file);
    if (!parsed || !manifest?.volume) continue;
    const sets = byStem.get(parsed.stem) ?? new Map<string, string[]>();
    byStem.set(parsed.stem, sets);
    const key = `${manifest.volume.setId} (${manifest.volume.count} volumes)`;
    sets.set(key, [...(sets.get(key) ?? []), path.basename(file)]);
  }
  const out: string[] = [];
  for (const [stem, sets] of byStem) {
    if (sets.size < 2) continue;
    const parts = [...sets].map(([set, files]) => `${files.join(', ')} of set ${set}`);
    out.push(`${path.basename(stem)}.NNN.ferry holds volumes of ${sets.size} different sets: ${parts.join('; ')}`);
  }
  return out;
}

/**
 * For one volume: the other `NAME.NNN.ferry` files beside it that are volumes of another set
 * (an earlier run's), as warnings.
 */
export async function siblingWarnings(file: string, manifest: BundleManifest): Promise<string[]> {
  const me = parseVolumeFileName(path.resolve(file));
  if (!me || !manifest.volume) return [];
  const dir = path.dirname(me.stem);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    return [`cannot list ${dir} for the other volumes of the set: ${errorMessage(err)}`];
  }
  const heads: Array<{ file: string; manifest: BundleManifest | undefined }> = [{ file: path.resolve(file), manifest }];
  for (const name of names.sort()) {
    const other = path.join(dir, name);
    const parsed = parseVolumeFileName(other);
    if (!parsed || parsed.stem !== me.stem || parsed.number === me.number) continue;
    heads.push({ file: other, manifest: await readBundleHead(other) });
  }
  return mixedSetWarnings(heads);
}

export type Span = NonNullable<NonNullable<BundleManifest['volume']>['spans']>[number];

/** The span this volume belongs to, if it is a volume of one. */
export function spanOf(man: BundleManifest | undefined): Span | undefined {
  const v = man?.volume;
  return v?.spans?.find((s) => s.volumes.includes(v.number));
}

/** `3–5` */
export function spanRange(volumes: readonly number[]): string {
  return `${volumes[0]}–${volumes.at(-1)}`;
}

/** What a volume file of the span is called, from a sibling's name (or "volume N" when renamed). */
export function fileOfVolume(sibling: string, n: number): string {
  const parsed = parseVolumeFileName(sibling);
  return parsed ? volumeFileOf(parsed.stem, n) : `volume ${n}`;
}

/** A volume of a span given without the others it needs. Exit 1: nothing is wrong with it. */
export class VolumeSpanIncompleteError extends FerryError {
  constructor(
    readonly file: string,
    readonly span: Span,
    readonly missing: string[],
  ) {
    super(
      'VOLUME_SPAN_INCOMPLETE',
      `${file}: image ${span.ref} spans volumes ${spanRange(span.volumes)} of its set and loads only with all of them; ` +
        `missing: ${missing.join(', ')}; nothing was loaded`,
      { hint: `give every volume of the span to one ferry load (e.g. ferry load ${missingPattern(file)} --to …)` },
    );
  }
}

function missingPattern(file: string): string {
  const parsed = parseVolumeFileName(file);
  return parsed ? `${parsed.stem}.*.ferry` : 'NAME.*.ferry';
}

/** Refuses a span volume opened alone (bundle/source.ts, before any image is handed out). */
export function refuseLoneSpanVolume(file: string, man: BundleManifest): void {
  const span = spanOf(man);
  if (!span || (man.volume?.spanBlobs ?? []).length === 0) return;
  const others = span.volumes.filter((n) => n !== man.volume!.number);
  throw new VolumeSpanIncompleteError(
    file,
    span,
    others.map((n) => fileOfVolume(file, n)),
  );
}
