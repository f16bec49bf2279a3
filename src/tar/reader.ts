/**
 * A tar reader: streaming (`iterateTar`) and random access over a file (`indexTarFile` +
 * `openTarEntry`). It reads what `docker save`, GNU tar, bsdtar, Go's archive/tar and ferry's
 * own writer produce: ustar (with the `prefix` field), POSIX pax extended headers (`path`,
 * `linkpath`, `size`; global headers are validated and ignored), GNU long names and long link
 * targets (typeflags `L` / `K`), and base-256 numeric fields.
 *
 * Nothing is ever written to disk and links are never followed: symlinks and hard links are
 * reported as such, with their targets, for the caller to resolve (or refuse) within the archive.
 * Names are reported both raw and `path.posix.normalize`d with any leading "./" and trailing "/"
 * removed; an absolute or `..`-escaping name stays visibly so ("/etc/x", "../x") for callers to reject.
 *
 * Strictness (an air-gap transfer must notice damage, not guess): a header whose checksum is
 * wrong, a malformed numeric field, a malformed pax record, and an archive that ends inside a
 * member or after a member without the end-of-archive marker all fail with TarFormatError
 * (code TAR_INVALID), naming the member and offset. A lone zero block followed by end of file
 * is accepted (GNU tar writes nothing else wrong there), as is an empty (0-byte) input.
 *
 * Typeflags: '0', '\0' and '7' are regular files; '1' hard link; '2' symlink; '5' directory;
 * everything else ('3','4','6', GNU 'S', 'V', 'M', ...) is 'other'. As in Go's archive/tar,
 * link, directory, device and fifo headers carry no data whatever their size field says.
 * The header layout, pax records and end-of-archive rules are format.ts's.
 *
 * Hand-written rather than tar-stream: bundles and archives are read in place (an index of
 * headers, then positional reads of one member's bytes, or a range of them), which a
 * stream-only parser cannot do, and bundles need rules it does not enforce (nothing after the
 * end-of-archive marker, no unknown pax keys, no global headers). docs/architecture.md.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { wrap } from '../util/errors.js';
import {
  type ByteSource,
  entryType,
  HEADER_ONLY_TYPEFLAGS,
  isExtendedHeader,
  isZeroBlock,
  normalizeTarName,
  padded,
  parseHeader,
  parsePax,
  readEndOfArchive,
  TAR_BLOCK_SIZE as BLOCK,
  TarFormatError,
  TarTrailingDataError,
} from './format.js';

export interface TarEntry {
  /** path.posix.normalize'd, no leading './', no trailing '/'. May be absolute or start with '..' (hostile input). */
  name: string;
  /** The name as the archive spells it (after pax / GNU long-name / ustar prefix resolution). */
  rawName: string;
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';
  /** Data bytes (0 for every type but 'file' and 'other' types that carry data). */
  size: number;
  /** Symlink target or hard-link source name, verbatim. */
  linkname?: string;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  /** Offset of the entry's first header block (its pax / GNU long-name header if any). */
  headerOffset: number;
  /** Offset of the entry's data. */
  dataOffset: number;
}

export interface TarReadOptions {
  /**
   * Refuse archives with more members than this (default 250,000): an index costs ~120 bytes of
   * memory per member, so an archive of empty members may not make it grow without bound.
   */
  maxEntries?: number;
  /** Largest pax extended header or GNU long name accepted, in bytes (default 1 MiB, like Go). */
  maxPaxBytes?: number;
  /**
   * Ferry bundles (never third-party archives): pax records other than `path`, `linkpath` and
   * `size`, and global pax headers, are TAR_INVALID; after the end-of-archive marker only zero
   * bytes (record padding) may follow, anything else is a TarTrailingDataError (TRAILING_DATA).
   */
  strict?: boolean;
}

const DEFAULT_MAX_ENTRIES = 250_000;
const DEFAULT_MAX_PAX = 1024 * 1024;

function quoteName(n: string | undefined): string {
  return n === undefined ? 'the first member' : `member ${JSON.stringify(n)}`;
}

async function* parseEntries(io: ByteSource, opts: TarReadOptions): AsyncGenerator<TarEntry> {
  const maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
  const maxPax = opts.maxPaxBytes ?? DEFAULT_MAX_PAX;
  let last: string | undefined;
  let count = 0;
  let pending: { path?: string; linkpath?: string; size?: number; headerOffset: number } | undefined;

  for (;;) {
    const offset = io.pos;
    const block = await io.read(BLOCK);
    if (block.length === 0 && count === 0 && pending === undefined && offset === 0) return; // empty input
    if (block.length < BLOCK) {
      if (pending)
        throw new TarFormatError(`tar archive truncated: extended header at offset ${pending.headerOffset} has no member after it`);
      throw new TarFormatError(
        block.length === 0
          ? `tar archive truncated: it ends after ${quoteName(last)} without the end-of-archive marker`
          : `tar archive truncated: partial header block at offset ${offset} (after ${quoteName(last)})`,
      );
    }
    if (isZeroBlock(block)) {
      if (pending)
        throw new TarFormatError(`tar archive: extended header at offset ${pending.headerOffset} is followed by the end-of-archive marker`);
      // A stream may end in record padding, but not in endless zeros (`verify - < /dev/zero`
      // read forever): past MAX_STREAM_TRAILING_ZEROS it is refused. A file's size bounds it.
      await readEndOfArchive(io instanceof StreamSource ? boundedTrailer(io, offset) : io, offset, opts.strict === true);
      return;
    }
    const h = parseHeader(block, offset, last);
    const headerOffset = pending?.headerOffset ?? offset;

    if (isExtendedHeader(h.typeflag)) {
      const what = `tar ${h.typeflag === 'x' || h.typeflag === 'g' ? 'pax' : 'GNU long-name'} header at offset ${offset}`;
      if (h.size > maxPax) throw new TarFormatError(`${what}: ${h.size} bytes, over the ${maxPax}-byte limit`);
      const data = await io.read(h.size);
      if (data.length < h.size) throw new TarFormatError(`tar archive truncated inside the ${what} (after ${quoteName(last)})`);
      if (!(await io.skipTo(io.pos + padded(h.size) - h.size))) {
        throw new TarFormatError(`tar archive truncated inside the ${what} (after ${quoteName(last)})`);
      }
      if (h.typeflag === 'g') {
        if (opts.strict) throw new TarFormatError(`${what}: a global pax header is not allowed here`);
        parsePax(data, what); // validated, not applied: global defaults are not used for names by any image tool
        continue;
      }
      pending ??= { headerOffset: offset };
      if (h.typeflag === 'x') {
        const recs = parsePax(data, what, opts.strict);
        const p = recs.get('path');
        const lp = recs.get('linkpath');
        const sz = recs.get('size');
        if (p !== undefined && p !== '') pending.path = p;
        if (lp !== undefined && lp !== '') pending.linkpath = lp;
        if (sz !== undefined && sz !== '') {
          const n = Number(sz);
          if (!Number.isSafeInteger(n)) throw new TarFormatError(`${what}: pax size ${sz} overflows`);
          pending.size = n;
        }
      } else {
        const nul = data.indexOf(0);
        const s = data.subarray(0, nul === -1 ? data.length : nul).toString('utf8');
        if (h.typeflag === 'L') pending.path = s;
        else pending.linkpath = s;
      }
      continue;
    }

    if (++count > maxEntries) throw new TarFormatError(`tar archive has more than ${maxEntries} members`);
    const rawName = pending?.path ?? h.name;
    const linkname = pending?.linkpath ?? h.linkname;
    const type = entryType(h.typeflag);
    const size = HEADER_ONLY_TYPEFLAGS.has(h.typeflag) ? 0 : (pending?.size ?? h.size);
    pending = undefined;
    if (rawName === '') throw new TarFormatError(`tar header at offset ${offset} (after ${quoteName(last)}): empty member name`);
    const normalized = normalizeTarName(rawName);
    const entry: TarEntry = {
      // One string when the name is already normal (almost always): an index of a million
      // members holds a million names, not two million.
      name: normalized === rawName ? rawName : normalized,
      rawName,
      type,
      size,
      mode: h.mode,
      headerOffset,
      dataOffset: io.pos,
    };
    if ((type === 'symlink' || type === 'hardlink') && linkname !== '') entry.linkname = linkname;
    last = rawName;
    yield entry;
    const end = entry.dataOffset + padded(size);
    if (io.pos > end) throw new Error(`tar reader: read past member ${JSON.stringify(rawName)}`);
    if (!(await io.skipTo(end))) {
      throw new TarFormatError(
        `tar archive truncated in member ${JSON.stringify(rawName)} (its ${size} bytes of data end past the end of input)`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Streaming

/** Zero padding a stream may carry after the end-of-archive marker (tape records, dd block sizes). */
export const MAX_STREAM_TRAILING_ZEROS = 1024 * 1024;

/** `io`, failing once more than MAX_STREAM_TRAILING_ZEROS are read past the marker at `offset`. */
function boundedTrailer(io: ByteSource, offset: number): ByteSource {
  const limit = offset + TAR_TRAILER_SIZE_BYTES + MAX_STREAM_TRAILING_ZEROS;
  const check = (): void => {
    if (io.pos > limit) {
      throw new TarTrailingDataError(
        `tar archive: more than ${MAX_STREAM_TRAILING_ZEROS} bytes of padding after the end-of-archive marker at offset ${offset}`,
      );
    }
  };
  return {
    get pos() {
      return io.pos;
    },
    async read(n: number) {
      const b = await io.read(n);
      check();
      return b;
    },
    async skipTo(target: number) {
      const ok = await io.skipTo(target);
      check();
      return ok;
    },
  };
}

const TAR_TRAILER_SIZE_BYTES = 2 * BLOCK;

class StreamSource implements ByteSource {
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  private readonly it: AsyncIterator<unknown>;

  constructor(source: Readable) {
    this.it = (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    while (this.buf.length === 0) {
      if (this.done) return false;
      const r = await this.it.next();
      if (r.done) {
        this.done = true;
        return false;
      }
      const c = r.value;
      if (!(c instanceof Uint8Array)) throw new TarFormatError('tar source yielded non-byte chunks (was setEncoding called?)');
      this.buf = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    }
    return true;
  }

  /** Up to `max` bytes that are already at hand (or the next chunk), or null at end of input. */
  async readSome(max: number): Promise<Buffer | null> {
    if (max <= 0) return Buffer.alloc(0);
    if (!(await this.fill())) return null;
    const n = Math.min(max, this.buf.length);
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    this.pos += n;
    return out;
  }

  async read(n: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const c = await this.readSome(n - got);
      if (!c) break;
      parts.push(c);
      got += c.length;
    }
    return parts.length === 1 ? Buffer.from(parts[0]!) : Buffer.concat(parts, got);
  }

  async skipTo(target: number): Promise<boolean> {
    while (this.pos < target) {
      if (!(await this.readSome(target - this.pos))) return false;
    }
    return true;
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

/**
 * Read an archive from a stream, one member at a time. Each member's `body` yields exactly its
 * data; a caller may read it fully, partly or not at all before asking for the next member
 * (what is left is skipped; a body not read to its end is destroyed then). Memory stays flat.
 * Ending the iteration early (break, throw) closes `source`.
 */
export async function* iterateTar(source: Readable, opts: TarReadOptions = {}): AsyncGenerator<{ entry: TarEntry; body: Readable }> {
  const io = new StreamSource(source);
  try {
    for await (const entry of parseEntries(io, opts)) {
      let remaining = entry.size;
      let inFlight: Promise<void> = Promise.resolve();
      let detached = false;
      const body = new Readable({
        highWaterMark: 64 * 1024,
        read() {
          if (detached) return;
          inFlight = (async () => {
            if (remaining === 0) {
              body.push(null);
              return;
            }
            try {
              const c = await io.readSome(Math.min(remaining, 256 * 1024));
              if (detached) return;
              if (!c) {
                body.destroy(
                  new TarFormatError(
                    `tar archive truncated in member ${JSON.stringify(entry.rawName)} (${entry.size - remaining} of ${entry.size} data bytes present)`,
                  ),
                );
                return;
              }
              remaining -= c.length;
              body.push(c);
              if (remaining === 0) body.push(null);
            } catch (err) {
              body.destroy(err as Error);
            }
          })();
        },
      });
      yield { entry, body };
      await inFlight;
      detached = true;
      if (!body.readableEnded && !body.destroyed) {
        // The caller moved on without reading to the end: nobody may read on from the shared source.
        body.destroy();
      }
      // parseEntries skips whatever of the data and padding is left.
    }
  } finally {
    await io.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Random access

/**
 * Positional reads of a file with a small read-ahead window: headers of small members sit next
 * to each other, so one 64 KiB read serves many of them (a 512-byte read per header made an
 * archive of a million empty members take a minute to index). Skipping over member data only
 * moves the position.
 */
class FileSource implements ByteSource {
  pos = 0;
  private window: Buffer = Buffer.alloc(0);
  private windowStart = 0;
  constructor(
    private readonly fh: FileHandle,
    private readonly size: number,
  ) {}

  async read(n: number): Promise<Buffer> {
    const want = Math.max(0, Math.min(n, this.size - this.pos));
    const off = this.pos - this.windowStart;
    if (off >= 0 && off + want <= this.window.length) {
      this.pos += want;
      return Buffer.from(this.window.subarray(off, off + want));
    }
    if (want <= READ_AHEAD) {
      const len = Math.min(READ_AHEAD, this.size - this.pos);
      const buf = Buffer.alloc(len);
      const got = await this.readAt(buf, this.pos);
      this.window = buf.subarray(0, got);
      this.windowStart = this.pos;
      const n2 = Math.min(want, got);
      this.pos += n2;
      return Buffer.from(this.window.subarray(0, n2));
    }
    const buf = Buffer.alloc(want);
    const got = await this.readAt(buf, this.pos);
    this.pos += got;
    return got === want ? buf : buf.subarray(0, got);
  }

  private async readAt(buf: Buffer, at: number): Promise<number> {
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, at + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    return got;
  }

  async skipTo(target: number): Promise<boolean> {
    if (target > this.size) {
      this.pos = this.size;
      return false;
    }
    this.pos = target;
    return true;
  }
}

const READ_AHEAD = 64 * 1024;

/**
 * The headers of a tar file one by one, as indexTarFile reads them (seeking over member data):
 * a caller that stops early (format detection) reads no further than it asked for.
 */
export async function* scanTarFile(file: string, opts: TarReadOptions = {}): AsyncGenerator<TarEntry> {
  const fh = await open(file, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new TarFormatError(`${file} is not a regular file`);
    yield* parseEntries(new FileSource(fh, st.size), opts);
  } catch (err) {
    throw err instanceof TarFormatError ? wrap(err, file) : err;
  } finally {
    await fh.close();
  }
}

/**
 * Index a tar file by reading its headers only, seeking over member data with positional
 * reads: the cost is one 512-byte read per header, whatever the members' sizes.
 */
export async function indexTarFile(file: string, opts: TarReadOptions = {}): Promise<TarEntry[]> {
  const fh = await open(file, 'r');
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new TarFormatError(`${file} is not a regular file`);
    const out: TarEntry[] = [];
    for await (const e of parseEntries(new FileSource(fh, st.size), opts)) out.push(e);
    return out;
  } catch (err) {
    throw err instanceof TarFormatError ? wrap(err, file) : err;
  } finally {
    await fh.close();
  }
}

/**
 * The data of one member of a tar file (from indexTarFile), or the part `range` selects:
 * `start` inclusive, `end` exclusive, both relative to the member's data. The stream fails
 * with TarFormatError if the file turns out shorter than the member.
 *
 * `handle`, when given, is an already-open descriptor of that file (the one indexed): the
 * data is read from it with positional reads instead of opening `file` again (which may have
 * been replaced since), and it is left open. `file` then only names the archive in messages.
 */
export function openTarEntry(file: string, entry: TarEntry, range?: { start: number; end: number }, handle?: FileHandle): Readable {
  const start = range?.start ?? 0;
  const end = range?.end ?? entry.size;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start || end > entry.size) {
    throw new RangeError(`invalid range ${start}-${end} for tar member ${JSON.stringify(entry.name)} of ${entry.size} bytes`);
  }
  async function* chunks(): AsyncGenerator<Buffer> {
    if (end === start) return;
    const fh = handle ?? (await open(file, 'r'));
    try {
      let pos = entry.dataOffset + start;
      const stop = entry.dataOffset + end;
      while (pos < stop) {
        const buf = Buffer.allocUnsafe(Math.min(1024 * 1024, stop - pos));
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) {
          throw new TarFormatError(
            `${file}: tar archive truncated in member ${JSON.stringify(entry.rawName)} (file ends at offset ${pos})`,
          );
        }
        pos += bytesRead;
        yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
      }
    } finally {
      if (!handle) await fh.close();
    }
  }
  return Readable.from(chunks(), { objectMode: false, highWaterMark: 1024 * 1024 });
}
