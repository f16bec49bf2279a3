/**
 * Drawing copy progress: listr2 tasks (one per image, bytes and rate) on a TTY, plain
 * lines otherwise, newline-delimited JSON with --json; beyond a screenful of images, a
 * summary (images done/total, blobs, bytes, rate, failures) instead of a line per image.
 * Only the CLI imports listr2.
 */
import type { CopyEvent } from '../copy/events.js';
import { formatBytes, formatRate, shortDigest } from './format.js';
import { safeEvent, writeErr, writeJsonLine } from './terminal.js';

export type OutputMode = 'tty' | 'plain' | 'json';

export interface ProgressView {
  onEvent(e: CopyEvent): void;
  /** Resolves when the renderer has drawn its last frame. */
  finish(): Promise<void>;
}

/** Narrower than this, the task view cannot lay a line out; plain lines are used instead. */
const MIN_TTY_COLUMNS = 40;

/**
 * --json, the task view on a terminal, or plain lines. A terminal that reports no width (a
 * pseudo-terminal nobody sized, as `script` makes, reports 0 columns) gets plain lines: the
 * task view would wrap every character onto a line of its own.
 */
export function outputMode(
  json: boolean,
  stream: { isTTY?: boolean; columns?: number } = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): OutputMode {
  if (json) return 'json';
  if (!stream.isTTY || env.CI) return 'plain';
  return (stream.columns ?? 0) >= MIN_TTY_COLUMNS ? 'tty' : 'plain';
}

export const jsonLine = writeJsonLine;

/** What is known of one blob: bytes so far and its size (0 until a transfer or skip says). */
interface BlobState {
  bytes: number;
  total: number;
}

/** One image's view of the shared blob table: its own blob digests, summed when drawn. */
class ImageTracker {
  readonly digests: string[] = [];
  started = 0;
  constructor(
    readonly name: string,
    private readonly table: Map<string, BlobState>,
  ) {}
  bytes(): number {
    let n = 0;
    for (const d of this.digests) n += this.table.get(d)?.bytes ?? 0;
    return n;
  }
  total(): number {
    let n = 0;
    for (const d of this.digests) n += this.table.get(d)?.total ?? 0;
    return n;
  }
}

/** Up to this many images, one line (or task) per image; beyond it, a summary that updates. */
export const SCREENFUL = 25;

/** The counters a summary line is drawn from (whole run, each blob counted once). */
export interface RunTotals {
  images: number;
  imagesDone: number;
  imagesFailed: number;
  blobsFetched: number;
  blobsSkipped: number;
  blobsFailed: number;
  /** Bytes transferred so far (skipped blobs not included). */
  bytes: number;
  started: number;
}

/** `images 120/2000 done, 3 failed · blobs 240 fetched, 1 already present · 12.3 MB, 4.10 MB/s`. */
export function summaryLine(t: RunTotals, now: number): string {
  const failed = t.imagesFailed ? `, ${t.imagesFailed} failed` : '';
  const blobFailed = t.blobsFailed ? `, ${t.blobsFailed} failed` : '';
  return (
    `images ${t.imagesDone}/${t.images} done${failed} · blobs ${t.blobsFetched} fetched, ${t.blobsSkipped} already present${blobFailed} · ` +
    `${formatBytes(t.bytes)}, ${formatRate(t.bytes, now - t.started)}`
  );
}

/**
 * The state every view draws from. Each event costs O(1) (plus the image's blob list once,
 * when it resolves): a base layer shared by thousands of images is one entry of the blob
 * table, not a list of trackers walked on every progress event.
 */
export abstract class TrackingView implements ProgressView {
  protected readonly images = new Map<string, ImageTracker>();
  protected readonly blobs = new Map<string, BlobState>();
  protected readonly totals: RunTotals = {
    images: 0,
    imagesDone: 0,
    imagesFailed: 0,
    blobsFetched: 0,
    blobsSkipped: 0,
    blobsFailed: 0,
    bytes: 0,
    started: Date.now(),
  };

  /** More images than fit on a screen: draw the summary, not a line per image. */
  protected get summarized(): boolean {
    return this.totals.images > SCREENFUL;
  }

  protected tracker(name: string): ImageTracker {
    let t = this.images.get(name);
    if (!t) {
      t = new ImageTracker(name, this.blobs);
      this.images.set(name, t);
    }
    return t;
  }

  private blob(digest: string): BlobState {
    let b = this.blobs.get(digest);
    if (!b) {
      b = { bytes: 0, total: 0 };
      this.blobs.set(digest, b);
    }
    return b;
  }

  onEvent(event: CopyEvent): void {
    // Names, messages and platforms come from untrusted media: drawn only once made safe.
    const e = safeEvent(event);
    if (e.kind === 'images') {
      this.totals.images = e.names.length;
      this.totals.started = Date.now();
    } else if (e.kind === 'image') {
      if (e.state === 'resolved') {
        const t = this.tracker(e.image);
        t.started = Date.now();
        for (const d of e.blobs ?? []) {
          t.digests.push(d);
          this.blob(d);
        }
      } else if (e.state === 'done') this.totals.imagesDone++;
      else if (e.state === 'failed') this.totals.imagesFailed++;
    } else if (e.kind === 'blob') {
      const b = this.blob(e.digest);
      b.total = e.total;
      if (e.state === 'progress' || e.state === 'done') {
        this.totals.bytes += Math.max(0, e.bytes - b.bytes);
        b.bytes = e.bytes;
      }
      if (e.state === 'skipped') b.bytes = e.bytes;
      if (e.state === 'done') this.totals.blobsFetched++;
      else if (e.state === 'skipped') this.totals.blobsSkipped++;
      else if (e.state === 'failed') this.totals.blobsFailed++;
    }
    this.draw(e);
  }

  protected abstract draw(e: CopyEvent): void;
  abstract finish(): Promise<void>;
}

export interface PlainViewOptions {
  /** Where lines go (default stderr). */
  write?: (line: string) => void;
  /** With more than a screenful of images: a summary line this often (default 5 s). */
  summaryEveryMs?: number;
  /** Up to a screenful of images: while blobs are being fetched, a progress line this often (default 5 s). */
  progressEveryMs?: number;
}

/** `progress: blobs 3/10 done, 1 already present · 12.3 MB of 40.0 MB, 4.10 MB/s` (each blob counted once). */
export function progressLine(t: RunTotals, blobs: number, totalBytes: number, now: number): string {
  const finished = t.blobsFetched + t.blobsSkipped + t.blobsFailed;
  const present = t.blobsSkipped ? `, ${t.blobsSkipped} already present` : '';
  const failed = t.blobsFailed ? `, ${t.blobsFailed} failed` : '';
  const of = totalBytes > 0 ? ` of ${formatBytes(totalBytes)}` : '';
  return `progress: blobs ${finished}/${blobs} done${present}${failed} · ${formatBytes(t.bytes)}${of}, ${formatRate(t.bytes, now - t.started)}`;
}

/**
 * One line per meaningful step, for logs and pipes. With more images than fit on a screen, no
 * line per image or blob: a summary line at intervals, plus failures, retries and warnings as
 * they happen (the final report names the images a failure affects). Up to a screenful, a
 * progress line (blobs done, bytes, rate) at intervals while blobs are being fetched, so a long
 * transfer is never silent between its start and its end.
 */
export class PlainView extends TrackingView {
  private readonly write: (line: string) => void;
  private readonly every: number;
  private readonly progressEvery: number;
  private timer: NodeJS.Timeout | undefined;
  private progressTimer: NodeJS.Timeout | undefined;

  constructor(opts: PlainViewOptions = {}) {
    super();
    this.write = opts.write ?? writeErr;
    this.every = opts.summaryEveryMs ?? 5000;
    this.progressEvery = opts.progressEveryMs ?? 5000;
  }

  /** Blobs known so far that are not finished (fetched, skipped or failed). */
  private unfinished(): boolean {
    const t = this.totals;
    return this.blobs.size > t.blobsFetched + t.blobsSkipped + t.blobsFailed;
  }

  private progressTick(): void {
    if (!this.unfinished()) return;
    let totalBytes = 0;
    for (const b of this.blobs.values()) totalBytes += b.total;
    this.write(`${progressLine(this.totals, this.blobs.size, totalBytes, Date.now())}\n`);
  }

  protected draw(e: CopyEvent): void {
    const out = (s: string): void => this.write(`${s}\n`);
    const summarized = this.summarized;
    switch (e.kind) {
      case 'images':
        if (summarized && !this.timer) {
          out(`${e.names.length} images: a summary every ${Math.round(this.every / 1000)} s (--json for every event)`);
          this.timer = setInterval(() => out(summaryLine(this.totals, Date.now())), this.every);
          this.timer.unref();
        } else if (!summarized && !this.progressTimer) {
          this.progressTimer = setInterval(() => this.progressTick(), this.progressEvery);
          this.progressTimer.unref();
        }
        break;
      case 'image':
        if (summarized) break;
        if (e.state === 'resolved') {
          out(
            `resolved ${e.image} ${e.digest}${e.platforms?.length ? ` [${e.platforms.join(', ')}]` : ''} (${e.blobs?.length ?? 0} blobs, ${formatBytes(e.total ?? 0)})`,
          );
          if (e.originalDigest) out(`  index rewritten for --platform; the source index is ${e.originalDigest}`);
        } else if (e.state === 'done') out(`done ${e.image} ${e.digest}`);
        // Why is in the final report, once per cause (one bad blob can fail many images).
        else if (e.state === 'failed') out(`FAILED ${e.image}`);
        break;
      case 'blob':
        if (e.state === 'done' && !summarized) out(`  fetched ${shortDigest(e.digest)} ${formatBytes(e.total)}`);
        else if (e.state === 'failed') out(`  blob ${shortDigest(e.digest)} failed: ${e.error}`);
        break;
      case 'retry':
        out(`  retry ${e.attempt}: ${e.reason}${e.delayMs !== undefined ? ` (in ${Math.round(e.delayMs)} ms)` : ''}`);
        break;
      case 'warning':
        out(`warning: ${e.message}`);
        break;
    }
  }

  async finish(): Promise<void> {
    if (this.progressTimer) {
      clearInterval(this.progressTimer);
      this.progressTimer = undefined;
    }
    if (this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.write(`${summaryLine(this.totals, Date.now())}\n`);
    }
  }
}

export class JsonView implements ProgressView {
  onEvent(e: CopyEvent): void {
    if (e.kind === 'blob' && e.state === 'progress') return; // too chatty for machines
    jsonLine({ type: 'event', ...e });
  }
  async finish(): Promise<void> {}
}

/**
 * The view for an output mode. The TTY view (listr2) is loaded only when drawn on a terminal:
 * listr2 and its dependencies cost about 20 ms of start-up that --json and plain runs skip.
 */
export async function createView(mode: OutputMode): Promise<ProgressView> {
  if (mode === 'json') return new JsonView();
  if (mode === 'plain') return new PlainView();
  const { TtyView } = await import('./tty-view.js');
  return new TtyView();
}
