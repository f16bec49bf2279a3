/**
 * `ferry plan`: what a run would carry, resolved (tag lists, manifests; no blobs) and compared
 * with a store, as plain data; optionally written as a lock file. Nothing else is written.
 */
import path from 'node:path';
import type { BundleBase } from '../bundle/base.js';
import type { EventSink } from '../copy/events.js';
import { planCopy, type CopyItem, type PlannedImage } from '../copy/plan.js';
import { shardPlan, type ShardSpec } from '../copy/shard.js';
import { eachLimit } from '../copy/scheduler.js';
import type { Digest } from '../oci/digest.js';
import { formatPlatform } from '../oci/platform.js';
import { LOCK_KIND, lockedImage, writeLock, type Lock } from '../profile/lock.js';
import { plainSetImage, type SetImage } from '../profile/resolve.js';
import { RegistryClient } from '../transports/registry/client.js';
import { RegistrySource } from '../transports/registry/source.js';
import { fileSize } from '../util/fsutil.js';
import { UsageError, wrap } from '../util/errors.js';
import { resolveImageSet, type ImageSetInput, type ImageSetOrigin } from './image-set.js';
import { bindStaticCredential, DEFAULT_CONCURRENCY, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';
import { collectFailures, type Failure } from './report.js';

export interface PlanOptions extends RegistryAccessOptions {
  input: ImageSetInput;
  /** Compare with this store (read only; a store that does not exist holds nothing). */
  store: string;
  /** Write a lock file of what was selected. */
  lockFile?: string;
  /** Write the lock even when some entries failed (of what resolved). */
  keepGoing?: boolean;
  /** Also compare with what a far side holds (bundle --base: an inventory or a previous bundle). */
  base?: BundleBase;
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** Report only this shard of the plan (what `--shard K/N` would carry); no lock is written then. */
  shard?: ShardSpec;
}

export interface PlanImage {
  name: string;
  /** What is fetched (tag, or repository@digest with a lock). */
  ref: string;
  /** The root the source published (before any platform selection). */
  digest: Digest;
  mediaType: string;
  /** Set when platforms were selected from an index: the digest the destination will hold. */
  selectedDigest?: Digest;
  platforms: string[];
  /** Manifests and blobs of the image, shared ones counted in each image. */
  size: number;
  /** Of those, the bytes the store does not hold. */
  newBytes: number;
  /** With a base: the layer bytes a differential bundle would carry (what the base lacks). */
  baseNewBytes?: number;
  from: string[];
}

export interface PlanReport {
  store: string;
  origin?: ImageSetOrigin;
  images: PlanImage[];
  totals: {
    images: number;
    /** Unique blobs and manifests. */
    blobs: number;
    bytes: number;
    newBlobs: number;
    newBytes: number;
    /** With a base: unique bytes a differential bundle would carry (manifests and configs always, layers the base lacks). */
    baseNewBytes?: number;
  };
  failures: Failure[];
  lock?: { file: string; digest: Digest };
  shard?: ShardSpec;
}

export async function plan(opts: PlanOptions): Promise<PlanReport> {
  const set = await resolveImageSet(opts.input, opts);
  let images: SetImage[];
  try {
    images = set.images ?? opts.input.refs.map((r) => plainSetImage(r, opts.input.platforms));
  } catch (err) {
    throw wrap(err, 'ferry plan reads registry references');
  }
  if (images.length === 0 && set.failures.length === 0)
    throw new UsageError('nothing to plan: give -p PROFILE, --lock LOCK, references or -f LIST');
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const clients = new Map<string, RegistryClient>();
  const clientOpts = registryClientOptions(opts, bindStaticCredential(opts, [...new Set(images.map((i) => i.ref.domain))]));
  const clientFor = (host: string): RegistryClient => {
    let c = clients.get(host);
    if (!c) {
      c = new RegistryClient(host, clientOpts);
      clients.set(host, c);
    }
    return c;
  };
  const store = path.resolve(opts.store);
  const blobPath = (digest: string): string => path.join(store, 'blobs', ...digest.split(':'));
  try {
    const items: CopyItem[] = images.map((i) => ({
      source: new RegistrySource(clientFor(i.ref.domain), i.ref),
      name: i.name,
      ...(i.platforms ? { platforms: i.platforms } : {}),
    }));
    const whole = await planCopy(items, {
      concurrency,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    // A shard is previewed as its run would carry it (copy/shard.ts): its images, their blobs.
    const copyPlan = opts.shard ? shardPlan(whole, opts.shard) : whole;
    if (opts.shard && opts.lockFile !== undefined) throw new UsageError('-o writes the lock of the whole plan; leave out --shard');
    // What the store holds, asked once per unique blob or manifest (a stat each).
    const sizes = new Map<string, number>();
    for (const b of copyPlan.blobs) sizes.set(b.desc.digest, b.desc.size);
    for (const img of copyPlan.images) for (const m of img.manifests) sizes.set(m.digest, m.bytes.length);
    const present = new Set<string>();
    await eachLimit([...sizes], 32, async ([digest, size]) => {
      if ((await fileSize(blobPath(digest))) === size) present.add(digest);
    });
    const byName = new Map(images.map((i) => [i.name, i]));
    const base = opts.base;
    const planned: PlanImage[] = copyPlan.images.map((img) => planImage(img, byName.get(img.name)!, present, base));
    let baseNewBytes = 0;
    if (base) {
      // What bundle --base carries: the images not already at the far side (same name, same
      // digest), each unique blob once, minus the layers the base holds (manifests and configs
      // always travel).
      const carried = new Map<string, { size: number; layer: boolean }>();
      for (const img of copyPlan.images) {
        if (unchangedAtBase(img, base)) continue;
        const configs = configsOf(img);
        for (const b of img.blobs) if (!carried.has(b.digest)) carried.set(b.digest, { size: b.size, layer: !configs.has(b.digest) });
        for (const m of img.manifests) carried.set(m.digest, { size: m.bytes.length, layer: false });
      }
      for (const [digest, c] of carried) if (!(c.layer && base.present.has(digest))) baseNewBytes += c.size;
    }
    let newBlobs = 0;
    let newBytes = 0;
    let bytes = 0;
    for (const [digest, size] of sizes) {
      bytes += size;
      if (!present.has(digest)) {
        newBlobs++;
        newBytes += size;
      }
    }
    const setFailures = (opts.shard && opts.shard.index !== 1 ? [] : set.failures).map((f) => ({
      name: f.name,
      source: f.where,
      error: f.error,
    }));
    const failures = collectFailures([...setFailures, ...copyPlan.failures], []);
    const report: PlanReport = {
      store,
      ...(set.origin ? { origin: set.origin } : {}),
      images: planned,
      totals: { images: planned.length, blobs: sizes.size, bytes, newBlobs, newBytes, ...(base ? { baseNewBytes } : {}) },
      failures,
      ...(opts.shard ? { shard: opts.shard } : {}),
    };
    if (opts.lockFile !== undefined && (failures.length === 0 || opts.keepGoing)) {
      const lock: Lock = {
        apiVersion: 'ferry/v1',
        kind: LOCK_KIND,
        created: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
        profiles: set.origin?.profiles.map((p) => ({ name: p.name, file: p.file, digest: p.digest })) ?? [],
        images: copyPlan.images.map((img) =>
          lockedImage(
            byName.get(img.name)!,
            { digest: img.originalDigest ?? img.root.digest, mediaType: img.root.mediaType },
            img.totalBytes,
          ),
        ),
      };
      report.lock = { file: opts.lockFile, digest: await writeLock(opts.lockFile, lock) };
    }
    return report;
  } finally {
    await Promise.all([...clients.values()].map((c) => c.close()));
  }
}

/** The configs of an image's manifests (its blobs list configs and layers together); a differential bundle always carries them. */
function configsOf(img: PlannedImage): Set<string> {
  const out = new Set<string>();
  for (const m of img.manifests) {
    const c = configDigestOf(m.bytes);
    if (c !== undefined) out.add(c);
  }
  return out;
}

function configDigestOf(bytes: Buffer): string | undefined {
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as { config?: { digest?: unknown } };
    return typeof doc.config?.digest === 'string' ? doc.config.digest : undefined;
  } catch {
    return undefined;
  }
}

/** At the far side already under its name at its digest: a differential bundle leaves it out. */
function unchangedAtBase(img: PlannedImage, base: BundleBase): boolean {
  return base.images.get(img.name) === (img.originalDigest ?? img.root.digest);
}

function planImage(img: PlannedImage, image: SetImage, present: ReadonlySet<string>, base: BundleBase | undefined): PlanImage {
  let newBytes = 0;
  let baseNewBytes = 0;
  const unchanged = base !== undefined && unchangedAtBase(img, base);
  const configs = base ? configsOf(img) : new Set<string>();
  for (const b of img.blobs) {
    if (!present.has(b.digest)) newBytes += b.size;
    if (!unchanged && (!base?.present.has(b.digest) || configs.has(b.digest))) baseNewBytes += b.size;
  }
  for (const m of img.manifests) {
    if (!present.has(m.digest)) newBytes += m.bytes.length;
    if (!unchanged) baseNewBytes += m.bytes.length;
  }
  const published = img.originalDigest ?? img.root.digest;
  return {
    name: img.name,
    ref: image.ref.toString(),
    digest: published,
    mediaType: img.root.mediaType,
    ...(img.originalDigest ? { selectedDigest: img.root.digest } : {}),
    platforms: img.platforms.length ? img.platforms : (image.platforms?.map(formatPlatform) ?? []),
    size: img.totalBytes,
    newBytes,
    ...(base ? { baseNewBytes } : {}),
    from: image.from,
  };
}
