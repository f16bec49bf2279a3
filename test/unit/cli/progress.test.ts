import { describe, expect, it } from 'vitest';
import { outputMode } from '../../../src/cli/progress.js';
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
