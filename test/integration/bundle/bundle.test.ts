/**
 * ferry bundle end to end: a store pulled from the small corpus → writeBundle → verifyBundle,
 * cross-checked with the tools a receiving site has (tar, sha256sum, openssl, skopeo), then
 * every kind of tampering, each of which verify must catch and name.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';
import { sha256 } from '../../../src/oci/digest.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { BundleManifestSchema, MEMBER, type BundleManifest } from '../../../src/bundle/format.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { verifyBundle, verifyBundleStream, type VerifyResult } from '../../../src/bundle/verify.js';
import { inspect } from '../../../src/bundle/inspect.js';
import { runVerify } from '../../../src/cli/verify.js';
import { headerFor, tarPadding, TAR_TRAILER_SIZE } from '../../../src/tar/format.js';
import { indexTarFile, openTarEntry } from '../../../src/tar/reader.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { readMembers } from './craft.js';

let corpus: CorpusManifest;
let store: OciLayout;
let work: string;
let ecKey: string;
let ecPub: string;
let edKey: string;
let edPub: string;
/** The reference bundles: signed (ECDSA) auto-compressed, and unsigned uncompressed. */
let signedBundle: string;
let plainBundle: string;

const storeName = (i: { ref: string }): string => i.ref;

beforeAll(async () => {
  work = createTempDir('bundle');
  ({ corpus, store } = await storeFromSmallCorpus(path.join(work, 'store')));
  const keys = path.join(work, 'keys');
  await mkdir(keys);
  ecKey = path.join(keys, 'ec.pem');
  ecPub = path.join(keys, 'ec.pub');
  edKey = path.join(keys, 'ed.pem');
  edPub = path.join(keys, 'ed.pub');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', ecKey]);
  execFileSync('openssl', ['pkey', '-in', ecKey, '-pubout', '-out', ecPub]);
  execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', edKey]);
  execFileSync('openssl', ['pkey', '-in', edKey, '-pubout', '-out', edPub]);
  signedBundle = path.join(work, 'signed.ferry');
  await writeBundle({ store, output: signedBundle, compression: 'auto', signKey: ecKey });
  plainBundle = path.join(work, 'plain.ferry');
  await writeBundle({ store, output: plainBundle, compression: 'none' });
});
afterAll(cleanupHarness);

async function manifestOf(file: string): Promise<BundleManifest> {
  const entries = await indexTarFile(file);
  const e = entries.find((x) => x.name === MEMBER.manifest)!;
  const chunks: Buffer[] = [];
  for await (const c of openTarEntry(file, e)) chunks.push(c as Buffer);
  return BundleManifestSchema.parse(JSON.parse(Buffer.concat(chunks).toString('utf8')));
}

function extract(file: string): string {
  const dir = createTempDir('bundle-x');
  execFileSync('tar', ['-xf', file, '-C', dir]);
  return dir;
}

describe('writeBundle → verify round trip', () => {
  it('bundles every store image, verifies clean (file and pipe), and counts dedup', async () => {
    const man = await manifestOf(signedBundle);
    const names = [...new Set(corpus.images.map(storeName))].sort();
    expect(man.images.map((i) => i.ref).sort()).toEqual(names);
    for (const i of corpus.images) expect(man.images.find((x) => x.ref === i.ref)?.digest).toBe(i.digest);
    expect(man.totals.blobs).toBe(corpus.blobCount);
    expect(man.totals.uniqueBytes).toBe(corpus.uniqueBlobBytes);
    expect(man.totals.referencedBytes).toBeGreaterThan(man.totals.uniqueBytes); // shared base layers
    const v = await verifyBundle(signedBundle, { key: ecPub, requireSignature: true });
    expect(v.problems).toEqual([]);
    expect(v.ok).toBe(true);
    expect(v.signature).toBe('valid');
    const s = await verifyBundleStream(createReadStream(signedBundle), { key: ecPub });
    expect(s.problems).toEqual([]);
    expect((await verifyBundle(plainBundle)).ok).toBe(true);
  });

  it('extracts with tar; sha256sum -c passes; openssl verifies; every blob is byte-identical', async () => {
    const dir = extract(signedBundle);
    execFileSync('sha256sum', ['--quiet', '-c', 'SHA256SUMS'], { cwd: dir });
    execFileSync('openssl', ['dgst', '-sha256', '-verify', ecPub, '-signature', 'ferry-bundle.json.sig', 'ferry-bundle.json'], {
      cwd: dir,
    });
    expect(await readFile(`${signedBundle}.sig`)).toEqual(await readFile(path.join(dir, 'ferry-bundle.json.sig')));
    const man = await manifestOf(signedBundle);
    for (const m of man.members.filter((x) => x.digest)) {
      const orig = await readFile(store.blobPath(m.digest!));
      const stored = path.join(dir, m.path);
      const content = m.storage === 'zstd' ? execFileSync('zstd', ['-d', '-c', stored], { maxBuffer: 1 << 30 }) : await readFile(stored);
      expect(sha256(content), m.path).toBe(m.digest);
      expect(Buffer.compare(content, orig), m.path).toBe(0);
    }
  });

  it('stores the uncompressed layer of ferry-test/raw:1 as a zstd member that restores exactly', async () => {
    const man = await manifestOf(signedBundle);
    const z = man.members.filter((m) => m.storage === 'zstd');
    expect(z.length).toBeGreaterThan(0);
    for (const m of z) {
      expect(m.path).toMatch(/^ferry\/zstd\/sha256\/[a-f0-9]{64}\.zst$/);
      expect(m.mediaType).toMatch(/\.tar$/);
      expect(m.size).toBeLessThan(m.uncompressedSize!);
    }
    const raw = man.images.find((i) => i.ref === 'ferry-test/raw:1')!;
    const rawManifest = JSON.parse((await readFile(store.blobPath(raw.digest))).toString()) as {
      layers: Array<{ digest: string; mediaType: string }>;
    };
    const tarLayer = rawManifest.layers.find((l) => l.mediaType.endsWith('.tar'))!;
    expect(z.map((m) => m.digest)).toContain(tarLayer.digest);
    // With --compression none, nothing is compressed.
    expect((await manifestOf(plainBundle)).members.every((m) => m.storage === 'raw')).toBe(true);
  });

  it('Ed25519 signatures verify with openssl and ferry', async () => {
    const out = path.join(work, 'ed.ferry');
    const r = await writeBundle({ store, refs: ['ferry-test/app:1.0'], output: out, compression: 'auto', signKey: edKey });
    expect(r.images.map((i) => i.ref)).toEqual(['ferry-test/app:1.0']);
    const dir = extract(out);
    execFileSync(
      'openssl',
      ['pkeyutl', '-verify', '-pubin', '-inkey', edPub, '-rawin', '-in', 'ferry-bundle.json', '-sigfile', 'ferry-bundle.json.sig'],
      { cwd: dir },
    );
    expect((await verifyBundle(out, { key: edPub })).signature).toBe('valid');
    // The wrong key: a problem, named.
    const wrong = await verifyBundle(out, { key: ecPub });
    expect(wrong.ok).toBe(false);
    expect(wrong.problems.map((p) => p.code)).toEqual(['SIGNATURE_INVALID']);
  });

  it('skopeo reads an uncompressed bundle as oci-archive', async () => {
    const man = await manifestOf(plainBundle);
    // containers/image's OCI layout reader skips index entries with Docker media types
    // (docker-s2, the docker manifest list), so only OCI-typed images are checked with skopeo.
    const oci = man.images.filter((i) => i.mediaType.startsWith('application/vnd.oci.'));
    const picked = oci.filter((i) => ['ferry-test/app:1.0', 'ferry-test/multi:oci', 'ferry-test/raw:1'].includes(i.ref));
    expect(picked).toHaveLength(3);
    for (const img of picked) {
      const raw = execFileSync('skopeo', ['inspect', '--raw', `oci-archive:${plainBundle}:${img.ref}`], {
        env: { ...process.env, TMPDIR: work },
      });
      expect(sha256(raw)).toBe(img.digest);
    }
  });

  it('never leaves a partial FILE: a failing run leaves nothing behind', async () => {
    const out = path.join(work, 'fail', 'x.ferry');
    await mkdir(path.dirname(out));
    await expect(writeBundle({ store, refs: ['no/such:1'], output: out, compression: 'auto' })).rejects.toThrow(/no image named/);
    expect(await readdir(path.dirname(out))).toEqual([]);
  });

  it('a sparse image in the store is BLOB_MISSING naming the image', async () => {
    const sparseDir = path.join(work, 'sparse');
    execFileSync('cp', ['-a', store.dir, sparseDir]);
    const sparse = await OciLayout.open(sparseDir);
    const man = await manifestOf(plainBundle);
    const app = man.images.find((i) => i.ref === 'ferry-test/app:1.0')!;
    const m = JSON.parse((await readFile(sparse.blobPath(app.digest))).toString()) as { layers: Array<{ digest: string }> };
    const { rm } = await import('node:fs/promises');
    await rm(sparse.blobPath(m.layers.at(-1)!.digest));
    const out = path.join(work, 'sparse.ferry');
    await expect(writeBundle({ store: sparse, refs: ['ferry-test/app:1.0'], output: out, compression: 'none' })).rejects.toMatchObject({
      code: 'BLOB_MISSING',
      message: expect.stringContaining('ferry-test/app:1.0'),
    });
    expect(existsSync(out)).toBe(false);
  });

  it('a store blob whose bytes do not match its digest fails the bundle: no file is written', async () => {
    const badDir = path.join(work, 'bad-store');
    execFileSync('cp', ['-a', store.dir, badDir]);
    const bad = await OciLayout.open(badDir);
    const man = await manifestOf(plainBundle);
    const app = man.images.find((i) => i.ref === 'ferry-test/app:1.0')!;
    const m = JSON.parse((await readFile(bad.blobPath(app.digest))).toString()) as { layers: Array<{ digest: string }> };
    const layer = bad.blobPath(m.layers.at(-1)!.digest);
    await writeFile(layer, flip(await readFile(layer)));
    const out = path.join(work, 'bad.ferry');
    await expect(writeBundle({ store: bad, refs: ['ferry-test/app:1.0'], output: out, compression: 'none' })).rejects.toMatchObject({
      code: 'DIGEST_MISMATCH',
      message: expect.stringContaining(m.layers.at(-1)!.digest),
    });
    expect(existsSync(out)).toBe(false);
    expect((await readdir(work)).filter((f) => f.startsWith('.bad.ferry'))).toEqual([]);
  });

  it('inspect reports images, totals and signature state', async () => {
    const i = await inspect(signedBundle, { key: ecPub });
    expect(i.format).toBe(1);
    expect(i.signature).toBe('valid');
    expect(i.images.length).toBe(new Set(corpus.images.map((x) => x.ref)).size);
    const multi = i.images.find((x) => x.ref === 'ferry-test/multi:oci')!;
    expect(multi.platforms.length).toBeGreaterThan(1);
    expect((await inspect(signedBundle)).signature).toBe('present');
    expect((await inspect(plainBundle)).signature).toBe('none');
    const layout = await inspect(`oci:${store.dir}`);
    expect(layout.images.map((x) => x.ref).sort()).toEqual(i.images.map((x) => x.ref).sort());
    expect(layout.uniqueBytes).toBe(i.uniqueBytes);
  });
});

// ---------------------------------------------------------------------------------------------
// Tampering. Bundles are rebuilt member by member with the tar writer's headerFor().

interface Member {
  name: string;
  data: Buffer;
  type?: 'file' | 'symlink' | 'hardlink';
  linkname?: string;
}

async function writeMembers(file: string, members: Member[], opts: { truncateAt?: number } = {}): Promise<void> {
  const parts: Buffer[] = [];
  for (const m of members) {
    const type = m.type ?? 'file';
    parts.push(
      headerFor({ name: m.name, type, size: type === 'file' ? m.data.length : 0, ...(m.linkname ? { linkname: m.linkname } : {}) }),
    );
    if (type === 'file') parts.push(m.data, Buffer.alloc(tarPadding(m.data.length)));
  }
  parts.push(Buffer.alloc(TAR_TRAILER_SIZE));
  let all = Buffer.concat(parts);
  if (opts.truncateAt !== undefined) all = all.subarray(0, opts.truncateAt);
  await writeFile(file, all);
}

function flip(b: Buffer, at = Math.floor(b.length / 2)): Buffer {
  const c = Buffer.from(b);
  c[at] = c[at]! ^ 0x01;
  return c;
}

let tamperN = 0;
async function tampered(edit: (ms: Member[]) => Member[] | void, opts: { truncateAt?: number; from?: string } = {}): Promise<string> {
  const ms: Member[] = await readMembers(opts.from ?? signedBundle);
  const next = edit(ms) ?? ms;
  const file = path.join(work, `tampered-${tamperN++}.ferry`);
  await writeMembers(file, next, opts);
  return file;
}

async function expectCaught(
  file: string,
  want: { code: string; member?: string | RegExp; digest?: string; image?: string },
  opts: { key?: string } = { key: ecPub },
): Promise<VerifyResult> {
  const v = await verifyBundle(file, opts);
  expect(v.ok).toBe(false);
  const hit = v.problems.find((p) => p.code === want.code);
  expect(hit, JSON.stringify(v.problems, null, 1)).toBeDefined();
  if (want.member instanceof RegExp) expect(hit!.member).toMatch(want.member);
  else if (want.member) expect(hit!.member).toBe(want.member);
  if (want.digest) expect(hit!.digest).toBe(want.digest);
  if (want.image) expect(hit!.image).toBe(want.image);
  // The stream reader finds the same thing.
  const s = await verifyBundleStream(createReadStream(file), opts);
  expect(s.problems.map((p) => p.code)).toContain(want.code);
  // And the CLI exits 3.
  expect(await runVerify({ file, ...(opts.key ? { key: opts.key } : {}), json: true, quiet: true })).toBe(3);
  return v;
}

describe('verify catches tampering and names the culprit', () => {
  it('an untouched rebuild verifies (the tamper harness itself is faithful)', async () => {
    const f = await tampered(() => {});
    expect((await verifyBundle(f, { key: ecPub })).problems).toEqual([]);
    expect(await runVerify({ file: f, key: ecPub, json: true, quiet: true })).toBe(0);
  });

  it('a flipped byte in ferry-bundle.json', async () => {
    const f = await tampered((ms) => {
      const m = ms.find((x) => x.name === MEMBER.manifest)!;
      // Flip a digit inside "created", keeping the JSON valid: only the signature can tell.
      const s = m.data.toString('utf8').replace(/"created": "(\d)/, (_a, d: string) => `"created": "${(Number(d) + 1) % 10}`);
      m.data = Buffer.from(s);
    });
    await expectCaught(f, { code: 'SIGNATURE_INVALID', member: MEMBER.signature });
  });

  it('a flipped byte in index.json, SHA256SUMS, oci-layout', async () => {
    for (const name of [MEMBER.index, MEMBER.checksums, MEMBER.layoutHeader]) {
      const f = await tampered((ms) => {
        const m = ms.find((x) => x.name === name)!;
        m.data = flip(m.data);
      });
      await expectCaught(f, { code: 'CHECKSUM_MISMATCH', member: name });
    }
  });

  it('a flipped byte in a manifest blob, a layer blob and a zstd member', async () => {
    const man = await manifestOf(signedBundle);
    const manifestMember = man.members.find((m) => m.digest === man.images[0]!.digest)!;
    const layer = man.members.filter((m) => m.storage === 'raw' && m.mediaType?.includes('layer')).at(-1)!;
    const zst = man.members.find((m) => m.storage === 'zstd')!;
    for (const target of [manifestMember, layer, zst]) {
      const f = await tampered((ms) => {
        const m = ms.find((x) => x.name === target.path)!;
        m.data = flip(m.data);
      });
      await expectCaught(f, { code: 'CHECKSUM_MISMATCH', member: target.path, digest: target.digest! });
    }
  });

  it('a truncated bundle', async () => {
    const size = (await readFile(signedBundle)).length;
    const f = await tampered(() => {}, { truncateAt: Math.floor(size * 0.6) });
    const v = await expectCaught(f, { code: 'TAR_INVALID' });
    expect(v.problems.some((p) => p.code === 'MEMBER_MISSING' || p.code === 'TAR_TRUNCATED')).toBe(true);
  });

  it('a removed blob: the member and the image that needs it are named', async () => {
    const man = await manifestOf(signedBundle);
    const app = man.images.find((i) => i.ref === 'ferry-test/app:1.0')!;
    const appManifest = JSON.parse((await readFile(store.blobPath(app.digest))).toString()) as { layers: Array<{ digest: string }> };
    const victim = man.members.find((m) => m.digest === appManifest.layers.at(-1)!.digest)!;
    const f = await tampered((ms) => ms.filter((m) => m.name !== victim.path));
    await expectCaught(f, { code: 'MEMBER_MISSING', member: victim.path, digest: victim.digest! });
    // Also remove it from the manifest (unsigned): then the image is incomplete.
    const g = await tampered((ms) => {
      const m = ms.find((x) => x.name === MEMBER.manifest)!;
      const doc = JSON.parse(m.data.toString()) as BundleManifest;
      doc.members = doc.members.filter((x) => x.path !== victim.path);
      doc.totals.storedBytes -= victim.size;
      m.data = Buffer.from(JSON.stringify(doc));
      const sums = ms.find((x) => x.name === MEMBER.checksums)!;
      sums.data = Buffer.from(
        sums.data
          .toString()
          .split('\n')
          .filter((l) => !l.endsWith(victim.path))
          .join('\n'),
      );
      const sumsEntry = doc.members.find((x) => x.path === MEMBER.checksums)!;
      sumsEntry.size = sums.data.length;
      sumsEntry.sha256 = sha256(sums.data).slice(7);
      m.data = Buffer.from(JSON.stringify(doc));
      return ms.filter((x) => x.name !== victim.path && x.name !== MEMBER.signature);
    });
    await expectCaught(g, { code: 'BLOB_MISSING', image: 'ferry-test/app:1.0', digest: victim.digest! }, {});
  });

  it('a swapped signature, and an absent one, with a key', async () => {
    const other = path.join(work, 'other.ferry');
    await writeBundle({ store, refs: ['ferry-test/base:1'], output: other, compression: 'auto', signKey: ecKey });
    const otherSig = await readFile(`${other}.sig`);
    const f = await tampered((ms) => {
      ms.find((x) => x.name === MEMBER.signature)!.data = otherSig;
    });
    await expectCaught(f, { code: 'SIGNATURE_INVALID', member: MEMBER.signature });
    const g = await tampered((ms) => ms.filter((x) => x.name !== MEMBER.signature));
    await expectCaught(g, { code: 'SIGNATURE_MISSING', member: MEMBER.signature });
    // Without a key, requireSignature makes absence a problem too.
    expect((await verifyBundle(g, { requireSignature: true })).problems.map((p) => p.code)).toEqual(['SIGNATURE_MISSING']);
    expect((await verifyBundle(g)).ok).toBe(true);
  });

  it('a member renamed to ../x', async () => {
    const f = await tampered((ms) => {
      ms.find((x) => x.name === MEMBER.index)!.name = '../x';
    });
    await expectCaught(f, { code: 'TAR_UNSAFE_NAME', member: '../x' });
    const g = await tampered((ms) => {
      ms.push({ name: '/etc/passwd', data: Buffer.from('x') });
    });
    await expectCaught(g, { code: 'TAR_UNSAFE_NAME', member: '/etc/passwd' });
  });

  it('an added symlink and an added hardlink member', async () => {
    const f = await tampered((ms) => {
      ms.push({ name: 'blobs/sha256/evil', data: Buffer.alloc(0), type: 'symlink', linkname: '/etc/shadow' });
    });
    await expectCaught(f, { code: 'TAR_NOT_REGULAR', member: 'blobs/sha256/evil' });
    const g = await tampered((ms) => {
      ms.push({ name: 'hl', data: Buffer.alloc(0), type: 'hardlink', linkname: MEMBER.index });
    });
    await expectCaught(g, { code: 'TAR_NOT_REGULAR', member: 'hl' });
  });

  it('a duplicate member and an unexpected member', async () => {
    const f = await tampered((ms) => {
      ms.push({ ...ms.find((x) => x.name === MEMBER.index)! });
      ms.push({ name: 'extra.txt', data: Buffer.from('hi') });
    });
    const v = await expectCaught(f, { code: 'DUPLICATE_MEMBER', member: MEMBER.index });
    expect(v.problems.find((p) => p.code === 'UNEXPECTED_MEMBER')?.member).toBe('extra.txt');
  });

  it('an oversized JSON member is refused before parsing', async () => {
    const f = await tampered((ms) => {
      ms.find((x) => x.name === MEMBER.manifest)!.data = Buffer.alloc(64 * 1024 * 1024 + 1, 0x20);
    });
    await expectCaught(f, { code: 'JSON_TOO_LARGE', member: MEMBER.manifest });
  });

  it('a zstd member that inflates past its declared size', async () => {
    const zstdDir = createTempDir('zbomb');
    const bomb = path.join(zstdDir, 'bomb');
    await writeFile(bomb, Buffer.alloc(8 * 1024 * 1024));
    execFileSync('zstd', ['-q', '-19', bomb, '-o', `${bomb}.zst`]);
    const bombZ = await readFile(`${bomb}.zst`);
    const f = await tampered((ms) => {
      const man = ms.find((x) => x.name === MEMBER.manifest)!;
      const doc = JSON.parse(man.data.toString()) as BundleManifest;
      const z = doc.members.find((x) => x.storage === 'zstd')!;
      ms.find((x) => x.name === z.path)!.data = bombZ;
      z.size = bombZ.length;
      z.sha256 = sha256(bombZ).slice(7);
      doc.totals.storedBytes = doc.members.reduce((n, m) => n + m.size, 0);
      const sums = ms.find((x) => x.name === MEMBER.checksums)!;
      sums.data = Buffer.from(
        doc.members
          .filter((m) => m.path !== MEMBER.checksums)
          .map((m) => `${m.sha256}  ${m.path}\n`)
          .join(''),
      );
      const se = doc.members.find((x) => x.path === MEMBER.checksums)!;
      se.size = sums.data.length;
      se.sha256 = sha256(sums.data).slice(7);
      doc.totals.storedBytes = doc.members.reduce((n, m) => n + m.size, 0);
      man.data = Buffer.from(JSON.stringify(doc));
      return ms.filter((x) => x.name !== MEMBER.signature);
    });
    const man = JSON.parse((await readMembers(f)).find((x) => x.name === MEMBER.manifest)!.data.toString()) as BundleManifest;
    const z = man.members.find((x) => x.storage === 'zstd')!;
    // The frame declares its content size: refused from its header, before any output.
    await expectCaught(f, { code: 'ZSTD_SIZE_MISMATCH', member: z.path, digest: z.digest! }, {});
  });

  it('reports every problem, not just the first', async () => {
    const man = await manifestOf(signedBundle);
    const layers = man.members.filter((m) => m.storage === 'raw' && m.mediaType?.includes('layer')).slice(0, 2);
    const f = await tampered((ms) => {
      for (const l of layers) {
        const m = ms.find((x) => x.name === l.path)!;
        m.data = flip(m.data);
      }
      ms.push({ name: 'x/../../y', data: Buffer.from('') });
    });
    const v = await verifyBundle(f, { key: ecPub });
    expect(
      v.problems
        .filter((p) => p.code === 'CHECKSUM_MISMATCH')
        .map((p) => p.member)
        .sort(),
    ).toEqual(layers.map((l) => l.path).sort());
    expect(v.problems.some((p) => p.code === 'TAR_UNSAFE_NAME')).toBe(true);
  });

  it('reads from a pipe', async () => {
    const fifoDir = createTempDir('fifo');
    const fifo = path.join(fifoDir, 'p');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const feeding = pipeline(createReadStream(signedBundle), createWriteStream(fifo));
    const v = await verifyBundle(fifo, { key: ecPub });
    await feeding;
    expect(v.problems).toEqual([]);
  });
});
