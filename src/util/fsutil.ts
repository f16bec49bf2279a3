/** Atomic file writes: temp file beside the target, fsync, rename, fsync the directory. */
import { createWriteStream } from 'node:fs';
import { open, rename, rm, mkdir, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable, Transform } from 'node:stream';

export function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await fh.close();
  }
}

export async function writeFileAtomic(target: string, data: Uint8Array | string, opts: { syncDir?: boolean } = {}): Promise<void> {
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = tempNameFor(target);
  const fh = await open(tmp, 'wx', 0o644);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (opts.syncDir !== false) await fsyncDir(path.dirname(target));
}

/**
 * Stream `source` through `transforms` into `target`, atomically: the file appears under its
 * name only if the whole pipeline (including verification) succeeded. Returns bytes written.
 */
export async function streamToFileAtomic(target: string, source: Readable, transforms: Transform[] = []): Promise<number> {
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = tempNameFor(target);
  // flush: the descriptor is fsynced before it is closed, and pipeline() waits for 'close'.
  const out = createWriteStream(tmp, { flags: 'wx', mode: 0o644, flush: true, highWaterMark: 1024 * 1024 });
  try {
    await pipeline([source, ...transforms, out]);
    if (!out.closed) await once(out, 'close');
    await rename(tmp, target);
  } catch (err) {
    source.destroy();
    out.destroy();
    if (!out.closed) await once(out, 'close').catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  return out.bytesWritten;
}

export async function fileSize(p: string): Promise<number | undefined> {
  try {
    const s = await stat(p);
    return s.isFile() ? s.size : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
