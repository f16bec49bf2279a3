/**
 * The scale corpus: N small images written straight into a docker-registry's filesystem storage
 * (distribution's layout), for measuring how ferry's cost grows with the number of images.
 *
 * Every image has the same base layer (shared by all) and one small layer of its own; every
 * 50th image is a multi-platform index over two platform manifests (linux/amd64 and
 * linux/arm64, each with its own layer on the shared base). Images spread over repositories
 * four tags each, so tag and repository tables grow too. The content is a function of the
 * image number only: generating 4N images writes the first N exactly as generating N does.
 *
 * Writing files instead of pushing keeps generation at a few seconds for thousands of images;
 * the registry must be started after the storage is written (it caches nothing it has not
 * read, but a running registry could be mid-way through its own writes).
 */
import { createHash } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';

export interface ScaleImage {
  repo: string;
  tag: string;
  digest: string;
  /** A multi-platform index (its children live in the same repository). */
  index: boolean;
}

const sha = (b: Uint8Array): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** One ustar member holding `content` as `name`, plus the end-of-archive blocks. Fixed mtime: deterministic. */
function tarOf(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
  header.write('00000000000\0', 136);
  header.write('        ', 148); // checksum field counts as spaces while summing
  header.write('0', 156);
  header.write('ustar\0', 257);
  header.write('00', 263);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
}

interface Layer {
  bytes: Buffer;
  digest: string;
  diffId: string;
}

function layer(name: string, text: string): Layer {
  const tar = tarOf(name, Buffer.from(text));
  const bytes = gzipSync(tar, { level: 6 });
  return { bytes, digest: sha(bytes), diffId: sha(tar) };
}

const MT = {
  manifest: 'application/vnd.oci.image.manifest.v1+json',
  index: 'application/vnd.oci.image.index.v1+json',
  config: 'application/vnd.oci.image.config.v1+json',
  layer: 'application/vnd.oci.image.layer.v1.tar+gzip',
};

/** Writes blobs once each and the links a repository needs; remembers what it wrote. */
class Storage {
  private readonly written = new Set<string>();
  private readonly dirs = new Set<string>();
  constructor(private readonly root: string) {}

  private async mkdirOnce(dir: string): Promise<void> {
    if (this.dirs.has(dir)) return;
    await mkdir(dir, { recursive: true });
    this.dirs.add(dir);
  }

  private async link(file: string, digest: string): Promise<void> {
    await this.mkdirOnce(path.dirname(file));
    await writeFile(file, digest);
  }

  private repoDir(repo: string): string {
    return path.join(this.root, 'docker', 'registry', 'v2', 'repositories', repo);
  }

  async blob(repo: string, bytes: Buffer, digest = sha(bytes)): Promise<string> {
    const h = digest.slice('sha256:'.length);
    if (!this.written.has(digest)) {
      const dir = path.join(this.root, 'docker', 'registry', 'v2', 'blobs', 'sha256', h.slice(0, 2), h);
      await this.mkdirOnce(dir);
      await writeFile(path.join(dir, 'data'), bytes);
      this.written.add(digest);
    }
    await this.link(path.join(this.repoDir(repo), '_layers', 'sha256', h, 'link'), digest);
    return digest;
  }

  async manifest(repo: string, bytes: Buffer): Promise<string> {
    const digest = sha(bytes);
    const h = digest.slice('sha256:'.length);
    if (!this.written.has(digest)) {
      const dir = path.join(this.root, 'docker', 'registry', 'v2', 'blobs', 'sha256', h.slice(0, 2), h);
      await this.mkdirOnce(dir);
      await writeFile(path.join(dir, 'data'), bytes);
      this.written.add(digest);
    }
    await this.link(path.join(this.repoDir(repo), '_manifests', 'revisions', 'sha256', h, 'link'), digest);
    return digest;
  }

  async tag(repo: string, tag: string, digest: string): Promise<void> {
    const h = digest.slice('sha256:'.length);
    const tagDir = path.join(this.repoDir(repo), '_manifests', 'tags', tag);
    await this.link(path.join(tagDir, 'current', 'link'), digest);
    await this.link(path.join(tagDir, 'index', 'sha256', h, 'link'), digest);
  }
}

async function platformImage(st: Storage, repo: string, base: Layer, own: Layer, arch: string): Promise<{ bytes: Buffer; digest: string }> {
  await st.blob(repo, base.bytes, base.digest);
  await st.blob(repo, own.bytes, own.digest);
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [base.diffId, own.diffId] },
    }),
  );
  const configDigest = await st.blob(repo, config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.manifest,
      config: { mediaType: MT.config, digest: configDigest, size: config.length },
      layers: [
        { mediaType: MT.layer, digest: base.digest, size: base.bytes.length },
        { mediaType: MT.layer, digest: own.digest, size: own.bytes.length },
      ],
    }),
  );
  return { bytes: manifest, digest: await st.manifest(repo, manifest) };
}

/** Where image `i` lives: repositories of four tags each. */
export function scaleName(i: number): { repo: string; tag: string } {
  return { repo: `scale/app${Math.floor(i / 4)}`, tag: `v${i % 4}` };
}

/** Write images 0..n-1 into the registry storage at `root` (created if needed). */
export async function generateScaleImages(root: string, n: number): Promise<ScaleImage[]> {
  const st = new Storage(root);
  const base = layer('base.txt', 'the base layer every scale image shares\n'.repeat(64));
  const images: ScaleImage[] = [];
  for (let i = 0; i < n; i++) {
    const { repo, tag } = scaleName(i);
    if (i % 50 === 49) {
      const children = [];
      for (const arch of ['amd64', 'arm64']) {
        const own = layer('own.txt', `image ${i} ${arch}\n`);
        const m = await platformImage(st, repo, base, own, arch);
        children.push({ mediaType: MT.manifest, digest: m.digest, size: m.bytes.length, platform: { architecture: arch, os: 'linux' } });
      }
      const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MT.index, manifests: children }));
      const digest = await st.manifest(repo, index);
      await st.tag(repo, tag, digest);
      images.push({ repo, tag, digest, index: true });
    } else {
      const own = layer('own.txt', `image ${i}\n`);
      const m = await platformImage(st, repo, base, own, 'amd64');
      await st.tag(repo, tag, m.digest);
      images.push({ repo, tag, digest: m.digest, index: false });
    }
  }
  return images;
}
