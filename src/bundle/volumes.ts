/**
 * Volumes (`ferry bundle --volume-size SIZE`): a set of images split, by whole images, into
 * bundles each at most SIZE, each a complete bundle on its own. Pure: parsing SIZE, packing
 * images into volumes, the set id. The writing is writeBundle's, once per volume.
 */
import { createHash } from 'node:crypto';
import { FerryError, UsageError } from '../util/errors.js';
import { volumeFileOf, volumeStem } from './volume-files.js';

const UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  K: 1e3,
  KB: 1e3,
  M: 1e6,
  MB: 1e6,
  G: 1e9,
  GB: 1e9,
  T: 1e12,
  TB: 1e12,
  KIB: 2 ** 10,
  MIB: 2 ** 20,
  GIB: 2 ** 30,
  TIB: 2 ** 40,
};

/** Smallest volume worth writing: below this the margin and the head members leave no room. */
export const MIN_VOLUME_SIZE = 2 * 1024 * 1024;

/**
 * `4.7G`, `700M`, `25GB`, `4.7GiB`, `512MiB`, `1048576`: K/M/G/T (with or without B) are
 * decimal (G = 10^9, as media are sold), KiB/MiB/GiB/TiB binary (GiB = 2^30). Case-insensitive.
 */
export function parseVolumeSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2]!.toUpperCase()] : undefined;
  if (!m || unit === undefined) {
    throw new UsageError(`--volume-size ${JSON.stringify(text)}: want a size such as 4.7G, 700M, 25GB, 4.7GiB or a number of bytes`, {
      hint: 'K/M/G/T (or KB/MB/GB/TB) are powers of 10 (G = 10^9); KiB/MiB/GiB/TiB are powers of 2 (GiB = 2^30)',
    });
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes < MIN_VOLUME_SIZE) {
    throw new UsageError(`--volume-size ${JSON.stringify(text)}: must be at least ${MIN_VOLUME_SIZE} bytes (2 MiB)`);
  }
  return bytes;
}

/** An image larger than one volume (with --volume-size and no spanning). Exit 2. */
export class VolumeImageTooLargeError extends FerryError {
  override readonly exitCode = 2 as const;
  constructor(
    readonly ref: string,
    readonly bytes: number,
    readonly volumeSize: number,
  ) {
    super(
      'VOLUME_IMAGE_TOO_LARGE',
      `image ${ref} needs about ${bytes} bytes in a volume, more than --volume-size ${volumeSize} allows (after the volume's own overhead)`,
      { hint: 'choose a larger --volume-size, or give --allow-spanning to spread the image over several volumes that load only together' },
    );
  }
}

/** With --allow-spanning: one layer (or the manifests and config every span volume carries) larger than a volume. Exit 2. */
export class VolumeLayerTooLargeError extends FerryError {
  override readonly exitCode = 2 as const;
  constructor(ref: string, what: string, bytes: number, volumeSize: number) {
    super(
      'VOLUME_LAYER_TOO_LARGE',
      `image ${ref}: ${what} needs about ${bytes} bytes in a volume, more than --volume-size ${volumeSize} allows; a blob is never split, even with --allow-spanning`,
      { hint: 'choose a larger --volume-size' },
    );
  }
}

export interface VolumeImageInput {
  ref: string;
  digest: string;
  /** Every blob the image needs (manifests, configs, layers), digest → size. */
  blobs: ReadonlyMap<string, number>;
  /**
   * Blobs every volume of a span must carry when the image spans volumes (its manifests and
   * configs: a volume verifies its image graph alone). Only layers are spread.
   */
  shared?: ReadonlySet<string>;
}

/** An image spread over consecutive volumes (--allow-spanning). */
export interface PlannedSpan {
  ref: string;
  digest: string;
  volumes: number[];
  /** Each spread layer → the one volume of the span that carries it. */
  home: Map<string, number>;
}

export interface PlannedVolume {
  /** 1-based. */
  number: number;
  refs: string[];
  /** Unique blobs of this volume, digest → size. */
  blobs: Map<string, number>;
  /** Content bytes of its unique blobs. */
  bytes: number;
  /** Estimated file size (content, tar headers and padding, head members). */
  estimate: number;
  /** A volume of a span: the spanning image (the only image it holds). */
  span?: { ref: string; digest: string };
}

export interface VolumePlan {
  volumes: PlannedVolume[];
  setId: string;
  /** Content bytes of the set's unique blobs. */
  uniqueBytes: number;
  /** Bytes carried more than once: a blob two volumes need is in both. */
  duplicatedBytes: number;
  /** Images spread over several volumes (--allow-spanning). */
  spans: PlannedSpan[];
}

const TAR_BLOCK = 512;
/** Per blob: its tar header, plus its entries in ferry-bundle.json and SHA256SUMS (generous). */
const PER_BLOB_OVERHEAD = TAR_BLOCK + 512 + 256;
/** Per image: its entries in index.json and ferry-bundle.json, and in every volume's list. */
const PER_IMAGE_OVERHEAD = 2048;
/** Per layer of a spanning image: its entry in a span volume's `spanBlobs` (or the `spans` list). */
const SPAN_ENTRY_OVERHEAD = 320;
/** The head members (oci-layout, signature, end of archive, padding to a 10 KiB record). */
const FIXED_OVERHEAD = 64 * 1024;

function padded(size: number): number {
  return Math.ceil(size / TAR_BLOCK) * TAR_BLOCK;
}

/** Bytes left for content in a volume of `volumeSize`: a margin of 1 MiB + 1% stays free. */
export function volumeCapacity(volumeSize: number): number {
  return volumeSize - (1024 * 1024 + Math.ceil(volumeSize / 100)) - FIXED_OVERHEAD;
}

/** Set id: sha256 of the sorted `ref@digest` lines of every image in the set. Deterministic. */
export function volumeSetId(images: ReadonlyArray<{ ref: string; digest: string }>): string {
  const lines = images.map((i) => `${i.ref}@${i.digest}\n`).sort();
  return `sha256:${createHash('sha256').update(lines.join('')).digest('hex')}`;
}

/**
 * Packs whole images into volumes. Images that share blobs are made adjacent (ordered by the
 * digest of their largest blob, then by name), then each goes to the first volume it fits in,
 * counting what it adds there: a blob the volume already holds costs nothing.
 */
export function planVolumes(images: readonly VolumeImageInput[], volumeSize: number, opts: { allowSpanning?: boolean } = {}): VolumePlan {
  const capacity = volumeCapacity(volumeSize);
  const keyOf = (i: VolumeImageInput): string => {
    let best: [string, number] | undefined;
    for (const [d, s] of i.blobs) if (!best || s > best[1] || (s === best[1] && d < best[0])) best = [d, s];
    return best?.[0] ?? '';
  };
  const ordered = [...images]
    .map((i) => ({ i, key: keyOf(i) }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i.ref < b.i.ref ? -1 : a.i.ref > b.i.ref ? 1 : 0))
    .map((x) => x.i);
  const volumes: PlannedVolume[] = [];
  const added = (v: PlannedVolume | undefined, img: VolumeImageInput): number => {
    let n = PER_IMAGE_OVERHEAD;
    for (const [d, s] of img.blobs) if (!v?.blobs.has(d)) n += padded(s) + PER_BLOB_OVERHEAD;
    return n;
  };
  const spanning: VolumeImageInput[] = [];
  for (const img of ordered) {
    const alone = added(undefined, img);
    if (alone > capacity && !opts.allowSpanning) throw new VolumeImageTooLargeError(img.ref, alone, volumeSize);
    if (alone > capacity) {
      // Spread after the whole images, so each span is a run of volumes of its own.
      spanning.push(img);
      continue;
    }
    let target = volumes.find((v) => v.estimate + added(v, img) <= capacity);
    if (!target) {
      target = { number: volumes.length + 1, refs: [], blobs: new Map(), bytes: 0, estimate: 0 };
      volumes.push(target);
    }
    target.estimate += added(target, img);
    target.refs.push(img.ref);
    for (const [d, s] of img.blobs) {
      if (target.blobs.has(d)) continue;
      target.blobs.set(d, s);
      target.bytes += s;
    }
  }
  const spans = spanning.map((img) => planSpan(img, volumes, capacity, volumeSize));
  const unique = new Map<string, number>();
  for (const img of images) for (const [d, s] of img.blobs) unique.set(d, s);
  let uniqueBytes = 0;
  for (const s of unique.values()) uniqueBytes += s;
  const carried = volumes.reduce((n, v) => n + v.bytes, 0);
  return { volumes, setId: volumeSetId(images), uniqueBytes, duplicatedBytes: carried - uniqueBytes, spans };
}

/**
 * Spreads one image over new volumes appended to `volumes`: every volume of the span carries
 * the image's shared blobs (manifests, configs) and lists the layers the others carry; the
 * layers go, largest first, each to the first volume of the span with room (each exactly once).
 */
function planSpan(img: VolumeImageInput, volumes: PlannedVolume[], capacity: number, volumeSize: number): PlannedSpan {
  const shared = [...img.blobs].filter(([d]) => img.shared?.has(d));
  const layers = [...img.blobs]
    .filter(([d]) => !img.shared?.has(d))
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  let fixed = PER_IMAGE_OVERHEAD + layers.length * SPAN_ENTRY_OVERHEAD;
  for (const [, size] of shared) fixed += padded(size) + PER_BLOB_OVERHEAD;
  if (fixed > capacity) throw new VolumeLayerTooLargeError(img.ref, 'its manifests, config and list of layers', fixed, volumeSize);
  const own: PlannedVolume[] = [];
  const home = new Map<string, number>();
  for (const [digest, size] of layers) {
    const cost = padded(size) + PER_BLOB_OVERHEAD;
    if (fixed + cost > capacity) throw new VolumeLayerTooLargeError(img.ref, `layer ${digest}`, fixed + cost, volumeSize);
    let target = own.find((v) => v.estimate + cost <= capacity);
    if (!target) {
      target = {
        number: volumes.length + 1,
        refs: [img.ref],
        blobs: new Map(shared),
        bytes: 0,
        estimate: fixed,
        span: { ref: img.ref, digest: img.digest },
      };
      for (const [, s] of shared) target.bytes += s;
      volumes.push(target);
      own.push(target);
    }
    target.estimate += cost;
    target.blobs.set(digest, size);
    target.bytes += size;
    home.set(digest, target.number);
  }
  // At least two: the image did not fit one volume whole, and a span volume holds less than that.
  return { ref: img.ref, digest: img.digest, volumes: own.map((v) => v.number), home };
}

/** `NAME.ferry` → `NAME.003.ferry` (a name without .ferry gets `.003.ferry` appended). */
export function volumeFileName(output: string, number: number): string {
  return volumeFileOf(volumeStem(output), number);
}
