/**
 * Issue 11, "format confusion" and the zstd part of "partial loads": a member the bundle calls
 * zstd must be exactly one zstd frame. `zstd -d` detects gzip, xz and lz4 by itself and would
 * restore them to the right bytes (the digest matches!), so before this a "zstd" member that was
 * really gzip passed. Each case keeps every hash consistent (SHA256SUMS, ferry-bundle.json) and
 * must give verify exit 3, load exit 3 and nothing named, with either decoder.
 */
import { execFileSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { zstdBlobPath } from '../../../src/bundle/format.js';
import { verifyBundle } from '../../../src/bundle/verify.js';
import { cleanupHarness } from '../../harness/temp.js';
import { baseBundle, replaceData, verifyAndLoad, type BaseBundle, type Store } from './craft.js';

let work: string;
let st: Store;
let craft: BaseBundle['craft'];
let raw: Buffer;
let n = 0;

beforeAll(async () => {
  ({ work, st, craft } = await baseBundle('hostile-zstd', 256 * 1024));
  raw = await readFile(path.join(st.dir, 'blobs', 'sha256', st.rawLayer.digest.slice(7)));
});
afterAll(cleanupHarness);

/** The raw layer compressed by the zstd CLI in another format (it reads and writes all of them). */
function compress(format: 'gzip' | 'xz' | 'lz4' | 'zstd', data: Buffer, extra: string[] = []): Buffer {
  return execFileSync('zstd', ['-q', '-c', `--format=${format}`, ...extra], { input: data, maxBuffer: 64 << 20 });
}

/** The bundle with the raw layer's zstd member replaced by `data`, every hash kept consistent. */
function withMember(data: Buffer): Promise<string> {
  return craft((ms, man) => {
    replaceData(ms, man, zstdBlobPath(st.rawLayer.digest.slice(7)), data);
  });
}

const skippable = Buffer.concat([Buffer.from([0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0]), Buffer.from('ferry')]).subarray(0, 12);

const cases: Array<[string, () => Buffer, RegExp]> = [
  ['gzip data restoring to the right bytes', () => compress('gzip', raw), /ZSTD_NOT_ZSTD|gzip/],
  ['xz data restoring to the right bytes', () => compress('xz', raw), /ZSTD_NOT_ZSTD|xz/],
  ['lz4 data restoring to the right bytes', () => compress('lz4', raw), /ZSTD_NOT_ZSTD|lz4/],
  ['a skippable frame before the real one', () => Buffer.concat([skippable, compress('zstd', raw)]), /ZSTD_/],
  [
    'the frame cut in two frames',
    () => Buffer.concat([compress('zstd', raw.subarray(0, 1000)), compress('zstd', raw.subarray(1000))]),
    /ZSTD_/,
  ],
  ['bytes after the frame', () => Buffer.concat([compress('zstd', raw), Buffer.from('trailing')]), /ZSTD_TRAILING_DATA/],
  [
    'one flipped byte inside the frame',
    () => {
      const z = Buffer.from(compress('zstd', raw));
      const at = z.length >> 1;
      z[at] = z[at]! ^ 0x55;
      return z;
    },
    /ZSTD_|DIGEST|CHECKSUM/,
  ],
  ['a 2 GiB window (long mode)', () => compress('zstd', raw, ['--long=31', '--no-content-size']), /ZSTD_WINDOW_TOO_LARGE|ZSTD_/],
  [
    'a frame that says it restores to one byte more',
    () => {
      // From a pipe zstd writes no content size unless told the stream's size.
      const z = Buffer.from(compress('zstd', raw, [`--stream-size=${raw.length}`]));
      // Frame header: magic, descriptor; with a 4-byte content size after it (FCS flag 2).
      const fhd = z[4]!;
      const fcsFlag = fhd >> 6;
      const singleSegment = (fhd >> 5) & 1;
      const at = 5 + (singleSegment ? 0 : 1);
      if (fcsFlag === 2) z.writeUInt32LE(z.readUInt32LE(at) + 1, at);
      else if (fcsFlag === 1) z.writeUInt16LE(z.readUInt16LE(at) + 1, at);
      else throw new Error(`unexpected FCS flag ${fcsFlag}`);
      return z;
    },
    /ZSTD_SIZE_MISMATCH|ZSTD_/,
  ],
];

for (const engine of ['cli', 'js'] as const) {
  describe(`a "zstd" member that is not one valid zstd frame (FERRY_ZSTD=${engine})`, () => {
    let saved: string | undefined;
    beforeAll(() => {
      saved = process.env.FERRY_ZSTD;
      process.env.FERRY_ZSTD = engine;
    });
    afterAll(() => {
      if (saved === undefined) delete process.env.FERRY_ZSTD;
      else process.env.FERRY_ZSTD = saved;
    });

    it('the intact bundle verifies and loads (the harness is faithful)', async () => {
      const out = await verifyAndLoad(await withMember(compress('zstd', raw)), path.join(work, `ok-${engine}`));
      expect(out).toMatchObject({ verify: 0, load: 0 });
      expect(out.named).toBe(2);
    });

    for (const [what, make, code] of cases) {
      it(`${what}: verify 3, load 3, nothing named`, async () => {
        const file = await withMember(make());
        const v = await verifyBundle(file);
        expect(v.ok).toBe(false);
        expect(v.problems.map((p) => `${p.code}: ${p.message}`).join('\n')).toMatch(code);
        const out = await verifyAndLoad(file, path.join(work, `out-${n++}`));
        expect(out, out.loadError).toMatchObject({ verify: 3, load: 3, named: 0 });
      });
    }
  });
}
