// Format detection of `ferry load FILE`: the pure classifier over first bytes and a scan
// summary, and the scan over generated files (plain and gzip tars, a tar whose member lies
// about its size, a docker save whose manifest.json comes after a big member, random bytes).
import { createWriteStream, existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { gzipSync } from 'node:zlib';
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { TarWriter } from '../../../src/tar/writer.js';
import {
  type ArchiveScan,
  MAX_MANIFEST_PEEK,
  classifyArchive,
  detectArchive,
  isDockerManifestJson,
} from '../../../src/transports/detect.js';
import { refuseDockerSave } from '../../../src/transports/table.js';
import { UsageError } from '../../../src/util/errors.js';
import { createTempDir } from '../../harness/temp.js';

const DOCKER_MANIFEST = Buffer.from(JSON.stringify([{ Config: 'blobs/sha256/aa', RepoTags: ['x:1'], Layers: ['blobs/sha256/bb'] }]));
const TAR_HEAD = Buffer.alloc(512, 0x61);

function scan(over: Partial<ArchiveScan>): ArchiveScan {
  return { head: TAR_HEAD, firstNames: [], markers: new Set(), members: 3, ended: 'end', ...over };
}

describe('classifyArchive', () => {
  it('ferry-bundle.json makes a bundle, whatever else is there', () => {
    expect(classifyArchive(scan({ markers: new Set(['ferry-bundle.json', 'index.json', 'oci-layout']) }))).toEqual({
      kind: 'bundle',
      compression: 'none',
      ociLayout: true,
    });
  });

  it('a docker save manifest.json makes a docker-archive, also beside an OCI layout (Docker 25+)', () => {
    expect(classifyArchive(scan({ markers: new Set(['manifest.json']), manifestJson: DOCKER_MANIFEST }))).toMatchObject({
      kind: 'docker-archive',
      ociLayout: false,
    });
    expect(
      classifyArchive(scan({ markers: new Set(['manifest.json', 'index.json', 'oci-layout']), manifestJson: DOCKER_MANIFEST })),
    ).toMatchObject({ kind: 'docker-archive', ociLayout: true });
    // A pre-1.10 save (repositories only): the docker-archive reader says why it cannot be read.
    expect(classifyArchive(scan({ markers: new Set(['repositories']) }))).toMatchObject({ kind: 'docker-archive' });
  });

  it('oci-layout and index.json make an OCI archive; either alone does not', () => {
    expect(classifyArchive(scan({ markers: new Set(['index.json', 'oci-layout']) }))).toMatchObject({ kind: 'oci-archive' });
    expect(classifyArchive(scan({ markers: new Set(['index.json']), firstNames: ['index.json'] }))).toMatchObject({ kind: 'unknown' });
  });

  it('a manifest.json that is not a docker save listing does not count', () => {
    const r = classifyArchive(
      scan({ markers: new Set(['manifest.json']), manifestJson: Buffer.from('{"name":"app"}'), firstNames: ['manifest.json'], members: 1 }),
    );
    expect(r).toEqual({
      kind: 'unknown',
      compression: 'none',
      found:
        'a tar archive of 1 member: "manifest.json", without ferry-bundle.json, manifest.json or oci-layout and index.json (its manifest.json is not a docker save listing)',
    });
    expect(isDockerManifestJson(Buffer.from('[{"Config":""}]'))).toBe(false);
    expect(isDockerManifestJson(Buffer.from('not json'))).toBe(false);
    expect(isDockerManifestJson('too-large')).toBe(true);
  });

  it('says what a file is when it is none of them', () => {
    const found = (s: ArchiveScan): string => {
      const r = classifyArchive(s);
      if (r.kind !== 'unknown') throw new Error(r.kind);
      return r.found;
    };
    expect(found(scan({ head: Buffer.alloc(0), members: 0 }))).toBe('an empty file');
    expect(found(scan({ head: Buffer.from('nginx:1.27\n'), members: 0, ended: { error: 'bad checksum' } }))).toBe(
      'text starting "nginx:1.27\\n"',
    );
    expect(found(scan({ head: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0]), members: 0, ended: { error: 'x' } }))).toBe(
      'data that is not a tar archive (it starts 7f 45 4c 46 02 01 01 00)',
    );
    expect(found(scan({ members: 0 }))).toBe('an empty tar archive');
    expect(found(scan({ head: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), members: 0 }))).toBe('zstd-compressed data');
    expect(found(scan({ head: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), members: 0 }))).toBe('xz-compressed data');
    expect(found(scan({ firstNames: ['a', 'b'], members: 2, ended: { error: 'truncated in member "b"' } }))).toBe(
      'a damaged tar archive (truncated in member "b") after 2 members: "a", "b"',
    );
    expect(found(scan({ firstNames: ['a'], members: 100_000, ended: 'limit' }))).toMatch(/^a tar archive of more than 100000 members/);
  });
});

/** A tar of `members` at `file` (gzip-compressed when asked). */
async function tarFile(file: string, members: Array<[string, Buffer]>, gzip = false): Promise<string> {
  const w = new TarWriter();
  const chunks: Buffer[] = [];
  w.output.on('data', (c: Buffer) => chunks.push(c));
  const ended = new Promise((r) => w.output.on('end', r));
  for (const [name, bytes] of members) await w.addFile(name, bytes);
  await w.finish();
  await ended;
  const tar = Buffer.concat(chunks);
  await writeFile(file, gzip ? gzipSync(tar) : tar);
  return file;
}

describe('detectArchive', () => {
  const dir = createTempDir('detect-unit');
  const big = Buffer.alloc(3 * 1024 * 1024, 1);

  it('a docker save whose manifest.json follows a large blob, plain and gzipped', async () => {
    const members: Array<[string, Buffer]> = [
      ['blobs/sha256/bb', big],
      ['index.json', Buffer.from('{"schemaVersion":2,"manifests":[]}')],
      ['manifest.json', DOCKER_MANIFEST],
      ['oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}')],
    ];
    expect(await detectArchive(await tarFile(path.join(dir, 'save.tar'), members))).toEqual({
      kind: 'docker-archive',
      compression: 'none',
      // Decided at manifest.json, before oci-layout.
      ociLayout: false,
    });
    expect(await detectArchive(await tarFile(path.join(dir, 'save.tar.gz'), members, true))).toMatchObject({
      kind: 'docker-archive',
      compression: 'gzip',
    });
  });

  it('gunzipTo: a gzip docker save or OCI archive is copied whole while scanned (read on past the deciding member); anything else leaves no copy', async () => {
    const save: Array<[string, Buffer]> = [
      ['blobs/sha256/bb', big],
      ['manifest.json', DOCKER_MANIFEST],
      // After the deciding member: the copy must still hold it.
      ['blobs/sha256/cc', Buffer.alloc(1024 * 1024, 2)],
    ];
    const oci: Array<[string, Buffer]> = [
      ['oci-layout', Buffer.from('{}')],
      ['blobs/sha256/dd', big],
      ['index.json', Buffer.from('{}')],
    ];
    for (const [name, members, kind] of [
      ['save', save, 'docker-archive'],
      ['oci', oci, 'oci-archive'],
    ] as const) {
      const plain = await tarFile(path.join(dir, `${name}-plain.tar`), [...members]);
      const gz = await tarFile(path.join(dir, `${name}-copy.tar.gz`), [...members], true);
      const copy = path.join(dir, `${name}-copy.tar`);
      const d = await detectArchive(gz, { gunzipTo: async () => copy });
      expect(d).toMatchObject({ kind, compression: 'gzip', gunzipped: copy });
      // The copy is the decompressed stream, byte for byte (the scan reads on to its end).
      expect((await readFile(copy)).equals(await readFile(plain))).toBe(true);
    }
    // A gzip bundle (decided at its second member), junk and a damaged stream: no copy left.
    const bundle = await tarFile(
      path.join(dir, 'b.ferry.gz'),
      [
        ['oci-layout', Buffer.from('{}')],
        ['ferry-bundle.json', Buffer.from('{}')],
        ['x', big],
      ],
      true,
    );
    const junk = path.join(dir, 'junk.gz');
    await writeFile(junk, gzipSync(Buffer.alloc(4096, 7)));
    const cut = path.join(dir, 'cut.tar.gz');
    const whole = await readFile(await tarFile(path.join(dir, 'cut-src.tar.gz'), save, true));
    await writeFile(cut, whole.subarray(0, whole.length - 2000));
    for (const file of [bundle, junk, cut]) {
      const copy = `${file}.copy`;
      const d = await detectArchive(file, { gunzipTo: async () => copy });
      expect(d.gunzipped, file).toBeUndefined();
      expect(existsSync(copy), file).toBe(false);
    }
  });

  it('an OCI archive and a bundle', async () => {
    const oci = await tarFile(path.join(dir, 'oci.tar'), [
      ['oci-layout', Buffer.from('{}')],
      ['index.json', Buffer.from('{}')],
    ]);
    expect(await detectArchive(oci)).toEqual({ kind: 'oci-archive', compression: 'none', ociLayout: true });
    const bundle = await tarFile(path.join(dir, 'b.ferry'), [
      ['oci-layout', Buffer.from('{}')],
      ['ferry-bundle.json', Buffer.from('{}')],
      ['index.json', Buffer.from('{}')],
    ]);
    expect(await detectArchive(bundle)).toMatchObject({ kind: 'bundle' });
  });

  it('a member whose size runs past the end of the file is a damaged tar, not trusted', async () => {
    const file = await tarFile(path.join(dir, 'lie.tar'), [
      ['a.txt', Buffer.from('hello')],
      ['b.txt', big],
    ]);
    // Cut the file inside b.txt's data: its declared size now lies.
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, 512 * 4));
    const r = await detectArchive(file);
    expect(r.kind).toBe('unknown');
    expect(r.kind === 'unknown' && r.found).toMatch(/^a damaged tar archive \(.*truncated.*\) after 2 members: "a.txt", "b.txt"/);
  });

  it('a manifest.json too large to peek at is left to the docker-archive reader', async () => {
    const file = path.join(dir, 'huge-manifest.tar');
    const w = new TarWriter();
    const out = pipeline(w.output, createWriteStream(file));
    await w.addFile('manifest.json', Buffer.alloc(MAX_MANIFEST_PEEK + 1, 0x20));
    await w.finish();
    await out;
    expect(await detectArchive(file)).toMatchObject({ kind: 'docker-archive' });
  });

  it('random bytes and gzip of random bytes', async () => {
    const file = path.join(dir, 'rand.bin');
    await writeFile(file, Buffer.from([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, ...Array(2000).fill(9)]));
    expect(await detectArchive(file)).toMatchObject({ kind: 'unknown', found: expect.stringMatching(/^data that is not a tar archive/) });
    const gz = path.join(dir, 'rand.gz');
    await writeFile(gz, gzipSync(Buffer.alloc(4096, 7)));
    expect(await detectArchive(gz)).toEqual({
      kind: 'unknown',
      compression: 'gzip',
      found: 'gzip-compressed data that is not a tar archive',
    });
  });

  it('verify refuses any docker save; serve only one that is not also an OCI layout', async () => {
    const legacy = await tarFile(path.join(dir, 'legacy.tar'), [
      ['aa.json', Buffer.from('{}')],
      ['manifest.json', DOCKER_MANIFEST],
    ]);
    const modern = await tarFile(path.join(dir, 'modern.tar'), [
      ['oci-layout', Buffer.from('{}')],
      ['index.json', Buffer.from('{}')],
      ['manifest.json', DOCKER_MANIFEST],
    ]);
    for (const [file, command] of [
      [legacy, 'verify'],
      [legacy, 'serve'],
      [modern, 'verify'],
    ] as const) {
      const err = await refuseDockerSave(file, command).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, `${file} ${command}`).toBeInstanceOf(UsageError);
      expect((err as Error).message).toBe(`${file} is not a ferry bundle; it is a docker save archive; load it with ferry load`);
    }
    await expect(refuseDockerSave(modern, 'serve')).resolves.toBeUndefined();
    const oci = path.join(dir, 'oci.tar');
    await expect(refuseDockerSave(oci, 'verify')).resolves.toBeUndefined();
  });
});
