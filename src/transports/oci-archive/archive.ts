/**
 * A tar file opened for random access by member name, shared by the oci-archive and
 * docker-archive transports. Nothing is extracted: members are read in place at their offsets.
 *
 * Safety: an archive with a member named absolutely or with a ".." component is refused
 * outright (ARCHIVE_UNSAFE_PATH); symlinks and hard links are resolved inside the archive
 * only, and a link that leaves it (absolute target, or ".." past the root) is refused
 * (ARCHIVE_LINK_ESCAPE). Compressed archives (gzip, xz, bzip2, zstd: sniffed from the magic
 * bytes, not the file name) are refused with UNSUPPORTED_COMPRESSION unless the caller opts
 * into decompression to a temporary file (see openArchiveFile).
 */
import { spawn } from 'node:child_process';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { FerryError, IntegrityError, NotFoundError } from '../../util/errors.js';
import { indexTarFile, openTarEntry, type TarEntry } from '../../tar/reader.js';
import { normalizeTarName } from '../../tar/format.js';
import { readFileHead } from '../../util/fsutil.js';

export class ArchiveError extends FerryError {}

export type Compression = 'none' | 'gzip' | 'zstd' | 'xz' | 'bzip2';

/** Compression from magic bytes (moby/go-archive compression_detect.go). */
export function sniffCompression(head: Uint8Array): Compression {
  const starts = (...m: number[]) => m.every((b, i) => head[i] === b);
  if (starts(0x1f, 0x8b, 0x08)) return 'gzip';
  if (starts(0x28, 0xb5, 0x2f, 0xfd)) return 'zstd';
  if (starts(0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00)) return 'xz';
  if (starts(0x42, 0x5a, 0x68)) return 'bzip2';
  return 'none';
}

const CLI: Partial<Record<Compression, string>> = { xz: 'xz', bzip2: 'bzip2', zstd: 'zstd' };

export interface ArchiveOpenOptions {
  /**
   * Decompress a compressed archive into a private temporary file first: gzip in-process,
   * xz / bzip2 / zstd through their command-line tools when installed. Default false: refuse.
   */
  decompress?: boolean;
  /**
   * Refuse an archive naming a file (or link) twice (IntegrityError DUPLICATE_MEMBER), instead
   * of letting the last copy win as extraction would: readers that took different copies
   * would disagree about what the archive holds. OCI archives and bundles are read this way.
   */
  refuseDuplicates?: boolean;
  /**
   * The archive was decompressed already (ferry load's detection writes the tar while it scans
   * a gzip stream): read `tarFile` instead of `file`, and call `cleanup` on close or failure.
   * Messages keep naming `file`.
   */
  decompressed?: { tarFile: string; cleanup: () => Promise<void> };
}

/** A tar archive, indexed. `close()` removes any temporary decompressed copy. */
export class TarArchive {
  private readonly members = new Map<string, TarEntry>();

  private constructor(
    /** The file as the user named it. */
    readonly file: string,
    /** The tar actually read (a temporary file when the input was compressed). */
    readonly tarFile: string,
    readonly entries: readonly TarEntry[],
    readonly label: string,
    private readonly cleanup: (() => Promise<void>) | undefined,
    refuseDuplicates = false,
  ) {
    for (const e of entries) {
      if (e.name === '.' && e.type === 'directory') continue;
      if (path.posix.isAbsolute(e.name) || e.name === '..' || e.name.startsWith('../')) {
        throw new ArchiveError(
          'ARCHIVE_UNSAFE_PATH',
          `${label}: member ${JSON.stringify(e.rawName)} names a path outside the archive; refusing the archive`,
        );
      }
      if (refuseDuplicates && e.type !== 'directory' && this.members.has(e.name)) {
        throw new IntegrityError(
          'DUPLICATE_MEMBER',
          `${label}: member ${JSON.stringify(e.rawName)} appears more than once; refusing the archive (readers would disagree on which copy counts)`,
        );
      }
      // Later members replace earlier ones of the same name, as extraction would.
      this.members.set(e.name, e);
    }
  }

  static async open(file: string, label: string, opts: ArchiveOpenOptions = {}): Promise<TarArchive> {
    if (opts.decompressed) {
      const { tarFile, cleanup } = opts.decompressed;
      try {
        return new TarArchive(file, tarFile, await indexTarFile(tarFile), label, cleanup, opts.refuseDuplicates);
      } catch (err) {
        await cleanup();
        throw err;
      }
    }
    let head: Buffer;
    try {
      head = await readFileHead(file, 8);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`${label}: ${file} does not exist`);
      throw err;
    }
    const comp = sniffCompression(head);
    let tarFile = file;
    let cleanup: (() => Promise<void>) | undefined;
    if (comp !== 'none') {
      if (!opts.decompress) {
        throw new ArchiveError(
          'UNSUPPORTED_COMPRESSION',
          `${label}: ${file} is ${comp}-compressed; ferry reads uncompressed tar archives`,
          {
            hint: comp === 'gzip' ? `decompress it first (gunzip -k ${file})` : `decompress it first (${CLI[comp]} -dk ${file})`,
          },
        );
      }
      const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-archive-'));
      cleanup = () => rm(dir, { recursive: true, force: true });
      tarFile = path.join(dir, 'archive.tar');
      try {
        await decompressTo(file, tarFile, comp, label);
      } catch (err) {
        await cleanup();
        throw err;
      }
    }
    try {
      const entries = await indexTarFile(tarFile);
      return new TarArchive(file, tarFile, entries, label, cleanup, opts.refuseDuplicates);
    } catch (err) {
      await cleanup?.();
      throw err;
    }
  }

  has(name: string): boolean {
    return this.members.has(normalizeTarName(name));
  }

  /** The regular-file member a name leads to, following symlinks and hard links within the archive. */
  resolve(name: string): TarEntry {
    const want = normalizeTarName(name);
    let current = want;
    for (let hops = 0; hops <= 40; hops++) {
      const e = this.members.get(current);
      if (!e) {
        throw new ArchiveError(
          'ARCHIVE_MEMBER_MISSING',
          `${this.label}: ${current === want ? '' : `${JSON.stringify(want)} leads to `}${JSON.stringify(current)}, which the archive does not contain`,
        );
      }
      if (e.type === 'file') return e;
      if (e.type !== 'symlink' && e.type !== 'hardlink') {
        throw new ArchiveError('ARCHIVE_INVALID', `${this.label}: member ${JSON.stringify(current)} is a ${e.type}, not a file`);
      }
      const target = e.linkname ?? '';
      // Symlink targets are relative to the link's directory; hard-link targets name a member.
      const joined = e.type === 'symlink' ? path.posix.join(path.posix.dirname(e.name), target) : target;
      const next = normalizeTarName(joined);
      if (target === '' || path.posix.isAbsolute(target) || next === '..' || next.startsWith('../')) {
        throw new ArchiveError(
          'ARCHIVE_LINK_ESCAPE',
          `${this.label}: ${e.type} ${JSON.stringify(e.name)} points outside the archive (${JSON.stringify(target)}); refusing to follow it`,
        );
      }
      current = next;
    }
    throw new ArchiveError('ARCHIVE_LINK_LOOP', `${this.label}: too many links resolving ${JSON.stringify(want)}`);
  }

  open(entry: TarEntry, range?: { start: number; end: number }): Readable {
    return openTarEntry(this.tarFile, entry, range);
  }

  async readHead(entry: TarEntry, n: number): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const c of this.open(entry, { start: 0, end: Math.min(n, entry.size) })) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /** A whole small member (JSON documents), refusing ones over `cap` bytes. */
  async readBytes(entry: TarEntry, cap: number, what: string): Promise<Buffer> {
    if (entry.size > cap)
      throw new ArchiveError('BLOB_TOO_LARGE', `${this.label}: ${what} is ${entry.size} bytes, over the ${cap}-byte limit`);
    const chunks: Buffer[] = [];
    for await (const c of this.open(entry)) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  async close(): Promise<void> {
    await this.cleanup?.();
  }
}

async function decompressTo(src: string, dst: string, comp: Compression, label: string): Promise<void> {
  if (comp === 'gzip') {
    await pipeline(createReadStream(src), createGunzip(), createWriteStream(dst, { flags: 'wx', mode: 0o600 }));
    return;
  }
  const tool = CLI[comp]!;
  await new Promise<void>((resolve, reject) => {
    const child = spawn(tool, ['-dc'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString();
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'ENOENT'
          ? new ArchiveError('UNSUPPORTED_COMPRESSION', `${label}: ${src} is ${comp}-compressed and the ${tool} tool is not installed`, {
              hint: `decompress it elsewhere first (${tool} -dk ${src})`,
            })
          : err,
      );
    });
    const out = pipeline(child.stdout, createWriteStream(dst, { flags: 'wx', mode: 0o600 }));
    const inp = pipeline(createReadStream(src), child.stdin);
    child.on('close', (code) => {
      Promise.all([out, inp]).then(
        () =>
          code === 0
            ? resolve()
            : reject(new ArchiveError('ARCHIVE_INVALID', `${label}: ${tool} failed on ${src} (exit ${code}): ${stderr.trim()}`)),
        (err: unknown) =>
          reject(
            code !== 0 ? new ArchiveError('ARCHIVE_INVALID', `${label}: ${tool} failed on ${src} (exit ${code}): ${stderr.trim()}`) : err,
          ),
      );
    });
  });
}
