/**
 * Inputs for the two bench measurements the 'bench' corpus cannot give (issue 3), generated
 * deterministically and streamed, cached under the directory given (the bench uses .bench/):
 *
 *  - generateDockerSave(): a `docker save`-style archive (legacy layout: manifest.json,
 *    repositories, `<hex>.json` configs, `<diff_id hex>/layer.tar` with plain, uncompressed
 *    layer tars) holding 3 images that share layers, ~200 MB in all. Unlike the bench corpus
 *    (random bytes, incompressible), the layer files are a fixed mix by bytes of
 *      - ~80% text-like files: lines of pseudo-source (indentation, words drawn with a skewed
 *        distribution from a 2,000-word pseudo-random vocabulary, numbers, punctuation);
 *      - ~20% incompressible files: AES-128-CTR keystream, standing in for files that are
 *        already compressed (archives, images, jars).
 *    File sizes are drawn between 1 KiB and 2 MiB. What this says about real images: only
 *    that text-heavy layers compress; the ratio measured on it is a property of this mix.
 *
 *  - generateBigLayerLayout(): an OCI layout with one image whose only layer is an
 *    uncompressed `application/vnd.oci.image.layer.v1.tar` of 2 GiB + headers: 8 files of
 *    256 MiB, each one 1 MiB AES-CTR block repeated (fast to write, and zstd collapses it).
 */
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { TarWriter } from '../../src/tar/writer.js';

const STAMP = 'ferry-bench-input.json';
const CHUNK = 1024 * 1024;

/** Deterministic keystream: `size` bytes of AES-128-CTR over zeros, keyed by `seed`. */
function keystream(seed: string): (size: number) => Buffer {
  const key = createHash('sha256').update(`ferry-bench:${seed}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  return (size) => cipher.update(Buffer.alloc(size));
}

/** xorshift32: fast, deterministic, good enough to pick words. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const VOCAB: Buffer[] = (() => {
  const r = prng(12345);
  const letters = 'abcdefghijklmnopqrstuvwxyz_';
  const words: Buffer[] = [];
  for (let i = 0; i < 2000; i++) {
    const len = 2 + Math.floor(r() * r() * 12);
    let w = '';
    for (let j = 0; j < len; j++) w += letters[Math.floor(r() * letters.length)];
    words.push(Buffer.from(w, 'latin1'));
  }
  return words;
})();
const PUNCT = [' ', ' ', ' ', ' ', '(', ')', ', ', '.', ' = ', ';', ' {', '}', ': ', '"', '/'].map((p) => Buffer.from(p, 'latin1'));

/** Text-like bytes: lines of pseudo-source with words drawn from VOCAB, frequent words favoured. */
export function* textChunks(seed: number, size: number): Generator<Buffer> {
  const r = prng(seed);
  const recent: Buffer[] = [];
  let left = size;
  while (left > 0) {
    const n = Math.min(CHUNK, left);
    const b = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      // Boilerplate: a third of the lines repeat one of the last 64 (real text and code repeat
      // whole lines and phrases, not only words).
      if (recent.length > 0 && r() < 0.35) {
        const line = recent[Math.floor(r() * recent.length)]!;
        o += line.copy(b, o, 0, Math.min(line.length, n - o));
        continue;
      }
      const start = o;
      // Start of line: indentation.
      const indent = Math.floor(r() * 5) * 2;
      for (let k = 0; k < indent && o < n; k++) b[o++] = 0x20;
      const words = 2 + Math.floor(r() * 10);
      for (let w = 0; w < words && o < n; w++) {
        const u = r();
        const word = r() < 0.08 ? Buffer.from(String(Math.floor(r() * 100000)), 'latin1') : VOCAB[Math.floor(u * u * u * VOCAB.length)]!;
        o += word.copy(b, o, 0, Math.min(word.length, n - o));
        if (o >= n) break;
        const p = PUNCT[Math.floor(r() * PUNCT.length)]!;
        o += p.copy(b, o, 0, Math.min(p.length, n - o));
      }
      if (o < n) b[o++] = 0x0a;
      recent.push(Buffer.from(b.subarray(start, o)));
      if (recent.length > 64) recent.shift();
    }
    left -= n;
    yield b;
  }
}

export function* randomChunks(seed: string, size: number): Generator<Buffer> {
  const next = keystream(seed);
  for (let left = size; left > 0; left -= CHUNK) yield next(Math.min(CHUNK, left));
}

/** sha256 and byte count of what flows through. */
class Hash extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** Run `fill` against a TarWriter streamed into `file`; returns the archive's sha256 and size. */
async function writeTar(file: string, fill: (tar: TarWriter) => Promise<void>): Promise<{ digest: string; size: number }> {
  const tar = new TarWriter({ mtime: 0 });
  const hash = new Hash();
  const tmp = `${file}.tmp`;
  const done = pipeline(tar.output, hash, createWriteStream(tmp));
  try {
    await fill(tar);
    await tar.finish();
  } catch (err) {
    tar.output.destroy(err as Error);
    await done.catch(() => {});
    throw err;
  }
  await done;
  await rename(tmp, file);
  return { digest: `sha256:${hash.hash.digest('hex')}`, size: hash.bytes };
}

async function cached<T>(dir: string, version: string): Promise<T | undefined> {
  const stamp = path.join(dir, STAMP);
  if (!existsSync(stamp)) return undefined;
  const s = JSON.parse(await readFile(stamp, 'utf8')) as { version: string; info: T };
  return s.version === version ? s.info : undefined;
}

async function stampDir(dir: string, version: string, info: unknown): Promise<void> {
  await writeFile(path.join(dir, STAMP), JSON.stringify({ version, info }, null, 2));
}

// --- docker save input --------------------------------------------------------------------

export interface DockerSaveInput {
  file: string;
  /** Archive size in bytes. */
  size: number;
  /** Image references (`docker-archive:FILE:REF` picks one). */
  refs: string[];
  /** Unique uncompressed layer tar bytes in the archive. */
  layerBytes: number;
  /** Of the layer file content: text-like bytes and incompressible (keystream) bytes. */
  textBytes: number;
  randomBytes: number;
}

const DSAVE_VERSION = 'dsave-v2';
/** Layers by name and target size; images list their layers bottom-up. */
const DSAVE_LAYERS: Array<{ name: string; size: number }> = [
  { name: 'base', size: 90e6 },
  { name: 'runtime', size: 50e6 },
  { name: 'app1', size: 20e6 },
  { name: 'app2', size: 20e6 },
  { name: 'app3', size: 20e6 },
];
const DSAVE_IMAGES: Array<{ ref: string; layers: string[] }> = [
  { ref: 'bench/app1:1.0', layers: ['base', 'runtime', 'app1'] },
  { ref: 'bench/app2:1.0', layers: ['base', 'runtime', 'app2'] },
  { ref: 'bench/app3:1.0', layers: ['base', 'app3'] },
];

export async function generateDockerSave(dir: string): Promise<DockerSaveInput> {
  const hit = await cached<DockerSaveInput>(dir, DSAVE_VERSION);
  if (hit && existsSync(hit.file)) return hit;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  let textBytes = 0;
  let randomBytes = 0;
  const layers = new Map<string, { file: string; digest: string; size: number }>();
  for (const [li, l] of DSAVE_LAYERS.entries()) {
    const file = path.join(dir, `${l.name}.layer.tar`);
    const r = prng(1000 + li);
    const res = await writeTar(file, async (tar) => {
      let left = l.size;
      let n = 0;
      await tar.addDir(`${l.name}`);
      while (left > 0) {
        const size = Math.min(left, 1024 + Math.floor(r() * r() * 2 * CHUNK));
        const random = r() < 0.2;
        const name = `${l.name}/${random ? 'assets' : 'src'}-${String(n).padStart(5, '0')}.${random ? 'bin' : 'txt'}`;
        const chunks = random ? randomChunks(`${l.name}/${n}`, size) : textChunks(li * 100000 + n + 1, size);
        await tar.addFile(
          name,
          size,
          (async function* () {
            yield* chunks;
          })(),
        );
        if (random) randomBytes += size;
        else textBytes += size;
        left -= size;
        n++;
      }
    });
    layers.set(l.name, { file, ...res });
  }
  const archive = path.join(dir, 'docker-save.tar');
  const hexOf = (d: string): string => d.slice('sha256:'.length);
  const manifest: Array<{ Config: string; RepoTags: string[]; Layers: string[] }> = [];
  const repositories: Record<string, Record<string, string>> = {};
  const { size } = await writeTar(archive, async (tar) => {
    for (const l of layers.values()) {
      await tar.addDir(hexOf(l.digest));
      await tar.addFile(`${hexOf(l.digest)}/VERSION`, Buffer.from('1.0'));
      await tar.addFile(`${hexOf(l.digest)}/layer.tar`, l.size, createReadStream(l.file, { highWaterMark: CHUNK }));
    }
    for (const img of DSAVE_IMAGES) {
      const diffIds = img.layers.map((n) => layers.get(n)!.digest);
      const config = Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          created: '2024-01-01T00:00:00Z',
          config: { Env: ['PATH=/usr/local/bin:/usr/bin:/bin'], Cmd: ['/bin/sh'] },
          rootfs: { type: 'layers', diff_ids: diffIds },
          history: img.layers.map((n) => ({ created: '2024-01-01T00:00:00Z', created_by: `bench layer ${n}` })),
        }),
      );
      const cfgName = `${createHash('sha256').update(config).digest('hex')}.json`;
      await tar.addFile(cfgName, config);
      manifest.push({ Config: cfgName, RepoTags: [img.ref], Layers: diffIds.map((d) => `${hexOf(d)}/layer.tar`) });
      const [repo, tag] = img.ref.split(':') as [string, string];
      (repositories[repo] ??= {})[tag] = hexOf(diffIds.at(-1)!);
    }
    await tar.addFile('manifest.json', Buffer.from(JSON.stringify(manifest)));
    await tar.addFile('repositories', Buffer.from(JSON.stringify(repositories)));
  });
  for (const l of layers.values()) await rm(l.file);
  const info: DockerSaveInput = {
    file: archive,
    size,
    refs: DSAVE_IMAGES.map((i) => i.ref),
    layerBytes: [...layers.values()].reduce((n, l) => n + l.size, 0),
    textBytes,
    randomBytes,
  };
  await stampDir(dir, DSAVE_VERSION, info);
  return info;
}

// --- one 2 GiB layer ------------------------------------------------------------------------

export interface BigLayerLayout {
  dir: string;
  ref: string;
  layerSize: number;
}

const BIG_VERSION = 'big-v1';
const BIG_FILES = 8;
const BIG_FILE_SIZE = 256 * CHUNK;

export async function generateBigLayerLayout(dir: string): Promise<BigLayerLayout> {
  const hit = await cached<BigLayerLayout>(dir, BIG_VERSION);
  if (hit) return hit;
  await rm(dir, { recursive: true, force: true });
  const blobs = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const tmpLayer = path.join(dir, 'layer.tar');
  const layer = await writeTar(tmpLayer, async (tar) => {
    for (let f = 0; f < BIG_FILES; f++) {
      const block = keystream(`big/${f}`)(CHUNK);
      await tar.addFile(
        `data/part-${f}.bin`,
        BIG_FILE_SIZE,
        (async function* () {
          for (let i = 0; i < BIG_FILE_SIZE / CHUNK; i++) yield block;
        })(),
      );
    }
  });
  const hexOf = (d: string): string => d.slice('sha256:'.length);
  await rename(tmpLayer, path.join(blobs, hexOf(layer.digest)));
  const put = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    await writeFile(path.join(blobs, hexOf(digest)), bytes);
    return { digest, size: bytes.length };
  };
  const config = await put(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [layer.digest] } })),
  );
  const manifest = await put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
      }),
    ),
  );
  const ref = 'big-2g';
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...manifest, annotations: { 'org.opencontainers.image.ref.name': ref } },
      ],
    }),
  );
  const info: BigLayerLayout = { dir, ref, layerSize: (await stat(path.join(blobs, hexOf(layer.digest)))).size };
  await stampDir(dir, BIG_VERSION, info);
  return info;
}
