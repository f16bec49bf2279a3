import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hex, sha256 } from '../../../src/oci/digest.js';
import { MediaType, declaredCompression, isIndexType } from '../../../src/oci/mediatypes.js';
import { CORPUS_STAMP, generateCorpus, type CorpusManifest } from '../../../scripts/corpus/generate.js';
import { skopeoSource } from '../../../scripts/corpus/push.js';

const execFileP = promisify(execFile);

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
  artifactType?: string;
}
interface Manifest {
  schemaVersion: number;
  mediaType: string;
  artifactType?: string;
  config: Desc;
  layers: Desc[];
  manifests?: Desc[];
}
interface Config {
  architecture: string;
  os: string;
  variant?: string;
  created: string;
  config: { Cmd: string[] };
  rootfs: { type: string; diff_ids: string[] };
  history: Array<{ created_by: string; empty_layer?: boolean }>;
}

let root: string;
let dirA: string;
let dirB: string;
let corpusA: CorpusManifest;
let corpusB: CorpusManifest;

function requireTool(bin: string, pkg: string): void {
  const probe = spawnSync(bin, ['--version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    throw new Error(
      `${bin} is required by the corpus tests and was not found: install the Debian package "${pkg}" (apt-get install ${pkg})`,
    );
  }
}

beforeAll(async () => {
  // Fail, never skip: the corpus must be checked against real tools.
  requireTool('skopeo', 'skopeo');
  requireTool('zstd', 'zstd');
  root = await mkdtemp(join(tmpdir(), 'ferry-corpus-test-'));
  dirA = join(root, 'a');
  dirB = join(root, 'b');
  corpusA = await generateCorpus(dirA, 'small');
  corpusB = await generateCorpus(dirB, 'small');
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const blobPath = (dir: string, digest: string) => join(dir, 'blobs', 'sha256', hex(digest as `sha256:${string}`));
const readJson = async <T>(dir: string, digest: string): Promise<T> => JSON.parse(await readFile(blobPath(dir, digest), 'utf8')) as T;

async function hashStream(s: Readable): Promise<string> {
  const h = createHash('sha256');
  await pipeline(
    s,
    new Writable({
      write(chunk: Buffer, _e, cb) {
        h.update(chunk);
        cb();
      },
    }),
  );
  return `sha256:${h.digest('hex')}`;
}

/** sha256 of the decompressed layer: zlib for gzip, the zstd CLI for zstd. */
async function diffIdOf(file: string, mediaType: string): Promise<string> {
  switch (declaredCompression(mediaType)) {
    case 'none':
      return hashStream(createReadStream(file));
    case 'gzip':
      return hashStream(createReadStream(file).pipe(createGunzip()));
    case 'zstd': {
      const child = spawn('zstd', ['-d', '-c', '-q', file], { stdio: ['ignore', 'pipe', 'inherit'] });
      const exited = new Promise<number | null>((res) => child.on('close', res));
      const digest = await hashStream(child.stdout);
      expect(await exited).toBe(0);
      return digest;
    }
    default:
      throw new Error(`unexpected layer media type ${mediaType}`);
  }
}

/** Every image manifest reachable from the layout's index.json (children of indexes included). */
async function walk(dir: string): Promise<Array<{ desc: Desc; manifest: Manifest }>> {
  const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as Manifest;
  const out: Array<{ desc: Desc; manifest: Manifest }> = [];
  const seen = new Set<string>();
  const visit = async (d: Desc): Promise<void> => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    const m = await readJson<Manifest>(dir, d.digest);
    expect(m.mediaType).toBe(d.mediaType);
    if (isIndexType(d.mediaType)) {
      for (const c of m.manifests ?? []) await visit(c);
    } else {
      out.push({ desc: d, manifest: m });
    }
  };
  for (const d of index.manifests ?? []) await visit(d);
  return out;
}

describe('generateCorpus small', () => {
  it('is deterministic: two runs give the same digests and blobs', async () => {
    expect(corpusB).toEqual(corpusA);
    const [a, b] = await Promise.all([readdir(join(dirA, 'blobs/sha256')), readdir(join(dirB, 'blobs/sha256'))]);
    expect(b.sort()).toEqual(a.sort());
    expect(await readFile(join(dirB, 'index.json'))).toEqual(await readFile(join(dirA, 'index.json')));
  });

  it('writes a standard OCI layout with the expected refs', async () => {
    expect(JSON.parse(await readFile(join(dirA, 'oci-layout'), 'utf8'))).toEqual({ imageLayoutVersion: '1.0.0' });
    const index = JSON.parse(await readFile(join(dirA, 'index.json'), 'utf8')) as Manifest;
    expect(index.schemaVersion).toBe(2);
    expect(index.mediaType).toBe(MediaType.OciIndex);
    const refs = (index.manifests ?? []).map((d) => d.annotations?.['org.opencontainers.image.ref.name']);
    expect(refs).toEqual(corpusA.images.map((i) => i.ref));
    expect(new Set(corpusA.images.map((i) => i.ref))).toEqual(
      new Set([
        'ferry-test/base:1',
        'ferry-test/base:latest',
        'ferry-test/app:1.0',
        'ferry-test/docker-s2:1',
        'ferry-test/multi:oci',
        'ferry-test/multi:docker',
        'ferry-test/raw:1',
        'ferry-test/zstd:1',
        'ferry-test/artifact:1',
        'ferry-test/medium:1',
      ]),
    );
    for (const img of corpusA.images) expect(img.ref).toBe(`${img.repo}:${img.tag}`);
    const byRef = new Map(corpusA.images.map((i) => [i.ref, i]));
    expect(byRef.get('ferry-test/base:1')!.digest).toBe(byRef.get('ferry-test/base:latest')!.digest);
    for (const r of ['ferry-test/multi:oci', 'ferry-test/multi:docker']) {
      expect(byRef.get(r)!.platforms).toEqual(['linux/amd64', 'linux/arm64', 'linux/arm/v7']);
    }
    expect(byRef.get('ferry-test/multi:docker')!.mediaType).toBe(MediaType.DockerManifestList);
    expect(byRef.get('ferry-test/docker-s2:1')!.mediaType).toBe(MediaType.DockerManifest);
    expect(corpusA.uniqueBlobBytes).toBeLessThan(5_000_000);
    expect(corpusA.largestLayer.size).toBeGreaterThan(2_000_000);
    expect(corpusA.largestLayer.size).toBeLessThan(2_200_000);
  });

  it('names every blob by the sha256 of its content, and lists no others', async () => {
    const names = await readdir(join(dirA, 'blobs/sha256'));
    expect(names.length).toBe(corpusA.blobCount);
    let total = 0;
    for (const name of names) {
      const file = join(dirA, 'blobs/sha256', name);
      expect(await hashStream(createReadStream(file))).toBe(`sha256:${name}`);
      total += (await readFile(file)).length;
    }
    expect(total).toBe(corpusA.uniqueBlobBytes);
  });

  it('has valid configs whose diff_ids match the decompressed layers', async () => {
    const images = await walk(dirA);
    const layerTypes = new Set<string>();
    for (const { manifest } of images) {
      const size = (await readFile(blobPath(dirA, manifest.config.digest))).length;
      expect(size).toBe(manifest.config.size);
      if (manifest.artifactType) continue; // checked below
      const docker = manifest.mediaType === MediaType.DockerManifest;
      expect(manifest.config.mediaType).toBe(docker ? MediaType.DockerConfig : MediaType.OciConfig);
      const config = await readJson<Config>(dirA, manifest.config.digest);
      expect(config.os).toBe('linux');
      expect(['amd64', 'arm64', 'arm']).toContain(config.architecture);
      expect(config.created).toBe('2024-01-01T00:00:00Z');
      expect(config.config.Cmd.length).toBeGreaterThan(0);
      expect(config.rootfs.type).toBe('layers');
      expect(config.rootfs.diff_ids).toHaveLength(manifest.layers.length);
      expect(config.history.filter((h) => !h.empty_layer)).toHaveLength(manifest.layers.length);
      for (const [i, layer] of manifest.layers.entries()) {
        layerTypes.add(layer.mediaType);
        const file = blobPath(dirA, layer.digest);
        expect((await readFile(file)).length).toBe(layer.size);
        expect(await diffIdOf(file, layer.mediaType)).toBe(config.rootfs.diff_ids[i]);
      }
    }
    expect([...layerTypes].sort()).toEqual(
      [MediaType.OciLayerGzip, MediaType.OciLayer, MediaType.OciLayerZstd, MediaType.DockerLayerGzip].sort(),
    );
  });

  it('gives index children matching platforms and shares base layers across images', async () => {
    const index = JSON.parse(await readFile(join(dirA, 'index.json'), 'utf8')) as Manifest;
    const multi = (index.manifests ?? []).filter((d) => isIndexType(d.mediaType));
    expect(multi).toHaveLength(2);
    const firstLayers = new Set<string>();
    for (const d of multi) {
      const list = await readJson<Manifest>(dirA, d.digest);
      expect(list.manifests).toHaveLength(3);
      for (const child of list.manifests ?? []) {
        expect(child.mediaType).toBe(d.mediaType === MediaType.OciIndex ? MediaType.OciManifest : MediaType.DockerManifest);
        const m = await readJson<Manifest>(dirA, child.digest);
        const config = await readJson<Config>(dirA, m.config.digest);
        expect(config.architecture).toBe(child.platform?.architecture);
        expect(config.variant).toBe(child.platform?.variant);
        firstLayers.add(m.layers[0]!.digest);
      }
    }
    const base = await readJson<Manifest>(dirA, corpusA.images.find((i) => i.ref === 'ferry-test/base:1')!.digest);
    expect([...firstLayers]).toEqual([base.layers[0]!.digest]);
  });

  it('has an OCI artifact with a non-image config and custom layer type', async () => {
    const img = corpusA.images.find((i) => i.kind === 'oci-artifact')!;
    const m = await readJson<Manifest>(dirA, img.digest);
    expect(m.artifactType).toBe('application/vnd.example.thing.v1');
    expect(m.config.mediaType).toBe('application/vnd.example.config.v1+json');
    expect(m.layers.map((l) => l.mediaType)).toEqual(['application/vnd.example.payload.v1']);
    const index = JSON.parse(await readFile(join(dirA, 'index.json'), 'utf8')) as Manifest;
    expect(index.manifests?.find((d) => d.digest === img.digest)?.artifactType).toBe(m.artifactType);
  });

  it('writes gzip with no mtime and no file name, and layers GNU tar reads', async () => {
    const app = await readJson<Manifest>(dirA, corpusA.images.find((i) => i.ref === 'ferry-test/app:1.0')!.digest);
    const fh = await open(blobPath(dirA, app.layers[0]!.digest));
    const head = Buffer.alloc(10);
    await fh.read(head, 0, 10, 0);
    await fh.close();
    expect(head[0]).toBe(0x1f);
    expect(head[1]).toBe(0x8b);
    expect(head[3]).toBe(0); // FLG: no FNAME, FCOMMENT, FEXTRA
    expect(head.readUInt32LE(4)).toBe(0); // MTIME

    const listing = execFileSync('tar', ['--numeric-owner', '-tvzf', blobPath(dirA, app.layers[0]!.digest)], { encoding: 'utf8' });
    expect(listing).toMatch(/^-rwxr-xr-x 0\/0 +98304 2024-01-01 00:00 bin\/busybox$/m);
    expect(listing).toMatch(/^lrwxrwxrwx .* bin\/sh -> busybox$/m);
    expect(listing).toMatch(/^hrwxr-xr-x .* bin\/ls link to bin\/busybox$/m);
    const libs = execFileSync('tar', ['-tzf', blobPath(dirA, app.layers[1]!.digest)], { encoding: 'utf8' });
    expect(libs.split('\n').some((l) => l.length > 100)).toBe(true); // a pax long name

    const raw = await readJson<Manifest>(dirA, corpusA.images.find((i) => i.ref === 'ferry-test/raw:1')!.digest);
    expect(raw.layers[1]!.mediaType).toBe(MediaType.OciLayer);
    expect(execFileSync('tar', ['-tf', blobPath(dirA, raw.layers[1]!.digest)], { encoding: 'utf8' })).toBe(
      'data/\ndata/raw.bin\ndata/README\n',
    );
  });

  it('is readable by skopeo for every ref', async () => {
    const scratch = join(root, 'skopeo');
    await mkdir(scratch);
    await Promise.all(
      corpusA.images.map(async (img, i) => {
        // Docker-typed entries go through a dir: view: skopeo's oci: transport only matches OCI types.
        const src = await skopeoSource(dirA, img, join(scratch, String(i)));
        if (img.kind === 'oci-image' || img.kind === 'oci-index' || img.kind === 'oci-artifact') {
          expect(src).toBe(`oci:${dirA}:${img.ref}`);
        }
        const { stdout } = await execFileP('skopeo', ['inspect', '--raw', src], { encoding: 'buffer' });
        expect(sha256(stdout)).toBe(img.digest);
      }),
    );
    const { stdout } = await execFileP('skopeo', ['inspect', '--config', `oci:${dirA}:ferry-test/app:1.0`]);
    expect(JSON.parse(stdout).architecture).toBe('amd64');
  });
});

describe('generateCorpus caching and options', () => {
  it('reuses a complete corpus and regenerates a damaged one', async () => {
    const dir = join(root, 'cache');
    const first = await generateCorpus(dir, 'demo');
    const t = performance.now();
    expect(await generateCorpus(dir, 'demo')).toEqual(first);
    expect(performance.now() - t).toBeLessThan(500);

    await truncate(blobPath(dir, first.largestLayer.digest), 10);
    expect(await generateCorpus(dir, 'demo')).toEqual(first);
    expect(await hashStream(createReadStream(blobPath(dir, first.largestLayer.digest)))).toBe(first.largestLayer.digest);

    // A different spec replaces the old corpus, leaving none of its blobs behind.
    const small = await generateCorpus(dir, 'small', { zstd: false });
    expect((await readdir(join(dir, 'blobs/sha256'))).length).toBe(small.blobCount);
    expect(JSON.parse(await readFile(join(dir, CORPUS_STAMP), 'utf8')).manifest).toEqual(small);
  });

  it('lets concurrent generators share one directory', async () => {
    const dir = join(root, 'shared');
    const [x, y] = await Promise.all([generateCorpus(dir, 'demo'), generateCorpus(dir, 'demo')]);
    expect(y).toEqual(x);
    expect((await readdir(dir)).sort()).toEqual([CORPUS_STAMP, 'blobs', 'index.json', 'oci-layout'].sort());
  });

  it('generates the demo corpus with no external tools, gzip only', async () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    let demo: CorpusManifest;
    try {
      demo = await generateCorpus(join(root, 'demo'), 'demo');
    } finally {
      process.env.PATH = path;
    }
    expect(demo.images.map((i) => `${i.ref} ${i.kind}`)).toEqual([
      'ferry-demo/base:1 oci-image',
      'ferry-demo/app:1.0 oci-image',
      'ferry-demo/app:1.0.1 oci-image',
      'ferry-demo/app:1.1.0 oci-image',
      'ferry-demo/app:latest oci-image',
      'ferry-demo/app:2.0.0-rc.1 oci-image',
      'ferry-demo/hello:1 oci-index',
    ]);
    expect(demo.uniqueBlobBytes).toBeLessThan(200_000);
    for (const { manifest } of await walk(join(root, 'demo'))) {
      for (const l of manifest.layers) expect(l.mediaType).toBe(MediaType.OciLayerGzip);
    }
  });

  it('leaves zstd out on request, and names the package when the zstd CLI is missing', async () => {
    const noZstd = await generateCorpus(join(root, 'nozstd'), 'small', { zstd: false });
    expect(noZstd.zstd).toBe(false);
    expect(noZstd.images.map((i) => i.ref)).not.toContain('ferry-test/zstd:1');
    // Everything but the zstd image is byte-identical to the full corpus.
    const full = new Map(corpusA.images.map((i) => [i.ref, i.digest]));
    for (const i of noZstd.images) expect(i.digest).toBe(full.get(i.ref));

    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      await expect(generateCorpus(join(root, 'needs-zstd'), 'small')).rejects.toMatchObject({
        code: 'ZSTD_MISSING',
        hint: expect.stringContaining("package 'zstd'"),
      });
    } finally {
      process.env.PATH = path;
    }
  });

  it('refuses to write into a directory that is not an OCI layout', async () => {
    const dir = join(root, 'precious');
    await mkdir(dir);
    await writeFile(join(dir, 'notes.txt'), 'keep me');
    await expect(generateCorpus(dir, 'demo')).rejects.toMatchObject({ code: 'CORPUS_DIR_NOT_EMPTY' });
    expect(await readFile(join(dir, 'notes.txt'), 'utf8')).toBe('keep me');
  });
});
