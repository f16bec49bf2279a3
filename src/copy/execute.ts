/**
 * The one executor: a copy plan into any ImageDestination (transports/types.ts), in the order
 * the contract requires. First the destination says what is left per image (prepare). Then,
 * for a destination that stores as it goes (OCI layout, registry): one blob scheduler for the
 * whole run (each unique blob once, largest first, N at a time, or one at a time without
 * parallelBlobs), per image its manifests (children first) and finally its name, so a name
 * only ever points at complete content; commit() once every image is settled. For one ordered
 * stream (Docker Engine, containerd): per run, its blobs one after another, its manifests, its
 * names, commit(); a failed blob breaks the stream and fails every image of the run.
 */
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestVerifier } from '../oci/digest.js';
import type { BlobOpener, DestinationName, ImageDestination, ImageSource, ManifestBytes, PreparedImage } from '../transports/types.js';
import type { DestinationReport, LoadBlobStats, LoadedImage } from './report.js';
import { AbortedError, FerryError, IntegrityError, NotLoadedError, SizeMismatchError, errorMessage } from '../util/errors.js';
import type { EventSink } from './events.js';
import { eachLimit, scheduleBlobs } from './scheduler.js';
import type { CopyPlan, PlannedBlob, PlannedImage } from './plan.js';

export interface ExecuteOptions {
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** Name nothing if any blob fails its digest or size check (loading a bundle). */
  allOrNothing?: boolean;
  /** The verb for error context ("pulling", "loading"). */
  action?: string;
  /**
   * Blobs the sources do not carry and the destination must already hold (a differential
   * bundle's base, OpenedImages.external): confirmed before anything is written; if any is
   * missing the run names nothing and fails with BASE_MISSING.
   */
  external?: ReadonlySet<string>;
}

/** A differential bundle's base is not at the destination: nothing was written. */
export class BaseMissingError extends FerryError {
  readonly missing: ReadonlyArray<{ digest: string; images: string[] }>;
  constructor(into: string, missing: ReadonlyArray<{ digest: string; images: string[] }>) {
    const shown = missing
      .slice(0, 20)
      .map((m) => `  ${m.digest} (${m.images.slice(0, 3).join(', ')}${m.images.length > 3 ? `, and ${m.images.length - 3} more` : ''})`)
      .join('\n');
    super(
      'BASE_MISSING',
      `${into} lacks ${missing.length} blob${missing.length === 1 ? '' : 's'} this differential bundle relies on; nothing was loaded:\n${shown}${missing.length > 20 ? `\n  and ${missing.length - 20} more` : ''}`,
      {
        hint: 'load the bundle it was built on first (or a full bundle), or build a new one against an inventory of this destination (ferry inventory)',
      },
    );
    this.missing = missing;
  }
}

export interface ImageResult {
  name: string;
  source: string;
  digest: Digest;
  mediaType: string;
  originalDigest?: Digest;
  platforms: string[];
  totalBytes: number;
  status: 'done' | 'failed';
  error?: string;
  errorCode?: string;
  /** What the user can do about the failure, when known. */
  hint?: string;
  /** A stable key of the failure's cause (see causeOf): images that failed of one cause share it. */
  cause?: string;
  /** The destination already had the image: nothing was transferred or renamed. */
  skipped?: boolean;
}

type ImageResultBase = Omit<ImageResult, 'status' | 'error' | 'errorCode' | 'hint' | 'cause'>;

/**
 * A stable key for what went wrong, so one failure shared by many images (a blob they all
 * need) is reported once: the error code and the first digest its message names (the blob's,
 * for blob failures: "blob sha256:… from …"). Undefined when the message names no digest (the
 * failure is the image's own: its messages differ anyway).
 */
export function causeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  const digest = /sha256:[a-f0-9]{64}/.exec(errorMessage(err))?.[0];
  if (digest !== undefined) return `${typeof code === 'string' ? code : 'ERROR'} ${digest}`;
  // A registry refusing the credentials (401, 403) refuses every image of it alike: one cause
  // per code and registry host, whatever image asked.
  if (code === 'UNAUTHORIZED' || code === 'DENIED') {
    const host = registryHostOf(err);
    if (host !== undefined) return `${code} ${host}`;
  }
  return undefined;
}

/** The host of the first request URL along an error's cause chain (RegistryError carries one). */
function registryHostOf(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e !== null && typeof e === 'object'; depth++) {
    const url = (e as { url?: unknown }).url;
    if (typeof url === 'string') {
      try {
        return new URL(url).host;
      } catch {
        return undefined;
      }
    }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** What every destination reports about an image before it knows the outcome. */
function resultBase(img: PlannedImage): ImageResultBase {
  return {
    name: img.name,
    source: img.source,
    digest: img.root.digest,
    mediaType: img.root.mediaType,
    ...(img.originalDigest ? { originalDigest: img.originalDigest } : {}),
    platforms: img.platforms,
    totalBytes: img.totalBytes,
  };
}

/**
 * A failed result: the error's message (prefixed with `context` unless it already names the
 * image), code and hint. The error is not modified: one error may be reported for many images.
 */
export function failedResult<B extends ImageResultBase>(base: B, err: unknown, context: string): B & ImageResult {
  const code = (err as { code?: unknown } | null)?.code;
  const hint = (err as { hint?: unknown } | null)?.hint;
  const message = errorMessage(err);
  const cause = causeOf(err);
  return {
    ...base,
    status: 'failed',
    error: message.includes(base.name) || message.startsWith(context) ? message : `${context}: ${message}`,
    ...(typeof code === 'string' ? { errorCode: code } : {}),
    ...(typeof hint === 'string' ? { hint } : {}),
    ...(cause !== undefined ? { cause } : {}),
  };
}

/** One blob the destination needs: the plan's entry and the images (plan indexes) that need it. */
interface NeededBlob {
  planned: PlannedBlob;
  /** The descriptor to put: size -1 when images declare different sizes (only the digest is trusted). */
  desc: Descriptor;
  images: number[];
}

export async function executeCopy(
  plan: CopyPlan,
  sources: ImageSource[],
  dest: ImageDestination,
  opts: ExecuteOptions = {},
): Promise<DestinationReport> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => {});
  const signal = opts.signal;
  const stats: LoadBlobStats = { total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 };
  if (dest.capabilities.mount) stats.mounted = 0;
  const action = opts.action ?? 'pulling';

  // 0. What is left to do, per image.
  const prepared: PreparedImage[] = dest.prepare
    ? await dest.prepare(plan, {
        ...(signal ? { signal } : {}),
        onEvent: emit,
        ...(opts.allOrNothing ? { allOrNothing: true } : {}),
        ...(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
      })
    : plan.images.map(() => ({ state: 'copy' as const }));
  if (prepared.length !== plan.images.length) {
    throw new FerryError('INTERNAL', `${dest.description} prepared ${prepared.length} images of ${plan.images.length}`);
  }
  const blobsOf = (i: number): readonly Descriptor[] => prepared[i]!.blobs ?? plan.images[i]!.blobs;
  const manifestsOf = (i: number): readonly ManifestBytes[] => {
    const p = prepared[i]!;
    return (p.state === 'copy' && p.manifests) || plan.images[i]!.manifests;
  };

  // The blobs to send, each once with the images that need it; those only images that are
  // already complete need are counted skipped.
  const byDigest = new Map(plan.blobs.map((b) => [b.desc.digest, b]));
  const needed = new Map<string, NeededBlob>();
  const present = new Map<string, Descriptor>();
  prepared.forEach((p, i) => {
    if (p.state === 'failed') return;
    for (const d of blobsOf(i)) {
      if (p.state !== 'copy') {
        present.set(d.digest, d);
        continue;
      }
      let n = needed.get(d.digest);
      if (!n) {
        const planned = byDigest.get(d.digest);
        if (!planned) throw new FerryError('PLAN_INCOMPLETE', `${plan.images[i]!.name}: the plan lacks blob ${d.digest}`);
        n = { planned, desc: planned.sizeConflict ? { ...planned.desc, size: -1 } : planned.desc, images: [] };
        needed.set(d.digest, n);
      }
      if (n.images[n.images.length - 1] !== i) n.images.push(i);
    }
  });
  if (opts.external?.size) await confirmExternal(needed, present);
  for (const d of needed.keys()) present.delete(d);
  stats.total = needed.size + present.size;
  for (const d of present.values()) {
    stats.skipped++;
    stats.bytesSkipped += d.size;
    emit({ kind: 'blob', state: 'skipped', digest: d.digest, bytes: d.size, total: d.size });
  }

  /**
   * The blobs no source carries must be at the destination already, for every image that needs
   * them (a registry: in each image's repository). Checked before anything is written.
   */
  async function confirmExternal(need: Map<string, NeededBlob>, have: Map<string, Descriptor>): Promise<void> {
    const external = [...need.values()].filter((n) => opts.external!.has(n.desc.digest));
    const missing: Array<{ digest: string; images: string[] }> = [];
    const held = dest.holding
      ? await dest.holding(
          external.map((n) => n.desc.digest),
          signal,
        )
      : new Set<string>();
    await eachLimit(external, opts.concurrency ?? 8, async (n) => {
      let ok = held.has(n.desc.digest) || (await dest.hasBlob(n.desc, { images: n.images, ...(signal ? { signal } : {}) }));
      if (!ok) {
        ok = true;
        for (const i of n.images) {
          if ((await dest.storedBlobSize(n.desc.digest, i, signal)) !== n.desc.size) {
            ok = false;
            break;
          }
        }
      }
      if (ok) {
        need.delete(n.desc.digest);
        have.set(n.desc.digest, n.desc);
      } else {
        missing.push({ digest: n.desc.digest, images: n.images.map((i) => plan.images[i]!.name) });
      }
    });
    if (missing.length > 0) {
      missing.sort((a, b) => (a.digest < b.digest ? -1 : 1));
      throw new BaseMissingError(dest.into ?? dest.description, missing);
    }
  }

  /** Images (plan indexes) that needed at least one blob sent. */
  const sentFor = new Set<number>();

  function opener(n: NeededBlob): { open: BlobOpener; what: string } {
    const source = sources[n.planned.sourceIndex];
    if (!source)
      throw new FerryError('PLAN_INVALID', `blob ${n.desc.digest}: the plan names source #${n.planned.sourceIndex}, which was not given`);
    const what = `blob ${n.desc.digest} from ${source.description}`;
    return {
      what,
      open: (start) =>
        source.openBlob(n.desc, {
          what,
          start,
          ...(signal ? { signal } : {}),
          onResume: (offset, reason) =>
            emit({ kind: 'retry', digest: n.desc.digest, reason: `resuming at byte ${offset}: ${reason}`, attempt: 1 }),
        }),
    };
  }

  async function sendBlob(n: NeededBlob): Promise<void> {
    const { desc } = n;
    if (await dest.hasBlob(desc, { images: n.images, ...(signal ? { signal } : {}) })) {
      stats.skipped++;
      stats.bytesSkipped += Math.max(0, desc.size);
      emit({ kind: 'blob', state: 'skipped', digest: desc.digest, bytes: desc.size, total: desc.size });
      return;
    }
    const { open, what } = opener(n);
    // A destination that knows its blobs transfers this one: it starts now. One that does not
    // (a registry HEADs per repository inside putBlob) starts when bytes first flow, so a blob
    // it finds present everywhere is only ever "skipped".
    let started = false;
    const start = (): void => {
      if (started) return;
      started = true;
      emit({ kind: 'blob', state: 'start', digest: desc.digest, bytes: 0, total: desc.size });
    };
    if (dest.capabilities.knowsBlobs) start();
    const r = await dest.putBlob(desc, open, {
      what,
      images: n.images,
      ...(signal ? { signal } : {}),
      onProgress: (b) => {
        start();
        emit({ kind: 'blob', state: 'progress', digest: desc.digest, bytes: b, total: desc.size });
      },
    });
    if (r.mounts) stats.mounted = (stats.mounted ?? 0) + r.mounts;
    if (r.sent) {
      start();
      for (const i of n.images) sentFor.add(i);
      stats.fetched++;
      stats.bytesFetched += r.bytes;
      emit({ kind: 'blob', state: 'done', digest: desc.digest, bytes: r.bytes, total: r.bytes });
    } else {
      stats.skipped++;
      stats.bytesSkipped += r.bytes;
      emit({ kind: 'blob', state: 'skipped', digest: desc.digest, bytes: r.bytes, total: r.bytes });
    }
  }

  const results: LoadedImage[] = new Array(plan.images.length);
  const nameOf = (i: number): DestinationName => {
    const img = plan.images[i]!;
    return { index: i, name: img.name, root: img.root, ...(img.originalDigest ? { originalDigest: img.originalDigest } : {}) };
  };
  const succeed = (i: number, skipped: boolean): void => {
    const img = plan.images[i]!;
    const p = prepared[i]!;
    results[i] = {
      ...resultBase(img),
      ...(p.platforms ? { platforms: p.platforms } : {}),
      status: 'done',
      destination: p.destination ?? dest.nameOf(img),
      destinationDigest: p.destinationDigest ?? img.root.digest,
      ...(skipped ? { skipped: true } : {}),
    };
    emit({ kind: 'image', state: 'done', image: img.name, digest: img.root.digest });
  };
  const fail = (i: number, err: unknown): void => {
    const img = plan.images[i]!;
    const p = prepared[i]!;
    const context = `${action} ${img.name}${dest.into ? ` into ${dest.into}` : ''}`;
    const r = failedResult({ ...resultBase(img), ...(p.platforms ? { platforms: p.platforms } : {}) }, err, context);
    results[i] = r;
    emit({ kind: 'image', state: 'failed', image: img.name, error: r.error! });
  };
  prepared.forEach((p, i) => {
    if (p.state === 'failed') fail(i, p.error);
    else if (p.state === 'done') succeed(i, true);
  });

  if (dest.capabilities.orderedStream) {
    await executeOrdered();
  } else {
    await executeParallel();
  }
  return { images: results, blobs: stats, durationMs: Date.now() - started };

  async function executeParallel(): Promise<void> {
    const schedule = scheduleBlobs([...needed.values()], (n) => n.desc, sendBlob, {
      ...(!dest.capabilities.parallelBlobs ? { concurrency: 1 } : opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
      ...(signal ? { signal } : {}),
      onEvent: emit,
      stats,
    });

    async function finishImage(i: number): Promise<void> {
      const p = prepared[i]!;
      if (p.state === 'failed' || p.state === 'done') return;
      const img = plan.images[i]!;
      try {
        if (p.state === 'copy') {
          for (const b of blobsOf(i)) {
            // A blob not scheduled is held by the destination already (a differential base).
            if (!needed.has(b.digest)) continue;
            await schedule.done(b.digest);
            if (needed.get(b.digest)?.planned.sizeConflict) {
              const actual = await dest.storedBlobSize(b.digest, i, signal);
              if (actual !== b.size) throw new SizeMismatchError(b.size, actual ?? -1, `blob ${b.digest} of ${img.name}`);
            }
          }
        }
        if (opts.allOrNothing) {
          // Nothing is named, not even a name moved onto content already there, until every
          // blob of the run has passed its check.
          await schedule.finished;
          if (schedule.integrityFailure()) throw new NotLoadedError(schedule.integrityFailure());
        }
        if (p.state === 'copy') for (const m of manifestsOf(i)) await dest.putManifest(m, { image: i, ...(signal ? { signal } : {}) });
        const renamed = await dest.setName(nameOf(i), signal);
        succeed(i, !(renamed || sentFor.has(i)));
      } catch (err) {
        fail(i, err);
      }
    }

    await Promise.all(plan.images.map((_, i) => finishImage(i)));
    await schedule.finished;
    applyCommit(await dest.commit(signal));
  }

  function applyCommit(r: Awaited<ReturnType<ImageDestination['commit']>>): void {
    for (const [i, err] of r?.failed ?? []) fail(i, err);
  }

  async function executeOrdered(): Promise<void> {
    const runs = new Map<number, number[]>();
    prepared.forEach((p, i) => {
      if (p.state !== 'copy') return;
      const r = p.run ?? 0;
      const list = runs.get(r) ?? [];
      list.push(i);
      runs.set(r, list);
    });
    const order = [...runs.keys()].sort((a, b) => a - b).map((r) => runs.get(r)!);
    let integrityFailure: unknown;

    // All or nothing across runs: a run names its images when it ends, before the next has
    // sent a byte. So every blob only a later run sends is read and verified first.
    if (opts.allOrNothing && order.length > 1) {
      const first = new Set(order[0]!.flatMap((i) => blobsOf(i).map((b) => b.digest)));
      const later = new Map<string, NeededBlob>();
      for (const run of order.slice(1))
        for (const i of run)
          for (const b of blobsOf(i)) {
            // Not needed: held by the destination already (a differential bundle's base).
            const n = needed.get(b.digest);
            if (n && !first.has(b.digest)) later.set(b.digest, n);
          }
      for (const n of later.values()) {
        try {
          await verifyOnly(n);
        } catch (err) {
          if (signal?.aborted) throw err;
          stats.failed++;
          emit({ kind: 'blob', state: 'failed', digest: n.desc.digest, bytes: 0, total: n.desc.size, error: errorMessage(err) });
          const uses = new Set(n.images);
          for (const run of order)
            for (const i of run) fail(i, uses.has(i) || !(err instanceof IntegrityError) ? err : new NotLoadedError(err));
          integrityFailure = err;
          break;
        }
      }
    }

    const sent = new Set<string>();
    for (const run of order) {
      if (integrityFailure !== undefined) {
        for (const i of run) if (!results[i]) fail(i, new NotLoadedError(integrityFailure));
        continue;
      }
      // Blobs once per run (a blob two runs need is sent in each: a stream holds all it names).
      const blobs = new Map<string, NeededBlob>();
      for (const i of run)
        for (const b of blobsOf(i)) {
          const n = needed.get(b.digest);
          if (n) blobs.set(b.digest, n);
        }
      let broken: unknown;
      for (const n of blobs.values()) {
        if (signal?.aborted) throw abortReason(signal);
        try {
          const counted = sent.has(n.desc.digest);
          const before = { fetched: stats.fetched, bytes: stats.bytesFetched };
          await sendBlob(n);
          if (counted) {
            // Sent again for this run; counted once.
            stats.fetched = before.fetched;
            stats.bytesFetched = before.bytes;
          }
          sent.add(n.desc.digest);
        } catch (err) {
          if (signal?.aborted) throw err;
          stats.failed++;
          emit({ kind: 'blob', state: 'failed', digest: n.desc.digest, bytes: 0, total: n.desc.size, error: errorMessage(err) });
          if (err instanceof IntegrityError) integrityFailure ??= err;
          broken = err;
          break;
        }
      }
      if (broken === undefined) {
        try {
          const manifests = new Map<string, { m: ManifestBytes; image: number }>();
          for (const i of run) for (const m of manifestsOf(i)) if (!manifests.has(m.digest)) manifests.set(m.digest, { m, image: i });
          for (const { m, image } of manifests.values()) await dest.putManifest(m, { image, ...(signal ? { signal } : {}) });
          for (const i of run) await dest.setName(nameOf(i), signal);
        } catch (err) {
          if (signal?.aborted) throw err;
          broken = err;
        }
      }
      // A broken stream was killed by the destination; commit() cleans up and names nothing.
      const committed = await dest.commit(signal);
      if (signal?.aborted) throw abortReason(signal);
      for (const i of run) {
        if (broken !== undefined) fail(i, broken);
        else if (committed?.failed.has(i)) fail(i, committed.failed.get(i));
        else succeed(i, false);
      }
    }

    // Images whose content is there under another name: named last, and (all or nothing) not
    // at all after a blob failed its check.
    const renames = prepared.flatMap((p, i) => (p.state === 'name' ? [i] : []));
    if (renames.length === 0) return;
    const asked: number[] = [];
    for (const i of renames) {
      try {
        if (opts.allOrNothing && integrityFailure !== undefined) throw new NotLoadedError(integrityFailure);
        await dest.setName(nameOf(i), signal);
        asked.push(i);
      } catch (err) {
        if (signal?.aborted) throw err;
        fail(i, err);
      }
    }
    const committed = await dest.commit(signal);
    for (const i of asked) {
      if (committed?.failed.has(i)) fail(i, committed.failed.get(i));
      else succeed(i, true);
    }
  }

  /** Read a blob from its source through a DigestVerifier into nothing. */
  async function verifyOnly(n: NeededBlob): Promise<void> {
    const { open, what } = opener(n);
    const verifier = new DigestVerifier({ digest: n.desc.digest, size: n.desc.size, what });
    await pipeline(open(0), verifier, new Writable({ write: (_c: Buffer, _e, cb) => cb() }));
  }
}

/** What an aborted run throws: the signal's reason when it is an error, else AbortedError. */
function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new AbortedError();
}
