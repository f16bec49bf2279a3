import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { lstat, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SizeMismatchError } from '../../../src/util/errors.js';
import { TAR_BLOCK_SIZE, TarError, headerFor, tarEntrySize, tarPadding } from '../../../src/tar/format.js';
import { TarWriter, type TarWriterOptions } from '../../../src/tar/writer.js';

const MTIME = 1_704_067_200; // 2024-01-01T00:00:00Z

let dir: string;
beforeAll(async () => {
  const probe = spawnSync('tar', ['--version'], { encoding: 'utf8' });
  if (probe.error || !/GNU tar/.test(probe.stdout)) {
    throw new Error('GNU tar is required by these tests: install the Debian package "tar"');
  }
  dir = await mkdtemp(join(tmpdir(), 'ferry-tar-test-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Deterministic bytes: a counter-mode sha256 stream, chunked. */
function bytes(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let off = 0, i = 0; off < n; i++) {
    off += createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  }
  return out;
}

function chunked(buf: Buffer, size: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

async function collect(tar: TarWriter, build: (t: TarWriter) => Promise<void>): Promise<Buffer> {
  const parts: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      parts.push(chunk);
      cb();
    },
  });
  await Promise.all([pipeline(tar.output, sink), build(tar)]);
  return Buffer.concat(parts);
}

const LONG_NAME = `deep/${'a'.repeat(60)}/${'b'.repeat(60)}/file-with-a-name-longer-than-one-hundred-bytes.txt`;
const VERY_LONG_NAME = `${'segment-0123456789/'.repeat(16)}end.bin`; // > 255 bytes, beyond ustar prefix+name too
const LONG_TARGET = `../${'t'.repeat(140)}/target`;

async function sampleArchive(options: TarWriterOptions = { mtime: MTIME }): Promise<Buffer> {
  return collect(new TarWriter(options), async (t) => {
    await t.addDir('etc');
    await t.addFile('etc/hostname', Buffer.from('ferry\n'));
    await t.addFile('etc/empty', Buffer.alloc(0));
    await t.addFile('etc/block', bytes('block', TAR_BLOCK_SIZE)); // exact block: no padding
    await t.addFile('bin/tool', 100_000, chunked(bytes('tool', 100_000), 7_777), { mode: 0o755 });
    await t.addFile('bin/empty-stream', 0, Readable.from([]));
    await t.addDir('deep/');
    await t.addFile(LONG_NAME, bytes('long', 1234));
    await t.addFile(VERY_LONG_NAME, bytes('verylong', 99));
    await t.addFile('unicode/naïve-☃.txt', Buffer.from('snow\n'));
    await t.addSymlink('bin/sh', 'tool');
    await t.addSymlink('long-link', LONG_TARGET);
    await t.addHardlink('bin/tool-hardlink', 'bin/tool');
    await t.finish();
  });
}

describe('TarWriter', () => {
  it('writes an archive GNU tar lists and extracts byte for byte', async () => {
    const archive = await sampleArchive();
    expect(archive.length % TAR_BLOCK_SIZE).toBe(0);
    expect(archive.subarray(-1024).equals(Buffer.alloc(1024))).toBe(true);

    const file = join(dir, 'sample.tar');
    await writeFile(file, archive);
    const listing = execFileSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' });
    const lines = listing.trim().split('\n');
    expect(lines).toHaveLength(13);
    expect(lines[0]).toMatch(/^drwxr-xr-x 0\/0 +0 2024-01-01 00:00 etc\/$/);
    expect(lines[1]).toMatch(/^-rw-r--r-- 0\/0 +6 2024-01-01 00:00 etc\/hostname$/);
    expect(listing).toContain(` ${LONG_NAME}\n`);
    expect(listing).toContain(` ${VERY_LONG_NAME}\n`);
    expect(listing).toContain('unicode/naïve-☃.txt');
    expect(listing).toMatch(/^-rwxr-xr-x 0\/0 +100000 .* bin\/tool$/m);
    expect(listing).toMatch(/^lrwxrwxrwx .* bin\/sh -> tool$/m);
    expect(listing).toContain(`long-link -> ${LONG_TARGET}`);
    expect(listing).toMatch(/^hrwxr-xr-x .* bin\/tool-hardlink link to bin\/tool$/m); // the target's mode

    const out = join(dir, 'extracted');
    await mkdir(out);
    execFileSync('tar', ['-xf', file, '-C', out]);
    expect(await readFile(join(out, 'etc/hostname'), 'utf8')).toBe('ferry\n');
    expect((await readFile(join(out, 'etc/empty'))).length).toBe(0);
    expect((await readFile(join(out, 'etc/block'))).equals(bytes('block', TAR_BLOCK_SIZE))).toBe(true);
    expect((await readFile(join(out, 'bin/tool'))).equals(bytes('tool', 100_000))).toBe(true);
    expect((await readFile(join(out, LONG_NAME))).equals(bytes('long', 1234))).toBe(true);
    expect((await readFile(join(out, VERY_LONG_NAME))).equals(bytes('verylong', 99))).toBe(true);
    expect(await readFile(join(out, 'unicode/naïve-☃.txt'), 'utf8')).toBe('snow\n');
    expect(await readlink(join(out, 'bin/sh'))).toBe('tool');
    expect(await readlink(join(out, 'long-link'))).toBe(LONG_TARGET);
    const [a, b] = await Promise.all([lstat(join(out, 'bin/tool')), lstat(join(out, 'bin/tool-hardlink'))]);
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
  });

  it('is deterministic: two runs give identical bytes', async () => {
    const [x, y] = [await sampleArchive(), await sampleArchive()];
    expect(x.equals(y)).toBe(true);
    // Date and number mtimes are the same thing.
    const z = await sampleArchive({ mtime: new Date(MTIME * 1000) });
    expect(z.equals(x)).toBe(true);
  });

  it('uses pax records only where ustar cannot express the entry', async () => {
    const name100 = 'n'.repeat(100);
    const plain = headerFor({ name: name100, type: 'file', size: 1 });
    expect(plain.length).toBe(TAR_BLOCK_SIZE);
    expect(plain.subarray(0, 100).toString('latin1')).toBe(name100);
    expect(plain.subarray(257, 265).toString('latin1')).toBe('ustar\u000000');
    // uid, gid, uname, gname
    expect(plain.subarray(108, 124).toString('latin1')).toBe('0000000\u00000000000\u0000');
    expect(plain.subarray(265, 329).equals(Buffer.alloc(64))).toBe(true);

    const long = headerFor({ name: `${name100}1`, type: 'file', size: 1 });
    expect(long.length).toBe(3 * TAR_BLOCK_SIZE); // pax header, one block of records, ustar header
    expect(String.fromCharCode(long[156]!)).toBe('x');
    const records = long.subarray(512, 1024).toString('utf8').replace(/\0+$/, '');
    expect(records).toBe(`111 path=${name100}1\n`);
    expect(Buffer.byteLength(records)).toBe(111);
    expect(String.fromCharCode(long[1024 + 156]!)).toBe('0');

    // The length prefix counts its own digits: 98 bytes of record body need a 3-digit prefix.
    const rollover = `é${'a'.repeat(89)}`; // 91 bytes, non-ASCII so it goes to pax
    const rec = headerFor({ name: rollover, type: 'file' }).subarray(512, 1024).toString('utf8').replace(/\0+$/, '');
    expect(rec).toBe(`101 path=${rollover}\n`);
    expect(Buffer.byteLength(rec)).toBe(101);
  });

  it('encodes sizes beyond 8 GiB in a pax size record that GNU tar reads', async () => {
    const size = 9 * 2 ** 30;
    const header = headerFor({ name: 'huge.bin', type: 'file', size, mtime: MTIME });
    const records = header.subarray(512, 1024).toString('utf8').replace(/\0+$/, '');
    expect(records).toBe(`19 size=${size}\n`);
    expect(tarEntrySize({ name: 'huge.bin', type: 'file', size })).toBe(header.length + size);
    // Only the headers exist on disk, so tar reports a truncated archive, but it first lists
    // the entry with the size from the pax record.
    const file = join(dir, 'huge-headers.tar');
    await writeFile(file, header);
    const res = spawnSync('tar', ['--numeric-owner', '-tvf', file], { encoding: 'utf8' });
    expect(res.stdout).toMatch(new RegExp(`^-rw-r--r-- 0/0 +${size} 2024-01-01 00:00 huge.bin$`, 'm'));
  });

  it('rejects a source shorter than declared and fails the output', async () => {
    const tar = new TarWriter();
    const done = pipeline(tar.output, new PassThrough().resume());
    await tar.addFile('ok', Buffer.from('fine'));
    const err = await tar.addFile('short', 10, Readable.from([Buffer.from('12345')])).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SizeMismatchError);
    expect((err as SizeMismatchError).actual).toBe(5);
    await expect(done).rejects.toBeInstanceOf(SizeMismatchError);
    // The archive is dead: nothing more can be added or finished.
    await expect(tar.addFile('later', Buffer.from('x'))).rejects.toBe(err);
    await expect(tar.finish()).rejects.toBe(err);
  });

  it('rejects a source longer than declared without writing past the declared size', async () => {
    const tar = new TarWriter();
    const parts: Buffer[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        parts.push(chunk);
        cb();
      },
    });
    const done = pipeline(tar.output, sink);
    let destroyed = false;
    const source = new Readable({
      read() {
        this.push(Buffer.alloc(600, 1));
      },
      destroy(e, cb) {
        destroyed = true;
        cb(e);
      },
    });
    await expect(tar.addFile('long', 1000, source)).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    await expect(done).rejects.toBeInstanceOf(SizeMismatchError);
    expect(destroyed).toBe(true);
    // header + the first 600-byte chunk; the chunk that would overflow was never queued
    expect(Buffer.concat(parts).length).toBeLessThanOrEqual(TAR_BLOCK_SIZE + 600);
  });

  it('propagates a source error to the caller and the output', async () => {
    const tar = new TarWriter();
    const done = pipeline(tar.output, new PassThrough().resume());
    const source = new Readable({
      read() {
        this.destroy(new Error('disk on fire'));
      },
    });
    await expect(tar.addFile('f', 10, source)).rejects.toThrow(/tar entry "f": disk on fire/);
    await expect(done).rejects.toThrow(/disk on fire/);
  });

  it('rejects bad entries without damaging the archive', async () => {
    const tar = new TarWriter({ mtime: MTIME });
    const archive = collect(tar, async (t) => {
      await t.addFile('a', Buffer.from('a'));
      for (const bad of ['', '/abs', '../up', 'a/../b', './a', 'a//b', 'nul\0byte', 'dir/']) {
        await expect(t.addFile(bad, Buffer.from('x'))).rejects.toBeInstanceOf(TarError);
      }
      await expect(t.addHardlink('h', 'missing')).rejects.toThrow(/not an earlier non-directory entry/);
      await t.addDir('d');
      await expect(t.addHardlink('h', 'd')).rejects.toBeInstanceOf(TarError);
      await expect(t.addFile('m', Buffer.from('x'), { mode: 0o10000 })).rejects.toBeInstanceOf(TarError);
      await expect(t.addFile('s', -1, Readable.from([]))).rejects.toBeInstanceOf(TarError);
      await t.addFile('b', Buffer.from('b'));
      await t.finish();
    });
    const file = join(dir, 'after-errors.tar');
    await writeFile(file, await archive);
    expect(execFileSync('tar', ['-tf', file], { encoding: 'utf8' })).toBe('a\nd/\nb\n');
    expect(() => new TarWriter({ mtime: 1.5 })).toThrow(TarError);
  });

  it('serialises calls that are not awaited one by one', async () => {
    const archive = await collect(new TarWriter(), async (t) => {
      const calls = [
        t.addFile('one', 3000, chunked(bytes('one', 3000), 100)),
        t.addFile('two', Buffer.from('2')),
        t.addFile('three', 5000, chunked(bytes('three', 5000), 333)),
        t.finish(),
      ];
      await Promise.all(calls);
    });
    const file = join(dir, 'serial.tar');
    await writeFile(file, archive);
    expect(execFileSync('tar', ['-tf', file], { encoding: 'utf8' })).toBe('one\ntwo\nthree\n');
  });

  it('reports entry offsets that match the bytes', async () => {
    const tar = new TarWriter();
    const infos: Awaited<ReturnType<TarWriter['addFile']>>[] = [];
    const archive = await collect(tar, async (t) => {
      infos.push(await t.addFile('x', Buffer.from('hello')));
      infos.push(await t.addFile(LONG_NAME, bytes('y', 700)));
      infos.push(await t.addSymlink('l', 'x'));
      await t.finish();
    });
    const [x, y, l] = infos as [(typeof infos)[0], (typeof infos)[0], (typeof infos)[0]];
    expect(x).toEqual({ name: 'x', type: 'file', headerOffset: 0, dataOffset: 512, size: 5 });
    expect(archive.subarray(x.dataOffset, x.dataOffset + 5).toString()).toBe('hello');
    expect(y.headerOffset).toBe(1024);
    expect(y.dataOffset).toBe(1024 + 3 * 512);
    expect(archive.subarray(y.dataOffset, y.dataOffset + 700).equals(bytes('y', 700))).toBe(true);
    expect(l.headerOffset).toBe(y.dataOffset + 700 + tarPadding(700));
    expect(tar.bytesWritten).toBe(archive.length);
  });

  it('respects backpressure: a stalled consumer stops the source', async () => {
    const tar = new TarWriter({ highWaterMark: 64 * 1024 });
    const size = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(64 * 1024);
    let produced = 0;
    async function* source() {
      while (produced < size) {
        produced += chunk.length;
        yield chunk;
      }
    }
    const adding = tar.addFile('big', size, source());
    // Nobody reads the output: after a while the producer must be parked near the high-water mark.
    await new Promise((r) => setTimeout(r, 200));
    expect(produced).toBeLessThanOrEqual(4 * chunk.length);

    // Now drain it slowly and check the source never runs far ahead of the consumer.
    let consumed = 0;
    let maxAhead = 0;
    const sink = new Writable({
      highWaterMark: 64 * 1024,
      write(c: Buffer, _e, cb) {
        consumed += c.length;
        maxAhead = Math.max(maxAhead, produced - consumed);
        setImmediate(cb);
      },
    });
    const done = pipeline(tar.output, sink);
    await adding;
    await tar.finish();
    await done;
    expect(consumed).toBe(size + 512 + 1024);
    expect(maxAhead).toBeLessThan(1024 * 1024);
  });

  it('fails pending writes when the consumer goes away', async () => {
    const tar = new TarWriter({ highWaterMark: 1024 });
    const pending = tar.addFile('f', 1 << 20, Readable.from([Buffer.alloc(1 << 20)]));
    tar.output.destroy();
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(tar.addDir('d')).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('streams a large file to disk with GNU tar agreeing on its content', async () => {
    const size = 8 * 1024 * 1024 + 3;
    const data = bytes('large', size);
    const file = join(dir, 'large.tar');
    const tar = new TarWriter({ mtime: MTIME });
    await Promise.all([
      pipeline(tar.output, createWriteStream(file)),
      (async () => {
        await tar.addFile('large.bin', size, chunked(data, 65_536));
        await tar.finish();
      })(),
    ]);
    const extracted = execFileSync('tar', ['-xOf', file, 'large.bin'], { maxBuffer: 64 * 1024 * 1024 });
    expect(extracted.equals(data)).toBe(true);
  });
});
