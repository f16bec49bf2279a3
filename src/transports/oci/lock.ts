/**
 * An advisory lock on an OCI layout directory, held while index.json is read-modified-written
 * (and while a new layout is created). A lock file made with O_EXCL holds the holder's token;
 * a holder that died (its pid is gone on this host) is taken over, atomically (see takeOver).
 */
import { randomBytes } from 'node:crypto';
import { link, readFile, rename, rm, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { LockError } from '../../util/errors.js';
import { createExclusiveFile, localHostId, processAlive } from '../../util/fsutil.js';
import { wait } from '../registry/retry.js';

export const LOCK_FILE = '.ferry.lock';

/**
 * An empty or unreadable lock file older than this is a leftover: a holder writes its token
 * right after creating the file (a run killed in between, or a full disk, leaves it empty).
 */
export const EMPTY_LOCK_STALE_MS = 10_000;

/** In-process queue per directory, so this process's writers wait their turn without polling. */
const queues = new Map<string, Promise<unknown>>();

export function withLayoutLock<T>(dir: string, fn: () => Promise<T>, timeoutMs = 120_000): Promise<T> {
  const prev = queues.get(dir) ?? Promise.resolve();
  const run = prev.then(
    () => withFileLock(dir, fn, timeoutMs),
    () => withFileLock(dir, fn, timeoutMs),
  );
  const tail = run.catch(() => {});
  queues.set(dir, tail);
  void tail.then(() => {
    if (queues.get(dir) === tail) queues.delete(dir);
  });
  return run;
}

/**
 * A token unique to one acquisition: `pid@host hostid nonce`. `pid@host` is what people read
 * (and what versions before the nonce wrote, alone); the host id (util/fsutil localHostId)
 * says whether the pid can be checked here; the nonce tells two acquisitions by one process
 * apart, so a release never removes a lock it does not hold.
 */
export function newLockToken(): string {
  return `${process.pid}@${hostname()} ${localHostId()} ${randomBytes(8).toString('hex')}`;
}

/** What a lock file held when it was looked at. */
export interface LockState {
  content: string;
  mtimeMs: number;
  ino: number;
  dev: number;
}

export async function inspectLock(file: string): Promise<LockState | undefined> {
  try {
    const [s, content] = await Promise.all([stat(file), readFile(file, 'utf8')]);
    return { content, mtimeMs: s.mtimeMs, ino: s.ino, dev: s.dev };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** The `pid@host` part of a token, for messages. */
function holderName(content: string): string {
  return content.trim().split(/\s+/)[0] || 'another process';
}

/**
 * Whether a lock file protects nothing any more: its holder's pid is gone and the pid was
 * recorded on this host (same host id, or, for tokens of earlier versions, the same host
 * name), or it is empty or unreadable and older than EMPTY_LOCK_STALE_MS. A holder on another
 * host or in another pid namespace is never judged dead: its pid means nothing here.
 */
export function isStale(s: LockState, now = Date.now()): boolean {
  const m = /^(\d+)@(\S+)(?:\s+([a-f0-9]{8})\s+([a-f0-9]+))?\s*$/.exec(s.content);
  if (!m) return now - s.mtimeMs > EMPTY_LOCK_STALE_MS;
  const pid = Number(m[1]);
  const local = m[3] !== undefined ? m[3] === localHostId() : m[2] === hostname();
  return local && pid !== process.pid && !processAlive(pid);
}

/**
 * The takeover mutex is held for a few syscalls, so one this old is abandoned whoever made
 * it (a holder killed inside takeOver, or one on another host, whose pid cannot be checked).
 */
const isStaleMutex = (s: LockState, now = Date.now()): boolean => now - s.mtimeMs > EMPTY_LOCK_STALE_MS || isStale(s, now);

const sameFile = (a: LockState, b: LockState): boolean =>
  a.ino === b.ino && a.dev === b.dev && a.mtimeMs === b.mtimeMs && a.content === b.content;

/**
 * Remove the lock file at `file`, which the caller found in state `judged` and judged stale
 * (its holder died), without ever removing a live holder's lock. Returns false when another
 * contender is taking the lock over right now (the caller waits and looks again).
 *
 * The hazard: contenders A and B both find dead C's lock. A removes it and takes the lock;
 * B, acting on what it read before, must not then remove A's lock. POSIX has no "remove this
 * name if it still is that file", so:
 *
 * 1. Takeovers are serialised by a second lock file, `<lock>.takeover` (O_EXCL, held for a
 *    few syscalls). Under it, the lock file is looked at again: if it is no longer the file
 *    that was judged (A has taken over meanwhile: the name is empty, or holds A's token), B
 *    does nothing. If it still is the judged file, nobody can change it before B removes
 *    it: its holder is dead, so will not release it; other takeovers wait for the mutex;
 *    and acquiring (O_EXCL) needs the name to be free. So B removes exactly the dead
 *    holder's file, and a live lock is never displaced.
 * 2. The removal itself renames the file to a name unique to this attempt (atomic: one
 *    contender moves any given file), checks that what it moved is still the judged file
 *    and still stale, and only then deletes it; otherwise it puts it back with link(),
 *    which, unlike rename(), fails rather than replace a file that appeared meanwhile.
 *    With the mutex this second check never fires; it matters for step 3.
 * 3. The mutex can itself be left behind (a holder killed inside this function). A mutex
 *    whose holder is dead, or which is older than EMPTY_LOCK_STALE_MS (it is held for
 *    microseconds), is removed the same rename-check-remove way. Only there is a race left:
 *    if two contenders both judge one abandoned mutex stale, and one of them renames the
 *    other's fresh mutex aside, a third could take the mutex in the few syscalls before it
 *    is put back. That needs a process to die inside this function first.
 *
 * An empty lock file is judged stale only once it is EMPTY_LOCK_STALE_MS old, while a live
 * acquirer writes its token microseconds after creating the file, so only a process stopped
 * for that long between the two could lose its lock.
 */
export async function takeOver(file: string, judged: LockState): Promise<boolean> {
  const mutex = `${file}.takeover`;
  const token = newLockToken();
  if (!(await acquire(mutex, token))) {
    const holder = await inspectLock(mutex);
    if (holder !== undefined && isStaleMutex(holder)) await removeIfStale(mutex, holder, isStaleMutex);
    return false;
  }
  try {
    await removeIfStale(file, judged, isStale);
  } finally {
    await release(mutex, token);
  }
  return true;
}

/** Step 2 of takeOver: remove `file` if it still is the file judged stale, and still is stale. */
async function removeIfStale(file: string, judged: LockState, stale: (s: LockState) => boolean): Promise<void> {
  const now = await inspectLock(file);
  if (now === undefined || !sameFile(now, judged)) return; // it changed: the caller looks again
  const aside = `${file}.${randomBytes(8).toString('hex')}.stale`;
  try {
    await rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // another contender moved it
    throw err;
  }
  const moved = await inspectLock(aside);
  if (moved === undefined) return;
  if (sameFile(moved, judged) && stale(moved)) {
    await rm(aside, { force: true });
    return;
  }
  // Someone else's live file: give it back.
  try {
    await link(aside, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') {
      // Another process took the name in the window; the holder whose file we moved finds
      // that its token is not at the name when it releases, and leaves that file alone.
      await rm(aside, { force: true });
      return;
    }
    // No hard links on this filesystem: rename back, unless the name was taken meanwhile.
    if ((await inspectLock(file)) === undefined) await rename(aside, file);
    else await rm(aside, { force: true });
    return;
  }
  await rm(aside, { force: true });
}

/** Create the lock file holding `token`; false if it exists. Never leaves an empty lock file behind. */
const acquire = createExclusiveFile;

/** Remove the lock file if it still holds our token (it may have been taken over wrongly). */
async function release(file: string, token: string): Promise<void> {
  const content = await readFile(file, 'utf8').catch(() => undefined);
  if (content === token) await rm(file, { force: true });
}

async function withFileLock<T>(dir: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const file = path.join(dir, LOCK_FILE);
  const started = Date.now();
  const token = newLockToken();
  for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
    if (await acquire(file, token)) break;
    const holder = await inspectLock(file);
    if (holder === undefined) continue; // released meanwhile
    const timedOut = Date.now() - started > timeoutMs;
    if (isStale(holder) && !timedOut) {
      // The holder was killed (or never wrote its token); its lock protects nothing now.
      if (await takeOver(file, holder)) continue;
    } else if (timedOut) {
      throw new LockError(`store ${dir} is locked by ${holderName(holder.content)} (lock file ${file})`, {
        hint: `wait for the other ferry run to finish; if none is running, remove ${file}`,
      });
    }
    await wait(delay);
  }
  try {
    return await fn();
  } finally {
    await release(file, token);
  }
}
