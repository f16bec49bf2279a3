import { describe, expect, it } from 'vitest';
import { PlainView, SCREENFUL, outputMode, summaryLine } from '../../../src/cli/progress.js';
import { TtyView } from '../../../src/cli/tty-view.js';

describe('outputMode', () => {
  it('draws the task view only on a terminal wide enough for it, outside CI', () => {
    expect(outputMode(true, { isTTY: true, columns: 120 }, {})).toBe('json');
    expect(outputMode(false, { isTTY: true, columns: 120 }, {})).toBe('tty');
    expect(outputMode(false, { isTTY: true, columns: 40 }, {})).toBe('tty');
    expect(outputMode(false, { isTTY: false }, {})).toBe('plain');
    expect(outputMode(false, { isTTY: true, columns: 120 }, { CI: 'true' })).toBe('plain');
    // An unsized pseudo-terminal (as `script` makes) reports 0 columns.
    expect(outputMode(false, { isTTY: true, columns: 0 }, {})).toBe('plain');
    expect(outputMode(false, { isTTY: true }, {})).toBe('plain');
    expect(outputMode(false, { isTTY: true, columns: 39 }, {})).toBe('plain');
  });
});

describe('TtyView (listr2)', () => {
  it('survives progress refreshes and events after an image finished or failed', async () => {
    // listr2 draws with its default renderer only on a terminal; pretend to be one.
    const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
    Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
    const view = new TtyView();
    view.onEvent({ kind: 'images', names: ['a', 'b'] });
    const refresh = (): void => (view as unknown as { refresh(): void }).refresh();
    // Outcomes may arrive before listr2 has started the tasks.
    view.onEvent({ kind: 'image', state: 'resolved', image: 'a', digest: `sha256:${'a'.repeat(64)}`, blobs: ['sha256:1'], total: 10 });
    view.onEvent({ kind: 'blob', state: 'progress', digest: 'sha256:1', bytes: 5, total: 10 });
    await new Promise((r) => setTimeout(r, 20));
    refresh();
    view.onEvent({ kind: 'blob', state: 'done', digest: 'sha256:1', bytes: 10, total: 10 });
    view.onEvent({ kind: 'image', state: 'done', image: 'a' });
    view.onEvent({ kind: 'image', state: 'failed', image: 'b', error: 'boom' });
    await new Promise((r) => setTimeout(r, 300));
    expect(() => refresh()).not.toThrow();
    await view.finish();
    expect(() => refresh()).not.toThrow();
    if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
    else delete (process.stdout as { isTTY?: boolean }).isTTY;
  });
});

describe('progress for long lists', () => {
  const digest = (i: number): string => `sha256:${i.toString(16).padStart(12, '0')}${'f'.repeat(52)}`;
  const base = digest(0);
  /** A run of `n` images sharing one base blob, each with one own blob; image 3 fails. */
  function play(view: PlainView | TtyView, n: number): void {
    const names = Array.from({ length: n }, (_, i) => `r.example/app${i}:1`);
    view.onEvent({ kind: 'images', names });
    names.forEach((image, i) => {
      view.onEvent({ kind: 'image', state: 'resolved', image, digest: digest(1000 + i), blobs: [base, digest(i + 1)], total: 300 });
    });
    view.onEvent({ kind: 'blob', state: 'start', digest: base, bytes: 0, total: 200 });
    view.onEvent({ kind: 'blob', state: 'progress', digest: base, bytes: 150, total: 200 });
    view.onEvent({ kind: 'blob', state: 'done', digest: base, bytes: 200, total: 200 });
    names.forEach((image, i) => {
      if (i === 3) {
        view.onEvent({ kind: 'blob', state: 'failed', digest: digest(i + 1), bytes: 0, total: 100, error: 'connection reset' });
        view.onEvent({ kind: 'image', state: 'failed', image, error: 'pulling: connection reset' });
        return;
      }
      if (i === 4) view.onEvent({ kind: 'blob', state: 'skipped', digest: digest(i + 1), bytes: 100, total: 100 });
      else view.onEvent({ kind: 'blob', state: 'done', digest: digest(i + 1), bytes: 100, total: 100 });
      view.onEvent({ kind: 'image', state: 'done', image, digest: digest(1000 + i) });
    });
  }

  it('plain: one line per image up to a screenful', async () => {
    const lines: string[] = [];
    const view = new PlainView({ write: (l) => lines.push(l), summaryEveryMs: 10 });
    play(view, SCREENFUL);
    await view.finish();
    expect(lines.filter((l) => l.startsWith('resolved '))).toHaveLength(SCREENFUL);
    expect(lines.filter((l) => l.startsWith('done '))).toHaveLength(SCREENFUL - 1);
    expect(lines).toContain('FAILED r.example/app3:1\n');
    expect(lines.some((l) => l.startsWith('images '))).toBe(false);
  });

  it('plain: beyond a screenful, summary lines at intervals instead of per-image lines; failures still shown', async () => {
    const lines: string[] = [];
    const view = new PlainView({ write: (l) => lines.push(l), summaryEveryMs: 20 });
    play(view, 1000);
    await new Promise((r) => setTimeout(r, 70));
    await view.finish();
    expect(lines.filter((l) => /^(resolved|done|FAILED) |^ {2}fetched/.test(l))).toEqual([]);
    expect(lines.filter((l) => l.includes('failed: connection reset'))).toHaveLength(1);
    const summaries = lines.filter((l) => l.startsWith('images '));
    expect(summaries.length).toBeGreaterThanOrEqual(2); // at intervals, and once at the end
    // Each blob counted once, shared or not: 200 bytes of the base + 998 own blobs of 100 bytes fetched.
    expect(summaries.at(-1)).toMatch(/^images 999\/1000 done, 1 failed · blobs 999 fetched, 1 already present, 1 failed · 100\.0 KB, /);
    expect(lines.length).toBeLessThan(summaries.length + 5);
  });

  it('summaryLine shows done/total, failures, blobs, bytes and rate', () => {
    const line = summaryLine(
      { images: 40, imagesDone: 10, imagesFailed: 2, blobsFetched: 7, blobsSkipped: 3, blobsFailed: 0, bytes: 2_000_000, started: 0 },
      1000,
    );
    expect(line).toBe('images 10/40 done, 2 failed · blobs 7 fetched, 3 already present · 2.00 MB, 2.00 MB/s');
  });

  it('TTY: beyond a screenful, one summary line redrawn in place, failures above it, no task per image', async () => {
    let written = '';
    const stream = { columns: 200, write: (s: string) => ((written += s), true) } as unknown as NodeJS.WriteStream;
    const view = new TtyView(stream);
    play(view, 100);
    await new Promise((r) => setTimeout(r, 450));
    await view.finish();
    expect(written).toContain('\r\x1b[2Kblob 000000000004 failed: connection reset\n');
    expect(written).not.toContain('r.example/app');
    const frames = written.split('\r\x1b[2K').filter((f) => f.startsWith('images '));
    expect(frames.length).toBeGreaterThanOrEqual(2);
    expect(frames.at(-1)).toMatch(/^images 99\/100 done, 1 failed · blobs 99 fetched, 1 already present, 1 failed · .*\n$/);
  });
});

describe('plain view without a terminal: progress lines between start and end', () => {
  const d = (i: number): string => `sha256:${String(i).padStart(64, '0')}`;

  it('up to a screenful: a progress line at intervals (blobs done, bytes, rate) while blobs are fetched', async () => {
    const lines: string[] = [];
    const view = new PlainView({ write: (l) => lines.push(l), progressEveryMs: 15 });
    view.onEvent({ kind: 'images', names: ['r.example/a:1'] });
    view.onEvent({ kind: 'image', state: 'resolved', image: 'r.example/a:1', digest: d(9), blobs: [d(1), d(2)], total: 3_000_000 });
    view.onEvent({ kind: 'blob', state: 'skipped', digest: d(1), bytes: 1_000_000, total: 1_000_000 });
    view.onEvent({ kind: 'blob', state: 'start', digest: d(2), bytes: 0, total: 2_000_000 });
    view.onEvent({ kind: 'blob', state: 'progress', digest: d(2), bytes: 500_000, total: 2_000_000 });
    await new Promise((r) => setTimeout(r, 60));
    const during = lines.filter((l) => l.startsWith('progress: '));
    expect(during.length).toBeGreaterThanOrEqual(2);
    expect(during[0]).toMatch(/^progress: blobs 1\/2 done, 1 already present · 500\.0 KB of 3\.00 MB, [\d.]+ [KMG]?B\/s\n$/);
    view.onEvent({ kind: 'blob', state: 'done', digest: d(2), bytes: 2_000_000, total: 2_000_000 });
    view.onEvent({ kind: 'image', state: 'done', image: 'r.example/a:1', digest: d(9) });
    // Nothing left in flight: no more progress lines; none after finish either.
    const count = lines.length;
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.length).toBe(count);
    await view.finish();
    await new Promise((r) => setTimeout(r, 40));
    expect(lines.length).toBe(count);
  });

  it('a run of more than a screenful keeps its summary lines, with no progress lines besides', async () => {
    const lines: string[] = [];
    const view = new PlainView({ write: (l) => lines.push(l), summaryEveryMs: 15, progressEveryMs: 15 });
    const names = Array.from({ length: SCREENFUL + 1 }, (_, i) => `r.example/a${i}:1`);
    view.onEvent({ kind: 'images', names });
    view.onEvent({ kind: 'image', state: 'resolved', image: names[0]!, digest: d(9), blobs: [d(1)], total: 10 });
    view.onEvent({ kind: 'blob', state: 'progress', digest: d(1), bytes: 5, total: 10 });
    await new Promise((r) => setTimeout(r, 50));
    await view.finish();
    expect(lines.filter((l) => l.startsWith('progress: '))).toEqual([]);
    expect(lines.filter((l) => l.startsWith('images ')).length).toBeGreaterThanOrEqual(2);
  });
});
