/**
 * Executing a copy plan into any ImageDestination (transports/types.ts), in the order the
 * contract requires: one blob scheduler for the whole run (each unique blob fetched once,
 * largest first, N at a time, or one at a time for a destination without parallelBlobs), then
 * per image its manifests (children first) and finally its name, so a name only ever points
 * at complete content; commit() once every image is settled.
 */
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { ImageDestination, ImageSource } from '../transports/types.js';
import { NotLoadedError, SizeMismatchError, errorMessage } from '../util/errors.js';
import type { EventSink } from './events.js';
import { scheduleBlobs } from './scheduler.js';
import type { CopyPlan, PlannedImage } from './plan.js';

export interface ExecuteOptions {
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** Name nothing if any blob fails its digest or size check (loading a bundle). */
  allOrNothing?: boolean;
  /** The verb for error context ("pulling", "loading"). */
  action?: string;
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

export interface CopyReport {
  images: ImageResult[];
  blobs: { total: number; fetched: number; skipped: number; failed: number; bytesFetched: number; bytesSkipped: number };
  durationMs: number;
}

export type ImageResultBase = Omit<ImageResult, 'status' | 'error' | 'errorCode' | 'hint' | 'cause'>;

/**
 * A stable key for what went wrong, so one failure shared by many images (a blob they all
 * need) is reported once: the error code and the first digest its message names (the blob's,
 * for blob failures: "blob sha256:… from …"). Undefined when the message names no digest (the
 * failure is the image's own: its messages differ anyway).
 */
export function causeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  const digest = /sha256:[a-f0-9]{64}/.exec(errorMessage(err))?.[0];
  return digest === undefined ? undefined : `${typeof code === 'string' ? code : 'ERROR'} ${digest}`;
}

/** What every destination reports about an image before it knows the outcome. */
export function resultBase(img: PlannedImage): ImageResultBase {
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

export async function executeCopy(
  plan: CopyPlan,
  sources: ImageSource[],
  dest: ImageDestination,
  opts: ExecuteOptions = {},
): Promise<CopyReport> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => {});
  const stats = { total: plan.blobs.length, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 };

  /** Images that needed at least one blob fetched (not skipped). */
  const fetched = new Set<string>();

  async function fetchBlob(planned: Descriptor, source: ImageSource, sizeConflict: boolean, images: string[]): Promise<void> {
    // With conflicting declared sizes, only the digest is trusted; images check sizes later.
    const desc = sizeConflict ? { ...planned, size: -1 } : planned;
    if (await dest.hasBlob(desc, opts.signal)) {
      stats.skipped++;
      stats.bytesSkipped += desc.size;
      emit({ kind: 'blob', state: 'skipped', digest: desc.digest, bytes: desc.size, total: desc.size });
      return;
    }
    emit({ kind: 'blob', state: 'start', digest: desc.digest, bytes: 0, total: desc.size });
    const what = `blob ${desc.digest} from ${source.description}`;
    const stream = source.openBlob(desc, {
      what,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onResume: (offset, reason) =>
        emit({ kind: 'retry', digest: desc.digest, reason: `resuming at byte ${offset}: ${reason}`, attempt: 1 }),
    });
    const written = await dest.putBlob(desc, stream, {
      what,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onProgress: (n) => emit({ kind: 'blob', state: 'progress', digest: desc.digest, bytes: n, total: desc.size }),
    });
    for (const name of images) fetched.add(name);
    stats.fetched++;
    stats.bytesFetched += written;
    emit({ kind: 'blob', state: 'done', digest: desc.digest, bytes: written, total: written });
  }

  const conflicts = new Set(plan.blobs.filter((b) => b.sizeConflict).map((b) => b.desc.digest));
  const schedule = scheduleBlobs(
    plan.blobs,
    (b) => b.desc,
    (b) => fetchBlob(b.desc, sources[b.sourceIndex]!, b.sizeConflict === true, b.images),
    {
      ...(!dest.capabilities.parallelBlobs ? { concurrency: 1 } : opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      onEvent: emit,
      stats,
    },
  );

  async function finishImage(img: PlannedImage): Promise<ImageResult> {
    const base = resultBase(img);
    try {
      for (const b of img.blobs) {
        await schedule.done(b.digest);
        if (conflicts.has(b.digest)) {
          const actual = await dest.storedBlobSize(b.digest);
          if (actual !== b.size) throw new SizeMismatchError(b.size, actual ?? -1, `blob ${b.digest} of ${img.name}`);
        }
      }
      if (opts.allOrNothing) {
        await schedule.finished;
        if (schedule.integrityFailure()) throw new NotLoadedError(schedule.integrityFailure());
      }
      for (const m of img.manifests) await dest.putManifest(m, opts.signal);
      const renamed = await dest.setName(
        { name: img.name, root: img.root, ...(img.originalDigest ? { originalDigest: img.originalDigest } : {}) },
        opts.signal,
      );
      emit({ kind: 'image', state: 'done', image: img.name, digest: img.root.digest });
      return { ...base, status: 'done', ...(renamed || fetched.has(img.name) ? {} : { skipped: true }) };
    } catch (err) {
      const failed = failedResult(base, err, `${opts.action ?? 'pulling'} ${img.name}`);
      emit({ kind: 'image', state: 'failed', image: img.name, error: failed.error! });
      return failed;
    }
  }

  const images = await Promise.all(plan.images.map(finishImage));
  await schedule.finished;
  await dest.commit(opts.signal);
  return { images, blobs: stats, durationMs: Date.now() - started };
}
