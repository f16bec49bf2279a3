/**
 * Leases keep `ferry store gc` and the store's writers (pull, load, copy into oci:) apart.
 * A writer holds `<store>/.ferry-leases/<pid>-<random>` from opening the store until it
 * closes it: blobs it has written but not named yet are invisible to a reachability walk,
 * so gc must not run meanwhile. gc holds `<store>/.ferry-leases/gc` while it decides and
 * removes.
 *
 * Both sides flag first and check second: a writer creates its lease, then looks for a live
 * gc file; gc creates its gc file (exclusively), then looks for live leases. Whichever order
 * the two run in, at least one of them sees the other's flag and backs off (it removes its
 * own flag and waits or fails), so a writer and gc never both proceed. Files of processes
 * that are gone (same host id, pid not alive: lock.ts isStale) protect nothing and are
 * removed, the way lock.ts takes over a dead holder's lock.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { wait } from '../transports/registry/retry.js';
import { isStale, newLockToken, takeOver, type LockState } from '../transports/oci/lock.js';
import { FerryError, LockError, pathError } from '../util/errors.js';
import { createExclusiveFile } from '../util/fsutil.js';

export const LEASE_DIR = '.ferry-leases';
export const GC_FILE = 'gc';
/** How often a writer looks again while gc runs, and for how long at most. */
const WRITER_POLL_MS = 200;
export const WRITER_WAIT_MS = 5 * 60 * 1000;
/** A description of the holder kept in the file (its command line), for messages. */
const MAX_WHAT = 200;

/** A lease or gc file as found: whose it is, and whether its holder is gone. */
export interface LeaseHolder {
  file: string;
  /** `pid@host`. */
  holder: string;
  pid: number | undefined;
  /** The holder's command line, as it recorded it. */
  what: string;
  state: LockState;
}

function describeSelf(): string {
  const args = process.argv.slice(2).join(' ');
  return `ferry ${args}`.slice(0, MAX_WHAT);
}

/** The token (first line, lock.ts's format) and what the holder is doing (second line). */
function leaseText(token: string): string {
  return `${token}\n${describeSelf().replace(/\n/g, ' ')}\n`;
}

async function readHolder(file: string): Promise<LeaseHolder | undefined> {
  let content: string;
  let st;
  try {
    [st, content] = await Promise.all([stat(file), readFile(file, 'utf8')]);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  const [first = '', what = ''] = content.split('\n');
  const holder = first.trim().split(/\s+/)[0] ?? '';
  const pid = /^(\d+)@/.exec(holder)?.[1];
  return {
    file,
    holder: holder || 'another process',
    pid: pid === undefined ? undefined : Number(pid),
    what: what.trim(),
    // isStale judges the token line alone; the file's identity is the whole content.
    state: { content: first, mtimeMs: st.mtimeMs, ino: st.ino, dev: st.dev },
  };
}

/**
 * Remove a holder's file if its holder is gone. A writer lease has a name no one else ever
 * uses, so removing a dead writer's file cannot remove a live one. The gc file's name is
 * shared by every gc, so its removal goes through lock.ts takeOver (which never removes a
 * file that a live gc made meanwhile); that file holds the token alone, as a lock file does.
 */
async function removeIfDead(h: LeaseHolder, shared: boolean): Promise<boolean> {
  if (!isStale(h.state)) return false;
  if (shared) await takeOver(h.file, h.state);
  else await rm(h.file, { force: true });
  return true;
}

const createExclusive = createExclusiveFile;

/** The live writer leases in `dir` (stale ones are removed on the way). */
export async function liveLeases(storeDir: string): Promise<LeaseHolder[]> {
  const dir = path.join(storeDir, LEASE_DIR);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const live: LeaseHolder[] = [];
  for (const n of names) {
    if (n === GC_FILE || !/^\d+-[a-f0-9]+$/.test(n)) continue;
    const h = await readHolder(path.join(dir, n));
    if (h === undefined) continue;
    if (await removeIfDead(h, false)) continue;
    live.push(h);
  }
  return live;
}

/** The gc file's holder when it is alive (a dead holder's file is removed). */
async function liveGc(storeDir: string): Promise<LeaseHolder | undefined> {
  const h = await readHolder(path.join(storeDir, LEASE_DIR, GC_FILE));
  if (h === undefined) return undefined;
  if (await removeIfDead(h, true)) return undefined;
  return h;
}

/** The store is being garbage-collected, or written, by someone else. */
export class StoreBusyError extends FerryError {
  constructor(message: string, hint: string) {
    super('STORE_BUSY', message, { hint });
  }
}

export interface WriterLease {
  release(): Promise<void>;
}

/**
 * Take a writer lease on the store at `storeDir` (an existing layout directory). Waits while a
 * live gc runs (polling every WRITER_POLL_MS, at most `waitMs`), then fails with STORE_BUSY.
 */
export async function acquireWriterLease(storeDir: string, opts: { waitMs?: number; signal?: AbortSignal } = {}): Promise<WriterLease> {
  const dir = path.join(storeDir, LEASE_DIR);
  // A store ferry may not write (read-only media, no permission) is said about the store.
  await mkdir(dir, { recursive: true }).catch((err: unknown) => {
    throw pathError(err, storeDir, 'taking a writer lease');
  });
  const token = newLockToken();
  const file = path.join(dir, `${process.pid}-${randomBytes(6).toString('hex')}`);
  const started = Date.now();
  const waitMs = opts.waitMs ?? WRITER_WAIT_MS;
  for (;;) {
    const created = await createExclusive(file, leaseText(token)).catch((err: unknown) => {
      throw pathError(err, storeDir, 'taking a writer lease');
    });
    if (!created) throw new LockError(`lease file ${file} exists already`);
    // Flag first (above), then check: a gc that made its file before this lease existed is seen here.
    const gc = await liveGc(storeDir).catch(async (err: unknown) => {
      await rm(file, { force: true });
      throw err;
    });
    if (gc === undefined) break;
    await rm(file, { force: true });
    if (Date.now() - started > waitMs || opts.signal?.aborted) {
      throw new StoreBusyError(
        `store ${storeDir} is being garbage-collected by pid ${gc.pid ?? '?'}${gc.what ? ` (${gc.what})` : ''}`,
        'wait for ferry store gc to finish, then run this again',
      );
    }
    await wait(WRITER_POLL_MS);
  }
  let released = false;
  return {
    async release(): Promise<void> {
      if (released) return;
      released = true;
      // Only our own file: a stale-lease removal by gc may have taken it (we were judged dead: never here).
      const content = await readFile(file, 'utf8').catch(() => undefined);
      if (content !== undefined && content.startsWith(token)) await rm(file, { force: true });
    },
  };
}

export interface GcLease {
  release(): Promise<void>;
}

/**
 * Take the gc flag on the store: only when no live writer holds a lease. With `waitMs` > 0,
 * polls until the writers are gone or the time is up; then fails with STORE_BUSY naming a
 * writer. Another live gc is a failure at once.
 */
export async function acquireGcLease(storeDir: string, opts: { waitMs?: number; pollMs?: number } = {}): Promise<GcLease> {
  const dir = path.join(storeDir, LEASE_DIR);
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, GC_FILE);
  const token = newLockToken();
  const started = Date.now();
  for (;;) {
    if (!(await createExclusive(file, token))) {
      const other = await liveGc(storeDir);
      if (other === undefined) {
        await wait(50); // a dead gc's file, being removed: try again
        continue;
      }
      throw new StoreBusyError(
        `store ${storeDir} is being garbage-collected already by pid ${other.pid ?? '?'}${other.what ? ` (${other.what})` : ''}`,
        'wait for it to finish',
      );
    }
    // Flag first (above), then check: a writer whose lease came first is seen here.
    let writers: LeaseHolder[];
    try {
      writers = await liveLeases(storeDir);
    } catch (err) {
      await rm(file, { force: true });
      throw err;
    }
    if (writers.length === 0) break;
    await rm(file, { force: true });
    if (Date.now() - started >= (opts.waitMs ?? 0)) {
      const w = writers[0]!;
      throw new StoreBusyError(
        `store ${storeDir} in use by pid ${w.pid ?? '?'}${w.what ? ` (${w.what})` : ''}${writers.length > 1 ? ` and ${writers.length - 1} more` : ''}`,
        'run gc when no pull, load or copy into this store is running, or give --wait SECONDS',
      );
    }
    await wait(opts.pollMs ?? 500);
  }
  return {
    async release(): Promise<void> {
      const content = await readFile(file, 'utf8').catch(() => undefined);
      if (content !== undefined && content.startsWith(token)) await rm(file, { force: true });
    },
  };
}
