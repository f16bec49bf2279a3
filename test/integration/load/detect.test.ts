// `ferry load FILE` without a transport works out what FILE is, as `docker load -i` does: a
// real `docker save` tar (from a private dockerd's `GET /images/get`), the same gzip-compressed,
// an OCI archive written by skopeo and a ferry bundle each load into an OCI layout with the
// digests the explicit transport gives (gzip-compressed docker saves and OCI archives from one
// private decompressed copy, gone afterwards; a gzip bundle is exit 2); a file of random bytes and a tar of unrelated files are
// exit 2 naming what they are, with nothing written; `ferry verify` of a docker save is exit 2.
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TarWriter } from '../../../src/tar/writer.js';
import { startDockerd, type Engine } from '../../harness/engines.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';
import { smallCorpus } from '../corpus-registry.js';
import { signedCorpusBundle } from './fixtures.js';
import { bundleManifest, ferry } from './helpers-cli.js';
import { ok } from '../../helpers/layout.js';

let docker: Engine;
let work: string;
let corpus: string;
/** ferry-test/base:1 and app:1.0 as `docker save` wrote them, plain and gzipped. */
let saved: string;
let savedGz: string;
let ociArchive: string;
/** The image IDs (config digests) the engine gave the saved images. */
const ids = new Map<string, string>();

async function mappingOf(args: string[], env?: NodeJS.ProcessEnv): Promise<Record<string, { destination: string; digest: string }>> {
  const map = path.join(createTempDir('detect-map'), 'map.json');
  ok(await ferry([...args, '--mapping', map], env ? { env } : {}));
  return JSON.parse(await readFile(map, 'utf8')) as Record<string, { destination: string; digest: string }>;
}

/** The names and digests an OCI layout holds. */
async function layoutNames(dir: string): Promise<Record<string, string>> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return Object.fromEntries(index.manifests.map((m) => [m.annotations?.['org.opencontainers.image.ref.name'] ?? '', m.digest]));
}

/** `GET /images/get?names=…` (what `docker save` calls) into `file`. */
function dockerSave(socket: string, names: string[], file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const q = names.map((n) => `names=${encodeURIComponent(n)}`).join('&');
    const req = http.get({ socketPath: socket, path: `/images/get?${q}` }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`docker save: HTTP ${res.statusCode}`));
        res.resume();
        return;
      }
      pipeline(res, createWriteStream(file)).then(resolve, reject);
    });
    req.on('error', reject);
  });
}

beforeAll(async () => {
  docker = await startDockerd();
  work = createTempDir('detect');
  corpus = (await smallCorpus()).dir;
  for (const ref of ['ferry-test/base:1', 'ferry-test/app:1.0']) {
    ok(await ferry(['load', `oci:${corpus}:${ref}`, '--to', `docker-daemon:${docker.socket}`]));
    const r = await docker.run(['image', 'inspect', '--format', '{{.Id}}', ref]);
    ids.set(`docker.io/${ref}`, r.stdout.trim());
  }
  saved = path.join(work, 'saved.tar');
  await dockerSave(docker.socket, ['ferry-test/base:1', 'ferry-test/app:1.0'], saved);
  savedGz = path.join(work, 'saved.tar.gz');
  await pipeline(createReadStream(saved), createGzip(), createWriteStream(savedGz));
  ociArchive = path.join(work, 'oci.tar');
  await runSkopeo(['copy', `oci:${corpus}:ferry-test/base:1`, `oci-archive:${ociArchive}:docker.io/ferry-test/base:1`]);
}, 180_000);

afterAll(async () => {
  await docker?.stop();
  await cleanupHarness();
});

describe('ferry load FILE detects what FILE is', () => {
  it('a docker save tar loads as docker-archive: does (same digests as docker-archive:FILE; configs = the engine IDs)', async () => {
    const detected = await mappingOf(['load', saved, '--to', `oci:${path.join(work, 'from-save')}`]);
    const explicit = await mappingOf(['load', `docker-archive:${saved}`, '--to', `oci:${path.join(work, 'from-save-explicit')}`]);
    expect(Object.keys(detected).sort()).toEqual(['docker.io/ferry-test/app:1.0', 'docker.io/ferry-test/base:1']);
    expect(detected).toEqual(
      Object.fromEntries(
        Object.entries(explicit).map(([k, v]) => [k, { ...v, destination: v.destination.replace('from-save-explicit', 'from-save') }]),
      ),
    );
    // The config of each loaded image is the image the engine saved.
    for (const [name, { digest }] of Object.entries(detected)) {
      const manifest = JSON.parse(await readFile(path.join(work, 'from-save', 'blobs', 'sha256', digest.slice(7)), 'utf8')) as {
        config: { digest: string };
      };
      expect(manifest.config.digest, name).toBe(ids.get(name));
    }
  });

  it('docker save | gzip loads the same, and its private decompressed copy is gone afterwards', async () => {
    const plain = await mappingOf(['load', saved, '--to', `oci:${path.join(work, 'gz-plain')}`]);
    const tmp = createTempDir('detect-tmp');
    const gz = await mappingOf(['load', savedGz, '--to', `oci:${path.join(work, 'gz')}`], { TMPDIR: tmp });
    expect(Object.fromEntries(Object.entries(gz).map(([k, v]) => [k, v.digest]))).toEqual(
      Object.fromEntries(Object.entries(plain).map(([k, v]) => [k, v.digest])),
    );
    expect(Object.keys(gz)).toHaveLength(2);
    expect(await readdir(tmp)).toEqual([]);
  });

  it('a gzip-compressed OCI archive loads as docker load does (Docker 25+); a gzip-compressed bundle is exit 2', async () => {
    const gz = path.join(work, 'oci.tar.gz');
    await pipeline(createReadStream(ociArchive), createGzip(), createWriteStream(gz));
    const tmp = createTempDir('detect-tmp-oci');
    const m = await mappingOf(['load', gz, '--to', `oci:${path.join(work, 'from-oci-gz')}`], { TMPDIR: tmp });
    expect(Object.values(m).map((v) => v.digest)).toEqual([(await layoutNames(corpus))['ferry-test/base:1']]);
    expect(await readdir(tmp)).toEqual([]);
    const b = await signedCorpusBundle(path.join(work, 'bundle-gz'));
    const bgz = `${b.bundle}.gz`;
    await pipeline(createReadStream(b.bundle), createGzip(), createWriteStream(bgz));
    const dir = path.join(work, 'from-bundle-gz');
    const r = await ferry(['load', bgz, '--to', `oci:${dir}`], { env: { TMPDIR: tmp } });
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${bgz} is a ferry bundle, gzip-compressed; ferry reads bundles uncompressed`);
    expect(await readdir(tmp)).toEqual([]);
    expect(existsSync(dir)).toBe(false);
  });

  it('an OCI archive (skopeo) loads as oci-archive: does, at the published digest', async () => {
    const dir = path.join(work, 'from-oci');
    const m = await mappingOf(['load', ociArchive, '--to', `oci:${dir}`]);
    const want = (await layoutNames(corpus))['ferry-test/base:1'];
    expect(Object.values(m).map((v) => v.digest)).toEqual([want]);
    expect(Object.values(await layoutNames(dir))).toEqual([want]);
    // --key belongs to bundles: an OCI archive carries no signature (exit 2, nothing written).
    const keyed = await ferry(['load', ociArchive, '--to', `oci:${path.join(work, 'keyed')}`, '--key', ociArchive]);
    expect([keyed.code, keyed.stderr]).toEqual([2, expect.stringContaining(`${ociArchive} is an OCI archive, which carries no signature`)]);
  });

  it('a bundle is still a bundle (verified, signature checked)', async () => {
    const b = await signedCorpusBundle(path.join(work, 'bundle'));
    const dir = path.join(work, 'from-bundle');
    const r = ok(await ferry(['load', b.bundle, '--to', `oci:${dir}`, '--key', b.pubKey, '--json']));
    expect(r.stdout).toContain('"signature":"valid"');
    const names = await layoutNames(dir);
    for (const img of (await bundleManifest(b.bundle)).images) expect(Object.values(names)).toContain(img.digest);
  });

  it('a file of random bytes and a tar of unrelated files: exit 2 saying what they are; nothing written', async () => {
    const random = path.join(work, 'random.bin');
    await writeFile(random, Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46]), randomBytes(64 * 1024)]));
    const tar = path.join(work, 'unrelated.tar');
    const w = new TarWriter();
    const out = pipeline(w.output, createWriteStream(tar));
    await w.addFile('README.md', Buffer.from('# hello\n'));
    await w.addFile('manifest.json', Buffer.from('{"name":"a web app"}'));
    await w.addFile('src/main.js', Buffer.from('console.log(1)\n'));
    await w.finish();
    await out;
    const text = path.join(work, 'images.txt');
    await writeFile(text, 'nginx:1.27\n');
    const cases: Array<[string, string]> = [
      [random, 'data that is not a tar archive (it starts 7f 45 4c 46'],
      [
        tar,
        'a tar archive of 3 members: "README.md", "manifest.json", "src/main.js", without ferry-bundle.json, manifest.json or oci-layout and index.json (its manifest.json is not a docker save listing)',
      ],
      [text, 'text starting "nginx:1.27\\n"'],
    ];
    for (const [file, found] of cases) {
      const dest = path.join(work, `nothing-${path.basename(file)}`);
      const r = await ferry(['load', file, '--to', `oci:${dest}`]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${file} is not a ferry bundle, an OCI archive or a docker save tar (found: ${found}`);
      expect(await readdir(dest).catch(() => [])).toEqual([]);
    }
  });

  it('ferry verify of a docker save: exit 2, not a bundle, load it with ferry load', async () => {
    const r = await ferry(['verify', saved]);
    expect([r.code, r.stderr]).toEqual([
      2,
      expect.stringContaining(`${saved} is not a ferry bundle; it is a docker save archive; load it with ferry load`),
    ]);
  });
});
