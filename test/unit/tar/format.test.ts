import { describe, expect, it } from 'vitest';
import {
  type ByteSource,
  endOfArchive,
  headerFor,
  isZeroBlock,
  parseHeader,
  parsePax,
  readEndOfArchive,
  TAR_BLOCK_SIZE,
  TAR_TRAILER_SIZE,
  TarFormatError,
  TarTrailingDataError,
  tarPadding,
} from '../../../src/tar/format.js';

/** A ByteSource over a buffer, positioned after the first zero block as the reader leaves it. */
function bytes(buf: Buffer, pos = 0): ByteSource {
  const io = {
    pos,
    async read(n: number) {
      const out = buf.subarray(io.pos, Math.min(buf.length, io.pos + n));
      io.pos += out.length;
      return out;
    },
    async skipTo(target: number) {
      io.pos = Math.min(target, buf.length);
      return target <= buf.length;
    },
  };
  return io;
}

describe('tar format', () => {
  it('decodes what it encodes: name, mode, size, typeflag, link target', () => {
    const file = parseHeader(headerFor({ name: 'a/b.txt', type: 'file', size: 1234, mode: 0o600 }), 0, undefined);
    expect(file).toEqual({ name: 'a/b.txt', linkname: '', mode: 0o600, size: 1234, typeflag: '0' });
    const link = parseHeader(headerFor({ name: 'l', type: 'symlink', linkname: '../t' }), 0, undefined);
    expect(link).toEqual({ name: 'l', linkname: '../t', mode: 0o777, size: 0, typeflag: '2' });
  });

  it('rejects a header whose checksum does not match its bytes', () => {
    const h = headerFor({ name: 'x', type: 'file', size: 1 });
    h[0] = 'y'.charCodeAt(0);
    expect(() => parseHeader(h, 512, 'prev')).toThrow(/offset 512 \(after member "prev"\): bad header checksum/);
  });

  it('carries a long or non-ASCII name in a pax record the decoder reads back', () => {
    const name = `${'d/'.repeat(60)}ünïcode`;
    const blocks = headerFor({ name, type: 'file', size: 0 });
    const pax = parseHeader(blocks.subarray(0, TAR_BLOCK_SIZE), 0, undefined);
    expect(pax.typeflag).toBe('x');
    const records = parsePax(blocks.subarray(TAR_BLOCK_SIZE, TAR_BLOCK_SIZE + pax.size), 'pax');
    expect(records.get('path')).toBe(name);
    expect(blocks.length).toBe(TAR_BLOCK_SIZE + pax.size + tarPadding(pax.size) + TAR_BLOCK_SIZE);
  });

  it('refuses unknown pax keys only on strict reads', () => {
    const data = Buffer.from('15 uname=alice\n');
    expect(parsePax(data, 'pax').get('uname')).toBe('alice');
    expect(() => parsePax(data, 'pax', true)).toThrow(TarFormatError);
  });

  it('writes two zero blocks as the end-of-archive marker', () => {
    const end = endOfArchive();
    expect(end.length).toBe(TAR_TRAILER_SIZE);
    expect(isZeroBlock(end.subarray(0, TAR_BLOCK_SIZE))).toBe(true);
  });

  describe('end of archive', () => {
    const zeros = (n: number) => Buffer.alloc(n);
    it('accepts two zero blocks, or one zero block at end of input', async () => {
      await expect(readEndOfArchive(bytes(zeros(1024), 512), 0, true)).resolves.toBeUndefined();
      await expect(readEndOfArchive(bytes(zeros(512), 512), 0, true)).resolves.toBeUndefined();
    });
    it('refuses a zero block followed by a header, or a partial second block', async () => {
      const h = headerFor({ name: 'x', type: 'file', size: 0 });
      await expect(readEndOfArchive(bytes(Buffer.concat([zeros(512), h]), 512), 0, false)).rejects.toThrow(/followed by a non-zero block/);
      await expect(readEndOfArchive(bytes(zeros(700), 512), 0, false)).rejects.toThrow(/truncated inside the end-of-archive marker/);
    });
    it('strict reads allow only zero padding after the marker', async () => {
      const tail = Buffer.concat([zeros(1024), zeros(9216)]);
      await expect(readEndOfArchive(bytes(tail, 512), 0, true)).resolves.toBeUndefined();
      const junk = Buffer.concat([zeros(1024 + 100), Buffer.from('x')]);
      await expect(readEndOfArchive(bytes(junk, 512), 0, false)).resolves.toBeUndefined();
      const err = await readEndOfArchive(bytes(junk, 512), 0, true).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TarTrailingDataError);
      expect((err as TarTrailingDataError).message).toContain('non-zero data at offset 1124');
    });
  });
});
