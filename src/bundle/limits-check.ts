/**
 * Bounds on the work a bundle may cause, relative to what the bundle itself is: what a zstd
 * member may declare it restores to (relative to its stored size), and how many bytes a bundle
 * read from a stream may be (relative to what its head, ferry-bundle.json, declares). Both are
 * checked before the work they bound is done, so a hostile bundle costs time, memory and disk in
 * proportion to its own size.
 *
 * - A zstd member's `uncompressedSize` may be at most MAX_ZSTD_RATIO times its stored size (and
 *   never less than MIN_RESTORE_ALLOWANCE is allowed): zstd itself can reach ~32,000:1 (a
 *   frame of RLE blocks), which is how a 2 MiB member declares 64 GiB. Real layers compress
 *   3–10:1; a layer beyond the ratio (gigabytes of zeros) is stored raw by the writer.
 * - A bundle spooled from stdin or a pipe must have `ferry-bundle.json` among its first
 *   HEAD_MEMBERS members and within the first HEAD_MAX_BYTES; once it is read, the stream may
 *   be at most what the manifest's members add up to as a tar (each member's header, pax
 *   header for a long name, data and padding; the signature member; the end-of-archive marker)
 *   plus TRAILING_ZERO_SLACK of zero padding. Spooling fails as soon as the stream exceeds that.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { IntegrityError } from '../util/errors.js';
import { isExtendedHeader, isZeroBlock, padded, parseHeader, TAR_BLOCK_SIZE, TAR_TRAILER_SIZE } from '../tar/format.js';
import { LIMITS, MEMBER, parseBundleManifest, type BundleManifest } from './format.js';

/** A zstd member may declare at most this many times its stored size. */
export const MAX_ZSTD_RATIO = 1024;
/** Whatever a member's stored size, this much may always be declared (tiny members of very compressible content). */
export const MIN_RESTORE_ALLOWANCE = 64 * 1024 * 1024;

/** The most a zstd member of `storedSize` bytes may declare it restores to. */
export function maxRestoredSize(storedSize: number): number {
  return Math.min(LIMITS.maxRestoredBytes, Math.max(MIN_RESTORE_ALLOWANCE, storedSize * MAX_ZSTD_RATIO));
}

/** Why a zstd member's declared size is not plausible for its stored size, or undefined when it is. */
export function declaredSizeProblem(m: { path: string; size: number; uncompressedSize?: number | undefined }): string | undefined {
  if (m.uncompressedSize === undefined) return undefined;
  const max = maxRestoredSize(m.size);
  if (m.uncompressedSize <= max) return undefined;
  return (
    `zstd member ${m.path} declares ${m.uncompressedSize} bytes restored from ${m.size} stored, ` +
    `over the limit of ${max} (${MAX_ZSTD_RATIO}:1, at least ${MIN_RESTORE_ALLOWANCE} bytes)`
  );
}

/** ferry-bundle.json is the 2nd member; a few more are allowed before it is refused as absent. */
export const HEAD_MEMBERS = 4;
/** Bytes before the end of ferry-bundle.json's data. */
export const HEAD_MAX_BYTES = LIMITS.maxJsonBytes + 64 * 1024;
/** Zero padding accepted after the end-of-archive marker (tape records, dd block sizes). */
export const TRAILING_ZERO_SLACK = 1024 * 1024;

/** Tar bytes a member of this path and size takes at most, as ferry writes it (pax header for long or non-ASCII names, or huge sizes). */
function memberTarBytes(p: string, size: number): number {
  return TAR_BLOCK_SIZE + TAR_BLOCK_SIZE + padded(Buffer.byteLength(p) + 64) + padded(size);
}

/** The most bytes a bundle whose head is `headBytes` long (through ferry-bundle.json) and declares `man` may have. */
export function bundleByteBound(man: BundleManifest, headBytes: number): number {
  let n = headBytes + memberTarBytes(MEMBER.signature, LIMITS.maxSignatureBytes) + TAR_TRAILER_SIZE + TRAILING_ZERO_SLACK;
  for (const m of man.members) {
    if (m.path === MEMBER.layoutHeader) continue; // already in the head
    n += memberTarBytes(m.path, m.size);
  }
  return n;
}

export class SpoolLimitError extends IntegrityError {
  constructor(label: string, message: string) {
    super('BUNDLE_TOO_LARGE', `${label}: ${message}`, {
      hint: 'nothing was loaded; the input is not a ferry bundle, or its ferry-bundle.json does not describe it',
    });
  }
}

/**
 * A pass-through that follows the tar headers of a bundle's head until ferry-bundle.json is
 * read, then lets through at most bundleByteBound() bytes in all. Errors (SpoolLimitError) as
 * soon as the input breaks a bound; it holds at most ferry-bundle.json (≤ LIMITS.maxJsonBytes).
 */
export class BundleSpoolGuard extends Transform {
  private total = 0;
  private bound = HEAD_MAX_BYTES;
  /** Bytes of the head not parsed yet (the head only). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private members = 0;
  private want: { kind: 'header' } | { kind: 'skip'; until: number } | { kind: 'manifest'; size: number; end: number } = {
    kind: 'header',
  };
  private done = false;
  /** ferry-bundle.json, once read. */
  manifest: BundleManifest | undefined;

  constructor(private readonly label: string) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.total += chunk.length;
    if (this.total > this.bound) {
      cb(
        new SpoolLimitError(
          this.label,
          this.done
            ? `the input goes on past ${this.bound} bytes, more than its ferry-bundle.json declares (${this.manifest!.members.length} members, ${this.manifest!.totals.storedBytes} bytes stored)`
            : `no ferry-bundle.json within the first ${HEAD_MAX_BYTES} bytes`,
        ),
      );
      return;
    }
    if (!this.done) {
      try {
        this.pending.push(chunk);
        this.pendingBytes += chunk.length;
        this.follow();
      } catch (err) {
        cb(err as Error);
        return;
      }
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (!this.done) cb(new SpoolLimitError(this.label, 'the input ends before its ferry-bundle.json'));
    else cb();
  }

  /** Position of the first byte held in `pending`. */
  private get base(): number {
    return this.total - this.pendingBytes;
  }

  /** Take `n` bytes from the front of pending (caller checked they are there). */
  private takeBytes(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    const out = Buffer.from(all.subarray(0, n));
    const rest = all.subarray(n);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    return out;
  }

  private dropTo(upTo: number): boolean {
    const n = upTo - this.base;
    if (n > this.pendingBytes) {
      // Not held: nothing before `upTo` is needed.
      this.pending = [];
      this.pendingBytes = 0;
      return false;
    }
    this.takeBytes(n);
    return true;
  }

  private follow(): void {
    for (;;) {
      const w = this.want;
      if (w.kind === 'skip') {
        if (!this.dropTo(w.until)) return;
        this.want = { kind: 'header' };
        continue;
      }
      if (w.kind === 'header') {
        if (this.pendingBytes < TAR_BLOCK_SIZE) return;
        const offset = this.base;
        const block = this.takeBytes(TAR_BLOCK_SIZE);
        if (isZeroBlock(block)) throw new SpoolLimitError(this.label, 'the archive ends before its ferry-bundle.json');
        const h = parseHeader(block, offset, undefined);
        if (!isExtendedHeader(h.typeflag) && ++this.members > HEAD_MEMBERS) {
          throw new SpoolLimitError(this.label, `ferry-bundle.json is not among the first ${HEAD_MEMBERS} members`);
        }
        const dataStart = offset + TAR_BLOCK_SIZE;
        if (h.name === MEMBER.manifest && !isExtendedHeader(h.typeflag)) {
          if (h.size > LIMITS.maxJsonBytes) {
            throw new SpoolLimitError(this.label, `ferry-bundle.json is ${h.size} bytes, over the ${LIMITS.maxJsonBytes}-byte limit`);
          }
          this.want = { kind: 'manifest', size: h.size, end: dataStart + padded(h.size) };
        } else {
          this.want = { kind: 'skip', until: dataStart + padded(h.size) };
        }
        continue;
      }
      if (this.pendingBytes < w.size) return;
      const bytes = this.takeBytes(w.size);
      this.manifest = parseBundleManifest(bytes, this.label);
      this.bound = bundleByteBound(this.manifest, w.end);
      this.done = true;
      this.pending = [];
      this.pendingBytes = 0;
      if (this.total > this.bound) throw new SpoolLimitError(this.label, `the input is longer than its ferry-bundle.json declares`);
      return;
    }
  }
}
