/**
 * An advisory lock on an OCI layout directory, held while index.json is read-modified-written.
 * A lock file with O_EXCL; a holder that died (its pid is gone on this host) is taken over.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import { LockError } from '../../util/errors.js';
import { processAlive } from '../../util/fsutil.js';
import { wait } from '../registry/retry.js';

export const LOCK_FILE = '.ferry.lock';


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

async function withFileLock<T>(dir: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  const file = path.join(dir, LOCK_FILE);
  const started = Date.now();
  const me = `${process.pid}@${hostname()}`;
  for (let delay = 10; ; delay = Math.min(delay * 2, 250)) {
    try {
      const fh = await open(file, 'wx', 0o644);
      await fh.writeFile(me);
      await fh.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const holder = await readFile(file, 'utf8').catch(() => '');
      const [pidText, host] = holder.split('@');
      const pid = Number(pidText);
      if (holder !== '' && host === hostname() && Number.isInteger(pid) && !processAlive(pid)) {
        // The holder was killed; its lock protects nothing now.
        await rm(file, { force: true });
        continue;
      }
      if (Date.now() - started > timeoutMs) {
        throw new LockError(`store ${dir} is locked by ${holder || 'another process'} (lock file ${file})`, {
          hint: `wait for the other ferry run to finish; if none is running, remove ${file}`,
        });
      }
      await wait(delay);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(file, { force: true });
  }
}
