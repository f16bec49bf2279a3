/**
 * Drawing copy progress: listr2 tasks (one per image, bytes and rate) on a TTY, plain
 * lines otherwise, newline-delimited JSON with --json. Only the CLI imports listr2.
 */
import type { CopyEvent } from '../copy/events.js';
import { formatBytes, shortDigest } from './format.js';

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

export function jsonLine(obj: unknown): void {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
}

class ImageTracker {
  blobs = new Map<string, number>();
  totals = new Map<string, number>();
  started = 0;
  constructor(readonly name: string) {}
  bytes(): number {
    let n = 0;
    for (const v of this.blobs.values()) n += v;
    return n;
  }
  total(): number {
    let n = 0;
    for (const v of this.totals.values()) n += v;
    return n;
  }
}

export abstract class TrackingView implements ProgressView {
  protected readonly images = new Map<string, ImageTracker>();
  protected readonly byBlob = new Map<string, ImageTracker[]>();

  protected tracker(name: string): ImageTracker {
    let t = this.images.get(name);
    if (!t) {
      t = new ImageTracker(name);
      this.images.set(name, t);
    }
    return t;
  }

  onEvent(e: CopyEvent): void {
    if (e.kind === 'image' && e.state === 'resolved') {
      const t = this.tracker(e.image);
      for (const d of e.blobs ?? []) {
        const list = this.byBlob.get(d) ?? [];
        list.push(t);
        this.byBlob.set(d, list);
        t.blobs.set(d, 0);
      }
    }
    if (e.kind === 'blob') {
      for (const t of this.byBlob.get(e.digest) ?? []) {
        if (t.started === 0) t.started = Date.now();
        t.totals.set(e.digest, e.total);
        if (e.state === 'progress' || e.state === 'done' || e.state === 'skipped') t.blobs.set(e.digest, e.bytes);
      }
    }
    this.draw(e);
  }

  protected abstract draw(e: CopyEvent): void;
  abstract finish(): Promise<void>;
}

/** One line per meaningful step; for logs and pipes. */
export class PlainView extends TrackingView {
  protected draw(e: CopyEvent): void {
    const out = (s: string): boolean => process.stderr.write(`${s}\n`);
    switch (e.kind) {
      case 'image':
        if (e.state === 'resolved') {
          out(
            `resolved ${e.image} ${e.digest}${e.platforms?.length ? ` [${e.platforms.join(', ')}]` : ''} (${e.blobs?.length ?? 0} blobs, ${formatBytes(e.total ?? 0)})`,
          );
          if (e.originalDigest) out(`  index rewritten for --platform; the source index is ${e.originalDigest}`);
        } else if (e.state === 'done') out(`done ${e.image} ${e.digest}`);
        else if (e.state === 'failed') out(`FAILED ${e.image}: ${e.error}`);
        break;
      case 'blob':
        if (e.state === 'done') out(`  fetched ${shortDigest(e.digest)} ${formatBytes(e.total)}`);
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
  async finish(): Promise<void> {}
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
