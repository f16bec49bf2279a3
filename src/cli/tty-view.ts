/** listr2 progress on a terminal (loaded on demand by createView). */
import { Listr, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import type { CopyEvent } from '../copy/events.js';
import { formatBytes, formatRate, shortDigest } from './format.js';
import { TrackingView, summaryLine } from './progress.js';

type Task = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

/**
 * listr2 tasks, one per image, whose outcome is driven by copy events; with more images than
 * fit on a screen, one summary line redrawn in place instead (failures printed above it).
 */
export class TtyView extends TrackingView {
  private summaryTimer: NodeJS.Timeout | undefined;
  private readonly stream: NodeJS.WriteStream;

  constructor(stream: NodeJS.WriteStream = process.stderr) {
    super();
    this.stream = stream;
  }

  /** The summary line, cut to the terminal's width so redrawing in place works. */
  private drawSummary(final = false): void {
    const width = Math.max(20, (this.stream.columns ?? 80) - 1);
    const line = summaryLine(this.totals, Date.now());
    this.stream.write(`\r\x1b[2K${line.length > width ? `${line.slice(0, width - 1)}…` : line}${final ? '\n' : ''}`);
  }

  /** A line above the summary (a failure, a retry, a warning). */
  private above(text: string): void {
    this.stream.write(`\r\x1b[2K${text}\n`);
    this.drawSummary();
  }

  private readonly waiters = new Map<string, { resolve: () => void; reject: (e: Error) => void; task?: Task }>();
  /** Tasks listr2 has finished: their output must not be touched again. */
  private readonly finished = new Set<string>();
  /** Outcomes that arrived before listr2 started the image's task. */
  private readonly early = new Map<string, { error?: string; title?: string }>();
  private run: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** Starts listr2 once the run names its images (the first event of a copy). */
  private start(names: string[]): void {
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
    if (e.kind === 'images') {
      if (this.summarized) {
        if (!this.summaryTimer) {
          this.summaryTimer = setInterval(() => this.drawSummary(), 200);
          this.summaryTimer.unref();
        }
      } else if (!this.run) this.start(e.names);
      return;
    }
    if (this.summaryTimer) {
      if (e.kind === 'blob' && e.state === 'failed') this.above(`blob ${shortDigest(e.digest)} failed: ${e.error}`);
      else if (e.kind === 'retry') this.above(`retry ${e.attempt}: ${e.reason}`);
      else if (e.kind === 'warning') this.above(`warning: ${e.message}`);
      return;
    }
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
    if (this.summaryTimer) {
      clearInterval(this.summaryTimer);
      this.summaryTimer = undefined;
      this.drawSummary(true);
    }
    if (this.timer) clearInterval(this.timer);
    for (const name of this.waiters.keys()) this.finished.add(name);
    for (const w of this.waiters.values()) w.resolve();
    await this.run;
  }
}
