/** listr2 progress on a terminal (loaded on demand by createView). */
import { Listr, type DefaultRenderer, type ListrTaskWrapper, type SimpleRenderer } from 'listr2';
import type { CopyEvent } from '../copy/events.js';
import { formatBytes, formatRate, shortDigest } from './format.js';
import { TrackingView } from './progress.js';

type Task = ListrTaskWrapper<unknown, typeof DefaultRenderer, typeof SimpleRenderer>;

/** listr2 tasks, one per image, whose outcome is driven by copy events. */
export class TtyView extends TrackingView {
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
      if (!this.run) this.start(e.names);
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
    if (this.timer) clearInterval(this.timer);
    for (const name of this.waiters.keys()) this.finished.add(name);
    for (const w of this.waiters.values()) w.resolve();
    await this.run;
  }
}
