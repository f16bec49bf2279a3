/** Atomic file writes: temp file beside the target, fsync, rename, fsync the directory. */
import fs from 'node:fs';
import { link, open, readdir, rename, rm, mkdir, stat } from 'node:fs/promises';
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable, type Readable, type Transform } from 'node:stream';
import { IntegrityError } from './errors.js';

let cachedHostId: string | undefined;

/**
 * A short (8 hex) identifier of "this host, as far as pids go": a pid recorded by another
 * process is only meaningful to processAlive() when both ran on the same machine and in the
 * same pid namespace. Made from the host name, the machine id and (on Linux) the pid
 * namespace, so another container (another pid namespace, even with the same host name) or
 * another NFS client gets another id.
 */
export function localHostId(): string {
  if (cachedHostId === undefined) {
    const read = (f: string, how: (f: string) => string): string => {
      try {
        return how(f).trim();
      } catch {
        return '';
      }
    };
    const machineId = read('/etc/machine-id', (f) => fs.readFileSync(f, 'utf8'));
    const pidNamespace = read('/proc/self/ns/pid', (f) => fs.readlinkSync(f));
    cachedHostId = createHash('sha256').update(`${hostname()}\0${machineId}\0${pidNamespace}`).digest('hex').slice(0, 8);
  }
  return cachedHostId;
}

/**
 * A temp name beside `target`: `.{base}.{hostId}-{pid}.{random}.tmp`. The host id and pid say
 * who is writing it, so removeDeadTemps() can tell a killed writer's leftovers from a live
 * writer's file. (Versions before the host id wrote `.{base}.{pid}.{random}.tmp`.)
 */
export function tempNameFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${localHostId()}-${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
}

/** Whether a process with this pid exists on this host (EPERM means it does, owned by another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A temp file this old is abandoned whoever made it: live writers touch theirs far more often. */
export const ABANDONED_TEMP_MS = 60 * 60 * 1000;

const TEMP_NAME = /^\.(.+)\.([a-f0-9]{8})-(\d+)\.[a-f0-9]+\.tmp$/;
/** The name earlier versions wrote, without a host id (unambiguous: no '-' in the pid field). */
const OLD_TEMP_NAME = /^\.(.+)\.(\d+)\.[a-f0-9]+\.tmp$/;

/**
 * Remove temp files that tempNameFor() made in `dir` for targets whose base name `matches`,
 * when their writer is certainly gone: made on this host (same host id) by a pid that no
 * longer exists, or (whoever made it, here, in another container or on another NFS client)
 * not modified for ABANDONED_TEMP_MS. A pid from another host or pid namespace says nothing
 * about liveness here, so such files are left to the age rule. Names in the older format
 * (no host id) are judged by pid as before, and by age. Returns how many were removed.
 */
export async function removeDeadTemps(dir: string, matches: (base: string) => boolean): Promise<number> {
  const dead = await deadTemps(dir, matches);
  for (const t of dead) await rm(t.file, { force: true });
  return dead.length;
}

/** A temp file whose writer is gone (see removeDeadTemps): its path, target base name, size and mtime. */
export interface DeadTemp {
  file: string;
  base: string;
  size: number;
  mtimeMs: number;
}

/** The temp files removeDeadTemps would remove, without removing them (a caller may resume one). */
export async function deadTemps(dir: string, matches: (base: string) => boolean): Promise<DeadTemp[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const found: DeadTemp[] = [];
  const now = Date.now();
  for (const n of names) {
    let base: string;
    let pid: number;
    let local: boolean;
    const m = TEMP_NAME.exec(n);
    const old = m ? undefined : OLD_TEMP_NAME.exec(n);
    if (m) {
      base = m[1]!;
      local = m[2] === localHostId();
      pid = Number(m[3]);
    } else if (old) {
      base = old[1]!;
      local = true;
      pid = Number(old[2]);
    } else continue;
    if (!matches(base)) continue;
    const file = path.join(dir, n);
    const s = await stat(file).catch(() => undefined);
    if (s === undefined || !s.isFile()) continue;
    const dead = (local && pid !== process.pid && !processAlive(pid)) || now - s.mtimeMs > ABANDONED_TEMP_MS;
    if (!dead) continue;
    found.push({ file, base, size: s.size, mtimeMs: s.mtimeMs });
  }
  return found;
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

/**
 * Write `data` to `target` atomically (temp file, fsync, rename) and fsync the directory
 * unless `syncDir: false` (then the caller must fsync it before anything durable names the
 * file). With `exclusive`, an existing `target` is never replaced: the temp file is
 * hard-linked into place (which fails if the name exists) and false is returned when
 * `target` already existed. Returns true when `target` now holds `data`.
 */
export async function writeFileAtomic(
  target: string,
  data: Uint8Array | string,
  opts: { syncDir?: boolean; exclusive?: boolean } = {},
): Promise<boolean> {
  const tmp = tempNameFor(target);
  // The directory almost always exists: create it only when the open says it does not (one
  // mkdir per write was a failing system call per manifest of a pull).
  const fh = await open(tmp, 'wx', 0o644).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT') throw err;
    await mkdir(path.dirname(target), { recursive: true });
    return open(tmp, 'wx', 0o644);
  });
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
    if (opts.exclusive) {
      try {
        await link(tmp, target);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') {
          await rm(tmp, { force: true });
          return false;
        }
        // A filesystem without hard links (FAT, some FUSE and SMB mounts): check, then rename.
        if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS' && code !== 'EMLINK') throw err;
        if ((await fileSize(target)) !== undefined) {
          await rm(tmp, { force: true });
          return false;
        }
        await rename(tmp, target);
      }
      await rm(tmp, { force: true });
    } else {
      await rename(tmp, target);
    }
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (opts.syncDir !== false) await fsyncDir(path.dirname(target));
  return true;
}

/**
 * Stream `source` through `transforms` into `target`, atomically: the file appears under its
 * name only if the whole pipeline (including verification) succeeded. Returns bytes written.
 * The file's content is fsynced before the rename; the directory is not (one directory fsync
 * for many files is far cheaper): callers fsync it (fsyncDir) before anything durable, such
 * as an OCI layout's index.json, names the file.
 */
export async function streamToFileAtomic(target: string, source: Readable, transforms: Transform[] = []): Promise<number> {
  // The source may fail before the pipeline below is built (a source that errors from a
  // promise callback): hold on to that error instead of letting it go unhandled.
  let early: Error | undefined;
  const hold = (err: Error): void => {
    early ??= err;
  };
  source.on('error', hold);
  try {
    await mkdir(path.dirname(target), { recursive: true });
  } catch (err) {
    source.off('error', hold);
    source.destroy();
    throw err;
  }
  source.off('error', hold);
  if (early) throw early;
  const tmp = tempNameFor(target);
  const out = new FileSink(tmp);
  try {
    await pipeline([source, ...transforms, out]);
    await rename(tmp, target);
  } catch (err) {
    source.destroy();
    out.destroy();
    await out.fdClosed;
    await rm(tmp, { force: true });
    throw err;
  }
  return out.bytesWritten;
}

/**
 * A file writer for large sequential streams: chunks that arrive while a write is in flight
 * are written together with one writev (fs.WriteStream issues one threadpool write per chunk,
 * which measured at half the throughput), and the file is fsynced before 'finish'.
 */
export class FileSink extends Writable {
  private fd: number | undefined;
  bytesWritten = 0;
  /** Settles once the descriptor is closed (after success or failure). */
  readonly fdClosed: Promise<void>;
  private markClosed!: () => void;

  /** `append`: add to an existing file (a resumed download) instead of creating a new one. */
  constructor(
    private readonly file: string,
    private readonly opts: { append?: boolean } = {},
  ) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.fdClosed = new Promise((resolve) => (this.markClosed = resolve));
  }

  override _construct(cb: (err?: Error | null) => void): void {
    fs.open(this.file, this.opts.append ? 'a' : 'wx', 0o644, (err, fd) => {
      if (err) {
        this.markClosed();
        cb(err);
        return;
      }
      this.fd = fd;
      cb();
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeAll([chunk], cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeAll(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private writeAll(buffers: Buffer[], cb: (err?: Error | null) => void): void {
    fs.writev(this.fd!, buffers, (err, written) => {
      if (err) return cb(err);
      this.bytesWritten += written;
      const total = buffers.reduce((n, b) => n + b.length, 0);
      if (written === total) return cb();
      // Short write: continue with what is left.
      let skip = written;
      const rest: Buffer[] = [];
      for (const b of buffers) {
        if (skip >= b.length) skip -= b.length;
        else {
          rest.push(skip > 0 ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      this.writeAll(rest, cb);
    });
  }

  override _final(cb: (err?: Error | null) => void): void {
    fs.fsync(this.fd!, (err) => {
      if (err) return cb(err);
      fs.close(this.fd!, (closeErr) => {
        this.fd = undefined;
        this.markClosed();
        cb(closeErr);
      });
    });
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.fd === undefined) {
      this.markClosed();
      return cb(err);
    }
    const fd = this.fd;
    this.fd = undefined;
    fs.close(fd, () => {
      this.markClosed();
      cb(err);
    });
  }
}

/** The first `n` bytes of `file` (fewer when it is shorter): what a format sniffer looks at. */
export async function readFileHead(file: string, n: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
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

/** How the CLI passes a bare "-" on: commands read stdin for it. */
export const STDIN_PATH = '/dev/stdin';

/** "-" or /dev/stdin: read standard input. */
export function isStdin(file: string): boolean {
  return file === '-' || file === STDIN_PATH;
}

/**
 * How a bundle path may be read: a regular file in place, or a FIFO (`<(…)`, a named pipe) as a
 * stream, as verify/inspect/load document. Anything else (a character device such as /dev/zero,
 * reached directly or through a symlink; a socket; a block device) is refused before a byte is
 * read: such a "bundle" never ends, and reading it would keep verify busy or load spooling
 * forever. `-` and /dev/stdin are the caller's business (standard input is a documented stream).
 */
export async function bundleInputKind(file: string): Promise<'file' | 'fifo'> {
  const st = await stat(file);
  if (st.isFile()) return 'file';
  if (st.isFIFO()) return 'fifo';
  const what = st.isDirectory()
    ? 'a directory'
    : st.isCharacterDevice()
      ? 'a character device'
      : st.isBlockDevice()
        ? 'a block device'
        : st.isSocket()
          ? 'a socket'
          : 'not a regular file';
  throw new NotABundleFileError(file, what);
}

/** A bundle path that names something other than a regular file or a FIFO. */
export class NotABundleFileError extends IntegrityError {
  constructor(
    readonly file: string,
    what: string,
  ) {
    // Exit 3, as for any bundle that cannot be trusted: the path came with the media.
    super('NOT_A_FILE', `${file} is ${what}, not a bundle file`, {
      hint: 'give a bundle file (a regular file), - for stdin, or a pipe',
    });
  }
}

/**
 * Create `file` holding `text` if no file has that name (O_EXCL); false if one does. Never
 * leaves an empty file behind: a failed write (a full disk) removes what was created, since an
 * empty lock or lease would hold off every later run.
 */
export async function createExclusiveFile(file: string, text: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(file, 'wx', 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await fh.writeFile(text);
    await fh.close();
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(file, { force: true });
    throw err;
  }
  return true;
}
