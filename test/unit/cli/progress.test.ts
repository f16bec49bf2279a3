import { describe, expect, it } from 'vitest';
import { TtyView } from '../../../src/cli/tty-view.js';

describe('TtyView (listr2)', () => {
  it('survives progress refreshes and events after an image finished or failed', async () => {
    // listr2 draws with its default renderer only on a terminal; pretend to be one.
    const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
    Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
    const view = new TtyView();
    view.onEvent({ kind: 'images', names: ['a', 'b'] });
    const refresh = (): void => (view as unknown as { refresh(): void }).refresh();
    // Outcomes may arrive before listr2 has started the tasks.
    view.onEvent({ kind: 'image', state: 'resolved', image: 'a', digest: 'sha256:' + 'a'.repeat(64), blobs: ['sha256:1'], total: 10 });
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
