import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '../../../src/commands/pull.js';
import { sha256 } from '../../../src/oci/digest.js';
import { parsePlatform } from '../../../src/oci/platform.js';
import { LayoutSource } from '../../../src/transports/oci/source.js';
import { OciArchive, OciArchiveSource } from '../../../src/transports/oci-archive/source.js';
import { sniffCompression } from '../../../src/transports/oci-archive/archive.js';
import { headerFor } from '../../../src/tar/format.js';
import { TarWriter } from '../../../src/tar/writer.js';
import { fixture, HAVE_FIXTURES } from '../../helpers/fixtures.js';
import { collect, rejection } from '../../helpers/streams.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ferry-oci-archive-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function writeTar(name: string, fn: (t: TarWriter) => Promise<void>): Promise<string> {
  const t = new TarWriter();
  const out = collect(t.output);
  await fn(t);
  await t.finish();
  const file = path.join(work, name);
  await writeFile(file, await out);
  return file;
}

/** A minimal one-image OCI layout as tar members. */
async function tinyLayout(t: TarWriter, extra?: (t: TarWriter) => Promise<void>): Promise<{ manifestDigest: string; layer: Buffer }> {
  const layer = Buffer.from('not really a tar, but bytes are bytes');
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  await t.addFile('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
  await t.addFile(
    'index.json',
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: sha256(manifest),
            size: manifest.length,
            annotations: { 'org.opencontainers.image.ref.name': 'v1' },
          },
        ],
      }),
    ),
  );
  for (const b of [config, manifest]) await t.addFile(`blobs/sha256/${sha256(b).slice(7)}`, b);
  await extra?.(t);
  if (!extra) await t.addFile(`blobs/sha256/${sha256(layer).slice(7)}`, layer);
  return { manifestDigest: sha256(manifest), layer };
}

describe('oci-archive over crafted archives', () => {
  it('resolves by ref name, by digest and as the only image; reads blobs at their offsets', async () => {
    let info!: { manifestDigest: string; layer: Buffer };
    const file = await writeTar('tiny.tar', async (t) => {
      info = await tinyLayout(t);
    });
    for (const ref of [undefined, 'v1', info.manifestDigest]) {
      const src = await OciArchiveSource.open(file, ref);
      const root = await src.getRootManifest();
      expect(root.digest).toBe(info.manifestDigest);
      expect(sha256(root.bytes)).toBe(info.manifestDigest);
      const m = JSON.parse(root.bytes.toString()) as { layers: Array<{ digest: string; size: number; mediaType: string }> };
      const blob = await collect(src.openBlob(m.layers[0]!, { what: 'layer' }));
      expect(blob.equals(info.layer)).toBe(true);
      await src.close();
    }
    const src = await OciArchiveSource.open(file, 'nope');
    const err = await rejection(src.getRootManifest());
    expect(err.code).toBe('NOT_FOUND');
    expect(err.hint).toContain('v1');
  });

  it('reports a blob the archive lacks as BLOB_MISSING, on open and on read', async () => {
    const file = await writeTar('sparse.tar', async (t) => {
      await tinyLayout(t, async () => {});
    });
    const src = await OciArchiveSource.open(file, undefined);
    const m = JSON.parse((await src.getRootManifest()).bytes.toString()) as {
      layers: Array<{ digest: string; size: number; mediaType: string }>;
    };
    const err = await rejection(collect(src.openBlob(m.layers[0]!, { what: 'layer' })));
    expect(err.code).toBe('BLOB_MISSING');
    expect((await rejection(src.getManifest(m.layers[0]!.digest as `sha256:${string}`, undefined))).code).toBe('BLOB_MISSING');
  });

  it('refuses members named outside the archive', async () => {
    const base = await writeTar('dotdot-base.tar', async (t) => {
      await tinyLayout(t);
    });
    // TarWriter refuses such names; headerFor builds them. Insert one before the trailer.
    const bytes = await readFile(base);
    const file = path.join(work, 'dotdot.tar');
    await writeFile(
      file,
      Buffer.concat([bytes.subarray(0, bytes.length - 1024), headerFor({ name: '../../evil', type: 'file', size: 0 }), Buffer.alloc(1024)]),
    );
    const err = await rejection(OciArchive.open(file));
    expect(err.code).toBe('ARCHIVE_UNSAFE_PATH');
    expect(err.message).toContain('../../evil');
  });

  it('follows a blob symlink inside the archive but never outside it', async () => {
    let layerHex = '';
    const inside = await writeTar('link-inside.tar', async (t) => {
      const info = await tinyLayout(t, async (w) => {
        await w.addFile('store/layer', Buffer.from('not really a tar, but bytes are bytes'));
      });
      layerHex = sha256(info.layer).slice(7);
      await t.addSymlink(`blobs/sha256/${layerHex}`, '../../store/layer');
    });
    const src = await OciArchiveSource.open(inside, undefined);
    const m = JSON.parse((await src.getRootManifest()).bytes.toString()) as {
      layers: Array<{ digest: string; size: number; mediaType: string }>;
    };
    expect((await collect(src.openBlob(m.layers[0]!, { what: 'layer' }))).toString()).toContain('bytes are bytes');

    for (const [name, target] of [
      ['escape-rel.tar', '../../../etc/passwd'],
      ['escape-abs.tar', '/etc/passwd'],
    ]) {
      const file = await writeTar(name!, async (t) => {
        await tinyLayout(t, async () => {});
        await t.addSymlink(`blobs/sha256/${layerHex}`, target!);
      });
      const s = await OciArchiveSource.open(file, undefined);
      const err = await rejection(collect(s.openBlob(m.layers[0]!, { what: 'layer' })));
      expect(err.code).toBe('ARCHIVE_LINK_ESCAPE');
      expect(err.message).toContain(target);
    }
  });

  it('refuses compressed archives by their magic bytes, naming the compression', async () => {
    expect(sniffCompression(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))).toBe('xz');
    expect(sniffCompression(Buffer.from('BZh9'))).toBe('bzip2');
    expect(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))).toBe('zstd');
    expect(sniffCompression(Buffer.from([0x1f, 0x8b, 0x08]))).toBe('gzip');
    const file = path.join(work, 'fake.tar');
    await writeFile(file, Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2, 3]));
    const err = await rejection(OciArchive.open(file));
    expect(err.code).toBe('UNSUPPORTED_COMPRESSION');
    expect(err.message).toContain('xz');
  });

  it('says what a missing file or a non-layout tar is', async () => {
    expect((await rejection(OciArchive.open(path.join(work, 'absent.tar')))).code).toBe('NOT_FOUND');
    const file = await writeTar('docker-ish.tar', async (t) => {
      await t.addFile('manifest.json', Buffer.from('[]'));
    });
    const err = await rejection(OciArchive.open(file));
    expect(err.code).toBe('LAYOUT_INVALID');
    expect(err.hint).toContain('docker-archive:');
  });
});

describe.skipIf(!HAVE_FIXTURES)('oci-archive over third-party fixtures', () => {
  const helloWorld = fixture('oras-go/content/oci/testdata/hello-world.tar');
  const prefixed = fixture('oras-go/content/oci/testdata/hello-world-prefixed-path.tar');

  for (const file of [helloWorld, prefixed]) {
    const label = path.basename(file);
    it(`${label}: a sparse Docker manifest list; the amd64 child reads, the others are BLOB_MISSING`, async () => {
      const archive = await OciArchive.open(file);
      expect(archive.listImages()).toHaveLength(1);
      const src = new OciArchiveSource(archive, 'latest');
      const root = await src.getRootManifest();
      expect(root.digest).toBe('sha256:faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af');
      expect(root.mediaType).toBe('application/vnd.docker.distribution.manifest.list.v2+json');
      const list = JSON.parse(root.bytes.toString()) as {
        manifests: Array<{ digest: `sha256:${string}`; mediaType: string; platform: { os: string; architecture: string } }>;
      };
      expect(list.manifests.length).toBe(11);
      const amd64 = list.manifests.find((d) => d.platform.os === 'linux' && d.platform.architecture === 'amd64')!;
      const child = await src.getManifest(amd64.digest, amd64.mediaType);
      expect(sha256(child.bytes)).toBe(amd64.digest);
      const others = list.manifests.filter((d) => d !== amd64);
      for (const d of others) expect((await rejection(src.getManifest(d.digest, d.mediaType))).code).toBe('BLOB_MISSING');
      await src.close();
    });

    it(`${label}: pull of the whole image fails BLOB_MISSING; linux/amd64 works`, async () => {
      const whole = await pull({ refs: [`oci-archive:${file}`], store: path.join(work, `store-all-${label}`) });
      expect(whole.failures.map((f) => f.errorCode)).toEqual(['BLOB_MISSING']);
      const store = path.join(work, `store-amd64-${label}`);
      const one = await pull({ refs: [`oci-archive:${file}:latest`], store, platforms: [parsePlatform('linux/amd64')] });
      expect(one.failures).toEqual([]);
      expect(one.images).toMatchObject([{ name: 'docker.io/library/hello-world:latest', status: 'done', platforms: ['linux/amd64'] }]);
      const index = JSON.parse(await readFile(path.join(store, 'index.json'), 'utf8')) as { manifests: unknown[] };
      expect(index.manifests).toHaveLength(1);
    });
  }

  it('hello-world-v25.tar as an OCI archive holds no images (manifests: null), with a docker-archive hint', async () => {
    const file = fixture('go-containerregistry/pkg/v1/tarball/testdata/hello-world-v25.tar');
    const archive = await OciArchive.open(file);
    expect(archive.listImages()).toEqual([]);
    const err = await rejection(new OciArchiveSource(archive, undefined).getRootManifest());
    expect(err.code).toBe('NOT_FOUND');
    expect(err.hint).toContain('docker-archive:');
  });

  it('zarf scratch.tar (Docker 25+ save) reads as docker.io/library/scratch:latest through the OCI view', async () => {
    const file = fixture('zarf/src/pkg/packager/testdata/find-images/image-archives/scratch.tar');
    const src = await OciArchiveSource.open(file, undefined);
    const desc = await src.rootDescriptor();
    expect(desc.annotations?.['io.containerd.image.name']).toBe('docker.io/library/scratch:latest');
    const root = await src.getRootManifest();
    expect(sha256(root.bytes)).toBe(desc.digest);
  });

  it('agrees with the oci: transport on a layout directory that was tarred up (GNU tar, ./ names)', async () => {
    const dir = fixture('zarf/src/pkg/images/testdata/docker-graph-driver-image-store');
    const file = path.join(work, 'graph-driver.tar');
    execFileSync('tar', ['-cf', file, '-C', dir, '.']);
    const fromDir = await LayoutSource.open(dir, undefined);
    const fromTar = await OciArchiveSource.open(file, undefined);
    const a = await fromDir.getRootManifest();
    const b = await fromTar.getRootManifest();
    expect(b.digest).toBe(a.digest);
    expect(b.bytes.equals(a.bytes)).toBe(true);
    const m = JSON.parse(b.bytes.toString()) as {
      config: { digest: string; size: number; mediaType: string };
      layers: Array<{ digest: string; size: number; mediaType: string }>;
    };
    for (const d of [m.config, ...m.layers]) {
      const x = await collect(fromTar.openBlob(d, { what: 'blob' }));
      expect(sha256(x)).toBe(d.digest);
      expect(x.length).toBe(d.size);
    }
  });
});
