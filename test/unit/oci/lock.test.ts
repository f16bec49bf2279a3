import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, utimes, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, inspectLock, isStale, takeOver, withLayoutLock } from '../../../src/transports/oci/lock.js';
import { LockError } from '../../../src/util/errors.js';
import { localHostId } from '../../../src/util/fsutil.js';
import { deadPid, raceChildren } from './children.js';

const tempDir = (): Promise<string> => mkdtemp(path.join(tmpdir(), 'ferry-lock-'));
const lockFile = (dir: string): string => path.join(dir, LOCK_FILE);
const ago = (ms: number): Date => new Date(Date.now() - ms);

/** A process that stays alive until the tests end: a live lock holder. */
const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
afterAll(() => {
  sleeper.kill();
});
const livePid = (): number => sleeper.pid!;

describe('store lock', () => {
  it('writes a token unique to each acquisition, naming pid and host', async () => {
    const dir = await tempDir();
    const seen: string[] = [];
    for (let i = 0; i < 2; i++) await withLayoutLock(dir, async () => void seen.push(await readFile(lockFile(dir), 'utf8')));
    expect(seen[0]).toMatch(
      new RegExp(`^${process.pid}@${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ${localHostId()} [a-f0-9]{16}$`),
    );
    expect(seen[1]).not.toBe(seen[0]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('on release leaves alone a lock that is no longer its own', async () => {
    const dir = await tempDir();
    const other = `${livePid()}@${hostname()} ${localHostId()} 00112233445566ff`;
    await withLayoutLock(dir, async () => {
      // Someone (wrongly) took the lock over while we held it.
      await writeFile(lockFile(dir), other);
    });
    expect(await readFile(lockFile(dir), 'utf8')).toBe(other);
  });

  it('takes over a lock whose holder died on this host (old and new token formats)', async () => {
    for (const content of [`${deadPid()}@${hostname()}`, `${deadPid()}@${hostname()} ${localHostId()} 0123456789abcdef`]) {
      const dir = await tempDir();
      await writeFile(lockFile(dir), content);
      let ran = false;
      await withLayoutLock(dir, async () => void (ran = true), 2000);
      expect(ran).toBe(true);
      expect(await readdir(dir)).toEqual([]);
    }
  });

  it('waits for a live holder, a holder on another host or in another pid namespace, and times out with a LockError', async () => {
    const other = localHostId() === 'ffffffff' ? 'eeeeeeee' : 'ffffffff';
    for (const content of [
      `${livePid()}@${hostname()}`,
      `${livePid()}@${hostname()} ${localHostId()} 0123456789abcdef`,
      `${deadPid()}@other-host.example`,
      `${deadPid()}@${hostname()} ${other} 0123456789abcdef`, // same name, another pid namespace
    ]) {
      const dir = await tempDir();
      await writeFile(lockFile(dir), content);
      let ran = false;
      const err = await withLayoutLock(dir, async () => void (ran = true), 300).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockError);
      expect((err as LockError).message).toBe(`store ${dir} is locked by ${content.split(' ')[0]} (lock file ${lockFile(dir)})`);
      expect((err as LockError).hint).toContain(`remove ${lockFile(dir)}`);
      expect(ran).toBe(false);
      expect(await readFile(lockFile(dir), 'utf8')).toBe(content);
    }
  });

  it('takes over an empty or unreadable lock file once it is old, not while it is fresh', async () => {
    for (const content of ['', 'garbage\n']) {
      const dir = await tempDir();
      await writeFile(lockFile(dir), content);
      const err = await withLayoutLock(dir, async () => 1, 300).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockError);
      expect((err as LockError).message).toContain(content === '' ? 'locked by another process' : 'locked by garbage');
      await utimes(lockFile(dir), ago(60_000), ago(60_000));
      expect(await withLayoutLock(dir, async () => 2, 2000)).toBe(2);
      expect(await readdir(dir)).toEqual([]);
    }
  });

  it('a contender acting on a stale view never removes a live lock', async () => {
    const dir = await tempDir();
    const file = lockFile(dir);
    await writeFile(file, `${deadPid()}@${hostname()} ${localHostId()} 0123456789abcdef`);
    const staleView = (await inspectLock(file))!;
    expect(isStale(staleView)).toBe(true);
    // Another contender takes the dead holder's lock over first and now holds its own.
    await takeOver(file, staleView);
    const live = `${process.pid}@${hostname()} ${localHostId()} fedcba9876543210`;
    await writeFile(file, live);
    // This contender still acts on what it saw before.
    await takeOver(file, staleView);
    expect(await readFile(file, 'utf8')).toBe(live);
    // Even when it moves the live file (as if it had judged that very file stale), it puts it back.
    const liveView = (await inspectLock(file))!;
    await takeOver(file, liveView);
    expect(await readFile(file, 'utf8')).toBe(live);
    expect((await readdir(dir)).sort()).toEqual([LOCK_FILE]);
  });

  it("takes a dead holder's lock over only through the takeover mutex, which is itself recovered when abandoned", async () => {
    const dir = await tempDir();
    const dead = `${deadPid()}@${hostname()} ${localHostId()} 0123456789abcdef`;
    await writeFile(lockFile(dir), dead);
    // Another process is taking the lock over right now: wait for it, do not race it.
    await writeFile(`${lockFile(dir)}.takeover`, `${livePid()}@${hostname()} ${localHostId()} 00000000000000aa`);
    const err = await withLayoutLock(dir, async () => 1, 300).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockError);
    expect(await readFile(lockFile(dir), 'utf8')).toBe(dead);
    // A takeover mutex whose holder died, or an old one (held elsewhere, or never written), is cleared.
    for (const [content, age] of [
      [`${deadPid()}@${hostname()} ${localHostId()} 00000000000000bb`, 0],
      [`${livePid()}@${hostname()} ${localHostId()} 00000000000000cc`, 60_000],
      ['', 60_000],
    ] as const) {
      await writeFile(lockFile(dir), dead);
      await writeFile(`${lockFile(dir)}.takeover`, content);
      if (age) await utimes(`${lockFile(dir)}.takeover`, ago(age), ago(age));
      expect(await withLayoutLock(dir, async () => 2, 2000)).toBe(2);
      expect(await readdir(dir)).toEqual([]);
    }
  });

  it("processes racing for a dead holder's lock take turns: one at a time, no update lost", async () => {
    const rounds = 2;
    const children = 6;
    for (let r = 0; r < rounds; r++) {
      const dir = await tempDir();
      await writeFile(lockFile(dir), `${deadPid()}@${hostname()}`);
      const results = await raceChildren(
        'lock',
        dir,
        Array.from({ length: children }, () => '40'),
      );
      for (const res of results) expect(res, res.stderr).toMatchObject({ code: 0 });
      expect(await readFile(path.join(dir, 'overlaps'), 'utf8').catch(() => '')).toBe('');
      expect(await readFile(path.join(dir, 'counter'), 'utf8')).toBe(String(children));
      expect(await readdir(dir).then((d) => d.filter((n) => n.startsWith(LOCK_FILE)))).toEqual([]);
    }
  });
});
