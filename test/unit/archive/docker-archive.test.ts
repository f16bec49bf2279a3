import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '../../../src/commands/pull.js';
import { sha256 } from '../../../src/oci/digest.js';
import type { Descriptor } from '../../../src/oci/manifest.js';
import { DockerArchive, DockerArchiveSource } from '../../../src/transports/docker-archive/source.js';
import { headerFor } from '../../../src/tar/format.js';
import { TarWriter } from '../../../src/tar/writer.js';
import { fixture, HAVE_FIXTURES } from '../../helpers/fixtures.js';
import { collect, rejection } from '../../helpers/streams.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ferry-docker-archive-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

type Desc = Descriptor;
interface Schema2 {
  schemaVersion: number;
  mediaType: string;
  config: Desc;
  layers: Desc[];
}

async function tarBytes(fn: (t: TarWriter) => Promise<void>): Promise<Buffer> {
  const t = new TarWriter();
  const out = collect(t.output);
  await fn(t);
  await t.finish();
  return out;
}

async function writeTar(name: string, fn: (t: TarWriter) => Promise<void>): Promise<string> {
  const file = path.join(work, name);
  await writeFile(file, await tarBytes(fn));
  return file;
}

async function manifestOf(src: DockerArchiveSource): Promise<Schema2> {
  const root = await src.getRootManifest();
  expect(sha256(root.bytes)).toBe(root.digest);
  return JSON.parse(root.bytes.toString()) as Schema2;
}

/** Every blob of the image, read through the source and checked against its descriptor. */
async function readAllBlobs(src: DockerArchiveSource): Promise<Schema2> {
  const m = await manifestOf(src);
  for (const d of [m.config, ...m.layers]) {
    const bytes = await collect(src.openBlob(d, { what: d.digest }));
    expect(bytes.length).toBe(d.size);
    expect(sha256(bytes)).toBe(d.digest);
  }
  return m;
}

/** A one-layer docker save archive; `diffId` overrides the config's (to lie). */
async function craftedArchive(name: string, layerFile: Buffer, opts: { diffId?: string; layerName?: string } = {}): Promise<string> {
  const layerTar = await tarBytes(async (t) => {
    await t.addFile('hello.txt', Buffer.from('hello\n'));
  });
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [opts.diffId ?? sha256(layerTar)] } }),
  );
  const layerName = opts.layerName ?? 'abc/layer.tar';
  return writeTar(name, async (t) => {
    await t.addFile(`${sha256(config).slice(7)}.json`, config);
    await t.addFile(layerName, layerFile.length ? layerFile : layerTar);
    await t.addFile(
      'manifest.json',
      Buffer.from(JSON.stringify([{ Config: `${sha256(config).slice(7)}.json`, RepoTags: ['crafted:1'], Layers: [layerName] }])),
    );
  });
}

describe('docker-archive over crafted archives', () => {
  it('serves a plain tar layer as rootfs.diff.tar and a gzip one as rootfs.diff.tar.gzip, both verified against diff_ids', async () => {
    const plain = await DockerArchiveSource.open(await craftedArchive('plain.tar', Buffer.alloc(0)), 'crafted:1');
    const pm = await readAllBlobs(plain);
    expect(pm.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(pm.config.mediaType).toBe('application/vnd.docker.container.image.v1+json');
    expect(pm.layers[0]!.mediaType).toBe('application/vnd.docker.image.rootfs.diff.tar');

    const layerTar = await tarBytes(async (t) => {
      await t.addFile('hello.txt', Buffer.from('hello\n'));
    });
    const gz = gzipSync(layerTar);
    const gzipped = await DockerArchiveSource.open(await craftedArchive('gz.tar', gz, { layerName: 'abc.tar.gz' }), undefined);
    const gm = await readAllBlobs(gzipped);
    expect(gm.layers[0]).toEqual({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: sha256(gz) });
    // Key order as containers/image serialises schema2.
    expect(Object.keys(gm)).toEqual(['schemaVersion', 'mediaType', 'config', 'layers']);
    expect(Object.keys(gm.config)).toEqual(['mediaType', 'size', 'digest']);
  });

  it('fails a layer whose uncompressed content does not match its diff_id (DIFF_ID_MISMATCH)', async () => {
    const wrong = sha256('something else');
    const plain = await DockerArchiveSource.open(await craftedArchive('lie-plain.tar', Buffer.alloc(0), { diffId: wrong }), undefined);
    const pm = await manifestOf(plain);
    const e1 = await rejection(collect(plain.openBlob(pm.layers[0]!, { what: 'layer' })));
    expect(e1.code).toBe('DIFF_ID_MISMATCH');
    expect(e1.message).toContain(wrong);

    const layerTar = await tarBytes(async (t) => {
      await t.addFile('other.txt', Buffer.from('other\n'));
    });
    const gzipped = await DockerArchiveSource.open(await craftedArchive('lie-gz.tar', gzipSync(layerTar), { diffId: wrong }), undefined);
    const gm = await manifestOf(gzipped);
    const e2 = await rejection(collect(gzipped.openBlob(gm.layers[0]!, { what: 'layer' })));
    expect(e2.code).toBe('DIFF_ID_MISMATCH');
  });

  it('a corrupt gzip layer larger than the gunzip buffer fails the copy with a named error (it used to stall and exit 0)', async () => {
    // Incompressible text so the gzip stream is a few MB: gunzip's buffer fills, and the flipped
    // bytes make it fail while the verifier waits for it to drain.
    let x = 1;
    const text = Buffer.alloc(3_000_000);
    for (let i = 0; i < text.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      text[i] = 0x41 + ((x >>> 16) % 26);
    }
    const layerTar = await tarBytes(async (t) => {
      await t.addFile('data.txt', text);
    });
    const gz = Buffer.from(gzipSync(layerTar));
    for (let i = gz.length >> 1; i < (gz.length >> 1) + 64; i++) gz[i] = gz[i]! ^ 0xff;
    const file = await craftedArchive('corrupt-gz.tar', gz, { diffId: sha256(layerTar), layerName: 'l/layer.tar.gz' });
    const store = path.join(work, 'corrupt-store');
    const r = await pull({ refs: [`docker-archive:${file}`], store });
    expect(r.failures).toEqual([expect.objectContaining({ name: 'docker.io/library/crafted:1', errorCode: 'DIFF_ID_MISMATCH' })]);
    expect(JSON.parse(await readFile(path.join(store, 'index.json'), 'utf8'))).toMatchObject({ manifests: [] });
  });

  it('one layer file listed for two different diff_ids is refused (only one of them could be checked)', async () => {
    const layerTar = await tarBytes(async (t) => {
      await t.addFile('hello.txt', Buffer.from('hello\n'));
    });
    const gz = gzipSync(layerTar);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [sha256(layerTar), sha256('another layer')] },
      }),
    );
    const file = await writeTar('dup-layer.tar', async (t) => {
      await t.addFile(`${sha256(config).slice(7)}.json`, config);
      await t.addFile('l.tar.gz', gz);
      await t.addFile(
        'manifest.json',
        Buffer.from(JSON.stringify([{ Config: `${sha256(config).slice(7)}.json`, RepoTags: ['dup:1'], Layers: ['l.tar.gz', 'l.tar.gz'] }])),
      );
    });
    const src = await DockerArchiveSource.open(file, undefined);
    const e = await rejection(src.getRootManifest());
    expect(e.code).toBe('ARCHIVE_INVALID');
    expect(e.message).toContain('two different diff_ids');
    await src.close();
  });

  it('refuses a layer symlink that leaves the archive, and members named with ..', async () => {
    const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [sha256('x')] } }));
    const file = await writeTar('escape.tar', async (t) => {
      await t.addFile('c.json', config);
      await t.addSymlink('abc/layer.tar', '../../../../etc/passwd');
      await t.addFile('manifest.json', Buffer.from(JSON.stringify([{ Config: 'c.json', RepoTags: null, Layers: ['abc/layer.tar'] }])));
    });
    const src = await DockerArchiveSource.open(file, undefined);
    const err = await rejection(src.getRootManifest());
    expect(err.code).toBe('ARCHIVE_LINK_ESCAPE');
    expect(err.message).toContain('abc/layer.tar');

    const bytes = await readFile(file);
    const dotdot = path.join(work, 'dotdot.tar');
    await writeFile(
      dotdot,
      Buffer.concat([
        bytes.subarray(0, bytes.length - 1024),
        headerFor({ name: 'abc/../../x', type: 'file', size: 0 }),
        Buffer.alloc(1024),
      ]),
    );
    const e2 = await rejection(DockerArchive.open(dotdot));
    expect(e2.code).toBe('ARCHIVE_UNSAFE_PATH');
  });

  it('rejects manifest.json that is null, malformed, or disagrees with the config', async () => {
    const nul = await writeTar('null.tar', async (t) => {
      await t.addFile('manifest.json', Buffer.from('null'));
    });
    expect((await rejection(DockerArchive.open(nul))).message).toMatch(/null/);
    const bad = await writeTar('bad.tar', async (t) => {
      await t.addFile('manifest.json', Buffer.from('[{"Config": 5}]'));
    });
    expect((await rejection(DockerArchive.open(bad))).code).toBe('ARCHIVE_INVALID');
    const config = Buffer.from(JSON.stringify({ rootfs: { type: 'layers', diff_ids: [] } }));
    const count = await writeTar('count.tar', async (t) => {
      await t.addFile('c.json', config);
      await t.addFile('l.tar', Buffer.alloc(1024));
      await t.addFile('manifest.json', Buffer.from(JSON.stringify([{ Config: 'c.json', Layers: ['l.tar'] }])));
    });
    const src = await DockerArchiveSource.open(count, undefined);
    expect((await rejection(src.getRootManifest())).message).toMatch(/1 layers but the config has 0 diff_ids/);
  });
});

describe.skipIf(!HAVE_FIXTURES)('docker-archive over third-party fixtures', () => {
  const gcr = (f: string) => fixture('go-containerregistry/pkg/v1', f);

  it('almostempty.tar (legacy layout): docker.io/library/emptyimage:latest, config 9d7f147c…, one 1536-byte layer = diff_id', async () => {
    const file = fixture('containers-image/docker/archive/fixtures/almostempty.tar');
    const archive = await DockerArchive.open(file);
    expect(archive.listImages().map((i) => i.repoTags)).toEqual([['docker.io/library/emptyimage:latest']]);
    for (const ref of [undefined, 'emptyimage', 'emptyimage:latest', 'docker.io/library/emptyimage:latest', '@0']) {
      const src = await DockerArchiveSource.open(file, ref);
      const m = await readAllBlobs(src);
      // Same config descriptor skopeo 1.9.3 reports (`skopeo inspect --raw docker-archive:…`).
      expect(m.config).toEqual({
        mediaType: 'application/vnd.docker.container.image.v1+json',
        size: 1294,
        digest: 'sha256:9d7f147c0d0c4d4538a04c7ef385809e56eb1aac7bf800fbe976612188025b68',
      });
      expect(m.layers).toEqual([
        {
          mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
          size: 1536,
          digest: 'sha256:0b916d257bd406111a3fced53f81b47de9a30f7c7d514a89769b3483aaddca7e',
        },
      ]);
      await src.close();
    }
    expect((await rejection(DockerArchiveSource.open(file, 'other:tag'))).code).toBe('NOT_FOUND');
    expect((await rejection(DockerArchiveSource.open(file, '@1'))).code).toBe('NOT_FOUND');
    expect((await rejection(DockerArchiveSource.open(file, `emptyimage@${sha256('x')}`))).code).toBe('USAGE');
  });

  it('source_image_with_empty_layer_history.tar: the config digest comes from the bytes (05b5ec12…), not the file name', async () => {
    const src = await DockerArchiveSource.open(gcr('mutate/testdata/source_image_with_empty_layer_history.tar'), undefined);
    const m = await readAllBlobs(src);
    expect(m.config.digest).toBe('sha256:05b5ec1290589606ce19fabb1fb331f004acd9f618b9b4e813721be1a03a0712');
    expect(m.config.size).toBe(462);
    expect(src.image.config).toMatch(/^6e0b0504/);
  });

  it('test_bundle.tar: two images; none chosen is refused, tags (normalised) and @N select', async () => {
    const file = gcr('tarball/testdata/test_bundle.tar');
    const archive = await DockerArchive.open(file);
    expect(archive.listImages().map((i) => [i.index, i.repoTags, i.rawRepoTags])).toEqual([
      [0, ['docker.io/library/test_image_2:latest'], ['test_image_2']],
      [1, ['docker.io/library/test_image_1:latest'], ['test_image_1']],
    ]);
    const err = await rejection(DockerArchiveSource.open(file, undefined));
    expect(err.code).toBe('ARCHIVE_AMBIGUOUS');
    expect(err.message).toContain('archive holds 2 images');
    const one = await DockerArchiveSource.open(file, 'test_image_1');
    expect(one.image.index).toBe(1);
    expect(one.name).toBe('docker.io/library/test_image_1:latest');
    await readAllBlobs(one);
    const zero = await DockerArchiveSource.open(file, '@0');
    expect(zero.name).toBe('docker.io/library/test_image_2:latest');
    await readAllBlobs(zero);
    expect((await rejection(DockerArchiveSource.open(file, '@x'))).code).toBe('USAGE');
  });

  for (const [f, tag] of [
    ['test_image_1.tar', 'docker.io/bazel/v1/tarball:test_image_1'],
    ['test_image_2.tar', 'docker.io/bazel/v1/tarball:test_image_2'],
    ['test_load_manifest.tar', 'docker.io/bazel/v1/tarball:test_image_1'],
  ] as const) {
    it(`${f}: loads as ${tag}`, async () => {
      const src = await DockerArchiveSource.open(gcr(`tarball/testdata/${f}`), `bazel/v1/tarball:${tag.split(':').pop()}`);
      expect(src.name).toBe(tag);
      await readAllBlobs(src);
    });
  }

  it('test_link.tar: a layer.tar symlinked to another image’s layer resolves inside the archive', async () => {
    const file = gcr('tarball/testdata/test_link.tar');
    const archive = await DockerArchive.open(file);
    expect(archive.listImages()).toHaveLength(2);
    const src = await DockerArchiveSource.open(file, 'bazel/v1/tarball:test_image_3');
    const m = await readAllBlobs(src);
    expect(m.layers).toHaveLength(2);
    const first = await DockerArchiveSource.open(file, '@0');
    const fm = await readAllBlobs(first);
    // The symlinked layer is the other image's layer.
    expect(m.layers[0]).toEqual(fm.layers[0]);
  });

  it('hello-world-v25.tar (Docker 25, index.json manifests: null): one untagged image via manifest.json', async () => {
    const file = gcr('tarball/testdata/hello-world-v25.tar');
    const archive = await DockerArchive.open(file);
    expect(archive.listImages()).toMatchObject([{ index: 0, repoTags: [] }]);
    const src = await DockerArchiveSource.open(file, undefined);
    expect(src.name).toBeUndefined();
    const m = await readAllBlobs(src);
    expect(m.config.digest).toBe('sha256:ee301c921b8aadc002973b2e0c3da17d701dcd994b606769a7e6eaa100b81d44');
    expect(m.layers).toEqual([
      {
        mediaType: 'application/vnd.docker.image.rootfs.diff.tar',
        size: 10752,
        digest: 'sha256:12660636fe55438cc3ae7424da7ac56e845cdb52493ff9cf949c47a7f57f8b43',
      },
    ]);
  });

  it('zarf scratch.tar (Docker 25+): docker.io/library/scratch:latest', async () => {
    const src = await DockerArchiveSource.open(fixture('zarf/src/pkg/packager/testdata/find-images/image-archives/scratch.tar'), undefined);
    expect(src.name).toBe('docker.io/library/scratch:latest');
    const m = await readAllBlobs(src);
    expect(m.config.digest).toBe('sha256:ff5d2db9dffa7bb128342ec1846e3c834048ff4b13af92f5857e20d5bf21ab53');
  });

  it('oras hello-world.tar (containerd export): the gzip layer is served as gzip and checked after gunzip', async () => {
    const src = await DockerArchiveSource.open(fixture('oras-go/content/oci/testdata/hello-world.tar'), undefined);
    expect(src.name).toBe('docker.io/library/hello-world:latest');
    const m = await readAllBlobs(src);
    expect(m.layers[0]).toEqual({
      mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
      size: 2479,
      digest: 'sha256:2db29710123e3e53a794f2694094b9b4338aa9ee5c40b930cb8063a1be392c54',
    });
  });

  it('whiteout_dir.tar (go-containerregistry variant): sha256:-named config, gzipped layers checked against diff_ids', async () => {
    const src = await DockerArchiveSource.open(gcr('mutate/testdata/whiteout_dir.tar'), undefined);
    expect(src.name).toBe('localhost:5000/whiteout:latest');
    const m = await readAllBlobs(src);
    expect(m.config.digest).toBe('sha256:92f1e3d53acdc7e137e73869abc4e87aba6614440a31723423790ca0d5db9111');
    expect(m.layers).toHaveLength(4);
    expect(m.layers.every((l) => l.mediaType === 'application/vnd.docker.image.rootfs.diff.tar.gzip')).toBe(true);
  });

  for (const f of ['mutate/testdata/source_image.tar', 'mutate/testdata/whiteout_image.tar', 'mutate/testdata/overwritten_file.tar']) {
    it(`${path.basename(f)} loads and every blob verifies`, async () => {
      const src = await DockerArchiveSource.open(gcr(f), undefined);
      expect(src.name).toMatch(/^docker\.io\/bazel\/pkg\/v1\/mutate:/);
      await readAllBlobs(src);
    });
  }

  it('refuses v0/v1 saves (no manifest.json, only repositories): LEGACY_ARCHIVE_UNSUPPORTED', async () => {
    for (const f of [fixture('moby/integration-cli/testdata/emptyLayer.tar'), gcr('tarball/testdata/no_manifest.tar')]) {
      const err = await rejection(DockerArchive.open(f));
      expect(err.code).toBe('LEGACY_ARCHIVE_UNSUPPORTED');
      expect(err.message).toContain('manifest.json');
    }
  });

  it('refuses null_manifest.tar and content.tar (not an image)', async () => {
    const n = await rejection(DockerArchive.open(gcr('tarball/testdata/null_manifest.tar')));
    expect(n.code).toBe('ARCHIVE_INVALID');
    expect(n.message).toMatch(/null/);
    const c = await rejection(DockerArchive.open(gcr('tarball/testdata/content.tar')));
    expect(c.code).toBe('ARCHIVE_INVALID');
    expect(c.message).toContain('does not contain manifest.json');
  });

  const hasXz = (() => {
    try {
      execFileSync('xz', ['--version']);
      return true;
    } catch {
      return false;
    }
  })();

  it('skopeo docker-two-images.tar.xz: refused as xz by default', async () => {
    const err = await rejection(DockerArchive.open(fixture('skopeo/systemtest/testdata/docker-two-images.tar.xz')));
    expect(err.code).toBe('UNSUPPORTED_COMPRESSION');
    expect(err.message).toContain('xz');
  });

  it.skipIf(!hasXz)('skopeo docker-two-images.tar.xz: with decompress, both images load and the symlinked layer resolves', async () => {
    const file = fixture('skopeo/systemtest/testdata/docker-two-images.tar.xz');
    const archive = await DockerArchive.open(file, { decompress: true });
    try {
      expect(archive.listImages().map((i) => i.repoTags)).toEqual([['example.com/empty:latest'], ['example.com/empty/but:different']]);
      const a = new DockerArchiveSource(archive, archive.select('example.com/empty'), 'example.com/empty');
      const b = new DockerArchiveSource(archive, archive.select('@1'), '@1');
      const am = await readAllBlobs(a);
      const bm = await readAllBlobs(b);
      expect(bm.layers[0]).toEqual(am.layers[0]);
    } finally {
      await archive.close();
    }
  });

  it('pull docker-archive: stores the image under its normalised tag, untagged ones by digest', async () => {
    const store = path.join(work, 'pull-store');
    const r = await pull({
      refs: [
        `docker-archive:${fixture('containers-image/docker/archive/fixtures/almostempty.tar')}`,
        `docker-archive:${gcr('tarball/testdata/test_bundle.tar')}:@1`,
        `docker-archive:${gcr('tarball/testdata/hello-world-v25.tar')}`,
      ],
      store,
    });
    expect(r.failures).toEqual([]);
    expect(r.images.map((i) => [i.name, i.status])).toEqual([
      ['docker.io/library/emptyimage:latest', 'done'],
      ['docker.io/library/test_image_1:latest', 'done'],
      [expect.stringMatching(/^@sha256:[a-f0-9]{64}$/), 'done'],
    ]);
    const index = JSON.parse(await readFile(path.join(store, 'index.json'), 'utf8')) as { manifests: unknown[] };
    expect(index.manifests).toHaveLength(3);
  });
});
