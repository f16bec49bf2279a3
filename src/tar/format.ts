/**
 * The tar format itself, in one place for the writer and the reader: the ustar header layout
 * and its checksum, numeric and string fields, pax extended records (encode and decode), the
 * typeflags, name normalisation, and the rules for how an archive ends. Nothing here does I/O
 * except `readEndOfArchive`, which reads through the reader's byte-source interface.
 *
 * What ferry writes (POSIX.1-2001 "pax interchange format", IEEE Std 1003.1 `pax` utility):
 *  - A name or link target that does not fit the 100-byte ustar field as-is, or that is not
 *    plain ASCII, is carried in a pax `path` / `linkpath` record. The ustar `prefix` field is
 *    never used, so there is exactly one rule for long names.
 *  - A size that does not fit 11 octal digits (8 GiB - 1) is carried in a pax `size` record.
 *  - The archive ends with two zero blocks; it is not padded to a 10240-byte record (readers
 *    do not require it, and GNU tar, bsdtar and Go's archive/tar all accept this).
 *
 * What ferry reads is wider (see reader.ts): the ustar `prefix`, GNU long names, base-256
 * numbers, signed checksums; strict reads (bundles) accept only what the writer emits.
 */
import path from 'node:path';
import { FerryError } from '../util/errors.js';

export const TAR_BLOCK_SIZE = 512;
/** Two zero blocks end an archive. */
export const TAR_TRAILER_SIZE = 2 * TAR_BLOCK_SIZE;
/** Largest size a ustar header can hold (11 octal digits); larger sizes use a pax record. */
export const USTAR_MAX_SIZE = 0o77777777777;
/** Largest mtime, in seconds, an 11-digit octal field can hold. mtime is never put in pax records. */
const USTAR_MAX_MTIME = 0o77777777777;
const ZERO_BLOCK = Buffer.alloc(TAR_BLOCK_SIZE);

/** An archive the writer was asked to produce badly (bad name, size, mode...). Code TAR_INVALID. */
export class TarError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TAR_INVALID', message, options);
  }
}

/** An archive read that is malformed, damaged or truncated. Code TAR_INVALID. */
export class TarFormatError extends FerryError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TAR_INVALID', message, options);
  }
}

/** Bytes after the end-of-archive marker (strict reads only): a second archive, or garbage. */
export class TarTrailingDataError extends FerryError {
  constructor(message: string) {
    super('TRAILING_DATA', message);
  }
}

/** Bytes of zero padding after `size` bytes of data, up to the next block boundary. */
export function tarPadding(size: number): number {
  const rem = size % TAR_BLOCK_SIZE;
  return rem === 0 ? 0 : TAR_BLOCK_SIZE - rem;
}

/** `size` rounded up to whole blocks. */
export function padded(size: number): number {
  return size + tarPadding(size);
}

// ---------------------------------------------------------------------------------------------
// Typeflags

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink';

/** The typeflag ferry writes for each entry type, and 'x' for a pax extended header. */
const TYPEFLAG: Record<TarEntryType | 'pax', string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  directory: '5',
  pax: 'x',
};

/** Modes ferry writes unless the caller gives one (deterministic: never the file system's). */
export const DEFAULT_MODE: Record<TarEntryType, number> = {
  file: 0o644,
  hardlink: 0o644,
  symlink: 0o777,
  directory: 0o755,
};

/**
 * What a read typeflag means: '0', '\0' and '7' are regular files; '1' hard link; '2' symlink;
 * '5' directory; everything else ('3','4','6', GNU 'S', 'V', 'M', ...) is 'other'.
 */
export function entryType(typeflag: string): TarEntryType | 'other' {
  switch (typeflag) {
    case '0':
    case '\0':
    case '':
    case '7':
      return 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'directory';
    default:
      return 'other';
  }
}

/** Types whose headers carry no data, whatever the size field says (Go's isHeaderOnlyType). */
export const HEADER_ONLY_TYPEFLAGS: ReadonlySet<string> = new Set(['1', '2', '3', '4', '5', '6']);

/** Typeflags of headers that describe the next member rather than being one: pax ('x', global 'g'), GNU long name/link ('L', 'K'). */
export function isExtendedHeader(typeflag: string): boolean {
  return typeflag === 'x' || typeflag === 'g' || typeflag === 'L' || typeflag === 'K';
}

/** path.posix.normalize, without a leading "./" or a trailing "/". */
export function normalizeTarName(raw: string): string {
  let n = path.posix.normalize(raw === '' ? '.' : raw);
  while (n.startsWith('./')) n = n.slice(2);
  if (n.length > 1 && n.endsWith('/')) n = n.slice(0, -1);
  return n === '' ? '.' : n;
}

// ---------------------------------------------------------------------------------------------
// The ustar header block
//
//   offset  size  field
//        0   100  name (NUL-terminated unless full)
//      100     8  mode (octal)          108 8 uid         116 8 gid
//      124    12  size (octal, or GNU base-256)           136 12 mtime
//      148     8  checksum (summed with this field as spaces)
//      156     1  typeflag              157 100 linkname
//      257     6  magic ("ustar\0" POSIX, "ustar " GNU)   263 2 version
//      265    32  uname  297 32 gname   329 8 devmajor     337 8 devminor
//      345   155  prefix (POSIX ustar only; GNU keeps times there)

/** The checksum of a header block: the sum of its bytes with the checksum field read as spaces. */
function headerSums(b: Buffer): { unsigned: number; signed: number } {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < TAR_BLOCK_SIZE; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return { unsigned, signed };
}

interface UstarFields {
  name: string;
  mode: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: string;
}

function ustarHeader(h: UstarFields): Buffer {
  const b = Buffer.alloc(TAR_BLOCK_SIZE);
  writeString(b, 0, 100, h.name);
  writeOctal(b, 100, 8, h.mode);
  writeOctal(b, 108, 8, 0); // uid
  writeOctal(b, 116, 8, 0); // gid
  writeOctal(b, 124, 12, h.size);
  writeOctal(b, 136, 12, h.mtime);
  writeString(b, 156, 1, h.typeflag);
  writeString(b, 157, 100, h.linkname);
  b.write('ustar\0', 257, 'latin1'); // magic
  b.write('00', 263, 'latin1'); // version
  // uname (265), gname (297): empty. devmajor (329), devminor (337): written as zeros like
  // Go and GNU tar do for non-device entries. prefix (345): never used.
  writeOctal(b, 329, 8, 0);
  writeOctal(b, 337, 8, 0);
  // Six octal digits, NUL, space: the historical layout every reader accepts.
  b.write(`${headerSums(b).unsigned.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return b;
}

function writeString(b: Buffer, offset: number, length: number, s: string): void {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length > length) throw new TarError(`tar header field overflow: ${JSON.stringify(s)}`);
  bytes.copy(b, offset);
}

/** Zero-padded octal, NUL-terminated, filling the field. */
function writeOctal(b: Buffer, offset: number, length: number, n: number): void {
  const digits = n.toString(8);
  if (digits.length > length - 1) throw new TarError(`tar header numeric field overflow: ${n}`);
  b.write(`${digits.padStart(length - 1, '0')}\0`, offset, 'latin1');
}

function cString(b: Buffer, off: number, len: number): string {
  const field = b.subarray(off, off + len);
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? len : nul).toString('utf8');
}

function parseNumeric(b: Buffer, off: number, len: number, field: string, where: () => string): number {
  const first = b[off]!;
  if (first & 0x80) {
    // GNU base-256: big-endian two's complement in the remaining bits. Negative values are invalid here.
    if (first === 0xff) throw new TarFormatError(`${where()}: negative base-256 ${field} field`);
    let n = first & 0x7f;
    for (let i = 1; i < len; i++) {
      n = n * 256 + b[off + i]!;
      if (!Number.isSafeInteger(n)) throw new TarFormatError(`${where()}: ${field} field overflows`);
    }
    return n;
  }
  let s = b.toString('latin1', off, off + len);
  const nul = s.indexOf('\0');
  if (nul !== -1) s = s.slice(0, nul);
  s = s.trim();
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarFormatError(`${where()}: invalid octal ${field} field ${JSON.stringify(s)}`);
  const n = parseInt(s, 8);
  if (!Number.isSafeInteger(n)) throw new TarFormatError(`${where()}: ${field} field overflows`);
  return n;
}

function checksumOk(b: Buffer, where: () => string): boolean {
  let stored: number;
  try {
    stored = parseNumeric(b, 148, 8, 'checksum', where);
  } catch {
    return false; // an unreadable checksum field is a bad checksum (most often: not a tar at all)
  }
  const { unsigned, signed } = headerSums(b);
  // Some historical writers summed signed chars; every reader accepts either.
  return stored === unsigned || stored === signed;
}

/** A header block as read: the fields the reader uses. */
export interface ParsedHeader {
  name: string;
  linkname: string;
  /** Permission bits (mode & 0o7777). */
  mode: number;
  size: number;
  typeflag: string;
}

/** Decode one header block at `offset` (`after`: the previous member's name, for messages). Checks the checksum. */
export function parseHeader(b: Buffer, offset: number, after: string | undefined): ParsedHeader {
  const where = () => `tar header at offset ${offset}${after ? ` (after member ${JSON.stringify(after)})` : ''}`;
  if (!checksumOk(b, where)) throw new TarFormatError(`${where()}: bad header checksum (not a tar archive, or corrupt)`);
  let name = cString(b, 0, 100);
  const magic = b.toString('latin1', 257, 263);
  // POSIX ustar ("ustar\0") has a prefix field; GNU ("ustar  \0") uses those bytes for times.
  if (magic === 'ustar\0') {
    const prefix = cString(b, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  return {
    name,
    linkname: cString(b, 157, 100),
    mode: parseNumeric(b, 100, 8, 'mode', where) & 0o7777,
    size: parseNumeric(b, 124, 12, 'size', where),
    typeflag: b.toString('latin1', 156, 157),
  };
}

// ---------------------------------------------------------------------------------------------
// pax extended records: "<len> <key>=<value>\n", where <len> counts the whole record including itself

function paxRecord(key: string, value: string): string {
  const rest = 1 + Buffer.byteLength(key) + 1 + Buffer.byteLength(value) + 1;
  let len = rest + 1;
  while (len !== rest + String(len).length) len = rest + String(len).length;
  return `${len} ${key}=${value}\n`;
}

/** The pax keys a strict (bundle) read accepts: all ferry's writer emits. */
const STRICT_PAX_KEYS = new Set(['path', 'linkpath', 'size']);

/** Decode a pax extended header's data. `strict`: only the keys ferry writes are allowed. */
export function parsePax(data: Buffer, what: string, strict = false): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break; // trailing NUL padding some writers leave inside the size
    const sp = data.indexOf(0x20, i);
    const lenText = sp === -1 ? '' : data.toString('latin1', i, sp);
    if (!/^[1-9][0-9]{0,9}$/.test(lenText)) throw new TarFormatError(`${what}: malformed pax record length at byte ${i}`);
    const len = Number(lenText);
    const end = i + len;
    if (end > data.length || sp >= end - 1 || data[end - 1] !== 0x0a) {
      throw new TarFormatError(`${what}: malformed pax record at byte ${i} (length ${len} overruns or lacks newline)`);
    }
    const record = data.toString('utf8', sp + 1, end - 1);
    const eq = record.indexOf('=');
    if (eq <= 0) throw new TarFormatError(`${what}: malformed pax record at byte ${i} (no key)`);
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (strict && !STRICT_PAX_KEYS.has(key)) {
      throw new TarFormatError(`${what}: pax record ${JSON.stringify(key)} is not allowed here (only path, linkpath and size)`);
    }
    if ((key === 'path' || key === 'linkpath') && value.includes('\0')) {
      throw new TarFormatError(`${what}: NUL byte in pax ${key}`);
    }
    if (key === 'size' && value !== '' && !/^[0-9]{1,16}$/.test(value)) {
      throw new TarFormatError(`${what}: invalid pax size ${JSON.stringify(value)}`);
    }
    out.set(key, value);
    i = end;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoding one entry's headers

/** One header's worth of metadata. Names are used exactly as given: see TarWriter for checks. */
export interface TarHeaderInput {
  name: string;
  type: TarEntryType;
  /** Data size; only regular files have data (0 for every other type). */
  size?: number;
  /** Symlink target, or for hard links the name of an earlier entry in the archive. */
  linkname?: string;
  /** Permission bits (0..0o7777). Defaults: 0644 file/hardlink, 0755 directory, 0777 symlink. */
  mode?: number;
  /** Seconds since the epoch; default 0. */
  mtime?: number;
}

export function checkMtime(mtime: number): number {
  if (!Number.isInteger(mtime) || mtime < 0 || mtime > USTAR_MAX_MTIME) {
    throw new TarError(`invalid tar mtime ${mtime} (want whole seconds in 0..${USTAR_MAX_MTIME})`);
  }
  return mtime;
}

/** A string goes in a ustar field as-is only if it is printable ASCII and at most 100 bytes. */
function fitsUstar(s: string): boolean {
  return s.length <= 100 && /^[\x20-\x7e]*$/.test(s);
}

/** What a pax-unaware reader sees in the ustar name field: ASCII, at most 100 bytes. */
function asciiFallback(s: string): string {
  return s.replace(/[^\x20-\x7e]/g, '_').slice(0, 100);
}

/** `PaxHeaders/<base name>`, like GNU tar's default minus the pid, which would break determinism. */
function paxHeaderName(name: string): string {
  const parts = name.split('/').filter((p) => p !== '');
  const base = (parts[parts.length - 1] ?? 'entry').replace(/[^A-Za-z0-9._-]/g, '_');
  return `PaxHeaders/${base}`.slice(0, 100);
}

/**
 * The header block(s) for one entry: a pax extended header (its own header block plus its
 * padded records) when needed, then the ustar header. Data and its padding are not included.
 * This does no path hygiene checks, so it can also build hostile archives for reader tests.
 */
export function headerFor(entry: TarHeaderInput): Buffer {
  const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
  if (entry.type !== 'file' && entry.size !== undefined && entry.size !== 0) {
    throw new TarError(`tar entry ${JSON.stringify(entry.name)}: a ${entry.type} has no data, size must be 0`);
  }
  if (!Number.isSafeInteger(size) || size < 0) {
    throw new TarError(`tar entry ${JSON.stringify(entry.name)}: invalid size ${size}`);
  }
  const mode = entry.mode ?? DEFAULT_MODE[entry.type];
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o7777) {
    throw new TarError(`tar entry ${JSON.stringify(entry.name)}: invalid mode ${mode}`);
  }
  const mtime = checkMtime(entry.mtime ?? 0);
  const linkname = entry.linkname ?? '';
  if (entry.type === 'symlink' || entry.type === 'hardlink') {
    if (linkname === '') throw new TarError(`tar entry ${JSON.stringify(entry.name)}: a ${entry.type} needs a target`);
  } else if (linkname !== '') {
    throw new TarError(`tar entry ${JSON.stringify(entry.name)}: only links have a target`);
  }
  for (const [what, s] of [
    ['name', entry.name],
    ['link target', linkname],
  ] as const) {
    if (s.includes('\0')) throw new TarError(`tar entry ${JSON.stringify(entry.name)}: NUL byte in ${what}`);
  }
  if (entry.name === '') throw new TarError('tar entry with an empty name');

  // Deterministic record order: path, linkpath, size.
  const records: Array<[string, string]> = [];
  const nameFits = fitsUstar(entry.name);
  const linkFits = fitsUstar(linkname);
  if (!nameFits) records.push(['path', entry.name]);
  if (!linkFits) records.push(['linkpath', linkname]);
  if (size > USTAR_MAX_SIZE) records.push(['size', String(size)]);

  const ustar = ustarHeader({
    name: nameFits ? entry.name : asciiFallback(entry.name),
    mode,
    size: size > USTAR_MAX_SIZE ? 0 : size,
    mtime,
    typeflag: TYPEFLAG[entry.type],
    linkname: linkFits ? linkname : asciiFallback(linkname),
  });
  if (records.length === 0) return ustar;

  const body = Buffer.from(records.map(([k, v]) => paxRecord(k, v)).join(''), 'utf8');
  const paxHeader = ustarHeader({
    name: paxHeaderName(entry.name),
    mode: 0o644,
    size: body.length,
    mtime,
    typeflag: TYPEFLAG.pax,
    linkname: '',
  });
  return Buffer.concat([paxHeader, body, Buffer.alloc(tarPadding(body.length)), ustar]);
}

/** Total archive bytes one entry takes: headers, data and padding. */
export function tarEntrySize(entry: TarHeaderInput): number {
  const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
  return headerFor(entry).length + size + tarPadding(size);
}

// ---------------------------------------------------------------------------------------------
// The end of an archive

/** What the writer puts after the last member: two zero blocks. */
export function endOfArchive(): Buffer {
  return Buffer.alloc(TAR_TRAILER_SIZE);
}

/** True if a header-position block is zero: the start of the end-of-archive marker. */
export function isZeroBlock(block: Buffer): boolean {
  return block.equals(ZERO_BLOCK);
}

/** The reader's positioned input (reader.ts implements it over a stream and over a file). */
export interface ByteSource {
  /** Absolute offset of the next byte read. */
  readonly pos: number;
  /** Up to n bytes (fewer only at end of input). */
  read(n: number): Promise<Buffer>;
  /** Advance to `target` (>= pos); false if input ends first. */
  skipTo(target: number): Promise<boolean>;
}

/**
 * After a zero block at `offset` (already read), check the rest of the archive ends as it must:
 *  - a second zero block, then anything (lenient: third-party archives may append record
 *    padding or other junk that `tar` ignores too) or only zero bytes (strict: a second archive
 *    after the marker is what `tar -x` would extract over the first one's members);
 *  - or end of input right after the first zero block (GNU tar writes nothing else wrong there).
 * A zero block followed by a header is corruption, not an end.
 */
export async function readEndOfArchive(io: ByteSource, offset: number, strict: boolean): Promise<void> {
  const next = await io.read(TAR_BLOCK_SIZE);
  if (next.length === 0) return;
  if (next.length < TAR_BLOCK_SIZE) throw new TarFormatError(`tar archive truncated inside the end-of-archive marker at offset ${offset}`);
  if (!next.equals(ZERO_BLOCK)) {
    throw new TarFormatError(`tar archive: a zero block at offset ${offset} is followed by a non-zero block (corrupt archive)`);
  }
  if (!strict) return;
  for (;;) {
    const at = io.pos;
    const rest = await io.read(64 * 1024);
    if (rest.length === 0) return;
    const nz = rest.findIndex((b) => b !== 0);
    if (nz !== -1) {
      throw new TarTrailingDataError(
        `tar archive: non-zero data at offset ${at + nz}, after the end-of-archive marker at offset ${offset}`,
      );
    }
  }
}
