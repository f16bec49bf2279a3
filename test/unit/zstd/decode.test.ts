import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { IntegrityError } from '../../../src/util/errors.js';
import { zstdRestore } from '../../../src/zstd/decode.js';
import { FrameScanner, MAX_BLOCK_BYTES, parseFrameHeader, ZstdFormatError } from '../../../src/zstd/frame.js';

/** Compress with the real zstd CLI (installed by scripts/test-env.sh). */
function zstd(input: Buffer, args: string[] = ['-9']): Buffer {
  const r = spawnSync('zstd', ['-q', '-c', ...args, '-'], { input, maxBuffer: 1 << 30 });
  if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr}`);
  return r.stdout;
}

/** Restore `frame` fed in `chunkSize` pieces; the bytes and the largest chunk yielded. */
async function restore(frame: Buffer, expectedSize: number, chunkSize = 64 * 1024): Promise<{ bytes: Buffer; largest: number }> {
  const chunks: Buffer[] = [];
  for (let i = 0; i < frame.length; i += chunkSize) chunks.push(frame.subarray(i, i + chunkSize));
  const out: Buffer[] = [];
  let largest = 0;
  for await (const c of zstdRestore({ expectedSize, what: 'member m' })(Readable.from(chunks))) {
    largest = Math.max(largest, c.length);
    out.push(c);
  }
  return { bytes: Buffer.concat(out), largest };
}

async function failure(frame: Buffer, expectedSize: number, chunkSize?: number): Promise<ZstdFormatError> {
  const err = await restore(frame, expectedSize, chunkSize).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ZstdFormatError);
  expect(err).toBeInstanceOf(IntegrityError); // exit 3
  return err as ZstdFormatError;
}

/** Compressible but not trivial: repeated random runs. */
/** Deterministic: the same frames in every run, so a case that passes once passes always. */
function sample(n: number): Buffer {
  const unit = Buffer.alloc(4096);
  for (let i = 0; i < 4096; i += 32) createHash('sha256').update(`sample ${i}`).digest().copy(unit, i);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += 4096) unit.copy(b, i, 0, Math.min(4096, n - i));
  for (let i = 0; i < n; i += 9973) b[i] = i & 0xff;
  return b;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A frame built by hand: header (window 1 MiB, no content size, no checksum) + blocks. */
function handFrame(blocks: Buffer[], fhd = 0x00, windowDescriptor = (20 - 10) << 3): Buffer {
  const magic = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
  return Buffer.concat([magic, Buffer.from([fhd, windowDescriptor]), ...blocks]);
}
function blockHeader(last: boolean, type: number, size: number): Buffer {
  const v = (last ? 1 : 0) | (type << 1) | (size << 3);
  return Buffer.from([v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff]);
}

describe('zstdRestore: one zstd frame, restored in-process', () => {
  it('restores what the zstd CLI wrote, byte for byte, with and without checksum, fed in any chunk size', async () => {
    const input = sample(3 * 1024 * 1024 + 17);
    for (const args of [['-9'], ['-3', '--no-check'], ['-19']]) {
      const frame = zstd(input, args);
      const { bytes, largest } = await restore(frame, input.length);
      expect(sha(bytes)).toBe(sha(input));
      expect(largest).toBeLessThanOrEqual(MAX_BLOCK_BYTES);
    }
    const small = sample(5000);
    const frame = zstd(small);
    expect(sha((await restore(frame, small.length, 1)).bytes)).toBe(sha(small));
    expect(sha((await restore(frame, small.length, 7)).bytes)).toBe(sha(small));
  });

  it('restores an empty member', async () => {
    const frame = zstd(Buffer.alloc(0));
    expect((await restore(frame, 0)).bytes.length).toBe(0);
  });

  it('names gzip, xz and lz4 data posing as zstd', async () => {
    expect((await failure(gzipSync(sample(1000)), 1000)).message).toMatch(/not a Zstandard frame \(gzip data\)/);
    const xz = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0, 0, 0, 0]);
    expect((await failure(xz, 10)).message).toMatch(/\(xz data\)/);
    const lz4 = Buffer.from([0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0, 0, 0]);
    expect((await failure(lz4, 10)).message).toMatch(/\(lz4 data\)/);
    expect((await failure(Buffer.from('{"hello": "world"}'), 18)).code).toBe('ZSTD_NOT_ZSTD');
  });

  it('refuses a second frame, a skippable frame and trailing bytes after the frame', async () => {
    const a = sample(10_000);
    const one = zstd(a);
    const second = await failure(Buffer.concat([one, zstd(a)]), 20_000);
    expect(second.code).toBe('ZSTD_TRAILING_DATA');
    expect(second.message).toMatch(/a second zstd frame/);
    const skippable = Buffer.concat([one, Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0, 1, 2, 3, 4])]);
    expect((await failure(skippable, 10_000)).message).toMatch(/a skippable frame/);
    expect((await failure(Buffer.concat([one, Buffer.from([0])]), 10_000)).code).toBe('ZSTD_TRAILING_DATA');
  });

  it('refuses a frame cut short, at any point', async () => {
    const a = sample(300_000);
    const frame = zstd(a);
    for (const cut of [3, 5, 6, 9, Math.floor(frame.length / 2), frame.length - 1]) {
      const err = await failure(frame.subarray(0, cut), a.length);
      expect(['ZSTD_TRUNCATED', 'ZSTD_NOT_ZSTD']).toContain(err.code);
    }
  });

  it('refuses a window over the limit before allocating it (zstd --long=27)', async () => {
    const a = sample(200_000);
    const frame = zstd(a, ['-3', '--long=27']);
    // From stdin zstd cannot shrink the window to the content: the frame asks for 128 MiB.
    expect(() => parseFrameHeader(frame, { what: 'm' })).toThrow(/134217728-byte window/);
    expect((await failure(frame, a.length)).code).toBe('ZSTD_WINDOW_TOO_LARGE');
    // A hand-made header asking for a 2 GiB window.
    const huge = handFrame([blockHeader(true, 0, 0)], 0x00, (31 - 10) << 3);
    const err = await failure(huge, 0);
    expect(err.code).toBe('ZSTD_WINDOW_TOO_LARGE');
    expect(err.message).toMatch(/2147483648-byte window/);
  });

  it('refuses a frame whose declared content size disagrees with the bundle, before decoding', async () => {
    // A frame with Frame_Content_Size (single segment, FCS 1 byte): 5 bytes, raw block.
    const frame = handFrame([blockHeader(true, 0, 5), Buffer.from('hello')], 0x20, undefined).subarray(0, 5);
    const withFcs = Buffer.concat([frame, Buffer.from([5]), blockHeader(true, 0, 5), Buffer.from('hello')]);
    expect((await restore(withFcs, 5)).bytes.toString()).toBe('hello');
    const err = await failure(withFcs, 6);
    expect(err.code).toBe('ZSTD_SIZE_MISMATCH');
  });

  it('stops a bomb at the declared size: 64 MiB of zeros declared as 1 MiB', async () => {
    const frame = zstd(Buffer.alloc(64 * 1024 * 1024), ['-19']);
    expect(frame.length).toBeLessThan(64 * 1024);
    const err = await failure(frame, 1024 * 1024);
    expect(err.code).toBe('ZSTD_OVERSIZE');
  });

  it('a hand-made RLE bomb yields at most one block at a time and stops at the declared size', async () => {
    const rle = Buffer.concat([blockHeader(false, 1, MAX_BLOCK_BYTES), Buffer.from([0x41])]);
    const blocks = Array.from({ length: 4096 }, () => rle); // 512 MiB promised in 16 KiB of input
    const frame = handFrame([...blocks, blockHeader(true, 0, 0)]);
    let yielded = 0;
    let largest = 0;
    const err = await (async () => {
      try {
        for await (const c of zstdRestore({ expectedSize: 4 * MAX_BLOCK_BYTES, what: 'm' })(Readable.from([frame]))) {
          yielded += c.length;
          largest = Math.max(largest, c.length);
        }
      } catch (e) {
        return e as ZstdFormatError;
      }
      return undefined;
    })();
    expect(err?.code).toBe('ZSTD_OVERSIZE');
    expect(yielded).toBeLessThanOrEqual(4 * MAX_BLOCK_BYTES);
    expect(largest).toBeLessThanOrEqual(MAX_BLOCK_BYTES);
  });

  it('fails a frame that restores short of the declared size', async () => {
    const a = sample(100_000);
    expect((await failure(zstd(a), a.length + 1)).code).toBe('ZSTD_SHORT');
  });

  it('refuses reserved block types, oversized blocks, dictionaries and the reserved header bit', async () => {
    expect((await failure(handFrame([blockHeader(true, 3, 1), Buffer.from([0])]), 1)).message).toMatch(/reserved type/);
    expect((await failure(handFrame([blockHeader(true, 0, MAX_BLOCK_BYTES + 1)]), 1)).message).toMatch(
      /over the 131072-byte block maximum/,
    );
    const dict = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x01, 10 << 3, 0x07]), blockHeader(true, 0, 0)]);
    expect((await failure(dict, 0)).message).toMatch(/dictionary 7/);
    expect((await failure(handFrame([blockHeader(true, 0, 0)], 0x08), 0)).message).toMatch(/reserved bit/);
  });

  it('reports corrupt compressed data as an integrity failure, never a crash', async () => {
    const a = sample(500_000);
    const frame = zstd(a, ['-3', '--no-check']);
    let caught = 0;
    for (let seed = 0; seed < 40; seed++) {
      const bad = Buffer.from(frame);
      const at = 12 + ((seed * 7919) % (bad.length - 12));
      bad[at] = bad[at]! ^ (1 << (seed % 8));
      const r = await restore(bad, a.length).then(
        (ok) => ({ ok }),
        (err: unknown) => ({ err }),
      );
      if ('err' in r) {
        expect(r.err).toBeInstanceOf(IntegrityError);
        caught++;
      } else {
        // A flip the format cannot see either restores other bytes (inside literals: the
        // caller's hash catches it) or the same bytes (a bit the decoder never reads, such as
        // the padding of a table description): both are a result, never a crash.
        expect(r.ok.bytes.length).toBe(a.length);
      }
    }
    expect(caught).toBeGreaterThan(0);
  });
});

describe('FrameScanner', () => {
  it('cuts input so that no piece spans two blocks', () => {
    const frame = zstd(sample(600_000), ['-1']);
    const s = new FrameScanner({ what: 'm' });
    const pieces = s.feed(frame);
    s.end();
    expect(Buffer.concat(pieces.map((p) => p.bytes)).equals(frame)).toBe(true);
    expect(pieces.filter((p) => p.endsBlock).length).toBeGreaterThan(2);
    expect(s.complete).toBe(true);
  });
});
