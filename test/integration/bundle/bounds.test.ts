/**
 * Issue 11, "unbounded work": hostile bundles that made ferry read forever, spool gigabytes,
 * restore 64 GiB, write gigabytes before failing, or hold hundreds of megabytes. Each input is
 * generated here; each run is the built CLI, with its peak RSS reported by a preloaded script
 * (process.resourceUsage().maxRSS at exit), and each asserts the exit code, that nothing was
 * named, and the bound (time, RSS, bytes written).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMBER, zstdBlobPath } from '../../../src/bundle/format.js';
import { bundleByteBound, MAX_ZSTD_RATIO } from '../../../src/bundle/limits-check.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { headerFor, TAR_TRAILER_SIZE } from '../../../src/tar/format.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { CLI } from '../../helpers/cli.js';
import { cleanupHarness } from '../../harness/temp.js';
import { baseBundle, manOf, readMembers, replaceData, setMan, type BaseBundle, type Store } from './craft.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
/** The bound: peak RSS of every run, in KiB as maxRSS reports it. */
const RSS_LIMIT_KIB = 200 * 1024;

let work: string;
let st: Store;
let bundle: string;
let craft: BaseBundle['craftMembers'];
let rssScript: string;
let n = 0;

beforeAll(async () => {
  ({ work, st, bundle, craftMembers: craft } = await baseBundle('bounds'));
  rssScript = path.join(work, 'rss.cjs');
  writeFileSync(
    rssScript,
    "const fs = require('node:fs');\nprocess.on('exit', () => fs.writeFileSync(process.env.FERRY_TEST_RSS_FILE, String(process.resourceUsage().maxRSS)));\n",
  );
});
afterAll(cleanupHarness);

interface Measured {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Peak RSS in KiB. */
  rss: number;
  ms: number;
  /** Bytes the child took from stdin (when fed). */
  fed: number;
}

/** Run the built CLI with its peak RSS measured; `stdin` is piped in as long as the child reads. */
function measured(args: string[], stdin?: Readable): Promise<Measured> {
  const rssFile = path.join(work, `rss-${n++}`);
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', rssScript, CLI, ...args], {
      env: { ...process.env, CI: '1', FERRY_TEST_RSS_FILE: rssFile },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let fed = 0;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => {});
    if (stdin) {
      stdin.on('data', (c: Buffer) => {
        fed += c.length;
        if (!child.stdin.write(c)) stdin.pause();
      });
      child.stdin.on('drain', () => stdin.resume());
      stdin.on('end', () => child.stdin.end());
      child.on('close', () => stdin.destroy());
    } else child.stdin.end();
    child.on('error', reject);
    child.on('close', (code) => {
      const rss = existsSync(rssFile) ? Number(readFileSync(rssFile, 'utf8')) : Number.NaN;
      resolve({ code, stdout, stderr, rss, ms: Date.now() - t0, fed });
    });
  });
}

/** No image was named in an OCI layout target (absent, or an index.json without entries). */
function namedIn(dir: string): number {
  const f = path.join(dir, 'index.json');
  if (!existsSync(f)) return 0;
  return (JSON.parse(readFileSync(f, 'utf8')) as { manifests?: unknown[] }).manifests?.length ?? 0;
}

/** Bytes under a directory (what a failed load left or wrote). */
function bytesUnder(dir: string): number {
  if (!existsSync(dir)) return 0;
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += statSync(path.join(e.parentPath, e.name)).size;
  }
  return total;
}

/**
 * One zstd frame of RLE blocks restoring to `total` zero bytes: 4 bytes per 128 KiB, the
 * highest ratio zstd has (~32,000:1). `declared`, when given, is the frame's content size.
 */
function rleFrame(total: number, declared?: number): Buffer {
  const BLOCK = 128 * 1024;
  const blocks = Math.ceil(total / BLOCK);
  const head = Buffer.alloc(declared === undefined ? 6 : 14);
  head.writeUInt32LE(0xfd2fb528, 0);
  // Frame header descriptor: FCS 8 bytes (flag 3) or none (0); not single-segment; no checksum.
  head[4] = declared === undefined ? 0x00 : 0xc0;
  head[5] = 0x38; // window descriptor: 2^17 = 128 KiB
  if (declared !== undefined) head.writeBigUInt64LE(BigInt(declared), 6);
  const body = Buffer.alloc(blocks * 4);
  for (let i = 0; i < blocks; i++) {
    const size = Math.min(BLOCK, total - i * BLOCK);
    const last = i === blocks - 1 ? 1 : 0;
    const h = last | (1 << 1) | (size << 3); // RLE block
    body.writeUIntLE(h, i * 4, 3);
    body[i * 4 + 3] = 0;
  }
  return Buffer.concat([head, body]);
}

const zstdMember = (): string => zstdBlobPath(st.rawLayer.digest.slice(7));

describe('a bundle path that is not a regular file', () => {
  it('a symlink to /dev/zero is refused at once by verify, inspect and load (exit 3, nothing named)', async () => {
    const link = path.join(work, 'zero.ferry');
    symlinkSync('/dev/zero', link);
    const target = path.join(work, 'out-zero');
    for (const args of [
      ['verify', link],
      ['inspect', link],
      ['load', link, '--to', `oci:${target}`],
    ]) {
      const r = await measured(args);
      expect(r.code, `${args[0]}: ${r.stderr}`.slice(0, 2000)).toBe(3);
      expect(r.stderr).toMatch(/character device, not a bundle file/);
      expect(r.ms).toBeLessThan(10_000);
      expect(r.rss).toBeLessThan(RSS_LIMIT_KIB);
    }
    expect(namedIn(target)).toBe(0);
    expect(bytesUnder(target)).toBeLessThan(MiB);
  });

  it('load - from an endless stream stops at once: zeros are not a bundle head', async () => {
    const target = path.join(work, 'out-stdin-zero');
    const zeros = Readable.from(
      (function* () {
        for (;;) yield Buffer.alloc(MiB);
      })(),
    );
    const r = await measured(['load', '-', '--to', `oci:${target}`], zeros);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/BUNDLE_TOO_LARGE|ends before its ferry-bundle.json/);
    expect(r.fed).toBeLessThan(64 * MiB);
    expect(r.rss).toBeLessThan(RSS_LIMIT_KIB);
    expect(namedIn(target)).toBe(0);
  });

  it('verify - of endless zeros ends at once: padding after the end-of-archive marker is bounded', async () => {
    // A real pipe (verify opens /dev/stdin, which a socket pair is not).
    const rssFile = path.join(work, `rss-${n++}`);
    const t0 = Date.now();
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve, reject) => {
      const child = spawn('sh', ['-c', `cat /dev/zero | exec "${process.execPath}" --require "${rssScript}" "${CLI}" verify -`], {
        env: { ...process.env, CI: '1', FERRY_TEST_RSS_FILE: rssFile },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout }));
    });
    expect(r.code, r.stdout).toBe(3);
    expect(r.stdout).toMatch(/TRAILING_DATA/);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(Number(readFileSync(rssFile, 'utf8'))).toBeLessThan(RSS_LIMIT_KIB);
  });

  it('load - of a valid head followed by endless data stops once past what ferry-bundle.json declares', async () => {
    const whole = readFileSync(bundle);
    const man = manOf(await readMembers(bundle));
    // The bundle without its end-of-archive marker, then endless non-zero data.
    const head = whole.subarray(0, whole.length - TAR_TRAILER_SIZE);
    const headEnd = head.indexOf(Buffer.from('"storedBytes"')); // somewhere inside ferry-bundle.json
    expect(headEnd).toBeGreaterThan(0);
    const bound = bundleByteBound(man, 4096);
    const garbage = Buffer.alloc(MiB, 0x41);
    const endless = Readable.from(
      (function* () {
        yield head;
        for (;;) yield garbage;
      })(),
    );
    const target = path.join(work, 'out-stdin-endless');
    const r = await measured(['load', '-', '--to', `oci:${target}`], endless);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/more than its ferry-bundle.json declares/);
    // Stopped within the bound (plus what the pipes hold), not gigabytes later.
    expect(r.fed).toBeLessThan(bound + 16 * MiB);
    expect(r.rss).toBeLessThan(RSS_LIMIT_KIB);
    expect(namedIn(target)).toBe(0);
  });

  it('load - of a valid bundle still works (the bound is not too tight)', async () => {
    const target = path.join(work, 'out-stdin-ok');
    const r = await measured(['load', '-', '--to', `oci:${target}`], Readable.from([readFileSync(bundle), Buffer.alloc(10240)]));
    expect(r.code, r.stderr).toBe(0);
    expect(namedIn(target)).toBe(2);
  });
});

describe('zstd members whose declared size is not plausible for their stored size', () => {
  it(`a 2 MiB member declaring 64 GiB is refused before it is restored (ratio over ${MAX_ZSTD_RATIO}:1)`, async () => {
    const file = await craft((ms) => {
      const man = manOf(ms);
      const m = replaceData(ms, man, zstdMember(), rleFrame(64 * GiB, 64 * GiB));
      expect(m.size).toBeGreaterThan(2 * MiB - 1024);
      m.uncompressedSize = 64 * GiB;
      return setMan(ms, man);
    });
    const target = path.join(work, 'out-64g');
    for (const args of [
      ['verify', file],
      ['load', file, '--to', `oci:${target}`],
    ]) {
      const r = await measured(args);
      expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`.slice(0, 2000)).toBe(3);
      expect(`${r.stdout}${r.stderr}`).toMatch(/declares 68719476736 bytes restored from \d+ stored, over the limit/);
      expect(r.ms).toBeLessThan(30_000);
      expect(r.rss).toBeLessThan(RSS_LIMIT_KIB);
    }
    expect(namedIn(target)).toBe(0);
    expect(bytesUnder(target)).toBeLessThan(MiB);
  }, 120_000);

  it('a 150 KB member that restores to 4 GiB while declaring its 4 MiB: load stops at the declared size', async () => {
    const file = await craft((ms) => {
      const man = manOf(ms);
      // The frame says nothing of its size: only the restore's own cap can stop it.
      const m = replaceData(ms, man, zstdMember(), rleFrame(4 * GiB));
      expect(m.size).toBeLessThan(160_000);
      expect(m.uncompressedSize).toBe(st.rawLayer.size);
      return setMan(ms, man);
    });
    const target = path.join(work, 'out-4g');
    const r = await measured(['load', file, '--to', `oci:${target}`]);
    // An integrity failure (exit 3); the restore stops at the declared size, nothing is named.
    expect(r.code, r.stderr.slice(0, 2000)).toBe(3);
    expect(r.stderr).toMatch(/restores to more than the declared 4194304 bytes/);
    expect(r.ms).toBeLessThan(15_000);
    expect(r.rss).toBeLessThan(RSS_LIMIT_KIB);
    expect(namedIn(target)).toBe(0);
    // Whatever the load wrote (and removed) it never held more than the declared size.
    expect(bytesUnder(target)).toBeLessThan(st.rawLayer.size + MiB);
    const v = await measured(['verify', file]);
    expect(v.code).toBe(3);
    expect(v.ms).toBeLessThan(15_000);
  });
});

describe('the writer keeps to the ratio readers accept', () => {
  it('a layer that compresses beyond it (80 MiB of zeros) is stored raw, and the bundle verifies', async () => {
    const dir = path.join(work, 'zeros-store');
    mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    const put = (b: Buffer): { digest: string; size: number } => {
      const h = createHash('sha256').update(b).digest('hex');
      writeFileSync(path.join(dir, 'blobs', 'sha256', h), b);
      return { digest: `sha256:${h}`, size: b.length };
    };
    const layer = put(Buffer.alloc(80 * MiB));
    const small = put(Buffer.alloc(MiB, 0x61)); // compresses beyond 1024:1 too, but under the 64 MiB allowance
    const cfg = put(Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })));
    const tar = 'application/vnd.oci.image.layer.v1.tar';
    const man = put(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
          layers: [
            { mediaType: tar, ...layer },
            { mediaType: tar, ...small },
          ],
        }),
      ),
    );
    writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(
      path.join(dir, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            ...man,
            annotations: { 'org.opencontainers.image.ref.name': 'example.com/zeros:1' },
          },
        ],
      }),
    );
    const out = path.join(work, 'zeros.ferry');
    await writeBundle({ store: await OciLayout.open(dir), output: out, compression: 'auto' });
    const members = manOf(await readMembers(out)).members;
    expect(members.find((m) => m.digest === layer.digest)?.storage).toBe('raw');
    expect(members.find((m) => m.digest === small.digest)?.storage).toBe('zstd');
    const r = await measured(['verify', out]);
    expect(r.code, r.stdout).toBe(0);
  }, 120_000);
});

describe('sizes that cost memory', () => {
  it('a 30 MB image reference is refused before anything is named (load exit 3)', async () => {
    // 30 MB: index.json carries it twice (ref.name and the containerd name) under its 64 MiB limit.
    const longRef = `example.com/app:${'a'.repeat(30 * 1000 * 1000)}`;
    const file = await craft((ms) => {
      const man = manOf(ms);
      const old = man.images[0]!.ref;
      man.images[0]!.ref = longRef;
      // index.json names it too, so that every hash and cross-reference stays consistent.
      const idx = ms.find((m) => m.name === MEMBER.index)!;
      replaceData(ms, man, MEMBER.index, Buffer.from(idx.data.toString('utf8').split(JSON.stringify(old)).join(JSON.stringify(longRef))));
      return setMan(ms, man);
    });
    const target = path.join(work, 'out-longref');
    const r = await measured(['load', file, '--to', `oci:${target}`]);
    expect(r.code, r.stderr.slice(0, 2000)).toBe(3);
    // verify's schema refuses it first (load checks the bundle as verify does); load's own check is behind it.
    expect(r.stderr.slice(0, 100_000)).toMatch(
      /images\.0\.ref: Too big: expected string to have <=\d+ characters|over the \d+-character limit/,
    );
    expect(r.stderr.length).toBeLessThan(100_000);
    expect(r.rss).toBeLessThan(RSS_LIMIT_KIB);
    expect(namedIn(target)).toBe(0);
    expect(bytesUnder(target)).toBeLessThan(MiB);
    const v = await measured(['verify', file]);
    expect(v.code).toBe(3);
    expect(v.stdout.length + v.stderr.length).toBeLessThan(100_000);
    expect(v.rss).toBeLessThan(RSS_LIMIT_KIB);
  });

  it('1,000,003 empty members: verify and load refuse them within the memory bound', async () => {
    const file = path.join(work, 'many.ferry');
    const fd = openSync(file, 'w');
    try {
      const batch: Buffer[] = [];
      for (let i = 0; i < 1_000_003; i++) {
        batch.push(headerFor({ name: `e/${i}`, type: 'file', size: 0, mtime: 0 }));
        if (batch.length === 8192) {
          writeSync(fd, Buffer.concat(batch));
          batch.length = 0;
        }
      }
      batch.push(Buffer.alloc(TAR_TRAILER_SIZE));
      writeSync(fd, Buffer.concat(batch));
    } finally {
      closeSync(fd);
    }
    const target = path.join(work, 'out-many');
    for (const args of [
      ['verify', file],
      ['load', file, '--to', `oci:${target}`],
    ]) {
      const r = await measured(args);
      if (args[0] === 'load') {
        // Without ferry-bundle.json it is no bundle: load's format detection (its scan bounded
        // at 100,000 headers) says what it is instead (exit 2), before the bundle reader runs.
        expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`.slice(0, 2000)).toBe(2);
        expect(r.stderr).toMatch(
          /is not a ferry bundle, an OCI archive or a docker save tar \(found: a tar archive of more than 100000 members/,
        );
      } else {
        expect(r.code, `${args[0]}: ${r.stdout}${r.stderr}`.slice(0, 2000)).toBe(3);
        expect(`${r.stdout}${r.stderr}`).toMatch(/more than 100002 members/);
      }
      expect(r.rss, args[0]).toBeLessThan(RSS_LIMIT_KIB);
      expect(r.ms).toBeLessThan(30_000);
    }
    expect(namedIn(target)).toBe(0);
  }, 120_000);
});

// The member names the crafted bundles rely on.
it('the reference bundle stores the raw-tar layer as a zstd member', async () => {
  const ms = await readMembers(bundle);
  expect(ms.some((m) => m.name === zstdMember())).toBe(true);
  expect(ms.some((m) => m.name === MEMBER.manifest)).toBe(true);
});
