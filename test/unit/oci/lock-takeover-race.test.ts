import { mkdtemp, readFile as realReadFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { deadPid } from './children.js';

/**
 * The interleaving that broke the lock: contenders A and B both find a dead holder's lock; A
 * takes it over and is inside its critical section before B acts on what it read. The
 * contenders run in this process under two spellings of one directory (the store and a
 * symlink to it), so the in-process queue does not serialise them: each sees only the lock
 * file, as two processes would. A hook on readFile stops B right after it read the stale
 * lock, and lets it go on only once A holds the lock.
 */
const hook = vi.hoisted(() => ({ file: '', run: undefined as undefined | (() => Promise<void>) }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs/promises')>();
  const readFile = (async (...args: Parameters<typeof orig.readFile>) => {
    const result = await orig.readFile(...args);
    if (hook.run && String(args[0]) === hook.file) {
      const run = hook.run;
      hook.run = undefined;
      await run();
    }
    return result;
  }) as typeof orig.readFile;
  return { ...orig, default: { ...orig, readFile }, readFile };
});

const { LOCK_FILE, withLayoutLock } = await import('../../../src/transports/oci/lock.js');

describe('store lock takeover race', () => {
  it("of two contenders for a dead holder's lock, the late one waits for the one that took it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-lock-'));
    const alias = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-lock-alias-')), 'store');
    await symlink(dir, alias);
    await writeFile(path.join(dir, LOCK_FILE), `${deadPid()}@${hostname()}`);

    const events: string[] = [];
    let inside = 0;
    const section = (who: string, hold: Promise<void>) => async (): Promise<void> => {
      inside++;
      events.push(`${who} in${inside > 1 ? ' (overlap)' : ''}`);
      await hold;
      events.push(`${who} out`);
      inside--;
    };
    let releaseA!: () => void;
    const holdA = new Promise<void>((resolve) => (releaseA = resolve));
    let aInside!: () => void;
    const aIsInside = new Promise<void>((resolve) => (aInside = resolve));
    let a: Promise<void> | undefined;

    // B reads the dead holder's lock; before B acts, A takes the lock over and enters.
    hook.file = path.join(alias, LOCK_FILE);
    hook.run = async () => {
      a = withLayoutLock(
        dir,
        async () => {
          aInside();
          await section('A', holdA)();
        },
        5000,
      );
      await aIsInside;
    };
    const b = withLayoutLock(alias, section('B', Promise.resolve()), 5000);
    // B now acts on its stale view; give it time to do damage, then let A finish.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(hook.run).toBeUndefined();
    expect(events).toEqual(['A in']);
    expect((await realReadFile(path.join(dir, LOCK_FILE), 'utf8')).startsWith(`${process.pid}@`)).toBe(true);
    releaseA();
    await Promise.all([a, b]);
    expect(events).toEqual(['A in', 'A out', 'B in', 'B out']);
    expect(await readdir(dir)).toEqual([]);
  });
});
