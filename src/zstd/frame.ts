/**
 * The Zstandard frame format (RFC 8878 §3.1), read structurally and without decoding: a pure
 * state machine, no I/O. A bundle's zstd member must be exactly ONE Zstandard frame (the
 * bundle format says so), so `FrameScanner` checks the magic number, the frame header (no
 * dictionary, reserved bit clear, a window within the limit, a content size that matches what
 * the member declares), then walks the block headers to the last block and the checksum, and
 * refuses any byte after that: a second frame, a skippable frame, or junk.
 *
 * It also cuts its input at block boundaries (`feed` returns pieces that never span two
 * blocks), so a decoder fed piece by piece produces at most one block (≤ 128 KiB) of output per
 * piece: memory stays bounded by the window however well a hostile frame compresses.
 */
import { IntegrityError } from '../util/errors.js';

export const ZSTD_MAGIC = 0xfd2fb528;
/** RFC 8878 §3.1.1.2: Block_Maximum_Size is min(Window_Size, 128 KiB). */
export const MAX_BLOCK_BYTES = 128 * 1024;
/**
 * The largest window ferry decodes: 32 MiB (window log 25). zstd's levels 1–19 use window logs
 * up to 23 and ferry's writer uses level 9 (log 22); only --ultra levels or --long ask for
 * more. The window is memory the decoder must hold, so this bounds what a bundle can make
 * the far side allocate.
 */
export const DEFAULT_MAX_WINDOW_BYTES = 32 * 1024 * 1024;

export class ZstdFormatError extends IntegrityError {}

export interface FrameHeader {
  windowSize: number;
  /** Frame_Content_Size when the frame declares it. */
  contentSize: number | undefined;
  hasChecksum: boolean;
  singleSegment: boolean;
  /** Bytes of magic number plus header. */
  headerBytes: number;
}

export interface FrameLimits {
  /** Largest acceptable window (default DEFAULT_MAX_WINDOW_BYTES). */
  maxWindowBytes?: number;
  /** The decompressed size the member declares: a frame that declares another is refused. */
  expectedSize?: number;
  /** For messages: "member blobs/sha256/… of b.ferry". */
  what: string;
}

/** What the first bytes of a non-zstd member look like, for a message that says what it is. */
function sniff(b: Uint8Array): string {
  if (b[0] === 0x1f && b[1] === 0x8b) return 'gzip data';
  if (b[0] === 0xfd && b[1] === 0x37 && b[2] === 0x7a && b[3] === 0x58 && b[4] === 0x5a) return 'xz data';
  if (b[0] === 0x04 && b[1] === 0x22 && b[2] === 0x4d && b[3] === 0x18) return 'lz4 data';
  if (b[0] === 0x42 && b[1] === 0x5a && b[2] === 0x68) return 'bzip2 data';
  const magic = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) return 'a skippable zstd frame';
  return 'not zstd data';
}

/** Little-endian unsigned integer of `n` (≤ 8) bytes; exact up to 2^53. */
function readLE(b: Uint8Array, at: number, n: number): number {
  let v = 0;
  for (let i = n - 1; i >= 0; i--) v = v * 256 + b[at + i]!;
  return v;
}

/**
 * Parse a frame header from the start of `b`, or return undefined if `b` is too short to hold
 * all of it. Throws ZstdFormatError for anything ferry will not decode.
 */
export function parseFrameHeader(b: Uint8Array, limits: FrameLimits): FrameHeader | undefined {
  if (b.length < 5) return undefined;
  const magic = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  if (magic !== ZSTD_MAGIC) {
    throw new ZstdFormatError(
      'ZSTD_NOT_ZSTD',
      `${limits.what}: not a Zstandard frame (${sniff(b)}); a bundle's zstd member is one zstd frame`,
    );
  }
  const fhd = b[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd & 0x20) !== 0;
  const reserved = (fhd & 0x08) !== 0;
  const hasChecksum = (fhd & 0x04) !== 0;
  const dictFlag = fhd & 0x03;
  if (reserved) throw new ZstdFormatError('ZSTD_FRAME_INVALID', `${limits.what}: zstd frame header has its reserved bit set`);
  const dictBytes = [0, 1, 2, 4][dictFlag]!;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  const headerBytes = 5 + (singleSegment ? 0 : 1) + dictBytes + fcsBytes;
  if (b.length < headerBytes) return undefined;
  let at = 5;
  let windowSize = 0;
  if (!singleSegment) {
    const wd = b[at++]!;
    const base = 2 ** (10 + (wd >> 3));
    windowSize = base + (base / 8) * (wd & 7);
  }
  if (dictBytes > 0) {
    const dictId = readLE(b, at, dictBytes);
    at += dictBytes;
    if (dictId !== 0) {
      throw new ZstdFormatError(
        'ZSTD_FRAME_INVALID',
        `${limits.what}: zstd frame needs dictionary ${dictId}; bundles carry no dictionaries`,
      );
    }
  }
  let contentSize: number | undefined;
  if (fcsBytes > 0) {
    contentSize = readLE(b, at, fcsBytes) + (fcsBytes === 2 ? 256 : 0);
    if (!Number.isSafeInteger(contentSize)) {
      throw new ZstdFormatError('ZSTD_FRAME_INVALID', `${limits.what}: zstd frame declares an impossible content size`);
    }
  }
  if (singleSegment) windowSize = contentSize!;
  const maxWindow = limits.maxWindowBytes ?? DEFAULT_MAX_WINDOW_BYTES;
  if (windowSize > maxWindow) {
    throw new ZstdFormatError(
      'ZSTD_WINDOW_TOO_LARGE',
      `${limits.what}: zstd frame asks for a ${windowSize}-byte window, over ferry's ${maxWindow}-byte limit`,
    );
  }
  if (contentSize !== undefined && limits.expectedSize !== undefined && contentSize !== limits.expectedSize) {
    throw new ZstdFormatError(
      'ZSTD_SIZE_MISMATCH',
      `${limits.what}: zstd frame declares ${contentSize} bytes of content, the bundle declares ${limits.expectedSize}`,
    );
  }
  return { windowSize, contentSize, hasChecksum, singleSegment, headerBytes };
}

type State =
  | { at: 'header'; buffered: Uint8Array }
  | { at: 'block-header'; buffered: Uint8Array }
  | { at: 'block-body'; left: number; last: boolean }
  | { at: 'checksum'; left: number }
  | { at: 'done' };

/** One piece of input, never spanning two blocks; `endsBlock` when it completes a block. */
export interface Piece {
  bytes: Uint8Array;
  endsBlock: boolean;
}

export class FrameScanner {
  private state: State = { at: 'header', buffered: new Uint8Array(0) };
  private header_: FrameHeader | undefined;
  private blockMax = MAX_BLOCK_BYTES;
  private consumed = 0;

  constructor(private readonly limits: FrameLimits) {}

  get header(): FrameHeader | undefined {
    return this.header_;
  }

  /** Input bytes read so far. */
  get bytesIn(): number {
    return this.consumed;
  }

  /**
   * Take the next input chunk. Returns it cut into pieces that never span two blocks (header
   * bytes, block headers and the checksum ride along with their neighbours). Throws
   * ZstdFormatError at the first byte that breaks the format or the limits.
   */
  feed(chunk: Uint8Array): Piece[] {
    const pieces: Piece[] = [];
    let pieceStart = 0;
    let i = 0;
    const cut = (end: number, endsBlock: boolean): void => {
      if (end > pieceStart) pieces.push({ bytes: chunk.subarray(pieceStart, end), endsBlock });
      pieceStart = end;
    };
    while (i < chunk.length) {
      const s = this.state;
      switch (s.at) {
        case 'header':
        case 'block-header': {
          const need = s.at === 'header' ? 18 : 3;
          const take = Math.min(need - s.buffered.length, chunk.length - i);
          const buffered = concat(s.buffered, chunk.subarray(i, i + take));
          if (s.at === 'header') {
            const h = parseFrameHeader(buffered, this.limits);
            if (h === undefined) {
              if (buffered.length >= 18)
                throw new ZstdFormatError('ZSTD_FRAME_INVALID', `${this.limits.what}: zstd frame header is malformed`);
              i += take;
              this.state = { at: 'header', buffered };
              break;
            }
            // Only the header's own bytes are consumed; the rest of `take` is block data.
            i += h.headerBytes - s.buffered.length;
            this.header_ = h;
            this.blockMax = Math.min(h.windowSize || MAX_BLOCK_BYTES, MAX_BLOCK_BYTES);
            this.state = { at: 'block-header', buffered: new Uint8Array(0) };
            break;
          }
          i += take;
          if (buffered.length < 3) {
            this.state = { at: 'block-header', buffered };
            break;
          }
          const bh = buffered[0]! | (buffered[1]! << 8) | (buffered[2]! << 16);
          const last = (bh & 1) === 1;
          const type = (bh >> 1) & 3;
          const size = bh >>> 3;
          if (type === 3) throw new ZstdFormatError('ZSTD_FRAME_INVALID', `${this.limits.what}: zstd block of the reserved type`);
          if (size > this.blockMax) {
            throw new ZstdFormatError(
              'ZSTD_FRAME_INVALID',
              `${this.limits.what}: zstd block of ${size} bytes, over the ${this.blockMax}-byte block maximum`,
            );
          }
          // RLE: one byte of content whatever the regenerated size.
          const body = type === 1 ? 1 : size;
          if (body === 0) {
            // An empty raw or compressed block: complete already.
            cut(i, true);
            this.state = last ? this.afterLastBlock() : { at: 'block-header', buffered: new Uint8Array(0) };
          } else this.state = { at: 'block-body', left: body, last };
          break;
        }
        case 'block-body': {
          const take = Math.min(s.left, chunk.length - i);
          i += take;
          if (take === s.left) {
            cut(i, true);
            this.state = s.last ? this.afterLastBlock() : { at: 'block-header', buffered: new Uint8Array(0) };
          } else this.state = { at: 'block-body', left: s.left - take, last: s.last };
          break;
        }
        case 'checksum': {
          const take = Math.min(s.left, chunk.length - i);
          i += take;
          this.state = take === s.left ? { at: 'done' } : { at: 'checksum', left: s.left - take };
          break;
        }
        case 'done':
          throw new ZstdFormatError(
            'ZSTD_TRAILING_DATA',
            `${this.limits.what}: data after the end of the zstd frame (${sniffTrailing(chunk.subarray(i))}); a bundle's zstd member is exactly one frame`,
          );
      }
    }
    this.consumed += chunk.length;
    cut(chunk.length, false);
    return pieces;
  }

  /** The input ended: throws unless one whole frame was read. */
  end(): void {
    if (this.state.at !== 'done') {
      throw new ZstdFormatError('ZSTD_TRUNCATED', `${this.limits.what}: the zstd frame is cut short (${this.state.at.replace('-', ' ')})`);
    }
  }

  get complete(): boolean {
    return this.state.at === 'done';
  }

  private afterLastBlock(): State {
    return this.header_?.hasChecksum ? { at: 'checksum', left: 4 } : { at: 'done' };
  }
}

function sniffTrailing(b: Uint8Array): string {
  if (b.length >= 4) {
    const magic = (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
    if (magic === ZSTD_MAGIC) return 'a second zstd frame';
    if ((magic & 0xfffffff0) >>> 0 === 0x184d2a50) return 'a skippable frame';
  }
  return `${b.length}+ bytes`;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
