/**
 * Restoring a bundle's zstd member in-process, so the far side needs nothing but ferry (no
 * `zstd` binary, which an offline host may not have and cannot install).
 *
 * The decoder is fzstd (pure JavaScript, no native code, no download at install). Around it:
 * - FrameScanner (frame.ts) checks the structure first and refuses what is not exactly one
 *   zstd frame within the limits (gzip/xz/lz4 posing as zstd, a second or skippable frame,
 *   trailing bytes, a dictionary, a window over the limit, a content size that disagrees);
 * - the input is fed one block at a time, so each step produces at most one block (128 KiB)
 *   of output: memory is the window plus a block, whatever the compression ratio;
 * - output is counted against the size the bundle declares and the restore fails as soon as
 *   it would exceed it (a bomb costs at most the declared size of work), or when it ends short.
 * Digest checks stay with the caller, which hashes what comes out.
 */
import { Duplex } from 'node:stream';
import { Decompress } from 'fzstd';
import { FrameScanner, ZstdFormatError, type FrameLimits } from './frame.js';

export interface DecodeOptions extends FrameLimits {
  /** The exact number of bytes the frame must restore to. */
  expectedSize: number;
}

/** A pipeline stage: zstd frame in, restored bytes out (Buffers of at most one block). */
export function zstdRestore(opts: DecodeOptions): (source: AsyncIterable<Uint8Array>) => AsyncGenerator<Buffer> {
  return async function* restore(source) {
    const scanner = new FrameScanner(opts);
    let out: Buffer[] = [];
    let restored = 0;
    const decoder = new Decompress((chunk) => {
      restored += chunk.length;
      if (restored > opts.expectedSize) {
        throw new ZstdFormatError(
          'ZSTD_OVERSIZE',
          `${opts.what}: zstd frame restores to more than the declared ${opts.expectedSize} bytes`,
        );
      }
      if (chunk.length > 0) out.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    });
    const push = (bytes: Uint8Array, final: boolean): void => {
      try {
        decoder.push(bytes, final);
      } catch (err) {
        if (err instanceof ZstdFormatError) throw err;
        throw new ZstdFormatError('ZSTD_INVALID', `${opts.what}: corrupt zstd data (${(err as Error).message})`, { cause: err });
      }
    };
    for await (const chunk of source) {
      for (const piece of scanner.feed(chunk)) {
        push(piece.bytes, false);
        if (out.length > 0) {
          const ready = out;
          out = [];
          yield* ready;
        }
      }
    }
    scanner.end();
    push(new Uint8Array(0), true);
    yield* out;
    if (restored !== opts.expectedSize) {
      throw new ZstdFormatError(
        'ZSTD_SHORT',
        `${opts.what}: zstd frame restores to ${restored} bytes, the bundle declares ${opts.expectedSize}`,
      );
    }
  };
}

/** zstdRestore as a Duplex stream, for code that composes streams rather than pipeline stages. */
export function zstdRestoreStream(opts: DecodeOptions): Duplex {
  return Duplex.from(zstdRestore(opts));
}
