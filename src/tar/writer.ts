/**
 * A streaming, deterministic tar writer (POSIX ustar, with pax extended headers where ustar
 * cannot express an entry).
 *
 * Determinism: every header carries the same mtime (given by the caller, default the epoch),
 * uid/gid 0, empty uname/gname, and fixed modes (0644 files and hard links, 0755 directories,
 * 0777 symlinks) unless the caller overrides a mode. Same calls in the same order give the same
 * bytes, on every machine. A hard link's header carries its target's mode, as GNU tar writes it.
 *
 * The format (header layout, pax records, how the archive ends) is format.ts's.
 *
 * Streaming: `output` is a byte Readable. Every add* call resolves only once its bytes are
 * queued below the stream's high-water mark, so a producer that awaits each call never holds
 * more than about one chunk of entry data in memory, however large the entry.
 *
 * Integrity: a file whose source yields fewer or more bytes than declared fails with
 * SizeMismatchError, never writes a byte past the declared size, and destroys `output` with
 * the same error, so a consumer using `pipeline()` rejects and never commits a truncated or
 * misaligned archive. Any failure is final: later calls reject with the first error.
 */
import { Readable } from 'node:stream';
import { AbortedError, FerryError, SizeMismatchError, wrap } from '../util/errors.js';
import {
  checkMtime,
  DEFAULT_MODE,
  endOfArchive,
  headerFor,
  TAR_TRAILER_SIZE,
  TarError,
  type TarEntryType,
  type TarHeaderInput,
  tarPadding,
} from './format.js';

export interface TarWriterOptions {
  /** mtime for every entry, seconds since the epoch or a Date (whole seconds). Default 0. */
  mtime?: number | Date;
  /** Bytes the output buffers before add* calls wait for the consumer. Default 1 MiB. */
  highWaterMark?: number;
}

export interface TarEntryOptions {
  mode?: number;
  /** Overrides the writer's mtime for this entry. */
  mtime?: number | Date;
}

/** Where an entry landed in the archive, for callers that index archives for random access. */
export interface TarEntryInfo {
  name: string;
  type: TarEntryType;
  /** Offset of the entry's first header block (its pax header if it has one). */
  headerOffset: number;
  /** Offset of the entry's data (equal to the next header's offset when size is 0). */
  dataOffset: number;
  size: number;
}

export type TarSource = AsyncIterable<Uint8Array> | Readable;

/**
 * The output side of a TarWriter: a plain Readable fed by push(), whose _read wakes the
 * producer. Producers wait on `demand()` whenever push() reports the buffer is full.
 */
class TarOutput extends Readable {
  private wanted = false;
  private waiter: { resolve: () => void; reject: (err: Error) => void } | undefined;

  override _read(): void {
    this.wanted = true;
    const w = this.waiter;
    this.waiter = undefined;
    w?.resolve();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(err ?? new AbortedError('tar output was closed before the archive was finished'));
    cb(err);
  }

  /** Queue a chunk; resolves once the consumer has room for more. */
  async write(chunk: Buffer): Promise<void> {
    if (this.destroyed) throw this.closedError();
    this.wanted = false;
    if (this.push(chunk) || this.wanted) return;
    await new Promise<void>((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  private closedError(): Error {
    return (this.errored as Error | null) ?? new AbortedError('tar output was closed before the archive was finished');
  }
}

/**
 * Writes a tar archive to `output`, one entry at a time.
 *
 *   const tar = new TarWriter({ mtime: 0 });
 *   const done = pipeline(tar.output, createGzip(), createWriteStream(tmp));
 *   await tar.addDir('etc');
 *   await tar.addFile('etc/hostname', Buffer.from('ferry\n'));
 *   await tar.addFile('big.bin', size, createReadStream(src));
 *   await tar.finish();
 *   await done;
 *
 * Calls are serialised: one need not await each before the next, though awaiting is what
 * bounds memory. Entry names must be relative, without "." or ".." components; directories get
 * a trailing slash; a hard link must point at an earlier non-directory entry. (headerFor()
 * builds headers without these checks, for crafting hostile archives in reader tests.)
 */
export class TarWriter {
  readonly output: Readable;
  private readonly out: TarOutput;
  private readonly mtime: number;
  private position = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private failure: Error | undefined;
  private finished = false;
  /** Entries a hard link may point at, with their modes (a hard link's header carries its target's). */
  private readonly linkable = new Map<string, number>();

  constructor(options: TarWriterOptions = {}) {
    this.mtime = toSeconds(options.mtime ?? 0);
    this.out = new TarOutput({ highWaterMark: options.highWaterMark ?? 1024 * 1024 });
    // Failures always reach callers through the add*/finish promises, and through pipeline()
    // if they use one; without a listener an unconsumed output would crash the process.
    this.out.on('error', () => {});
    this.output = this.out;
  }

  /** Archive bytes queued so far (the offset the next entry will start at). */
  get bytesWritten(): number {
    return this.position;
  }

  /** A regular file from a buffer (not copied: leave it unmodified until consumed). */
  addFile(name: string, data: Uint8Array, options?: TarEntryOptions): Promise<TarEntryInfo>;
  /** A regular file of exactly `size` bytes read from `source`. */
  addFile(name: string, size: number, source: TarSource, options?: TarEntryOptions): Promise<TarEntryInfo>;
  addFile(
    name: string,
    dataOrSize: Uint8Array | number,
    sourceOrOptions?: TarSource | TarEntryOptions,
    maybeOptions?: TarEntryOptions,
  ): Promise<TarEntryInfo> {
    if (typeof dataOrSize === 'number') {
      const source = sourceOrOptions as TarSource | undefined;
      if (source === undefined || !(Symbol.asyncIterator in Object(source))) {
        return Promise.reject(new TarError(`tar entry ${JSON.stringify(name)}: a size needs a source stream`));
      }
      return this.enqueue(() => this.writeFile(name, dataOrSize, source, maybeOptions ?? {}));
    }
    const data = dataOrSize;
    return this.enqueue(() => this.writeFile(name, data.byteLength, data, (sourceOrOptions as TarEntryOptions) ?? {}));
  }

  addDir(name: string, options: TarEntryOptions = {}): Promise<TarEntryInfo> {
    return this.enqueue(async () => {
      const clean = checkName(name, 'directory');
      return this.writeHeaderOnly({ name: `${clean}/`, type: 'directory', ...this.meta(options) });
    });
  }

  /** A symbolic link; `target` is stored verbatim (it may be absolute or contain ".."). */
  addSymlink(name: string, target: string, options: TarEntryOptions = {}): Promise<TarEntryInfo> {
    return this.enqueue(async () => {
      const clean = checkName(name, 'symlink');
      if (target === '') throw new TarError(`tar entry ${JSON.stringify(name)}: empty symlink target`);
      const h: TarHeaderInput = { name: clean, type: 'symlink', linkname: target, ...this.meta(options) };
      const info = await this.writeHeaderOnly(h);
      this.linkable.set(clean, h.mode ?? DEFAULT_MODE.symlink);
      return info;
    });
  }

  /**
   * A hard link to `target`, which must be an earlier file, symlink or hard link in this archive.
   * Its mode defaults to the target's, as tar(1) records it.
   */
  addHardlink(name: string, target: string, options: TarEntryOptions = {}): Promise<TarEntryInfo> {
    return this.enqueue(async () => {
      const clean = checkName(name, 'hardlink');
      const cleanTarget = checkName(target, 'hardlink');
      const targetMode = this.linkable.get(cleanTarget);
      if (targetMode === undefined) {
        throw new TarError(
          `tar entry ${JSON.stringify(name)}: hard link target ${JSON.stringify(target)} is not an earlier non-directory entry`,
        );
      }
      const h: TarHeaderInput = { name: clean, type: 'hardlink', linkname: cleanTarget, mode: targetMode, ...this.meta(options) };
      const info = await this.writeHeaderOnly(h);
      this.linkable.set(clean, h.mode ?? targetMode);
      return info;
    });
  }

  /** Write the end-of-archive blocks and end `output`. Resolves once they are queued. */
  finish(): Promise<void> {
    return this.enqueue(async () => {
      await this.out.write(endOfArchive());
      this.position += TAR_TRAILER_SIZE;
      this.finished = true;
      this.out.push(null);
    });
  }

  /** Give up: `output` errors (so consumers discard what they have) and later calls reject. */
  abort(reason?: unknown): void {
    if (this.finished) return;
    this.fail(reason instanceof Error ? reason : new AbortedError('tar archive aborted'));
  }

  private meta(options: TarEntryOptions): { mode?: number; mtime: number } {
    const mtime = options.mtime === undefined ? this.mtime : toSeconds(options.mtime);
    return options.mode === undefined ? { mtime } : { mode: options.mode, mtime };
  }

  private enqueue<T>(op: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (this.failure) throw this.failure;
      if (this.finished) throw new TarError('tar archive is already finished');
      try {
        return await op();
      } catch (err) {
        // An entry rejected before any of its bytes were queued (bad name, bad mode...) leaves
        // the archive intact; one that fails part-way leaves a partial entry, so it is dead.
        if (this.partial) this.fail(err instanceof Error ? err : new TarError(String(err)));
        throw err;
      } finally {
        this.partial = false;
      }
    };
    const p = this.chain.then(run);
    this.chain = p.catch(() => {});
    return p;
  }

  /** True while an entry has been partly queued. */
  private partial = false;

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.out.destroy(err);
  }

  private async emit(chunk: Buffer): Promise<void> {
    this.partial = true;
    await this.out.write(chunk);
    this.position += chunk.length;
  }

  private async writeHeaderOnly(h: TarHeaderInput): Promise<TarEntryInfo> {
    const header = headerFor(h);
    const headerOffset = this.position;
    await this.emit(header);
    return { name: h.name, type: h.type, headerOffset, dataOffset: this.position, size: 0 };
  }

  private async writeFile(name: string, size: number, source: Uint8Array | TarSource, options: TarEntryOptions): Promise<TarEntryInfo> {
    const clean = checkName(name, 'file');
    const h: TarHeaderInput = { name: clean, type: 'file', size, ...this.meta(options) };
    const header = headerFor(h);
    const headerOffset = this.position;
    await this.emit(header);
    const dataOffset = this.position;
    const what = `tar entry ${JSON.stringify(clean)}`;
    if (source instanceof Uint8Array) {
      if (size > 0) await this.emit(Buffer.from(source.buffer, source.byteOffset, source.byteLength));
    } else {
      let seen = 0;
      try {
        for await (const chunk of source as AsyncIterable<unknown>) {
          if (!(chunk instanceof Uint8Array)) {
            throw new TarError(`${what}: source yielded ${typeof chunk} chunks, want bytes (no setEncoding)`);
          }
          if (chunk.byteLength === 0) continue;
          // Check before queuing: nothing past the declared size is ever written.
          if (seen + chunk.byteLength > size) {
            throw new SizeMismatchError(size, seen + chunk.byteLength, `${what} (source has more bytes than declared)`);
          }
          seen += chunk.byteLength;
          await this.emit(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        }
      } catch (err) {
        throw err instanceof FerryError ? err : wrap(err, what);
      }
      if (seen !== size) throw new SizeMismatchError(size, seen, what);
    }
    const pad = tarPadding(size);
    if (pad > 0) await this.emit(Buffer.alloc(pad));
    this.linkable.set(clean, h.mode ?? DEFAULT_MODE.file);
    return { name: clean, type: 'file', headerOffset, dataOffset, size };
  }
}

function toSeconds(t: number | Date): number {
  const s = t instanceof Date ? t.getTime() / 1000 : t;
  return checkMtime(s);
}

/**
 * Entry names a well-behaved archive may carry: relative, no empty, "." or ".." components
 * (a single trailing slash is tolerated and dropped). Returns the name without trailing slash.
 */
function checkName(name: string, kind: string): string {
  const clean = name.endsWith('/') ? name.slice(0, -1) : name;
  const bad = (why: string) => new TarError(`tar ${kind} entry ${JSON.stringify(name)}: ${why}`);
  if (clean === '') throw bad('empty name');
  if (clean.includes('\0')) throw bad('NUL byte in name');
  if (clean.startsWith('/')) throw bad('absolute name');
  if (kind !== 'directory' && name.endsWith('/')) throw bad('trailing slash on a non-directory');
  for (const part of clean.split('/')) {
    if (part === '' || part === '.' || part === '..') throw bad(`bad path component ${JSON.stringify(part)}`);
  }
  return clean;
}
