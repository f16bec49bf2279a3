/** Bundle building blocks: names, signatures, the hash pool, capped zstd restore. */
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { HashPool } from '../../../src/bundle/hash-worker.js';
import { signManifest, verifyManifestSignature, loadPrivateKey, loadPublicKey } from '../../../src/bundle/sign.js';
import { unsafeName } from '../../../src/bundle/verify.js';
import { checksumsFile, isUncompressedLayer } from '../../../src/bundle/writer.js';
import { runZstd } from '../../../src/bundle/reader.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';

afterAll(cleanupHarness);

describe('unsafeName', () => {
  it.each([
    ['blobs/sha256/ab', undefined],
    ['oci-layout', undefined],
    ['../x', /escapes/],
    ['a/../../b', /escapes/],
    ['/etc/passwd', /absolute/],
    ['a//b', /empty/],
    ['./a', /"\."/],
    ['a\\b', /backslash/],
    ['', /empty/],
  ])('%s', (name, want) => {
    const r = unsafeName(name);
    if (want === undefined) expect(r).toBeUndefined();
    else expect(r).toMatch(want);
  });
});

describe('writer helpers', () => {
  it('knows which layers are uncompressed tars', () => {
    expect(isUncompressedLayer('application/vnd.oci.image.layer.v1.tar')).toBe(true);
    expect(isUncompressedLayer('application/vnd.docker.image.rootfs.diff.tar')).toBe(true);
    expect(isUncompressedLayer('application/vnd.oci.image.layer.v1.tar+gzip')).toBe(false);
    expect(isUncompressedLayer('application/vnd.oci.image.layer.v1.tar+zstd')).toBe(false);
    expect(isUncompressedLayer('application/vnd.oci.image.config.v1+json')).toBe(false);
  });
  it('writes sha256sum format', () => {
    expect(checksumsFile([{ path: 'a', sha256: 'f'.repeat(64) }]).toString()).toBe(`${'f'.repeat(64)}  a\n`);
  });
});

describe('signatures', () => {
  const dir = createTempDir('sign');
  const data = Buffer.from('{"hello":"world"}\n');
  for (const type of ['ec', 'ed25519'] as const) {
    it(`${type}: sign, verify, reject tampering and the wrong key`, async () => {
      const mk = (): { priv: string; pub: string } => {
        const kp = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
        return {
          priv: kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
          pub: kp.publicKey.export({ type: 'spki', format: 'pem' }) as string,
        };
      };
      const a = mk();
      const b = mk();
      const files = { priv: path.join(dir, `${type}.pem`), pub: path.join(dir, `${type}.pub`), other: path.join(dir, `${type}.other.pub`) };
      await writeFile(files.priv, a.priv);
      await writeFile(files.pub, a.pub);
      await writeFile(files.other, b.pub);
      const sig = signManifest(data, await loadPrivateKey(files.priv));
      const pub = await loadPublicKey(files.pub);
      expect(verifyManifestSignature(data, sig, pub)).toBe(true);
      expect(verifyManifestSignature(Buffer.from('{"hello":"World"}\n'), sig, pub)).toBe(false);
      expect(verifyManifestSignature(data, sig, await loadPublicKey(files.other))).toBe(false);
      expect(verifyManifestSignature(data, Buffer.alloc(0), pub)).toBe(false);
      if (type === 'ec') expect(sig[0]).toBe(0x30); // DER SEQUENCE
    });
  }
  it('refuses other key types with a usage error', async () => {
    const kp = generateKeyPairSync('rsa', { modulusLength: 1024 });
    const f = path.join(dir, 'rsa.pem');
    await writeFile(f, kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    await expect(loadPrivateKey(f)).rejects.toMatchObject({ code: 'USAGE', exitCode: 2 });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    await writeFile(f, p384.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    await expect(loadPrivateKey(f)).rejects.toThrow(/secp384r1/);
  });
});

describe('HashPool', () => {
  it('hashes ranges of a file in workers, and reports short reads', async () => {
    const dir = createTempDir('pool');
    const f = path.join(dir, 'data');
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    await writeFile(f, data);
    const pool = new HashPool(2);
    try {
      const ranges = [
        [0, data.length],
        [5, 100],
        [1024 * 1024 - 3, 2 * 1024 * 1024],
        [data.length - 10, 10],
        [0, 0],
      ] as const;
      const got = await Promise.all(ranges.map(([o, n]) => pool.hashRange(f, o, n)));
      ranges.forEach(([o, n], i) => {
        expect(got[i]).toEqual({
          sha256: createHash('sha256')
            .update(data.subarray(o, o + n))
            .digest('hex'),
          bytes: n,
        });
      });
      expect((await pool.hashRange(f, data.length - 5, 100)).bytes).toBe(5);
      await expect(pool.hashRange(path.join(dir, 'missing'), 0, 1)).rejects.toThrow(/ENOENT/);
    } finally {
      await pool.close();
    }
  });
});

describe('runZstd', () => {
  it('restores exactly, and stops at the cap with ZSTD_OVERSIZE', async () => {
    const dir = createTempDir('zstd');
    const f = path.join(dir, 'z');
    const content = Buffer.alloc(1024 * 1024, 7);
    await writeFile(f, content);
    execFileSync('zstd', ['-q', f, '-o', `${f}.zst`]);
    const frame = execFileSync('cat', [`${f}.zst`]);
    const collect = (): { sink: Writable; got: () => Buffer } => {
      const chunks: Buffer[] = [];
      return { sink: new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(c), cb()) }), got: () => Buffer.concat(chunks) };
    };
    const ok = collect();
    await runZstd(['-d', '-q', '-c'], Readable.from([frame]), ok.sink, { outputCap: content.length });
    expect(ok.got().equals(content)).toBe(true);
    const over = collect();
    await expect(runZstd(['-d', '-q', '-c'], Readable.from([frame]), over.sink, { outputCap: 1000 })).rejects.toMatchObject({
      code: 'ZSTD_OVERSIZE',
    });
    const bad = collect();
    await expect(runZstd(['-d', '-q', '-c'], Readable.from([Buffer.from('not zstd at all')]), bad.sink)).rejects.toMatchObject({
      code: 'ZSTD_FAILED',
    });
  });
});
