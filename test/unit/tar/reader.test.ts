import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, symlink, link, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerFor } from '../../../src/tar/format.js';
import { TarWriter, type TarEntryInfo } from '../../../src/tar/writer.js';
import { indexTarFile, iterateTar, openTarEntry, type TarEntry } from '../../../src/tar/reader.js';
import { TarFormatError } from '../../../src/tar/format.js';
import { fixture, HAVE_FIXTURES } from '../../helpers/fixtures.js';
import { collect } from '../../helpers/streams.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ferry-tar-reader-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function build(fn: (t: TarWriter) => Promise<unknown>): Promise<{ bytes: Buffer; infos: TarEntryInfo[] }> {
  const t = new TarWriter();
  const out = collect(t.output);
  const infos = (await fn(t)) as TarEntryInfo[];
  await t.finish();
  return { bytes: await out, infos };
}

async function streamAll(
  bytes: Buffer | Readable,
  opts?: Parameters<typeof iterateTar>[1],
): Promise<Array<{ entry: TarEntry; data: Buffer }>> {
  const src = Buffer.isBuffer(bytes) ? Readable.from(chunked(bytes, 777)) : bytes;
  const out: Array<{ entry: TarEntry; data: Buffer }> = [];
  for await (const { entry, body } of iterateTar(src, opts)) out.push({ entry, data: await collect(body) });
  return out;
}

/** Odd-sized chunks, so headers and data straddle chunk boundaries. */
function* chunked(b: Buffer, n: number): Generator<Buffer> {
  for (let i = 0; i < b.length; i += n) yield b.subarray(i, i + n);
}

async function toFile(name: string, bytes: Buffer): Promise<string> {
  const p = path.join(work, name);
  await writeFile(p, bytes);
  return p;
}

async function expectTarError(p: Promise<unknown>, re: RegExp): Promise<void> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TarFormatError);
  expect((err as TarFormatError).code).toBe('TAR_INVALID');
  expect((err as Error).message).toMatch(re);
}

/** Recompute a ustar header's checksum after editing it. */
function fixChecksum(block: Buffer): Buffer {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

const LONG = `${'deep/'.repeat(30)}file-with-a-rather-long-name.txt`; // 182 bytes
const big = randomBytes(300_000);

async function sample(): Promise<{ bytes: Buffer; infos: TarEntryInfo[] }> {
  return build(async (t) => [
    await t.addDir('etc'),
    await t.addFile('etc/hostname', Buffer.from('ferry\n')),
    await t.addFile('empty', Buffer.alloc(0)),
    await t.addFile(LONG, Buffer.from('long')),
    await t.addFile('ünïcode/名前.txt', Buffer.from('utf8')),
    await t.addFile('big.bin', big),
    await t.addSymlink('etc/link', '../big.bin'),
    await t.addHardlink('hard', 'etc/hostname'),
  ]);
}

describe('iterateTar / indexTarFile over ferry TarWriter output', () => {
  it('round-trips names, types, sizes, links and data', async () => {
    const { bytes, infos } = await sample();
    const got = await streamAll(bytes);
    expect(got.map((g) => [g.entry.name, g.entry.type, g.entry.size])).toEqual([
      ['etc', 'directory', 0],
      ['etc/hostname', 'file', 6],
      ['empty', 'file', 0],
      [LONG, 'file', 4],
      ['ünïcode/名前.txt', 'file', 4],
      ['big.bin', 'file', big.length],
      ['etc/link', 'symlink', 0],
      ['hard', 'hardlink', 0],
    ]);
    expect(got[0]!.entry.rawName).toBe('etc/');
    expect(got[5]!.data.equals(big)).toBe(true);
    expect(got[1]!.data.toString()).toBe('ferry\n');
    expect(got[6]!.entry.linkname).toBe('../big.bin');
    expect(got[7]!.entry.linkname).toBe('etc/hostname');
    expect(got[1]!.entry.mode).toBe(0o644);
    expect(got[0]!.entry.mode).toBe(0o755);
    // Offsets agree with what the writer reports (pax headers included in headerOffset).
    for (const [i, info] of infos.entries()) {
      expect(got[i]!.entry.headerOffset).toBe(info.headerOffset);
      expect(got[i]!.entry.dataOffset).toBe(info.dataOffset);
    }
  });

  it('indexes a file the same way and reads members (and ranges) at their offsets', async () => {
    const { bytes } = await sample();
    const file = await toFile('sample.tar', bytes);
    const streamed = (await streamAll(bytes)).map((g) => g.entry);
    const indexed = await indexTarFile(file);
    expect(indexed).toEqual(streamed);
    const bigEntry = indexed.find((e) => e.name === 'big.bin')!;
    expect((await collect(openTarEntry(file, bigEntry))).equals(big)).toBe(true);
    expect((await collect(openTarEntry(file, bigEntry, { start: 1000, end: 1010 }))).equals(big.subarray(1000, 1010))).toBe(true);
    expect((await collect(openTarEntry(file, bigEntry, { start: 5, end: 5 }))).length).toBe(0);
    expect(() => openTarEntry(file, bigEntry, { start: 0, end: big.length + 1 })).toThrow(RangeError);
  });

  it('skips bodies the caller does not read, or reads only partly', async () => {
    const { bytes } = await sample();
    const names: string[] = [];
    for await (const { entry, body } of iterateTar(Readable.from(chunked(bytes, 1000)))) {
      names.push(entry.name);
      if (entry.name === 'big.bin') {
        // Read one chunk, then move on.
        const it = body[Symbol.asyncIterator]();
        const first = await it.next();
        expect((first.value as Buffer).length).toBeGreaterThan(0);
      }
    }
    expect(names).toHaveLength(8);
  });

  it('streams a 256 MiB member with flat memory, read or skipped', async () => {
    const size = 256 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 7);
    async function* lazyTar(): AsyncGenerator<Buffer> {
      for (const name of ['read.bin', 'skipped.bin']) {
        yield headerFor({ name, type: 'file', size });
        for (let i = 0; i < size / chunk.length; i++) yield chunk;
      }
      yield Buffer.alloc(1024);
    }
    const before = process.memoryUsage().rss;
    let peak = before;
    let read = 0;
    for await (const { entry, body } of iterateTar(Readable.from(lazyTar()))) {
      if (entry.name !== 'read.bin') continue;
      for await (const c of body) {
        read += (c as Buffer).length;
        peak = Math.max(peak, process.memoryUsage().rss);
      }
    }
    expect(read).toBe(size);
    expect(peak - before).toBeLessThan(64 * 1024 * 1024);
  });

  it('treats an empty input as an empty archive', async () => {
    expect(await streamAll(Buffer.alloc(0))).toEqual([]);
    expect(await indexTarFile(await toFile('empty.tar', Buffer.alloc(0)))).toEqual([]);
  });

  it('accepts a lone zero block at the end (GNU tar does)', async () => {
    const { bytes } = await build(async (t) => [await t.addFile('a', Buffer.from('x'))]);
    const lone = bytes.subarray(0, bytes.length - 512);
    expect((await streamAll(lone)).map((g) => g.entry.name)).toEqual(['a']);
  });

  it('reports a 10 GB member by seeking, without reading its data', async () => {
    const file = path.join(work, 'huge.tar');
    const size = 10 * 1024 ** 3;
    const h1 = headerFor({ name: 'huge.bin', type: 'file', size });
    const h2 = headerFor({ name: 'after', type: 'file', size: 3 });
    const fh = await open(file, 'w');
    try {
      await fh.write(h1, 0, h1.length, 0);
      const next = h1.length + size; // size is a multiple of 512
      await fh.write(h2, 0, h2.length, next);
      await fh.write(Buffer.concat([Buffer.from('abc'), Buffer.alloc(509), Buffer.alloc(1024)]), 0, 1536, next + 512);
    } finally {
      await fh.close();
    }
    const started = Date.now();
    const idx = await indexTarFile(file);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(idx.map((e) => [e.name, e.size])).toEqual([
      ['huge.bin', size],
      ['after', 3],
    ]);
    expect(idx[0]!.dataOffset).toBe(h1.length); // after the pax header carrying the size
    expect((await collect(openTarEntry(file, idx[1]!))).toString()).toBe('abc');
  });
});

describe('hostile and damaged archives', () => {
  it('names the member when the data is truncated', async () => {
    const { bytes } = await sample();
    const bigOff = (await streamAll(bytes)).find((g) => g.entry.name === 'big.bin')!.entry.dataOffset;
    const cut = bytes.subarray(0, bigOff + 1000);
    await expectTarError(streamAll(cut), /truncated in member "big\.bin"/);
    await expectTarError(indexTarFile(await toFile('cut.tar', cut)), /truncated in member "big\.bin"/);
  });

  it('notices a truncated body even when the caller skips it', async () => {
    const { bytes } = await sample();
    const bigOff = (await streamAll(bytes)).find((g) => g.entry.name === 'big.bin')!.entry.dataOffset;
    const run = async () => {
      for await (const _ of iterateTar(Readable.from([bytes.subarray(0, bigOff + 10)]))) void _;
    };
    await expectTarError(run(), /big\.bin/);
  });

  it('refuses an archive cut at a member boundary (no end-of-archive marker)', async () => {
    const { bytes } = await build(async (t) => [await t.addFile('a', Buffer.from('x')), await t.addFile('b', Buffer.from('y'))]);
    await expectTarError(streamAll(bytes.subarray(0, bytes.length - 1024)), /ends after member "b" without the end-of-archive marker/);
    await expectTarError(streamAll(bytes.subarray(0, 1124)), /partial header block at offset 1024 \(after member "a"\)/);
  });

  it('refuses a header with a bad checksum', async () => {
    const { bytes } = await sample();
    const bad = Buffer.from(bytes);
    bad[512 + 10]! ^= 0x01; // inside the second member's name
    await expectTarError(streamAll(bad), /offset 512 \(after member "etc\/"\): bad header checksum/);
    await expectTarError(indexTarFile(await toFile('badsum.tar', bad)), /bad header checksum/);
    await expectTarError(streamAll(Buffer.from('this is not a tar file at all'.repeat(40))), /bad header checksum/);
  });

  it('refuses malformed octal fields', async () => {
    const h = headerFor({ name: 'x', type: 'file', size: 1 });
    h.write('0000000001x\0', 124, 'latin1');
    fixChecksum(h);
    await expectTarError(streamAll(Buffer.concat([h, Buffer.alloc(512), Buffer.alloc(1024)])), /invalid octal size field/);
  });

  it('reads a GNU base-256 size field', async () => {
    const h = headerFor({ name: 'x', type: 'file', size: 0 });
    h.fill(0, 124, 136);
    h[124] = 0x80;
    h[135] = 5;
    fixChecksum(h);
    const data = Buffer.concat([Buffer.from('hello'), Buffer.alloc(507)]);
    const got = await streamAll(Buffer.concat([h, data, Buffer.alloc(1024)]));
    expect(got[0]!.data.toString()).toBe('hello');
  });

  it('refuses pax garbage, oversized pax headers and too many members', async () => {
    const body = Buffer.from('garbage without a length\n');
    const pax = headerFor({ name: 'PaxHeaders/x', type: 'file', size: body.length });
    pax.write('x', 156, 'latin1');
    fixChecksum(pax);
    const tail = Buffer.concat([headerFor({ name: 'x', type: 'file' }), Buffer.alloc(1024)]);
    const archive = Buffer.concat([pax, body, Buffer.alloc(512 - body.length), tail]);
    await expectTarError(streamAll(archive), /malformed pax record/);

    const overrun = Buffer.from('99 path=x\n');
    const pax2 = headerFor({ name: 'PaxHeaders/x', type: 'file', size: overrun.length });
    pax2.write('x', 156, 'latin1');
    fixChecksum(pax2);
    await expectTarError(streamAll(Buffer.concat([pax2, overrun, Buffer.alloc(512 - overrun.length), tail])), /malformed pax record/);

    const { bytes } = await build(async (t) => [await t.addFile('n'.repeat(200), Buffer.from('x'))]);
    await expectTarError(streamAll(bytes, { maxPaxBytes: 100 }), /over the 100-byte limit/);
    const { bytes: three } = await build(async (t) => [
      await t.addFile('a', Buffer.alloc(0)),
      await t.addFile('b', Buffer.alloc(0)),
      await t.addFile('c', Buffer.alloc(0)),
    ]);
    await expectTarError(streamAll(three, { maxEntries: 2 }), /more than 2 members/);
  });

  it('reports hostile names and links as they are, without following them', async () => {
    const parts = [
      headerFor({ name: '../escape', type: 'file', size: 0 }),
      headerFor({ name: '/abs/path', type: 'file', size: 0 }),
      headerFor({ name: 'a/../../up', type: 'file', size: 0 }),
      headerFor({ name: 'sym', type: 'symlink', linkname: '/etc/passwd' }),
      headerFor({ name: 'hl', type: 'hardlink', linkname: '../../x' }),
      Buffer.alloc(1024),
    ];
    const got = await streamAll(Buffer.concat(parts));
    expect(got.map((g) => [g.entry.name, g.entry.type, g.entry.linkname])).toEqual([
      ['../escape', 'file', undefined],
      ['/abs/path', 'file', undefined],
      ['../up', 'file', undefined],
      ['sym', 'symlink', '/etc/passwd'],
      ['hl', 'hardlink', '../../x'],
    ]);
  });
});

const hasTar = (() => {
  try {
    return execFileSync('tar', ['--version']).toString().includes('GNU tar');
  } catch {
    return false;
  }
})();

describe.skipIf(!hasTar)('GNU tar output', () => {
  const longDir = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(60)}`;
  const longFile = `${longDir}/${'g'.repeat(120)}.txt`;
  let src: string;
  const content = randomBytes(5000);

  beforeAll(async () => {
    src = path.join(work, 'gnu-src');
    await mkdir(path.join(src, 'tree', longDir), { recursive: true });
    await writeFile(path.join(src, 'tree', 'plain.txt'), 'plain\n');
    await writeFile(path.join(src, 'tree', longFile), content);
    await symlink(`../${'x'.repeat(150)}`, path.join(src, 'tree', 'longlink'));
    await link(path.join(src, 'tree', 'plain.txt'), path.join(src, 'tree', 'hard.txt'));
  });

  for (const format of ['gnu', 'pax', 'ustar-ish default', 'posix-with-dot']) {
    it(`reads --format=${format}`, async () => {
      const out = path.join(work, `gnu-${format.replace(/\W/g, '_')}.tar`);
      const args = ['-cf', out, '-C', src, '--sort=name'];
      if (format === 'gnu' || format === 'pax') args.push(`--format=${format}`);
      if (format === 'posix-with-dot') {
        args.push('--format=posix', '-C', 'tree', '.');
      } else {
        args.push('tree');
      }
      execFileSync('tar', args);
      const prefix = format === 'posix-with-dot' ? '' : 'tree/';
      const idx = await indexTarFile(out);
      const byName = new Map(idx.map((e) => [e.name, e]));
      const f = byName.get(`${prefix}${longFile}`);
      expect(f?.type).toBe('file');
      expect((await collect(openTarEntry(out, f!))).equals(content)).toBe(true);
      expect(byName.get(`${prefix}longlink`)).toMatchObject({ type: 'symlink', linkname: `../${'x'.repeat(150)}` });
      // GNU tar stores the second name of a hard-linked pair as a link to the first.
      const plain = byName.get(`${prefix}plain.txt`)!;
      const hard = byName.get(`${prefix}hard.txt`)!;
      expect([plain.type, hard.type].sort()).toEqual(['file', 'hardlink']);
      if (format === 'posix-with-dot') {
        expect(idx.some((e) => e.rawName.startsWith('./'))).toBe(true);
        expect(idx.some((e) => e.name.startsWith('./'))).toBe(false);
      }
      const streamed = (await streamAll(createReadStream(out))).map((g) => g.entry);
      expect(streamed).toEqual(idx);
      // Cross-check the listing against GNU tar's own.
      const listed = execFileSync('tar', ['-tf', out])
        .toString()
        .trim()
        .split('\n')
        .map((n) => n.replace(/\/$/, '').replace(/^\.\//, '') || '.');
      expect(idx.map((e) => e.name)).toEqual(listed);
    });
  }
});

describe.skipIf(!HAVE_FIXTURES)('oras-go tarfs fixtures', () => {
  it('normalises ./-prefixed names to the same entries as the cleaned archive', async () => {
    const prefixed = await indexTarFile(fixture('oras-go/internal/fs/tarfs/testdata/prefixed_path.tar'));
    const cleaned = await indexTarFile(fixture('oras-go/internal/fs/tarfs/testdata/cleaned_path.tar'));
    expect(prefixed[0]).toMatchObject({ name: '.', rawName: './', type: 'directory' });
    // Link targets are reported verbatim ("./foobar" in the prefixed archive); normalised they agree.
    const strip = (es: TarEntry[]) =>
      es
        .filter((e) => e.name !== '.')
        .map((e) => ({ name: e.name, type: e.type, size: e.size, linkname: e.linkname && path.posix.normalize(e.linkname) }));
    expect(strip(prefixed)).toEqual(strip(cleaned));
    expect(prefixed.filter((e) => e.rawName !== './').every((e) => e.rawName.startsWith('./'))).toBe(true);
  });

  it('reports the hard link and symlink as links, not their targets', async () => {
    for (const f of ['prefixed_path.tar', 'cleaned_path.tar']) {
      const file = fixture('oras-go/internal/fs/tarfs/testdata', f);
      const links = (await indexTarFile(file)).filter((e) => e.type === 'symlink' || e.type === 'hardlink');
      expect(links.map((e) => e.type).sort()).toEqual(['hardlink', 'symlink']);
      for (const l of links) {
        expect(l.size).toBe(0);
        expect(l.linkname).toBeTruthy();
      }
      const streamed = (await streamAll(createReadStream(file))).map((g) => g.entry);
      expect(streamed).toEqual(await indexTarFile(file));
    }
  });

  it('reads every member of every fixture tar identically by streaming and by index', async () => {
    const files = [
      'containers-image/docker/archive/fixtures/almostempty.tar',
      'go-containerregistry/pkg/v1/tarball/testdata/test_link.tar',
      'go-containerregistry/pkg/v1/mutate/testdata/whiteout_dir.tar',
      'oras-go/content/oci/testdata/hello-world-prefixed-path.tar',
      'moby/integration-cli/testdata/emptyLayer.tar',
      'zarf/src/pkg/packager/testdata/find-images/image-archives/scratch.tar',
    ];
    for (const f of files) {
      const file = fixture(f);
      const streamed = await streamAll(createReadStream(file));
      const idx = await indexTarFile(file);
      expect(streamed.map((s) => s.entry)).toEqual(idx);
      for (const [i, e] of idx.entries()) {
        const viaIndex = await collect(openTarEntry(file, e));
        expect(createHash('sha256').update(viaIndex).digest('hex')).toBe(createHash('sha256').update(streamed[i]!.data).digest('hex'));
      }
    }
    expect((await readFile(fixture('moby/integration-cli/testdata/emptyLayer.tar'))).length).toBeGreaterThan(0);
  });
});
