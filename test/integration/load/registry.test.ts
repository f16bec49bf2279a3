/**
 * ferry load into a real docker-registry (plain, htpasswd, token auth, TLS) and ferry mirror
 * between two: skopeo reads back every image, index and child, with the source digests.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { executeCopy } from '../../../src/copy/execute.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { load, type LoadOptions } from '../../../src/commands/load.js';
import { mirror } from '../../../src/commands/mirror.js';
import { onlyIntegrityFailures } from '../../../src/commands/report.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { sha256 } from '../../../src/oci/digest.js';
import { parseReference } from '../../../src/ref/reference.js';
import { parsePlatform } from '../../../src/oci/platform.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { runSkopeo } from '../../harness/tools.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { HAVE_FIXTURES, fixture } from '../../helpers/fixtures.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { pushSmallCorpus } from '../corpus-registry.js';
import { signedCorpusBundle } from './fixtures.js';
import { tarMembers } from './helpers-cli.js';
import { Readable } from 'node:stream';
import { planCopy } from '../../../src/copy/plan.js';
import type { ImageSource, ManifestBytes } from '../../../src/transports/types.js';
import { openRegistryDestination } from '../../../src/transports/registry/destination.js';
import { parseRegistryDestination } from '../../../src/transports/registry/names.js';

let corpus: CorpusManifest;
let work: string;
let bundle: string;
let pubKey: string;
let otherPub: string;

const fast: LoadOptions['retry'] = { baseDelayMs: 20, maxDelayMs: 200 };

beforeAll(async () => {
  work = createTempDir('load-registry');
  // auto: the uncompressed layer travels zstd-compressed and must come out byte-exact.
  ({ corpus, bundle, pubKey, otherPub } = await signedCorpusBundle(work));
}, 300_000);
afterAll(cleanupHarness);

/** Every distinct image of the corpus: full name → digest. */
function expected(): Map<string, string> {
  const out = new Map<string, string>();
  for (const i of corpus.images) out.set(parseReference(i.ref).toString(), i.digest);
  return out;
}

function skopeoTls(reg: RunningRegistry): string[] {
  const args = reg.certDir ? ['--tls-verify=true', '--cert-dir', reg.certDir] : ['--tls-verify=false'];
  if (reg.username) args.push('--creds', `${reg.username}:${reg.password}`);
  return args;
}

/** skopeo inspect --raw: the digest of the manifest bytes the registry serves. */
async function rawDigest(reg: RunningRegistry, ref: string): Promise<{ digest: string; bytes: Buffer }> {
  const r = await runSkopeo(['inspect', '--raw', ...skopeoTls(reg), `docker://${ref}`]);
  const bytes = Buffer.from(r.stdout, 'utf8');
  return { digest: sha256(bytes), bytes };
}

/** Every image, its index children included, has the source digest at `prefix`. */
async function assertLoaded(reg: RunningRegistry, prefix: string, names: Iterable<[string, string]>): Promise<void> {
  for (const [name, digest] of names) {
    const ref = parseReference(name);
    const dest = `${reg.host}/${prefix ? `${prefix}/` : ''}${ref.path}:${ref.tag}`;
    const got = await rawDigest(reg, dest);
    expect(got.digest, dest).toBe(digest);
    const doc = parseManifest(got.bytes, undefined, dest);
    if (doc.kind === 'index') {
      for (const child of doc.manifests) {
        const c = await rawDigest(reg, `${reg.host}/${prefix ? `${prefix}/` : ''}${ref.path}@${child.digest}`);
        expect(c.digest).toBe(child.digest);
      }
    }
  }
}

function access(reg: RunningRegistry): Partial<LoadOptions> {
  return {
    retry: fast,
    ...(reg.caFile ? { caFiles: [reg.caFile] } : {}),
    ...(reg.username ? { staticCredential: { kind: 'basic' as const, username: reg.username, password: reg.password! } } : {}),
  };
}

describe('load a bundle into a plain registry', () => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });

  it('pushes every image under the prefix with unchanged digests, then skips everything on a rerun', async () => {
    const first = await load({ source: bundle, to: `docker://${reg.host}/mirror`, key: pubKey, ...access(reg) });
    expect(first.failures).toEqual([]);
    expect(first.signature).toBe('valid');
    expect(first.images.every((i) => i.status === 'done' && !i.skipped)).toBe(true);
    expect(first.blobs.fetched).toBeGreaterThan(0);
    await assertLoaded(reg, 'mirror', expected());
    // The mapping names each source reference and where it went.
    for (const [name, digest] of expected()) {
      const ref = parseReference(name);
      expect(first.mapping[name]).toEqual({ destination: `${reg.host}/mirror/${ref.path}:${ref.tag}`, digest });
    }
    // The zstd-compressed-in-bundle layer arrived byte-exact: skopeo copies (verifying every blob).
    const raw = corpus.images.find((i) => i.repo === 'ferry-test/raw')!;
    const out = createTempDir('skopeo-out');
    await runSkopeo(['copy', '--src-tls-verify=false', `docker://${reg.host}/mirror/${raw.repo}:${raw.tag}`, `oci:${out}:x`]);

    const second = await load({ source: bundle, to: `docker://${reg.host}/mirror`, ...access(reg) });
    expect(second.failures).toEqual([]);
    expect(second.images.every((i) => i.skipped)).toBe(true);
    expect(second.blobs.fetched).toBe(0);
  });

  it('--scoped keeps the source registry as the first path component', async () => {
    const r = await load({ source: bundle, to: `docker://${reg.host}/scoped`, scoped: true, ...access(reg) });
    expect(r.failures).toEqual([]);
    // Each blob goes up once; the other repositories of this run that need it get a mount.
    expect(r.blobs.fetched).toBe(r.blobs.total);
    expect(r.blobs.mounted).toBeGreaterThan(0);
    const base = corpus.images.find((i) => i.repo === 'ferry-test/base')!;
    expect((await rawDigest(reg, `${reg.host}/scoped/docker.io/${base.repo}:${base.tag}`)).digest).toBe(base.digest);
  });

  it('refuses a bundle signed with another key, a damaged bundle, and loads nothing', async () => {
    await expect(load({ source: bundle, to: `docker://${reg.host}/wrongkey`, key: otherPub, ...access(reg) })).rejects.toMatchObject({
      code: 'BUNDLE_INVALID',
      exitCode: 3,
    });
    const tags = await fetch(`${reg.url}/v2/wrongkey/ferry-test/base/tags/list`);
    expect(tags.status).toBe(404);
  });
});

/** HEAD a manifest: the Docker-Content-Digest the registry answers with, undefined on 404. */
async function headDigest(reg: RunningRegistry, repo: string, ref: string): Promise<string | undefined> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, {
    method: 'HEAD',
    headers: {
      accept: [
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
        'application/vnd.docker.distribution.manifest.v2+json',
      ].join(', '),
    },
  });
  if (res.status === 404) return undefined;
  expect(res.status, `HEAD ${repo}/manifests/${ref}`).toBe(200);
  return res.headers.get('docker-content-digest') ?? undefined;
}

describe('load a bundle that fails verification: no tag moves', () => {
  it('an image whose content is there but whose tag points elsewhere keeps its old tag when another blob is bad', async () => {
    const reg = await startRegistry();
    const store = path.join(work, 'store');
    const to = `docker://${reg.host}/retag`;
    // Two indexes in one repository: multi:oci (A) and multi:docker.
    const a = corpus.images.find((i) => i.repo === 'ferry-test/multi' && i.tag === 'oci')!;
    const other = corpus.images.find((i) => i.repo === 'ferry-test/multi' && i.tag === 'docker')!;
    expect(a.digest).not.toBe(other.digest);
    for (const i of [a, other]) {
      const r = await load({ source: `oci:${store}:${i.ref}`, to, ...access(reg) });
      expect(r.failures).toEqual([]);
    }
    // Point A's tag at the other index: A's content stays in the repository, by digest.
    const repo = `retag/${a.repo}`;
    const got = await fetch(`${reg.url}/v2/${repo}/manifests/${other.digest}`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.list.v2+json' },
    });
    expect(got.status).toBe(200);
    const put = await fetch(`${reg.url}/v2/${repo}/manifests/${a.tag}`, {
      method: 'PUT',
      headers: { 'content-type': got.headers.get('content-type')! },
      body: Buffer.from(await got.arrayBuffer()),
    });
    expect(put.status).toBe(201);
    expect(await headDigest(reg, repo, a.tag)).toBe(other.digest);
    expect(await headDigest(reg, repo, a.digest)).toBe(a.digest);

    // The bundle with one byte flipped in the middle of the largest layer (medium:1's, not A's).
    const layer = corpus.largestLayer;
    const tar = await readFile(bundle);
    const member = tarMembers(tar).find((m) => m.name === `blobs/sha256/${layer.digest.slice('sha256:'.length)}`);
    if (!member) throw new Error(`no member for ${layer.digest}`);
    const at = member.offset + Math.floor(member.size / 2);
    tar[at] = tar[at]! ^ 0xff;
    const bad = path.join(createTempDir('retag-bad'), 'bad.ferry');
    await writeFile(bad, tar);

    const r = await load({ source: bad, to, ...access(reg) });
    // A needed only a tag; it is not named, because the bundle failed verification.
    const imgA = r.images.find((i) => i.name === `docker.io/${a.ref}`)!;
    expect([imgA.status, imgA.errorCode]).toEqual(['failed', 'NOT_LOADED']);
    expect(imgA.error).toContain(layer.digest);
    const medium = r.images.find((i) => i.name === 'docker.io/ferry-test/medium:1')!;
    expect([medium.status, medium.errorCode]).toEqual(['failed', 'DIGEST_MISMATCH']);
    expect(r.blobs.failed).toBe(1);
    expect(r.mapping[`docker.io/${a.ref}`]).toBeUndefined();
    // Every failure is an integrity failure: the CLI exits 3.
    expect(onlyIntegrityFailures(r.failures)).toBe(true);
    // The registry's own view: A's tag still names the other index.
    expect(await headDigest(reg, repo, a.tag)).toBe(other.digest);
    // No image the bad bundle brought is named anywhere under the prefix but the two loaded first.
    for (const i of corpus.images) {
      if (i.repo === a.repo) continue;
      const tags = await fetch(`${reg.url}/v2/retag/${i.repo}/tags/list`);
      expect([i.repo, tags.status === 404 ? [] : (((await tags.json()) as { tags: string[] | null }).tags ?? [])]).toEqual([i.repo, []]);
    }

    // The good bundle then moves the tag (the retag path itself works).
    const good = await load({ source: bundle, to, ...access(reg) });
    expect(good.failures).toEqual([]);
    expect(await headDigest(reg, repo, a.tag)).toBe(a.digest);
  });
});

describe.each([
  ['htpasswd basic auth', { auth: 'htpasswd' as const }],
  ['token auth', { auth: 'token' as const }],
  ['TLS', { tls: true }],
])('load into a registry with %s', (_label, opts) => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry(opts);
  });

  it('pushes every image with unchanged digests', async () => {
    const r = await load({ source: bundle, to: `docker://${reg.host}/far`, ...access(reg) });
    expect(r.failures).toEqual([]);
    await assertLoaded(reg, 'far', expected());
  });
});

describe('load from an oci: layout and into an oci: layout', () => {
  it('oci:DIR → registry, and bundle → oci:DIR that skopeo copies from', async () => {
    const reg = await startRegistry();
    const r = await load({ source: `oci:${path.join(work, 'store')}`, to: `docker://${reg.host}`, ...access(reg) });
    expect(r.failures).toEqual([]);
    await assertLoaded(reg, '', expected());

    const dir = path.join(createTempDir('load-oci'), 'store');
    const first = await load({ source: bundle, to: `oci:${dir}` });
    expect(first.failures).toEqual([]);
    const indexBefore = await readFile(path.join(dir, 'index.json'));
    const again = await load({ source: bundle, to: `oci:${dir}` });
    expect(again.blobs.fetched).toBe(0);
    // Loading the same bundle twice changes nothing: not one byte of index.json.
    expect(again.images.every((i) => i.status === 'done' && i.skipped)).toBe(true);
    expect(await readFile(path.join(dir, 'index.json'))).toEqual(indexBefore);
    // skopeo copies an OCI-typed image out of the loaded layout into the registry by digest.
    const app = corpus.images.find((i) => i.repo === 'ferry-test/app')!;
    await runSkopeo([
      'copy',
      '--dest-tls-verify=false',
      `oci:${dir}:${parseReference(app.ref).toString()}`,
      `docker://${reg.host}/from-oci/app:1`,
    ]);
    expect((await rawDigest(reg, `${reg.host}/from-oci/app:1`)).digest).toBe(app.digest);
  });
});

describe.skipIf(!HAVE_FIXTURES)('load from docker-archive: and oci-archive: (skipped without ../shared/fixtures)', () => {
  it('every image of a docker save file, under each of its tags, digests as an oci: copy of it has them', async () => {
    const reg = await startRegistry();
    const tar = fixture('go-containerregistry', 'pkg', 'v1', 'tarball', 'testdata', 'test_bundle.tar');
    const r = await load({ source: `docker-archive:${tar}`, to: `docker://${reg.host}/da`, ...access(reg) });
    expect(r.failures).toEqual([]);
    expect(Object.keys(r.mapping).sort()).toEqual(['docker.io/library/test_image_1:latest', 'docker.io/library/test_image_2:latest']);
    for (const [name, m] of Object.entries(r.mapping)) {
      const ref = parseReference(name);
      expect(m.destination).toBe(`${reg.host}/da/${ref.path}:latest`);
      // What the registry serves is what ferry read: the same digest through an oci: copy.
      const dir = createTempDir('da');
      await load({ source: `docker-archive:${tar}:${ref.path.replace(/^library\//, '')}`, to: `oci:${dir}` });
      const entry = (await (await OciLayout.open(dir)).readIndex()).manifests[0]!;
      expect((await rawDigest(reg, m.destination)).digest).toBe(entry.digest);
      expect(m.digest).toBe(entry.digest);
    }
    // One image picked by @N.
    const one = await load({ source: `docker-archive:${tar}:@1`, to: `docker://${reg.host}/one`, ...access(reg) });
    expect(Object.keys(one.mapping)).toHaveLength(1);
  });

  it('an oci-archive (a sparse containerd export): all platforms fail by name; --platform loads the one present', async () => {
    const reg = await startRegistry();
    const tar = fixture('oras-go', 'content', 'oci', 'testdata', 'hello-world.tar');
    const all = await load({ source: `oci-archive:${tar}`, to: `docker://${reg.host}/oa`, ...access(reg) });
    expect(all.failures).toHaveLength(1);
    expect(all.failures[0]).toMatchObject({ name: 'docker.io/library/hello-world:latest', errorCode: 'BLOB_MISSING' });
    expect(all.mapping).toEqual({});
    const one = await load({
      source: `oci-archive:${tar}`,
      to: `docker://${reg.host}/oa`,
      platforms: [parsePlatform('linux/amd64')],
      ...access(reg),
    });
    expect(one.failures).toEqual([]);
    const m = one.mapping['docker.io/library/hello-world:latest']!;
    // The index was rewritten to the one platform: a new digest, the published one recorded.
    expect(m.digest).not.toBe('sha256:faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af');
    expect(one.images[0]!.originalDigest).toBe('sha256:faa03e786c97f07ef34423fccceeec2398ec8a5759259f94d99078f264e9d7af');
    expect((await rawDigest(reg, m.destination)).digest).toBe(m.digest);
  });
});

describe('mirror registry to registry', () => {
  it('copies every image with unchanged digests; a second run transfers no blob', async () => {
    const src = await startRegistry();
    await pushSmallCorpus(src);
    const dst = await startRegistry();
    const refs = [...new Set(corpus.images.map((i) => `${src.host}/${i.repo}:${i.tag}`))];
    const first = await mirror({ refs, to: `docker://${dst.host}/m`, retry: fast });
    expect(first.failures).toEqual([]);
    for (const i of corpus.images) {
      expect((await rawDigest(dst, `${dst.host}/m/${i.repo}:${i.tag}`)).digest).toBe(i.digest);
    }
    const second = await mirror({ refs, to: `docker://${dst.host}/m`, retry: fast });
    expect(second.failures).toEqual([]);
    expect(second.blobs.fetched).toBe(0);
    // The one executor counts the blobs of images already there as skipped (as for every
    // destination): none is sent, none even looked at (the root's HEAD settled each image).
    expect(second.blobs.total).toBeGreaterThan(0);
    expect(second.blobs.skipped).toBe(second.blobs.total);
    expect(second.blobs.mounted).toBe(0);
    expect(second.images.every((i) => i.skipped)).toBe(true);

    // --platform: the index is rewritten to the one platform (new digest, the published one kept).
    const multi = corpus.images.find((i) => i.repo === 'ferry-test/multi' && i.tag === 'oci')!;
    const arm = await mirror({
      refs: [`${src.host}/${multi.repo}:${multi.tag}`],
      to: `docker://${dst.host}/arm`,
      platforms: [parsePlatform('linux/arm64')],
      retry: fast,
    });
    expect(arm.failures).toEqual([]);
    expect(arm.images[0]!.originalDigest).toBe(multi.digest);
    const served = await rawDigest(dst, `${dst.host}/arm/${multi.repo}:${multi.tag}`);
    expect(served.digest).toBe(arm.images[0]!.digest);
    expect(served.digest).not.toBe(multi.digest);
    const idx = parseManifest(served.bytes, undefined, 'arm index');
    expect(idx.kind === 'index' && idx.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`)).toEqual(['linux/arm64']);

    // Within one registry, blobs are mounted from the source repositories: none is copied.
    const inside = await mirror({ refs, to: `docker://${src.host}/copy`, retry: fast });
    expect(inside.failures).toEqual([]);
    expect(inside.blobs.fetched).toBe(0);
    expect(inside.blobs.mounted).toBeGreaterThan(0);
    for (const i of corpus.images) {
      expect((await rawDigest(src, `${src.host}/copy/${i.repo}:${i.tag}`)).digest).toBe(i.digest);
    }
  });
});

/** One in-memory image: its manifest's bytes and the blobs it serves. */
function memorySource(name: string, manifest: Buffer, blobs: Map<string, Buffer>): ImageSource {
  const m: ManifestBytes = { bytes: manifest, mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(manifest) };
  return {
    description: `memory:${name}`,
    getRootManifest: async () => m,
    getManifest: async () => m,
    openBlob: (desc, opts) => Readable.from([blobs.get(desc.digest)!.subarray(opts.start ?? 0)]),
    close: async () => {},
  };
}

describe('the registry destination driven by the executor', () => {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.alloc(5000, 7);
  const blobs = new Map([
    [sha256(config), config],
    [sha256(layer), layer],
  ]);
  const manifest = (layerSize: number): Buffer =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layerSize }],
      }),
    );
  const items = (sizes: number[]) =>
    sizes.map((size, i) => {
      const name = `docker.io/t/img${i}:1`;
      return { name, source: memorySource(name, manifest(size), blobs) };
    });

  it('a blob whose images declare different sizes goes up once; only the image that lies about it fails', async () => {
    const reg = await startRegistry();
    const its = items([layer.length, layer.length + 1]);
    const plan = await planCopy(its);
    expect(plan.blobs.some((b) => b.sizeConflict)).toBe(true);
    const dest = openRegistryDestination(parseRegistryDestination(`${reg.host}/sc`), { clientOptions: { retry: fast } });
    try {
      const r = await executeCopy(
        plan,
        its.map((i) => i.source),
        dest,
        { action: 'loading' },
      );
      expect(r.images.map((i) => [i.name, i.status, i.errorCode])).toEqual([
        ['docker.io/t/img0:1', 'done', undefined],
        ['docker.io/t/img1:1', 'failed', 'SIZE_MISMATCH'],
      ]);
      expect(r.images[0]!.destination).toBe(`${reg.host}/sc/t/img0:1`);
      expect(await headDigest(reg, 'sc/t/img0', '1')).toBe(plan.images[0]!.root.digest);
      expect(await headDigest(reg, 'sc/t/img1', '1')).toBeUndefined();
      // Each blob was sent once (to img0's repository) and mounted into img1's.
      expect([r.blobs.fetched, r.blobs.mounted]).toEqual([2, 2]);
    } finally {
      await dest.close();
    }
  });

  it('a single-image destination refuses several images for the whole run, before anything is sent', async () => {
    const reg = await startRegistry();
    const its = items([layer.length, layer.length]);
    const plan = await planCopy(its);
    const dest = openRegistryDestination(
      { ...parseRegistryDestination(reg.host), image: parseReference(`${reg.host}/one/img:1`) },
      { clientOptions: { retry: fast } },
    );
    try {
      await expect(
        executeCopy(
          plan,
          its.map((i) => i.source),
          dest,
          {},
        ),
      ).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/names one image, and there are 2/) });
      expect((await fetch(`${reg.url}/v2/one/img/tags/list`)).status).toBe(404);
    } finally {
      await dest.close();
    }
  });
});
