/**
 * `ferry mirror` and `ferry load` to a registry of many images at --concurrency 8 print no
 * `MaxListenersExceededWarning` (one run-wide AbortSignal used to collect an 'abort' listener per
 * request in flight, never removed while the response was held). The built CLI is run, as an
 * operator runs it, and its stderr is read. The same registries serve the `--scoped` test: a
 * source registry on a loopback port is kept in names as `127.0.0.1_PORT`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drain, HttpPool, signalsInFlight } from '../../src/transports/registry/http.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { CLI, ferry } from '../helpers/cli.js';
import { registryManifestDigest } from './load/helpers-cli.js';

const IMAGES = 40;

/** An OCI layout of `n` small images (one shared layer, one own layer each) named example.com/many/app-<i>:v1. */
function manyImagesStore(dir: string, n: number): void {
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (buf: Buffer, mediaType: string) => {
    const h = createHash('sha256').update(buf).digest('hex');
    writeFileSync(path.join(dir, 'blobs', 'sha256', h), buf);
    return { mediaType, digest: `sha256:${h}`, size: buf.length };
  };
  const shared = put(randomBytes(20_000), 'application/vnd.oci.image.layer.v1.tar+gzip');
  const manifests = [];
  for (let i = 0; i < n; i++) {
    const own = put(randomBytes(5_000 + i), 'application/vnd.oci.image.layer.v1.tar+gzip');
    const cfg = put(
      Buffer.from(
        JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: { Env: [`I=${i}`] } }),
      ),
      'application/vnd.oci.image.config.v1+json',
    );
    const man = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: cfg,
      layers: [shared, own],
    };
    const d = put(Buffer.from(JSON.stringify(man)), man.mediaType);
    manifests.push({ ...d, annotations: { 'org.opencontainers.image.ref.name': `example.com/many/app-${i}:v1` } });
  }
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
}

/** Where a warning comes from, should one be printed. */
const TRACE = { env: { NODE_OPTIONS: '--trace-warnings' } };
const WARNING = /MaxListenersExceeded|memory leak|Warning:/;

let src: RunningRegistry;
let dst: RunningRegistry;
let store: string;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
  [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
  store = path.join(createTempDir('many-images'), 'store');
  manyImagesStore(store, IMAGES);
}, 120_000);
afterAll(cleanupHarness);

describe(`${IMAGES} images at --concurrency 8: no MaxListenersExceededWarning`, () => {
  it('load oci: → registry, then mirror registry → registry (twice: copy, then all present)', async () => {
    const load = await ferry(['load', `oci:${store}`, '--to', `docker://${src.host}`, '--concurrency', '8'], TRACE);
    expect(load.code, load.stderr).toBe(0);
    expect(load.stderr).not.toMatch(WARNING);

    const refs = Array.from({ length: IMAGES }, (_, i) => `${src.host}/many/app-${i}:v1`);
    const listFile = path.join(createTempDir('many-list'), 'images.txt');
    writeFileSync(listFile, `${refs.join('\n')}\n`);
    const first = await ferry(['mirror', '-f', listFile, '--to', `docker://${dst.host}/m`, '--concurrency', '8'], TRACE);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).not.toMatch(WARNING);
    expect(first.stderr).toContain(`images ${IMAGES}/${IMAGES} done`);

    const second = await ferry(['mirror', '-f', listFile, '--to', `docker://${dst.host}/m`, '--concurrency', '8'], TRACE);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).not.toMatch(WARNING);
  });

  it('pull from the registry, bundle, and load the bundle to a registry, at --concurrency 16', async () => {
    const dir = createTempDir('many-bundle');
    const listFile = path.join(dir, 'images.txt');
    writeFileSync(listFile, `${Array.from({ length: IMAGES }, (_, i) => `${src.host}/many/app-${i}:v1`).join('\n')}\n`);
    const pulled = await ferry(['pull', '-f', listFile, '--store', path.join(dir, 'store'), '--concurrency', '16'], TRACE);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stderr).not.toMatch(WARNING);
    const out = path.join(dir, 'many.ferry');
    const bundled = await ferry(['bundle', '--from-store', '--store', path.join(dir, 'store'), '-o', out], TRACE);
    expect(bundled.code, bundled.stderr).toBe(0);
    expect(bundled.stderr).not.toMatch(WARNING);
    const loaded = await ferry(['load', out, '--to', `docker://${dst.host}/b`, '--concurrency', '16'], TRACE);
    expect(loaded.code, loaded.stderr).toBe(0);
    expect(loaded.stderr).not.toMatch(WARNING);
    expect(loaded.stderr).toContain(`images ${IMAGES}/${IMAGES} done`);
  });
});

describe('--scoped from a registry on a loopback port', () => {
  it('mirror and load name images HOST/PREFIX/127.0.0.1_PORT/…, with the source digests', async () => {
    const seeded = await ferry(['load', `oci:${store}`, '--to', `docker://${src.host}`]);
    expect(seeded.code, seeded.stderr).toBe(0);
    const port = src.host.split(':')[1]!;
    const scope = `127.0.0.1_${port}`;
    const digestOf = (i: number) => registryManifestDigest(src.url, `many/app-${i}`, 'v1');

    const refs = [0, 1, 2].map((i) => `${src.host}/many/app-${i}:v1`);
    const mapping = path.join(createTempDir('scoped-map'), 'map.json');
    const m = await ferry(['mirror', ...refs, '--to', `docker://${dst.host}/scoped`, '--scoped', '--mapping', mapping]);
    expect(m.code, m.stderr).toBe(0);
    const mapped = JSON.parse(readFileSync(mapping, 'utf8')) as Record<string, { destination: string; digest: string }>;
    for (const [i, ref] of refs.entries()) {
      const digest = await digestOf(i);
      expect(mapped[ref]).toEqual({ destination: `${dst.host}/scoped/${scope}/many/app-${i}:v1`, digest });
      expect(await registryManifestDigest(dst.url, `scoped/${scope}/many/app-${i}`, 'v1')).toBe(digest);
    }

    // A store holding images named by the loopback registry, loaded with --scoped (no prefix).
    const local = path.join(createTempDir('scoped-store'), 'store');
    const pulled = await ferry(['pull', `${src.host}/many/app-3:v1`, '--store', local]);
    expect(pulled.code, pulled.stderr).toBe(0);
    const loaded = await ferry(['load', `oci:${local}`, '--to', `docker://${dst.host}`, '--scoped']);
    expect(loaded.code, loaded.stderr).toBe(0);
    expect(await registryManifestDigest(dst.url, `${scope}/many/app-3`, 'v1')).toBe(await digestOf(3));
    // Without --scoped the port is dropped with the host.
    const plain = await ferry(['load', `oci:${local}`, '--to', `docker://${dst.host}/plain`]);
    expect(plain.code, plain.stderr).toBe(0);
    expect(await registryManifestDigest(dst.url, 'plain/many/app-3', 'v1')).toBe(await digestOf(3));
  });
});

describe('HttpPool under one AbortSignal', () => {
  it('holds one abort listener for many requests, removes it when they close, and still aborts them', async () => {
    // A server that answers headers at once and then holds the body open until told.
    const held: ServerResponse[] = [];
    const server = createServer((req, res) => {
      if (req.url === '/quick') return void res.end('ok');
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write('x');
      held.push(res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const pool = new HttpPool({ maxSockets: 64 });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const ac = new AbortController();
      // 30 quick requests, read to their end: nothing stays registered on the signal.
      for (const body of await Promise.all(
        Array.from({ length: 30 }, () => pool.request(`http://127.0.0.1:${port}/quick`, { method: 'GET', signal: ac.signal })),
      )) {
        await drain(body.body);
      }
      await new Promise((r) => setTimeout(r, 20));
      expect(signalsInFlight()).toBe(0);
      // 30 held bodies at once under the same signal: one listener; the abort fails every body.
      const responses = await Promise.all(
        Array.from({ length: 30 }, () => pool.request(`http://127.0.0.1:${port}/held`, { method: 'GET', signal: ac.signal })),
      );
      expect(signalsInFlight()).toBe(1);
      const ended = responses.map(
        (r) =>
          new Promise<string>((resolve) => {
            r.body.on('error', (e) => resolve(`error ${(e as Error).message}`));
            r.body.on('end', () => resolve('end'));
            r.body.resume();
          }),
      );
      ac.abort();
      for (const e of await Promise.all(ended)) expect(e).toMatch(/^error /);
      await new Promise((r) => setTimeout(r, 20));
      expect(signalsInFlight()).toBe(0);
      // A request under an aborted signal fails at once, as Node's own would.
      await expect(pool.request(`http://127.0.0.1:${port}/quick`, { method: 'GET', signal: ac.signal })).rejects.toMatchObject({
        name: 'AbortError',
        code: 'ABORT_ERR',
      });
      await new Promise((r) => setImmediate(r));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      for (const r of held) r.destroy();
      pool.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
