// `ferry serve` when the files behind it misbehave: a bundle given through a symlink, replaced
// or truncated while served; file errors other than "missing" (a directory where a blob file
// should be, an over-long name, descriptors running out, a read failing mid-body); the cap on
// concurrent zstd restores; the login throttle keyed per user. Every check is on bytes, digests,
// status codes and the server's own log lines.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeFileSync, chmodSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import type { Digest } from '../../../src/oci/digest.js';
import { bundleContent } from '../../../src/server/bundle-content.js';
import type { ServedBlob, ServedContent } from '../../../src/server/content.js';
import { layoutContent } from '../../../src/server/layout-content.js';
import { startServer, type RunningServer, type ServerOptions } from '../../../src/server/server.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { indexTarFile } from '../../../src/tar/reader.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { requireTool } from '../../harness/tools.js';

afterAll(cleanupHarness);

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

const sha256 = (b: Uint8Array): Digest => `sha256:${createHash('sha256').update(b).digest('hex')}` as Digest;

interface Blob {
  digest: Digest;
  size: number;
  bytes: Buffer;
}

interface TestImage {
  dir: string;
  manifest: Blob;
  config: Blob;
  /** Stored as it is in a bundle (gzip media type). */
  rawLayer: Blob;
  /** An uncompressed tar layer: stored zstd-compressed in a bundle (compression auto). */
  tarLayer: Blob;
  all: Blob[];
}

/** Compressible but seed-specific bytes. */
function compressible(size: number, seed: Buffer): Buffer {
  const out = Buffer.alloc(size);
  const block = Buffer.concat([seed, Buffer.from(' ferry serve test data '.repeat(200))]);
  for (let o = 0; o < size; o += block.length) block.copy(out, o, 0, Math.min(block.length, size - o));
  // Some randomness every 64 KiB, so that two stores never share a layer.
  for (let o = 0; o < size; o += 65536) seed.copy(out, o, 0, Math.min(seed.length, size - o));
  return out;
}

/** An OCI layout with one image named docker.io/test/app:1, written by hand. */
function writeLayout(dir: string, tarLayerSize = 3 * 1024 * 1024): TestImage {
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const put = (bytes: Buffer): Blob => {
    const digest = sha256(bytes);
    writeFileSync(path.join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
    return { digest, size: bytes.length, bytes };
  };
  const rawLayer = put(randomBytes(1_500_000));
  const tarLayer = put(compressible(tarLayerSize, randomBytes(32)));
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [sha256(randomBytes(8)), tarLayer.digest] },
        config: {},
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: rawLayer.digest, size: rawLayer.size },
          { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: tarLayer.digest, size: tarLayer.size },
        ],
      }),
    ),
  );
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: manifest.digest, size: manifest.size, annotations: { [REF_NAME]: 'docker.io/test/app:1' } },
      ],
    }),
  );
  return { dir, manifest, config, rawLayer, tarLayer, all: [manifest, config, rawLayer, tarLayer] };
}

async function bundleOf(image: TestImage, output: string): Promise<void> {
  await writeBundle({ store: await OciLayout.open(image.dir), output, compression: 'auto' });
}

interface Got {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

async function get(url: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Got> {
  const r = await request(url, { method, headers });
  const body = Buffer.from(await r.body.arrayBuffer());
  return { status: r.statusCode, headers: r.headers, body };
}

function errorOf(r: Got): { code: string; message: string } | undefined {
  return (JSON.parse(r.body.toString()) as { errors: Array<{ code: string; message: string }> }).errors[0];
}

const problems = (lines: string[]): string[] => lines.filter((l) => l.startsWith('ferry serve: '));

async function serve(sources: ServedContent[], extra: Partial<ServerOptions> = {}): Promise<{ server: RunningServer; log: string[] }> {
  const log: string[] = [];
  const server = await startServer({ sources, listen: '127.0.0.1:0', log: (l) => log.push(l), ...extra });
  return { server, log };
}

/** Every blob of the image, whole and in ranges, must hash to / equal its stored bytes. */
async function expectServesImage(url: string, image: TestImage): Promise<void> {
  for (const b of image.all) {
    const u = `${url}/v2/test/app/blobs/${b.digest}`;
    const head = await get(u, {}, 'HEAD');
    expect(head.status, `HEAD ${b.digest}`).toBe(200);
    const full = await get(u);
    expect(full.status, `GET ${b.digest}`).toBe(200);
    expect(sha256(full.body), `GET ${b.digest}`).toBe(b.digest);
    for (const [start, end] of [
      [0, 9],
      [Math.floor(b.size / 2), Math.floor(b.size / 2) + 70_000],
      [b.size - 1, b.size - 1],
    ] as const) {
      const r = await get(u, { range: `bytes=${start}-${end}` });
      expect(r.status, `${b.digest} ${start}-${end}`).toBe(206);
      expect(r.body.equals(b.bytes.subarray(start, Math.min(end, b.size - 1) + 1)), `${b.digest} ${start}-${end}`).toBe(true);
    }
  }
}

let first: TestImage;
let second: TestImage;
let firstBundle: string;
let secondBundle: string;

beforeAll(async () => {
  requireTool('zstd');
  const work = createTempDir('serve-files');
  first = writeLayout(path.join(work, 'first'));
  second = writeLayout(path.join(work, 'second'));
  firstBundle = path.join(work, 'first.ferry');
  secondBundle = path.join(work, 'second.ferry');
  await bundleOf(first, firstBundle);
  await bundleOf(second, secondBundle);
}, 120_000);

describe('a bundle is opened once', () => {
  it('a bundle given through a symlink serves every blob, raw and zstd-restored, with the right digest', async () => {
    const dir = createTempDir('serve-symlink');
    const target = path.join(dir, 'b.ferry');
    writeFileSync(target, readFileSync(firstBundle));
    const link = path.join(dir, 'link.ferry');
    symlinkSync(target, link);
    const content = await bundleContent(link);
    const { server, log } = await serve([content]);
    try {
      await expectServesImage(server.url, first);
      expect(problems(log)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('a bundle replaced on disk (mv over its path) keeps serving the content it was opened with', async () => {
    const dir = createTempDir('serve-replaced');
    const file = path.join(dir, 'images.ferry');
    writeFileSync(file, readFileSync(firstBundle));
    const content = await bundleContent(file);
    const { server, log } = await serve([content]);
    try {
      await expectServesImage(server.url, first);
      // A new bundle lands atomically on the same path, as `ferry bundle -o` or rsync do it.
      const next = path.join(dir, '.images.ferry.tmp');
      writeFileSync(next, readFileSync(secondBundle));
      renameSync(next, file);
      // Every byte served under the old digests is still the old content.
      await expectServesImage(server.url, first);
      // And the old file's repositories are what is served: the new image is unknown until a restart.
      expect((await get(`${server.url}/v2/test/app/blobs/${second.rawLayer.digest}`)).status).toBe(404);
      expect(problems(log)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it('a bundle truncated in place answers 500 for the blobs it lost, and says so in the log', async () => {
    const dir = createTempDir('serve-truncated');
    const file = path.join(dir, 'images.ferry');
    writeFileSync(file, readFileSync(firstBundle));
    const member = (await indexTarFile(file)).find((e) => e.name === `blobs/sha256/${first.rawLayer.digest.slice(7)}`)!;
    const content = await bundleContent(file);
    const { server, log } = await serve([content]);
    try {
      truncateSync(file, member.dataOffset + 1000);
      const r = await get(`${server.url}/v2/test/app/blobs/${first.rawLayer.digest}`);
      expect(r.status).toBe(500);
      expect(errorOf(r)?.code).toBe('UNKNOWN');
      expect(r.body.toString()).not.toContain(dir); // paths are for the operator only
      expect(problems(log).join('\n')).toMatch(new RegExp(`cannot read blob ${first.rawLayer.digest}.*too short`));
      // The first bytes are still there, but a blob that cannot be checked whole is not served,
      // not even a range of it: nothing is sent that was not checked against its digest.
      const head = await get(`${server.url}/v2/test/app/blobs/${first.rawLayer.digest}`, { range: 'bytes=0-999' });
      expect(head.status).toBe(500);
    } finally {
      await server.close();
    }
  });
});

describe('file errors are not "blob unknown"', () => {
  it('a directory where a layout blob file should be is 500 with an error body and a log line; a missing one stays 404', async () => {
    const image = writeLayout(path.join(createTempDir('serve-eisdir'), 'layout'), 100_000);
    const content = await layoutContent(image.dir);
    const { server, log } = await serve([content]);
    try {
      const file = path.join(image.dir, 'blobs', 'sha256', image.rawLayer.digest.slice(7));
      rmSync(file);
      mkdirSync(file);
      for (const method of ['GET', 'HEAD'] as const) {
        const r = await get(`${server.url}/v2/test/app/blobs/${image.rawLayer.digest}`, {}, method);
        expect(r.status, method).toBe(500);
        if (method === 'GET') {
          expect(errorOf(r)?.code).toBe('UNKNOWN');
          expect(r.headers['content-type']).toBe('application/json');
          expect(r.body.toString()).not.toContain(image.dir);
        }
      }
      expect(problems(log).join('\n')).toMatch(new RegExp(`cannot read blob ${image.rawLayer.digest}: .*is a directory`));

      rmSync(path.join(image.dir, 'blobs', 'sha256', image.config.digest.slice(7)));
      const gone = await get(`${server.url}/v2/test/app/blobs/${image.config.digest}`);
      expect(gone.status).toBe(404);
      expect(errorOf(gone)?.code).toBe('BLOB_UNKNOWN');
    } finally {
      await server.close();
    }
  });

  it.skipIf(process.getuid?.() === 0)(
    'an unreadable layout blob file (EACCES) is 500 and logged (skipped when run as root, who can read any file; the EISDIR case above covers the same path)',
    async () => {
      const image = writeLayout(path.join(createTempDir('serve-eacces'), 'layout'), 100_000);
      const { server, log } = await serve([await layoutContent(image.dir)]);
      const file = path.join(image.dir, 'blobs', 'sha256', image.rawLayer.digest.slice(7));
      try {
        chmodSync(file, 0o000);
        const r = await get(`${server.url}/v2/test/app/blobs/${image.rawLayer.digest}`);
        expect(r.status).toBe(500);
        expect(problems(log).join('\n')).toMatch(/EACCES/);
      } finally {
        chmodSync(file, 0o644);
        await server.close();
      }
    },
  );

  /** A one-repository ServedContent whose only blob is whatever `blob` says. */
  function stubContent(digest: Digest, blob: () => ServedBlob): ServedContent {
    return {
      description: 'stub',
      warnings: [],
      repositories: () => ['x/y'],
      tags: (r) => (r === 'x/y' ? [] : undefined),
      resolveTag: () => undefined,
      manifest: async () => undefined,
      blob: async (_r, d) => (d === digest ? blob() : undefined),
      referrers: () => [],
      close: async () => {},
    };
  }
  const errno = (code: string): NodeJS.ErrnoException => Object.assign(new Error(`${code}: simulated`), { code });

  it('EMFILE/ENFILE is 503 with Retry-After, other errors (EIO, ENAMETOOLONG) 500; all are logged', async () => {
    const bytes = Buffer.from('some blob bytes');
    const digest = sha256(bytes);
    const cases: Array<[string, () => ServedBlob, number, string]> = [
      ['EMFILE', () => ({ digest, size: bytes.length, open: async () => Promise.reject(errno('EMFILE')) }), 503, 'UNAVAILABLE'],
      ['ENFILE', () => ({ digest, size: bytes.length, open: async () => Promise.reject(errno('ENFILE')) }), 503, 'UNAVAILABLE'],
      ['EIO', () => ({ digest, size: bytes.length, open: async () => Promise.reject(errno('EIO')) }), 500, 'UNKNOWN'],
      // A real open() failure that is not "missing": a file name over NAME_MAX.
      [
        'ENAMETOOLONG',
        () => ({
          digest,
          size: bytes.length,
          open: async () => Promise.reject(errno('EIO')),
          file: { path: `/tmp/${'x'.repeat(300)}`, offset: 0 },
        }),
        500,
        'UNKNOWN',
      ],
    ];
    for (const [what, blob, status, code] of cases) {
      const { server, log } = await serve([stubContent(digest, blob)]);
      try {
        const r = await get(`${server.url}/v2/x/y/blobs/${digest}`);
        expect(r.status, what).toBe(status);
        expect(errorOf(r)?.code, what).toBe(code);
        if (status === 503) expect(Number(r.headers['retry-after']), what).toBeGreaterThan(0);
        expect(problems(log).join('\n'), what).toMatch(new RegExp(`cannot read blob ${digest}.*${what}`));
      } finally {
        await server.close();
      }
    }
  });

  it('a read failing in the middle of a body cuts the connection and logs a problem, not just "200"', async () => {
    const bytes = randomBytes(4 * 1024 * 1024);
    const digest = sha256(bytes);
    const file = path.join(createTempDir('serve-eio'), 'blob');
    writeFileSync(file, bytes);
    const real = await open(file, 'r');
    let reads = 0;
    // A descriptor whose third read fails (once the first chunk is out), as a disk would with EIO.
    const failing = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop === 'read') {
          return async (...args: Parameters<FileHandle['read']>) => {
            if (++reads === 3) throw errno('EIO');
            return (target.read as (...a: unknown[]) => unknown).apply(target, args);
          };
        }
        const v = Reflect.get(target, prop, receiver) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const { server, log } = await serve([
      stubContent(digest, () => ({
        digest,
        size: bytes.length,
        open: async () => Promise.reject(errno('EIO')),
        file: { handle: failing, offset: 0 },
      })),
    ]);
    try {
      const r = await request(`${server.url}/v2/x/y/blobs/${digest}`);
      expect(r.statusCode).toBe(200);
      await expect(r.body.arrayBuffer()).rejects.toThrow();
      for (let i = 0; i < 50 && problems(log).length === 0; i++) await new Promise((res) => setTimeout(res, 20));
      expect(problems(log).join('\n')).toMatch(new RegExp(`sending blob ${digest} failed after .*EIO`));
    } finally {
      await server.close();
      await real.close();
    }
  });
});

describe('zstd restores are capped', () => {
  let big: TestImage;
  let bigBundle: string;
  beforeAll(async () => {
    // Restored, this layer is far more than the socket buffers hold: a client that does not read
    // keeps its restore (and zstd process) running.
    big = writeLayout(path.join(createTempDir('serve-zstd'), 'layout'), 48 * 1024 * 1024);
    bigBundle = path.join(createTempDir('serve-zstd-bundle'), 'big.ferry');
    await bundleOf(big, bigBundle);
  }, 120_000);

  /** Send a GET for the zstd-stored layer on a raw socket and read nothing. */
  function stalledGet(port: number): Promise<Socket> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => {
        s.write(`GET /v2/test/app/blobs/${big.tarLayer.digest} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
        s.pause();
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  it('when every restore slot is busy, a request waits briefly and then gets 503 with Retry-After', async () => {
    const content = await bundleContent(bigBundle);
    const { server } = await serve([content], { limits: { zstdRestores: 1, zstdQueueMs: 300 } });
    const held = await stalledGet(server.port);
    try {
      await new Promise((r) => setTimeout(r, 200)); // the first restore is running
      const t = Date.now();
      const r = await get(`${server.url}/v2/test/app/blobs/${big.tarLayer.digest}`);
      expect(r.status).toBe(503);
      expect(Date.now() - t).toBeGreaterThanOrEqual(250);
      expect(errorOf(r)?.code).toBe('UNAVAILABLE');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
      // A raw blob of the same bundle is not held up.
      const raw = await get(`${server.url}/v2/test/app/blobs/${big.rawLayer.digest}`);
      expect(sha256(raw.body)).toBe(big.rawLayer.digest);
      // Once the slot is free, the same request succeeds.
      held.destroy();
      await new Promise((r) => setTimeout(r, 100));
      const again = await get(`${server.url}/v2/test/app/blobs/${big.tarLayer.digest}`, { range: 'bytes=-1' });
      expect(again.status).toBe(206);
      expect(again.body.equals(big.tarLayer.bytes.subarray(-1))).toBe(true);
    } finally {
      held.destroy();
      await server.close();
    }
  }, 60_000);

  it('more concurrent requests than slots all complete with the right bytes when they can queue', async () => {
    const content = await bundleContent(bigBundle);
    const { server } = await serve([content], { limits: { zstdRestores: 2, zstdQueueMs: 30_000 } });
    try {
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) =>
          i % 2 === 0
            ? get(`${server.url}/v2/test/app/blobs/${big.tarLayer.digest}`)
            : get(`${server.url}/v2/test/app/blobs/${big.tarLayer.digest}`, { range: `bytes=${i * 1000}-${i * 1000 + 99}` }),
        ),
      );
      results.forEach((r, i) => {
        if (i % 2 === 0) {
          expect(r.status, String(i)).toBe(200);
          expect(sha256(r.body), String(i)).toBe(big.tarLayer.digest);
        } else {
          expect(r.status, String(i)).toBe(206);
          expect(r.body.equals(big.tarLayer.bytes.subarray(i * 1000, i * 1000 + 100)), String(i)).toBe(true);
        }
      });
    } finally {
      await server.close();
    }
  }, 60_000);
});

describe('raw blob bodies share a bounded set of send buffers', () => {
  it('more concurrent large transfers than pooled buffers all get the right bytes', async () => {
    const content = await bundleContent(firstBundle);
    const { server, log } = await serve([content], { limits: { sendBufferPairs: 1 } });
    try {
      const results = await Promise.all(Array.from({ length: 5 }, () => get(`${server.url}/v2/test/app/blobs/${first.rawLayer.digest}`)));
      for (const r of results) expect(sha256(r.body)).toBe(first.rawLayer.digest);
      expect(problems(log)).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('the login throttle is per user', () => {
  let htpasswd: string;
  const basic = (u: string, p: string): Record<string, string> => ({
    authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`,
  });

  beforeAll(() => {
    htpasswd = path.join(createTempDir('serve-auth'), 'htpasswd');
    writeFileSync(htpasswd, `${['alice', 'bob', 'carol'].map((u) => `${u}:${bcrypt.hashSync(`${u}-pw`, 4)}`).join('\n')}\n`);
  });

  it("one user's failed logins do not lock out another user at the same address", async () => {
    const content = await layoutContent(first.dir);
    const { server } = await serve([content], { htpasswd, limits: { authFailures: 3 } });
    const url = `${server.url}/v2/`;
    try {
      // A pod with a wrong pull secret, retrying.
      for (let i = 0; i < 3; i++) expect((await get(url, basic('bob', 'wrong'))).status).toBe(401);
      const locked = await get(url, basic('bob', 'wrong'));
      expect(locked.status).toBe(429);
      expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
      // Even bob's right password waits out the window: the throttle is what bounds guessing.
      expect((await get(url, basic('bob', 'bob-pw'))).status).toBe(429);
      // alice, never seen before, from the same address: not throttled.
      expect((await get(url, basic('alice', 'alice-pw'))).status).toBe(200);
      // alice's credentials are now verified: her own failures do not stop her working session.
      for (let i = 0; i < 4; i++) await get(url, basic('alice', 'typo'));
      expect((await get(url, basic('alice', 'typo'))).status).toBe(429);
      const pulled = await get(`${server.url}/v2/test/app/blobs/${first.rawLayer.digest}`, basic('alice', 'alice-pw'));
      expect(pulled.status).toBe(200);
      expect(sha256(pulled.body)).toBe(first.rawLayer.digest);
    } finally {
      await server.close();
    }
  });

  it('bounds failures per address over all user names, but never throttles verified credentials', async () => {
    const content = await layoutContent(first.dir);
    const { server } = await serve([content], { htpasswd, limits: { authFailures: 3, authAddressFailures: 4 } });
    const url = `${server.url}/v2/`;
    try {
      expect((await get(url, basic('carol', 'carol-pw'))).status).toBe(200);
      for (const u of ['u1', 'u2', 'u3', 'u4']) expect((await get(url, basic(u, 'x'))).status).toBe(401);
      // A fifth user name from the address: no more bcrypt for unverified credentials.
      expect((await get(url, basic('u5', 'x'))).status).toBe(429);
      expect((await get(url, basic('alice', 'alice-pw'))).status).toBe(429);
      // carol logged in before: her requests go on.
      expect((await get(url, basic('carol', 'carol-pw'))).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});
