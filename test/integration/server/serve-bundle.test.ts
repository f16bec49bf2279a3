// `ferry serve` of a ferry bundle, in place: a store pulled from the small corpus is bundled
// (compression auto: ferry-test/raw:1 gets a zstd member), served straight from the bundle
// file, and read back with skopeo, ferry's own pull and raw HTTP. Every check compares bytes.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';
import { BundleManifestSchema, MEMBER, type BundleManifest } from '../../../src/bundle/format.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { pull } from '../../../src/commands/pull.js';
import { sha256, type Digest } from '../../../src/oci/digest.js';
import { bundleContent } from '../../../src/server/bundle-content.js';
import type { ServedContent } from '../../../src/server/content.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import type { OciLayout } from '../../../src/transports/oci/layout.js';
import { openServed, parseServedLocation } from '../../../src/transports/table.js';
import { indexTarFile, openTarEntry } from '../../../src/tar/reader.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

let corpus: CorpusManifest;
let store: OciLayout;
let bundle: string;
let plain: string;
let man: BundleManifest;
let content: ServedContent;
let server: RunningServer;
let host: string;

async function readMember(file: string, name: string): Promise<Buffer> {
  const e = (await indexTarFile(file)).find((x) => x.name === name)!;
  const chunks: Buffer[] = [];
  for await (const c of openTarEntry(file, e)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const repoOf = (ref: string): { repo: string; tag: string } => {
  const i = ref.lastIndexOf(':');
  return { repo: ref.slice(0, i), tag: ref.slice(i + 1) };
};

beforeAll(async () => {
  const work = createTempDir('serve-bundle');
  ({ corpus, store } = await storeFromSmallCorpus(path.join(work, 'store')));
  bundle = path.join(work, 'images.ferry');
  await writeBundle({ store, output: bundle, compression: 'auto' });
  plain = path.join(work, 'plain.tar');
  await writeBundle({ store, output: plain, compression: 'none', refs: ['ferry-test/app:1.0', 'ferry-test/multi:oci'] });
  man = BundleManifestSchema.parse(JSON.parse((await readMember(bundle, MEMBER.manifest)).toString('utf8')));
  content = await bundleContent(bundle);
  server = await startServer({ sources: [content], listen: '127.0.0.1:0' });
  host = `127.0.0.1:${server.port}`;
}, 300_000);

afterAll(async () => {
  await server?.close();
  await content?.close();
  await cleanupHarness();
});

/** The zstd-stored layer of ferry-test/raw:1, and a raw layer of the same image. */
function rawImageLayers(): { zstd: { digest: Digest; size: number }; raw: { digest: Digest; size: number } } {
  const raw = corpus.images.find((i) => i.ref === 'ferry-test/raw:1')!;
  const m = JSON.parse(readFileSync(store.blobPath(raw.digest)).toString()) as { layers: Array<{ digest: Digest; size: number }> };
  const zstdDigests = new Set(man.members.filter((x) => x.storage === 'zstd').map((x) => x.digest));
  const z = m.layers.find((l) => zstdDigests.has(l.digest))!;
  const r = m.layers.find((l) => !zstdDigests.has(l.digest))!;
  return { zstd: z, raw: r };
}

describe('serving a ferry bundle in place', () => {
  it('names every bundled image as its repository and tag, with the published digests', () => {
    expect(man.members.some((m) => m.storage === 'zstd')).toBe(true);
    expect(content.description).toBe(`bundle:${bundle}`);
    expect(content.warnings).toEqual([]);
    // Repositories are keyed by their origin (docker.io for these Docker Hub-style names).
    const repos = [...new Set(corpus.images.map((i) => `docker.io/${repoOf(i.ref).repo}`))].sort();
    expect(content.repositories()).toEqual(repos);
    for (const i of corpus.images) {
      const { repo, tag } = repoOf(i.ref);
      expect(content.resolveTag(`docker.io/${repo}`, tag)?.digest, i.ref).toBe(i.digest);
    }
  });

  it('skopeo inspect --raw gives every image with its digest; skopeo copy --all gets the OCI ones', async () => {
    for (const i of corpus.images) {
      const { repo, tag } = repoOf(i.ref);
      const r = await runSkopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/${repo}:${tag}`]);
      expect(sha256(Buffer.from(r.stdout)), i.ref).toBe(i.digest);
    }
    for (const i of corpus.images.filter((x) => x.kind === 'oci-image' || x.kind === 'oci-index')) {
      const { repo, tag } = repoOf(i.ref);
      const dest = path.join(createTempDir('serve-bundle-skopeo'), 'out');
      // --preserve-digests: skopeo would otherwise gzip the uncompressed layer of ferry-test/raw:1.
      await runSkopeo([
        'copy',
        '--all',
        '--preserve-digests',
        '--retry-times',
        '0',
        '--src-tls-verify=false',
        `docker://${host}/${repo}:${tag}`,
        `oci:${dest}:x`,
      ]);
      const idx = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      expect(idx.manifests[0]?.digest, i.ref).toBe(i.digest);
      const blobs = path.join(dest, 'blobs', 'sha256');
      for (const f of readdirSync(blobs)) {
        expect(sha256(readFileSync(path.join(blobs, f))), `${i.ref} ${f}`).toBe(`sha256:${f}`);
      }
    }
  }, 300_000);

  it("ferry's pull from the server gets every image, the zstd-stored layer byte-identical", async () => {
    const dest = path.join(createTempDir('serve-bundle-pull'), 'store');
    const refs = [...new Set(corpus.images.map((i) => i.ref))].map((r) => `${host}/${r}`);
    const report = await pull({ refs, store: dest, retry: { maxAttempts: 1 } });
    expect(report.failures).toEqual([]);
    const idx = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
    };
    const byName = new Map(idx.manifests.map((m) => [m.annotations?.[REF_NAME], m.digest]));
    for (const i of corpus.images) expect(byName.get(`${host}/${i.ref}`), i.ref).toBe(i.digest);
    const { zstd } = rawImageLayers();
    const got = readFileSync(path.join(dest, 'blobs', 'sha256', zstd.digest.slice(7)));
    expect(got.equals(readFileSync(store.blobPath(zstd.digest)))).toBe(true);
  }, 300_000);

  it('HEAD and ranged GET on a raw blob and on the zstd-restored blob return the right bytes', async () => {
    const { zstd, raw } = rawImageLayers();
    for (const b of [raw, zstd]) {
      const orig = readFileSync(store.blobPath(b.digest));
      expect(orig.length).toBe(b.size);
      const url = `http://${host}/v2/ferry-test/raw/blobs/${b.digest}`;
      const head = await request(url, { method: 'HEAD' });
      await head.body.dump();
      expect(head.statusCode).toBe(200);
      expect(Number(head.headers['content-length'])).toBe(b.size);
      const full = await request(url);
      expect(full.statusCode).toBe(200);
      expect(Buffer.from(await full.body.arrayBuffer()).equals(orig)).toBe(true);
      const mid = Math.floor(b.size / 2);
      for (const [start, end] of [
        [0, 0],
        [1, 99],
        [mid, mid + 70_000],
        [b.size - 10, b.size - 1],
      ] as const) {
        const r = await request(url, { headers: { range: `bytes=${start}-${end}` } });
        expect(r.statusCode, `${b.digest} ${start}-${end}`).toBe(206);
        const body = Buffer.from(await r.body.arrayBuffer());
        expect(body.equals(orig.subarray(start, Math.min(end, b.size - 1) + 1)), `${b.digest} ${start}-${end}`).toBe(true);
      }
      const tail = await request(url, { headers: { range: `bytes=${b.size - 5}-` } });
      expect(tail.statusCode).toBe(206);
      expect(Buffer.from(await tail.body.arrayBuffer()).equals(orig.subarray(b.size - 5))).toBe(true);
    }
  });

  it('a blob not reachable from the repository is 404, though the bundle holds it', async () => {
    const { zstd } = rawImageLayers();
    const app = corpus.images.find((i) => i.ref === 'ferry-test/app:1.0')!;
    const notInApp = await request(`http://${host}/v2/ferry-test/app/blobs/${zstd.digest}`);
    await notInApp.body.dump();
    expect(notInApp.statusCode).toBe(404);
    const m = await request(`http://${host}/v2/ferry-test/base/manifests/${app.digest}`);
    await m.body.dump();
    expect(m.statusCode).toBe(404);
    expect(await content.blob('docker.io/ferry-test/app', zstd.digest)).toBeUndefined();
    expect(await content.blob('docker.io/ferry-test/raw', zstd.digest)).toBeDefined();
  });

  it('serves a plain OCI archive (no zstd members) the same way', async () => {
    const c = await bundleContent(plain);
    try {
      expect(c.repositories()).toEqual(['docker.io/ferry-test/app', 'docker.io/ferry-test/multi']);
      const app = corpus.images.find((i) => i.ref === 'ferry-test/app:1.0')!;
      expect(c.resolveTag('docker.io/ferry-test/app', '1.0')?.digest).toBe(app.digest);
      const m = await c.manifest('docker.io/ferry-test/app', app.digest);
      expect(m?.bytes.equals(readFileSync(store.blobPath(app.digest)))).toBe(true);
      const layers = (JSON.parse(m!.bytes.toString()) as { layers: Array<{ digest: Digest }> }).layers;
      const b = await c.blob('docker.io/ferry-test/app', layers[0]!.digest);
      const chunks: Buffer[] = [];
      for await (const x of await b!.open({ start: 3, end: 10 })) chunks.push(x as Buffer);
      expect(Buffer.concat(chunks).equals(readFileSync(store.blobPath(layers[0]!.digest)).subarray(3, 11))).toBe(true);
    } finally {
      await c.close();
    }
  });

  it('ferry serve FILE and bundle:FILE select the bundle source', () => {
    expect(parseServedLocation(bundle)).toEqual({ transport: 'bundle', path: bundle, repository: undefined });
    expect(parseServedLocation(`bundle:${bundle}`)).toEqual({ transport: 'bundle', path: bundle, repository: undefined });
    expect(parseServedLocation(`bundle:${bundle}:team/app`)).toEqual({ transport: 'bundle', path: bundle, repository: 'team/app' });
    expect(() => parseServedLocation(path.dirname(bundle))).toThrow(/oci:DIR/);
  });

  it('ferry serve oci-archive:FILE opens an OCI archive (skopeo-made) through the table, as a bundle is', async () => {
    const archive = path.join(createTempDir('serve-oci-archive'), 'app.tar');
    await runSkopeo(['copy', '--preserve-digests', `oci:${store.dir}:ferry-test/app:1.0`, `oci-archive:${archive}:ferry-test/app:1.0`]);
    const c = await openServed(parseServedLocation(`oci-archive:${archive}`));
    try {
      expect(c.description).toBe(`oci-archive:${archive}`);
      expect(c.repositories()).toEqual(['docker.io/ferry-test/app']);
      const app = corpus.images.find((i) => i.ref === 'ferry-test/app:1.0')!;
      expect(c.resolveTag('docker.io/ferry-test/app', '1.0')?.digest).toBe(app.digest);
    } finally {
      await c.close();
    }
  });
});
