/**
 * Drawing copy progress: listr2 tasks (one per image, bytes and rate) on a TTY, plain
 * lines otherwise, newline-delimited JSON with --json. Only the CLI imports listr2.
 */
import { Listr, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import type { CopyEvent } from '../copy/events.js';
import { formatBytes, formatRate, shortDigest } from './format.js';

export type OutputMode = 'tty' | 'plain' | 'json';

export interface ProgressView {
  onEvent(e: CopyEvent): void;
  /** Resolves when the renderer has drawn its last frame. */
  finish(): Promise<void>;
}

export function outputMode(json: boolean): OutputMode {
  if (json) return 'json';
  return process.stderr.isTTY && !process.env.CI ? 'tty' : 'plain';
}

export function jsonLine(obj: unknown): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
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

abstract class TrackingView implements ProgressView {
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
    const out = (s: string): boolean => process.stderr.write(s + '\n');
    switch (e.kind) {
      case 'image':
        if (e.state === 'resolved') {
          out(`resolved ${e.image} ${e.digest}${e.platforms?.length ? ` [${e.platforms.join(', ')}]` : ''} (${e.blobs?.length ?? 0} blobs, ${formatBytes(e.total ?? 0)})`);
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

type Task = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

/** listr2 tasks, one per image, whose outcome is driven by copy events. */
export class TtyView extends TrackingView {
  private readonly waiters = new Map<string, { resolve: () => void; reject: (e: Error) => void; task?: Task }>();
  /** Tasks listr2 has finished: their output must not be touched again. */
  private readonly finished = new Set<string>();
  /** Outcomes that arrived before listr2 started the image's task. */
  private readonly early = new Map<string, { error?: string; title?: string }>();
  private readonly run: Promise<void>;
  private timer: NodeJS.Timeout;

  constructor(names: string[]) {
    super();
    const list = new Listr<unknown, 'default', 'simple'>(
      names.map((name) => ({
        title: name,
        task: (_ctx: unknown, task: Task) =>
          new Promise<void>((resolve, reject) => {
            this.waiters.set(name, { resolve, reject, task });
            const early = this.early.get(name);
            if (early?.title) task.title = early.title;
            if (early && 'error' in early) {
              if (early.error === undefined) resolve();
              else reject(new Error(early.error));
            }
          }),
      })),
      {
        concurrent: true,
        exitOnError: false,
        rendererOptions: { collapseErrors: false, showErrorMessage: true },
        fallbackRendererCondition: () => false,
      },
    );
    this.run = list.run().then(
      () => {},
      () => {},
    );
    this.timer = setInterval(() => this.refresh(), 200);
  }

  private refresh(): void {
    for (const [name, w] of this.waiters) {
      if (this.finished.has(name)) continue;
      const t = this.images.get(name);
      if (!t || !w.task || t.total() === 0) continue;
      const done = t.bytes();
      w.task.output = `${formatBytes(done)} / ${formatBytes(t.total())}  ${t.started ? formatRate(done, Date.now() - t.started) : ''}`;
    }
  }

  protected draw(e: CopyEvent): void {
    if (e.kind !== 'image') return;
    const w = this.waiters.get(e.image);
    const early = this.early.get(e.image) ?? {};
    if (e.state === 'resolved') {
      const title = `${e.image} ${shortDigest(e.digest ?? '')}${e.platforms?.length ? ` [${e.platforms.join(', ')}]` : ''}`;
      if (w?.task) w.task.title = title;
      else early.title = title;
    }
    if (e.state === 'done' || e.state === 'failed') {
      if (w?.task) {
        const t = this.images.get(e.image);
        if (t && t.total() > 0 && e.state === 'done') w.task.output = `${formatBytes(t.total())}`;
      }
      this.finished.add(e.image);
    }
    if (e.state === 'done') {
      if (w) w.resolve();
      else early.error = undefined;
    }
    if (e.state === 'failed') {
      if (w) w.reject(new Error(e.error ?? 'failed'));
      else early.error = e.error ?? 'failed';
    }
    if (!w) this.early.set(e.image, early);
  }

  async finish(): Promise<void> {
    clearInterval(this.timer);
    for (const name of this.waiters.keys()) this.finished.add(name);
    for (const w of this.waiters.values()) w.resolve();
    await this.run;
  }
}

