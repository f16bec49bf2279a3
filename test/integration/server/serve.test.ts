// `ferry serve` end to end: a small multi-arch OCI layout written here, served over HTTP(S), and
// read back with raw HTTP (undici), skopeo, and ferry's own pull. Every test checks bytes and
// digests, not just status codes.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import bcrypt from 'bcryptjs';
import { Agent, Client, request, type Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pull } from '../../../src/commands/pull.js';
import type { Digest } from '../../../src/oci/digest.js';
import { runServe } from '../../../src/cli/serve.js';
import { ServeConflictError, type ServedContent } from '../../../src/server/content.js';
import { layoutContent } from '../../../src/server/layout-content.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { FerryError, UsageError } from '../../../src/util/errors.js';
import { createPki, type TestPki } from '../../harness/pki.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { requireTool, runSkopeo } from '../../harness/tools.js';

afterAll(cleanupHarness);

const REPO_ROOT = path.resolve(fileURLToPath(import.meta.url), '../../../..');

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const REF_NAME = 'org.opencontainers.image.ref.name';

function sha256(data: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

interface Desc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { architecture: string; os: string };
  artifactType?: string;
}

/** Writes an OCI image layout by hand: blobs, manifests, index.json. */
class LayoutWriter {
  readonly blobs = new Map<string, Buffer>();
  constructor(readonly dir: string) {
    mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  }

  blob(bytes: Buffer | string, mediaType: string, write = true): Desc {
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
    const digest = sha256(buf);
    if (write) {
      writeFileSync(path.join(this.dir, 'blobs', 'sha256', digest.slice(7)), buf);
      this.blobs.set(digest, buf);
    }
    return { mediaType, digest, size: buf.length };
  }

  json(value: unknown, mediaType: string, write = true): Desc & { bytes: Buffer } {
    // Indented on purpose: the server must hand out these exact bytes, not a re-serialisation.
    const bytes = Buffer.from(JSON.stringify(value, null, 3));
    return { ...this.blob(bytes, mediaType, write), bytes };
  }

  /** A gzip layer and its image config. */
  image(arch: string, layers: Desc[], diffIds: string[], mediaType = OCI_MANIFEST): Desc & { bytes: Buffer; config: Desc } {
    const config = this.json(
      { architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: diffIds }, config: {} },
      mediaType === DOCKER_MANIFEST ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
    );
    const m = this.json({ schemaVersion: 2, mediaType, config: strip(config), layers }, mediaType);
    return { ...m, config: strip(config) };
  }

  index(entries: Desc[]): void {
    writeFileSync(path.join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
  }
}

function strip(d: Desc & { bytes?: Buffer; config?: Desc }): Desc {
  const { bytes: _b, config: _c, ...rest } = d;
  return rest;
}

function named(d: Desc, name?: string): Desc {
  const base = strip(d);
  return name ? { ...base, annotations: { [REF_NAME]: name } } : base;
}

function gzLayer(w: LayoutWriter, content: Buffer, write = true): { desc: Desc; diffId: string } {
  return { desc: w.blob(gzipSync(content), 'application/vnd.oci.image.layer.v1.tar+gzip', write), diffId: sha256(content) };
}

/** Everything the tests know about the store they serve. */
interface Store {
  dir: string;
  writer: LayoutWriter;
  index: Desc & { bytes: Buffer };
  amd: Desc & { bytes: Buffer; config: Desc };
  arm: Desc & { bytes: Buffer; config: Desc };
  bigLayer: Desc;
  bigBytes: Buffer;
  shared: Desc;
  tool: Desc & { bytes: Buffer; config: Desc };
  toolLayer: Desc;
  other: Desc & { bytes: Buffer };
  otherLayer: Desc;
  sbom: Desc & { bytes: Buffer };
  sig: Desc & { bytes: Buffer };
  orphan: Desc & { bytes: Buffer };
  sparseIndex: Desc & { bytes: Buffer };
  missingChild: Desc;
  brokenImage: Desc & { bytes: Buffer };
  missingLayer: Desc;
  secret: Desc;
}

function buildStore(dir: string): Store {
  const w = new LayoutWriter(dir);
  const sharedL = gzLayer(w, Buffer.from('a layer both platforms share\n'));
  const bigContent = randomBytes(700_000); // incompressible: the gzip stays ~700 kB
  const bigL = gzLayer(w, bigContent);
  const armL = gzLayer(w, randomBytes(20_000));
  const amd = w.image('amd64', [sharedL.desc, bigL.desc], [sharedL.diffId, bigL.diffId]);
  const arm = w.image('arm64', [sharedL.desc, armL.desc], [sharedL.diffId, armL.diffId]);
  const index = w.json(
    {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { ...strip(amd), platform: { architecture: 'amd64', os: 'linux' } },
        { ...strip(arm), platform: { architecture: 'arm64', os: 'linux' } },
      ],
    },
    OCI_INDEX,
  );

  // A Docker schema2 image in another repository.
  const toolContent = Buffer.from('tool layer\n');
  const toolLayer = w.blob(gzipSync(toolContent), 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  const tool = w.image('amd64', [toolLayer], [sha256(toolContent)], DOCKER_MANIFEST);

  // An image named by digest only.
  const otherL = gzLayer(w, Buffer.from('other\n'));
  const other = w.image('amd64', [otherL.desc], [otherL.diffId]);

  // Referrers: an SBOM of the index, a signature of the SBOM, and one whose subject is absent.
  const empty = w.blob('{}', 'application/vnd.oci.empty.v1+json');
  const sbomBlob = w.blob('{"spdxVersion":"SPDX-2.3"}', 'application/spdx+json');
  const sbom = w.json(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.sbom.v1',
      config: empty,
      layers: [sbomBlob],
      subject: strip(index),
      annotations: { 'org.example.kind': 'sbom' },
    },
    OCI_MANIFEST,
  );
  const sigBlob = w.blob('signature bytes', 'application/octet-stream');
  const sig = w.json(
    // No artifactType: the config media type stands in for it.
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { ...empty, mediaType: 'application/vnd.example.sig.config.v1+json' },
      layers: [sigBlob],
      subject: strip(sbom),
    },
    OCI_MANIFEST,
  );
  const orphanBlob = w.blob('orphan', 'application/octet-stream');
  const orphan = w.json(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.orphan.v1',
      config: empty,
      layers: [orphanBlob],
      subject: { mediaType: OCI_MANIFEST, digest: sha256('nothing'), size: 7 },
    },
    OCI_MANIFEST,
  );

  // Sparse content: an index with a child that was never copied; an image missing a layer.
  const missingChild = w.json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: amd.config, layers: [] }, OCI_MANIFEST, false);
  const sparseIndex = w.json(
    {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { ...strip(amd), platform: { architecture: 'amd64', os: 'linux' } },
        { ...strip(missingChild), platform: { architecture: 's390x', os: 'linux' } },
      ],
    },
    OCI_INDEX,
  );
  const missingL = gzLayer(w, Buffer.from('never written\n'), false);
  const brokenImage = w.image('amd64', [missingL.desc], [missingL.diffId]);

  // A blob of the store that no image uses.
  const secret = w.blob('top secret: not part of any image\n', 'application/octet-stream');

  w.index([
    named(index, 'docker.io/library/app:1'),
    named(index, 'docker.io/library/app:latest'),
    named(index, 'docker.io/library/app:1.0'),
    named(index, 'docker.io/library/app:1.1'),
    named(index, 'docker.io/library/app:2-rc'),
    named(tool, '127.0.0.1:5000/team/tool:2'),
    named(other, `ghcr.io/org/other@${other.digest}`),
    named(sparseIndex, 'docker.io/library/sparse:1'),
    named(brokenImage, 'docker.io/library/sparse:2'),
    strip(sbom),
    strip(sig),
    strip(orphan),
  ]);
  return {
    dir,
    writer: w,
    index,
    amd,
    arm,
    bigLayer: bigL.desc,
    bigBytes: w.blobs.get(bigL.desc.digest)!,
    shared: sharedL.desc,
    tool,
    toolLayer,
    other,
    otherLayer: otherL.desc,
    sbom,
    sig,
    orphan,
    sparseIndex,
    missingChild,
    brokenImage,
    missingLayer: missingL.desc,
    secret,
  };
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

async function http(
  url: string,
  opts: { method?: Dispatcher.HttpMethod; headers?: Record<string, string>; body?: string; dispatcher?: Dispatcher } = {},
): Promise<Response> {
  const res = await request(url, {
    method: opts.method ?? 'GET',
    ...(opts.headers ? { headers: opts.headers } : {}),
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
  });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

/** A request with a path sent exactly as given (no URL normalisation of `..`). */
async function rawGet(origin: string, rawPath: string): Promise<Response> {
  const client = new Client(origin);
  try {
    const res = await client.request({ path: rawPath, method: 'GET' });
    return { status: res.statusCode, headers: res.headers, body: Buffer.from(await res.body.arrayBuffer()) };
  } finally {
    await client.close();
  }
}

function errorCode(r: Response): string | undefined {
  return (JSON.parse(r.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code;
}

const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;

let store: Store;
let content: ServedContent;
let server: RunningServer;
const logLines: string[] = [];

beforeAll(async () => {
  requireTool('skopeo'); // fails naming the apt package when skopeo is missing
  store = buildStore(path.join(createTempDir('serve-store'), 'store'));
  content = await layoutContent(store.dir);
  server = await startServer({ sources: [content], listen: '127.0.0.1:0', log: (l) => logLines.push(l) });
});

afterAll(async () => {
  await server?.close();
});

describe('layoutContent', () => {
  it('keys repositories by their origin, and records it', () => {
    expect(content.repositories()).toEqual([
      '127.0.0.1_5000/team/tool',
      'docker.io/library/app',
      'docker.io/library/sparse',
      'ghcr.io/org/other',
    ]);
    expect(content.origin?.('127.0.0.1_5000/team/tool')).toEqual({ registry: '127.0.0.1:5000', path: 'team/tool' });
    expect(content.tags('docker.io/library/app')).toEqual(['1', '1.0', '1.1', '2-rc', 'latest']);
    expect(content.tags('ghcr.io/org/other')).toEqual([]);
    expect(content.resolveTag('docker.io/library/app', 'latest')).toEqual({
      mediaType: OCI_INDEX,
      digest: store.index.digest,
      size: store.index.size,
    });
  });

  it('keeps the registry host with scoped, a port after _ (127.0.0.1_5000)', async () => {
    const scoped = await layoutContent(store.dir, { scoped: true });
    expect(scoped.repositories()).toEqual([
      '127.0.0.1_5000/team/tool',
      'docker.io/library/app',
      'docker.io/library/sparse',
      'ghcr.io/org/other',
    ]);
    expect(scoped.warnings.join('\n')).not.toMatch(/127\.0\.0\.1:5000/);
  });

  it('warns about what it does not serve: the orphan referrer', () => {
    expect(content.warnings).toHaveLength(1);
    expect(content.warnings[0]).toMatch(/1 unnamed image\(s\).*not served/);
  });

  it('serves bare-tag layouts only under a repository given with the source', async () => {
    const dir = path.join(createTempDir('bare'), 'layout');
    const w = new LayoutWriter(dir);
    const l = gzLayer(w, Buffer.from('bare\n'));
    const img = w.image('amd64', [l.desc], [l.diffId]);
    const img2 = w.image('arm64', [l.desc], [l.diffId]);
    w.index([named(img, 'v1'), named(img2, 'v2'), strip(img2)]);
    const without = await layoutContent(dir);
    expect(without.repositories()).toEqual([]);
    expect(without.warnings.join('\n')).toMatch(/2 image\(s\) named by a bare tag \(v1, v2\).*oci:.*:REPO/);
    const withRepo = await layoutContent(dir, { repository: 'team/bare' });
    expect(withRepo.repositories()).toEqual(['team/bare']);
    expect(withRepo.origin?.('team/bare')).toBeUndefined();
    expect(withRepo.tags('team/bare')).toEqual(['v1', 'v2']);
    expect(withRepo.warnings).toEqual([]);
    await expect(layoutContent(dir, { repository: 'Team' })).rejects.toThrow(UsageError);
  });

  it('uses the containerd image name when ref.name is a bare tag (docker save)', async () => {
    const dir = path.join(createTempDir('docker-save'), 'layout');
    const w = new LayoutWriter(dir);
    const l = gzLayer(w, Buffer.from('saved\n'));
    const img = w.image('amd64', [l.desc], [l.diffId]);
    w.index([{ ...strip(img), annotations: { [REF_NAME]: '1.25', 'io.containerd.image.name': 'docker.io/library/nginx:1.25' } }]);
    const c = await layoutContent(dir);
    expect(c.repositories()).toEqual(['docker.io/library/nginx']);
    expect(c.tags('docker.io/library/nginx')).toEqual(['1.25']);
  });

  it("refuses one registry's repository:tag with two digests within a layout, naming both; two registries are two repositories", async () => {
    const dir = path.join(createTempDir('clash'), 'layout');
    const w = new LayoutWriter(dir);
    const l = gzLayer(w, Buffer.from('x\n'));
    const a = w.image('amd64', [l.desc], [l.diffId]);
    const b = w.image('arm64', [l.desc], [l.diffId]);
    w.index([named(a, 'docker.io/library/app:1'), named(b, 'index.docker.io/library/app:1')]);
    const err = await layoutContent(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServeConflictError);
    expect((err as FerryError).exitCode).toBe(2);
    expect((err as Error).message).toContain('docker.io/library/app:1');
    expect((err as Error).message).toContain('index.docker.io/library/app:1');
    const two = path.join(createTempDir('two-registries'), 'layout');
    const w2 = new LayoutWriter(two);
    const l2 = gzLayer(w2, Buffer.from('x\n'));
    w2.index([
      named(w2.image('amd64', [l2.desc], [l2.diffId]), 'docker.io/library/app:1'),
      named(w2.image('arm64', [l2.desc], [l2.diffId]), 'ghcr.io/library/app:1'),
    ]);
    expect((await layoutContent(two)).repositories()).toEqual(['docker.io/library/app', 'ghcr.io/library/app']);
    expect((await layoutContent(two, { scoped: true })).repositories()).toEqual(['docker.io/library/app', 'ghcr.io/library/app']);
  });

  it('refuses at start-up two sources that disagree on a repository:tag, naming both', async () => {
    const dir = path.join(createTempDir('other-store'), 'layout');
    const w = new LayoutWriter(dir);
    const l = gzLayer(w, Buffer.from('different\n'));
    const img = w.image('amd64', [l.desc], [l.diffId]);
    w.index([named(img, 'docker.io/library/app:latest'), named(img, 'docker.io/library/app:other')]);
    const second = await layoutContent(dir);
    const err = await startServer({ sources: [content, second], listen: '127.0.0.1:0' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServeConflictError);
    const msg = (err as Error).message;
    expect(msg).toContain('library/app:latest');
    expect(msg).toContain(store.dir);
    expect(msg).toContain(dir);
  });

  it('reads manifests but never blobs at start-up', async () => {
    // Corrupt a layer in a copy of the store: opening must not notice (no hashing of blobs).
    const dir = path.join(createTempDir('lazy'), 'layout');
    const w = buildStore(dir);
    writeFileSync(path.join(dir, 'blobs', 'sha256', w.bigLayer.digest.slice(7)), Buffer.alloc(w.bigLayer.size));
    const started = performance.now();
    const c = await layoutContent(dir);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(c.repositories()).toContain('docker.io/library/app');
  });
});

describe('registry API', () => {
  const u = (p: string): string => `${server.url}${p}`;

  it('answers the version check', async () => {
    const r = await http(u('/v2/'));
    expect(r.status).toBe(200);
    expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(JSON.parse(r.body.toString())).toEqual({});
    expect(r.headers['keep-alive']).toMatch(/timeout=\d+/);
  });

  it('lists the catalog, with pagination', async () => {
    // Every image by its scoped and its unscoped name.
    expect(JSON.parse((await http(u('/v2/_catalog'))).body.toString())).toEqual({
      repositories: [
        '127.0.0.1_5000/team/tool',
        'docker.io/library/app',
        'docker.io/library/sparse',
        'ghcr.io/org/other',
        'library/app',
        'library/sparse',
        'org/other',
        'team/tool',
      ],
    });
    const p1 = await http(u('/v2/_catalog?n=7'));
    expect(JSON.parse(p1.body.toString()).repositories).toHaveLength(7);
    expect(p1.headers.link).toBe('</v2/_catalog?last=org%2Fother&n=7>; rel="next"');
    const next = /^<([^>]+)>/.exec(String(p1.headers.link))![1]!;
    const p2 = await http(u(next));
    expect(JSON.parse(p2.body.toString()).repositories).toEqual(['team/tool']);
    expect(p2.headers.link).toBeUndefined();
  });

  it('lists tags, sorted, with n/last pagination and Link', async () => {
    const all = await http(u('/v2/library/app/tags/list'));
    expect(all.status).toBe(200);
    expect(JSON.parse(all.body.toString())).toEqual({ name: 'library/app', tags: ['1', '1.0', '1.1', '2-rc', 'latest'] });
    expect(all.headers.link).toBeUndefined();

    const seen: string[] = [];
    let next: string | undefined = '/v2/library/app/tags/list?n=2';
    let pages = 0;
    while (next) {
      const r = await http(u(next));
      seen.push(...(JSON.parse(r.body.toString()) as { tags: string[] }).tags);
      pages++;
      const link = r.headers.link as string | undefined;
      if (link) expect(link).toMatch(/^<\/v2\/library\/app\/tags\/list\?last=[^&]+&n=2>; rel="next"$/);
      next = link ? /^<([^>]+)>/.exec(link)![1] : undefined;
    }
    expect(seen).toEqual(['1', '1.0', '1.1', '2-rc', 'latest']);
    expect(pages).toBe(3);

    expect(JSON.parse((await http(u('/v2/library/app/tags/list?last=1.1'))).body.toString()).tags).toEqual(['2-rc', 'latest']);
    const zero = await http(u('/v2/library/app/tags/list?n=0'));
    expect(JSON.parse(zero.body.toString()).tags).toEqual([]);
    expect(zero.headers.link).toBeUndefined();
    const bad = await http(u('/v2/library/app/tags/list?n=-1'));
    expect(bad.status).toBe(400);
    expect(errorCode(bad)).toBe('PAGINATION_NUMBER_INVALID');
    expect(JSON.parse((await http(u('/v2/org/other/tags/list'))).body.toString())).toEqual({ name: 'org/other', tags: [] });
    const unknown = await http(u('/v2/library/nope/tags/list'));
    expect(unknown.status).toBe(404);
    expect(errorCode(unknown)).toBe('NAME_UNKNOWN');
  });

  it('serves manifests by tag and digest with the exact stored bytes (GET and HEAD)', async () => {
    for (const ref of ['1', 'latest', store.index.digest]) {
      const g = await http(u(`/v2/library/app/manifests/${ref}`));
      expect(g.status).toBe(200);
      expect(g.body.equals(store.index.bytes)).toBe(true);
      expect(g.headers['content-type']).toBe(OCI_INDEX);
      expect(g.headers['docker-content-digest']).toBe(store.index.digest);
      expect(g.headers['content-length']).toBe(String(store.index.size));
      const h = await http(u(`/v2/library/app/manifests/${ref}`), { method: 'HEAD' });
      expect(h.status).toBe(200);
      expect(h.body.length).toBe(0);
      expect(h.headers['content-length']).toBe(String(store.index.size));
      expect(h.headers['docker-content-digest']).toBe(store.index.digest);
      expect(h.headers['content-type']).toBe(OCI_INDEX);
    }
    // Index children, and the stored media type of a Docker manifest.
    const child = await http(u(`/v2/library/app/manifests/${store.arm.digest}`));
    expect(child.body.equals(store.arm.bytes)).toBe(true);
    expect(child.headers['content-type']).toBe(OCI_MANIFEST);
    const tool = await http(u('/v2/team/tool/manifests/2'));
    expect(tool.body.equals(store.tool.bytes)).toBe(true);
    expect(tool.headers['content-type']).toBe(DOCKER_MANIFEST);
    // A digest-only image.
    const other = await http(u(`/v2/org/other/manifests/${store.other.digest}`));
    expect(other.body.equals(store.other.bytes)).toBe(true);
    // Conditional GET.
    const cached = await http(u('/v2/library/app/manifests/1'), { headers: { 'If-None-Match': `"${store.index.digest}"` } });
    expect(cached.status).toBe(304);
  });

  it('serves a manifest only in the repositories whose images reach it', async () => {
    for (const [repo, digest] of [
      ['library/app', store.tool.digest],
      ['team/tool', store.index.digest],
      ['org/other', store.amd.digest],
      ['library/app', store.orphan.digest],
    ] as const) {
      const r = await http(u(`/v2/${repo}/manifests/${digest}`));
      expect(r.status, `${repo}@${digest}`).toBe(404);
      expect(errorCode(r)).toBe('MANIFEST_UNKNOWN');
      const h = await http(u(`/v2/${repo}/manifests/${digest}`), { method: 'HEAD' });
      expect(h.status).toBe(404);
      expect(h.body.length).toBe(0);
    }
    const tag = await http(u('/v2/library/app/manifests/nope'));
    expect(tag.status).toBe(404);
    expect(errorCode(tag)).toBe('MANIFEST_UNKNOWN');
    const repo = await http(u('/v2/library/nope/manifests/1'));
    expect(errorCode(repo)).toBe('NAME_UNKNOWN');
  });

  it('serves referrer artifacts in the repository of their subject', async () => {
    const r = await http(u(`/v2/library/app/manifests/${store.sbom.digest}`));
    expect(r.status).toBe(200);
    expect(r.body.equals(store.sbom.bytes)).toBe(true);
    // The signature of the SBOM, transitively.
    expect((await http(u(`/v2/library/app/manifests/${store.sig.digest}`))).status).toBe(200);
    expect((await http(u(`/v2/team/tool/manifests/${store.sbom.digest}`))).status).toBe(404);
  });

  it('streams blobs with digest, length and range support', async () => {
    const big = store.bigLayer;
    const g = await http(u(`/v2/library/app/blobs/${big.digest}`));
    expect(g.status).toBe(200);
    expect(g.body.equals(store.bigBytes)).toBe(true);
    expect(sha256(g.body)).toBe(big.digest);
    expect(g.headers['content-length']).toBe(String(big.size));
    expect(g.headers['docker-content-digest']).toBe(big.digest);
    expect(g.headers['content-type']).toBe('application/octet-stream');
    expect(g.headers['accept-ranges']).toBe('bytes');
    const h = await http(u(`/v2/library/app/blobs/${big.digest}`), { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.headers['content-length']).toBe(String(big.size));
    expect(h.body.length).toBe(0);
    // Configs too, and manifests through the blob endpoint.
    expect((await http(u(`/v2/library/app/blobs/${store.arm.config.digest}`))).status).toBe(200);
    const asBlob = await http(u(`/v2/library/app/blobs/${store.index.digest}`));
    expect(asBlob.body.equals(store.index.bytes)).toBe(true);
  });

  it('answers single ranges with 206 and Content-Range, across the whole file', async () => {
    const big = store.bigLayer;
    const url = u(`/v2/library/app/blobs/${big.digest}`);
    const one = await http(url, { headers: { Range: 'bytes=10-19' } });
    expect(one.status).toBe(206);
    expect(one.headers['content-range']).toBe(`bytes 10-19/${big.size}`);
    expect(one.headers['content-length']).toBe('10');
    expect(one.body.equals(store.bigBytes.subarray(10, 20))).toBe(true);

    const whole = await http(url, { headers: { Range: 'bytes=0-' } });
    expect(whole.status).toBe(206);
    expect(whole.headers['content-range']).toBe(`bytes 0-${big.size - 1}/${big.size}`);
    expect(whole.body.equals(store.bigBytes)).toBe(true);

    const suffix = await http(url, { headers: { Range: 'bytes=-100' } });
    expect(suffix.body.equals(store.bigBytes.subarray(big.size - 100))).toBe(true);
    const lastByte = await http(url, { headers: { Range: `bytes=${big.size - 1}-${big.size + 1000}` } });
    expect(lastByte.status).toBe(206);
    expect(lastByte.body.equals(store.bigBytes.subarray(big.size - 1))).toBe(true);

    // Reassemble the blob from uneven ranges that tile it exactly.
    const parts: Buffer[] = [];
    let start = 0;
    for (let step = 1; start < big.size; step = step * 3 + 7) {
      const end = Math.min(start + step, big.size) - 1;
      const r = await http(url, { headers: { Range: `bytes=${start}-${end}` } });
      expect(r.status).toBe(206);
      expect(r.headers['content-range']).toBe(`bytes ${start}-${end}/${big.size}`);
      parts.push(r.body);
      start = end + 1;
    }
    expect(sha256(Buffer.concat(parts))).toBe(big.digest);

    const bad = await http(url, { headers: { Range: `bytes=${big.size}-` } });
    expect(bad.status).toBe(416);
    expect(bad.headers['content-range']).toBe(`bytes */${big.size}`);
    const multi = await http(url, { headers: { Range: 'bytes=0-1,5-6' } });
    expect(multi.status).toBe(200);
    expect(multi.body.equals(store.bigBytes)).toBe(true);
    // If-Range with another validator: the whole blob.
    const stale = await http(url, { headers: { Range: 'bytes=0-1', 'If-Range': '"sha256:stale"' } });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(big.size);
    const headRange = await http(url, { method: 'HEAD', headers: { Range: 'bytes=0-9' } });
    expect(headRange.status).toBe(206);
    expect(headRange.headers['content-length']).toBe('10');
  });

  it('serves a blob only in the repositories whose images use it', async () => {
    const cases: Array<[string, string]> = [
      ['team/tool', store.bigLayer.digest], // another repository's layer
      ['library/app', store.toolLayer.digest],
      ['org/other', store.shared.digest],
      ['library/app', store.secret.digest], // in the store, used by nothing
      ['team/tool', store.secret.digest],
      ['library/sparse', store.missingLayer.digest], // used, but absent (sparse layout)
      ['library/app', `sha256:${'0'.repeat(64)}`],
    ];
    for (const [repo, digest] of cases) {
      const g = await http(u(`/v2/${repo}/blobs/${digest}`));
      expect(g.status, `${repo} ${digest}`).toBe(404);
      expect(errorCode(g)).toBe('BLOB_UNKNOWN');
      const h = await http(u(`/v2/${repo}/blobs/${digest}`), { method: 'HEAD' });
      expect(h.status).toBe(404);
      expect(h.body.length).toBe(0);
    }
    expect((await http(u(`/v2/org/other/blobs/${store.otherLayer.digest}`))).status).toBe(200);
    // The layer the sparse index's present child uses is served in that repository too.
    expect((await http(u(`/v2/library/sparse/blobs/${store.bigLayer.digest}`), { method: 'HEAD' })).status).toBe(200);
    expect(errorCode(await http(u(`/v2/library/sparse/manifests/${store.missingChild.digest}`)))).toBe('MANIFEST_UNKNOWN');
    expect((await http(u('/v2/library/sparse/manifests/1'))).status).toBe(200);
    expect(errorCode(await http(u(`/v2/nope/blobs/${store.shared.digest}`)))).toBe('NAME_UNKNOWN');
  });

  it('implements the referrers API with artifactType filtering', async () => {
    const r = await http(u(`/v2/library/app/referrers/${store.index.digest}`));
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toBe(OCI_INDEX);
    expect(r.headers['oci-filters-applied']).toBeUndefined();
    expect(JSON.parse(r.body.toString())).toEqual({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: OCI_MANIFEST,
          digest: store.sbom.digest,
          size: store.sbom.size,
          artifactType: 'application/vnd.example.sbom.v1',
          annotations: { 'org.example.kind': 'sbom' },
        },
      ],
    });
    const sigs = JSON.parse((await http(u(`/v2/library/app/referrers/${store.sbom.digest}`))).body.toString());
    expect(sigs.manifests).toEqual([
      {
        mediaType: OCI_MANIFEST,
        digest: store.sig.digest,
        size: store.sig.size,
        artifactType: 'application/vnd.example.sig.config.v1+json',
      },
    ]);

    const hit = await http(u(`/v2/library/app/referrers/${store.index.digest}?artifactType=application%2Fvnd.example.sbom.v1`));
    expect(hit.headers['oci-filters-applied']).toBe('artifactType');
    expect(JSON.parse(hit.body.toString()).manifests).toHaveLength(1);
    const miss = await http(u(`/v2/library/app/referrers/${store.index.digest}?artifactType=application/other`));
    expect(miss.headers['oci-filters-applied']).toBe('artifactType');
    expect(JSON.parse(miss.body.toString()).manifests).toEqual([]);

    // Unknown subject: an empty index, never 404. Referrers of another repository: none here.
    const none = await http(u(`/v2/team/tool/referrers/${store.index.digest}`));
    expect(none.status).toBe(200);
    expect(JSON.parse(none.body.toString()).manifests).toEqual([]);
    expect(errorCode(await http(u('/v2/library/app/referrers/sha256:abc')))).toBe('DIGEST_INVALID');
    expect(errorCode(await http(u(`/v2/nope/referrers/${store.index.digest}`)))).toBe('NAME_UNKNOWN');
  });

  it('refuses every write with 405 UNSUPPORTED', async () => {
    const writes: Array<[Dispatcher.HttpMethod, string]> = [
      ['PUT', '/v2/library/app/manifests/1'],
      ['DELETE', `/v2/library/app/manifests/${store.index.digest}`],
      ['POST', '/v2/library/app/blobs/uploads/'],
      ['PATCH', '/v2/library/app/blobs/uploads/abc'],
      ['PUT', `/v2/library/app/blobs/uploads/abc?digest=${store.shared.digest}`],
      ['DELETE', `/v2/library/app/blobs/${store.shared.digest}`],
      ['POST', '/v2/new/repo/blobs/uploads/?mount=x&from=library/app'],
    ];
    for (const [method, p] of writes) {
      const r = await http(u(p), { method, ...(method === 'PUT' || method === 'PATCH' ? { body: '{}' } : {}) });
      expect(r.status, `${method} ${p}`).toBe(405);
      // Allow lists what the resource supports: nothing at all on the upload endpoints.
      expect(r.headers.allow, `${method} ${p}`).toBe(p.includes('/blobs/uploads/') ? '' : 'GET, HEAD');
      const err = JSON.parse(r.body.toString()).errors[0];
      expect(err.code).toBe('UNSUPPORTED');
      expect(err.message).toMatch(/read-only registry/);
    }
    // Even a GET on an upload session is refused: there are none, and no method is allowed there.
    for (const p of ['/v2/library/app/blobs/uploads/abc', '/v2/library/app/blobs/uploads/']) {
      for (const method of ['GET', 'HEAD'] as const) {
        const r = await http(u(p), { method });
        expect(r.status, `${method} ${p}`).toBe(405);
        expect(r.headers.allow, `${method} ${p}`).toBe('');
      }
    }
    // Nothing was written.
    expect((await http(u('/v2/new/repo/tags/list'))).status).toBe(404);
  });

  it('validates names and digests before touching the store', async () => {
    const origin = server.url;
    const cases: Array<[string, number, string]> = [
      [`/v2/..%2f..%2fetc/blobs/${store.shared.digest}`, 400, 'NAME_INVALID'],
      ['/v2/..%2f..%2f..%2fetc%2fpasswd/manifests/latest', 400, 'NAME_INVALID'],
      [`/v2/%2e%2e/%2e%2e/blobs/${store.shared.digest}`, 400, 'NAME_INVALID'],
      ['/v2/library/app/blobs/..%2f..%2f..%2f..%2fetc%2fpasswd', 400, 'DIGEST_INVALID'],
      [`/v2/library/app/blobs/sha256:${store.shared.digest.slice(7).toUpperCase()}`, 400, 'DIGEST_INVALID'],
      [`/v2/library/app/blobs/sha512:${'a'.repeat(128)}`, 400, 'DIGEST_INVALID'],
      ['/v2/library/app/manifests/sha256:123', 400, 'DIGEST_INVALID'],
      ['/v2/Library/App/tags/list', 400, 'NAME_INVALID'],
      ['/v2/library/app/../../../../etc/passwd', 404, 'UNSUPPORTED'],
      [`/v2/library/app/blobs/../../../blobs/${store.secret.digest}`, 400, 'NAME_INVALID'],
      ['/etc/passwd', 404, 'UNSUPPORTED'],
    ];
    for (const [p, status, code] of cases) {
      const r = await rawGet(origin, p);
      expect([r.status, errorCode(r)], p).toEqual([status, code]);
    }
  });

  it('bounds request headers', async () => {
    const r = await http(u('/v2/'), { headers: { 'X-Padding': 'a'.repeat(64 * 1024) } });
    expect(r.status).toBe(431);
  });

  it('logs one common-log-format line per request', async () => {
    logLines.length = 0;
    await http(u('/v2/library/app/manifests/1'));
    await http(u('/v2/library/app/manifests/nope'));
    await new Promise((r) => setTimeout(r, 50));
    expect(logLines).toHaveLength(2);
    expect(logLines[0]).toMatch(
      new RegExp(
        `^127\\.0\\.0\\.1 - - \\[\\d\\d/\\w{3}/\\d{4}:\\d\\d:\\d\\d:\\d\\d \\+0000\\] "GET /v2/library/app/manifests/1 HTTP/1\\.1" 200 ${store.index.size} \\d+\\.\\dms$`,
      ),
    );
    expect(logLines[1]).toMatch(/"GET \/v2\/library\/app\/manifests\/nope HTTP\/1\.1" 404 \d+ /);
  });
});

describe('connections', () => {
  /** Raw HTTP/1.1 over a socket: what arrives before the server closes it (or `waitMs` passes). */
  function rawExchange(port: number, send: string[], waitMs: number, gapMs = 0): Promise<{ data: string; closedByServer: boolean }> {
    return new Promise((resolve, reject) => {
      const sock = connect(port, '127.0.0.1');
      let data = '';
      let done = false;
      const finish = (closedByServer: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        sock.destroy();
        resolve({ data, closedByServer });
      };
      const timer = setTimeout(() => finish(false), waitMs);
      sock.on('data', (c: Buffer) => (data += c.toString('latin1')));
      sock.on('close', () => finish(true));
      sock.on('error', (e) => (done ? undefined : reject(e)));
      sock.on('connect', async () => {
        for (const chunk of send) {
          sock.write(chunk);
          if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
        }
      });
    });
  }

  it('reports a busy port and a bad certificate clearly', async () => {
    const busy = await startServer({ sources: [content], listen: `127.0.0.1:${server.port}` }).catch((e: unknown) => e);
    expect((busy as FerryError).code).toBe('LISTEN_FAILED');
    expect((busy as Error).message).toBe(`cannot listen on 127.0.0.1:${server.port}: the address is already in use`);
    const tls = await startServer({
      sources: [content],
      listen: '127.0.0.1:0',
      tls: { cert: 'not a certificate', key: 'nor a key' },
    }).catch((e: unknown) => e);
    expect((tls as FerryError).code).toBe('TLS_INVALID');
  });

  it('keeps connections alive across requests', async () => {
    const req = 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n';
    const { data, closedByServer } = await rawExchange(server.port, [req, req, req], 500, 50);
    expect(data.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    expect(closedByServer).toBe(false);
  });

  it('drops clients that send headers too slowly, and connections over the limit', async () => {
    const limited = await startServer({
      sources: [content],
      listen: '127.0.0.1:0',
      limits: { headersTimeoutMs: 300, requestTimeoutMs: 600, maxConnections: 2 },
    });
    try {
      const slow = await rawExchange(limited.port, ['GET /v2/ HTTP/1.1\r\n', 'Host: x\r\n'], 5000, 100);
      expect(slow.closedByServer).toBe(true);
      expect(slow.data).toMatch(/^HTTP\/1\.1 408 /);

      const hold = [connect(limited.port, '127.0.0.1'), connect(limited.port, '127.0.0.1')];
      await Promise.all(hold.map((s) => new Promise((r) => s.once('connect', r))));
      await new Promise((r) => setTimeout(r, 50));
      const third = await rawExchange(limited.port, ['GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'], 2000);
      expect(third.closedByServer).toBe(true);
      expect(third.data).toBe('');
      for (const s of hold) s.destroy();
    } finally {
      await limited.close();
    }
  });

  it('releases file descriptors when clients abort blob downloads', async () => {
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    for (let i = 0; i < 20; i++) {
      const ac = new AbortController();
      const res = await request(`${server.url}/v2/library/app/blobs/${store.bigLayer.digest}`, { signal: ac.signal });
      ac.abort();
      await res.body.dump().catch(() => {});
    }
    for (let i = 0; i < 50 && fds() > before + 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(fds()).toBeLessThanOrEqual(before + 2);
  });

  it('does not follow a symlinked blob file out of the layout', async () => {
    const dir = path.join(createTempDir('symlink'), 'layout');
    const w = new LayoutWriter(dir);
    const secretFile = path.join(dir, '..', 'outside.txt');
    const layer = Buffer.from('a layer of 26 bytes......\n');
    writeFileSync(secretFile, 'SECRET outside the layout\n'); // the same size
    const d = w.blob(layer, 'application/vnd.oci.image.layer.v1.tar', false);
    symlinkSync(secretFile, path.join(dir, 'blobs', 'sha256', d.digest.slice(7)));
    const img = w.image('amd64', [d], [d.digest]);
    w.index([named(img, 'docker.io/library/link:1')]);
    const s = await startServer({ sources: [await layoutContent(dir)], listen: '127.0.0.1:0' });
    try {
      const r = await http(`${s.url}/v2/library/link/blobs/${d.digest}`);
      expect(r.status).toBe(404);
      expect(r.body.toString()).not.toContain('SECRET');
    } finally {
      await s.close();
    }
  });
});

describe('interoperability', () => {
  it('skopeo inspect --raw returns the stored bytes', async () => {
    const host = `127.0.0.1:${server.port}`;
    const index = await runSkopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/library/app:1`]);
    expect(Buffer.from(index.stdout).equals(store.index.bytes)).toBe(true);
    const tool = await runSkopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/team/tool:2`]);
    expect(Buffer.from(tool.stdout).equals(store.tool.bytes)).toBe(true);
    const tags = await runSkopeo(['list-tags', '--tls-verify=false', `docker://${host}/library/app`]);
    expect(JSON.parse(tags.stdout).Tags).toEqual(['1', '1.0', '1.1', '2-rc', 'latest']);
  });

  it('skopeo copy --all copies the multi-arch image with digests unchanged', async () => {
    const dest = path.join(createTempDir('skopeo-copy'), 'out');
    await runSkopeo([
      'copy',
      '--all',
      '--retry-times',
      '0',
      '--src-tls-verify=false',
      `docker://127.0.0.1:${server.port}/library/app:1`,
      `oci:${dest}:app`,
    ]);
    const idx = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8')) as { manifests: Desc[] };
    expect(idx.manifests).toHaveLength(1);
    expect(idx.manifests[0]!.digest).toBe(store.index.digest);
    for (const d of [store.index, store.amd, store.arm, store.amd.config, store.arm.config, store.bigLayer, store.shared]) {
      const file = path.join(dest, 'blobs', 'sha256', d.digest.slice(7));
      expect(sha256(readFileSync(file)), d.digest).toBe(d.digest);
    }
  });

  it("ferry's own pull copies from the server with digests unchanged", async () => {
    const dest = path.join(createTempDir('ferry-pull'), 'store');
    const report = await pull({
      refs: [
        `127.0.0.1:${server.port}/library/app:1`,
        `127.0.0.1:${server.port}/team/tool:2`,
        `127.0.0.1:${server.port}/org/other@${store.other.digest}`,
      ],
      store: dest,
      retry: { maxAttempts: 1 },
    });
    expect(report.failures).toEqual([]);
    const idx = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8')) as { manifests: Desc[] };
    const byName = new Map(idx.manifests.map((m) => [m.annotations?.[REF_NAME], m.digest]));
    expect(byName.get(`127.0.0.1:${server.port}/library/app:1`)).toBe(store.index.digest);
    expect(byName.get(`127.0.0.1:${server.port}/team/tool:2`)).toBe(store.tool.digest);
    expect([...byName.values()]).toContain(store.other.digest);
    for (const d of [store.bigLayer, store.toolLayer, store.otherLayer, store.arm.config]) {
      expect(sha256(readFileSync(path.join(dest, 'blobs', 'sha256', d.digest.slice(7))))).toBe(d.digest);
    }
    // And the pulled store serves the same bytes again.
    const again = await layoutContent(dest);
    expect(again.repositories()).toEqual([
      `127.0.0.1_${server.port}/library/app`,
      `127.0.0.1_${server.port}/org/other`,
      `127.0.0.1_${server.port}/team/tool`,
    ]);
    expect(
      (await again.manifest(`127.0.0.1_${server.port}/library/app`, store.index.digest as Digest))?.bytes.equals(store.index.bytes),
    ).toBe(true);
  });
});

describe('TLS and basic auth', () => {
  let pki: TestPki;
  let secure: RunningServer;
  let agent: Agent;
  let htpasswdFile: string;

  beforeAll(async () => {
    pki = await createPki();
    const dir = createTempDir('htpasswd');
    htpasswdFile = path.join(dir, 'htpasswd');
    writeFileSync(
      htpasswdFile,
      `alice:${bcrypt.hashSync('wonderland', 5).replace(/^\$2b\$/, '$2y$')}\nbob:${bcrypt.hashSync('builder', 5)}\n`,
    );
    secure = await startServer({
      sources: [content],
      listen: '127.0.0.1:0',
      tls: { cert: readFileSync(pki.server.certFile, 'utf8'), key: readFileSync(pki.server.keyFile, 'utf8') },
      htpasswd: htpasswdFile,
    });
    agent = new Agent({ connect: { ca: readFileSync(pki.ca.certFile, 'utf8') } });
  });

  afterAll(async () => {
    await agent?.close();
    await secure?.close();
  });

  it('serves HTTPS with the given certificate', async () => {
    expect(secure.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const r = await http(`${secure.url}/v2/`, { dispatcher: agent, headers: { Authorization: basic('alice', 'wonderland') } });
    expect(r.status).toBe(200);
    // Plain HTTP to the TLS port gets nowhere.
    await expect(http(`http://127.0.0.1:${secure.port}/v2/`)).rejects.toThrow();
  });

  it('challenges with 401 and Basic realm="ferry" without valid credentials', async () => {
    for (const headers of [
      {} as Record<string, string>,
      { Authorization: basic('alice', 'wrong') },
      { Authorization: basic('mallory', 'wonderland') },
      { Authorization: 'Bearer x' },
    ]) {
      const r = await http(`${secure.url}/v2/library/app/manifests/1`, { dispatcher: agent, headers });
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Basic realm="ferry"');
      expect(r.headers['docker-distribution-api-version']).toBe('registry/2.0');
      expect(errorCode(r)).toBe('UNAUTHORIZED');
    }
    // Writes are not even considered before authentication.
    expect((await http(`${secure.url}/v2/library/app/manifests/1`, { dispatcher: agent, method: 'PUT', body: '{}' })).status).toBe(401);
  });

  it('accepts $2y$ and $2b$ bcrypt entries', async () => {
    for (const [user, pw] of [
      ['alice', 'wonderland'],
      ['bob', 'builder'],
    ] as const) {
      const r = await http(`${secure.url}/v2/library/app/manifests/1`, { dispatcher: agent, headers: { Authorization: basic(user, pw) } });
      expect(r.status).toBe(200);
      expect(r.body.equals(store.index.bytes)).toBe(true);
    }
  });

  it('works with skopeo over TLS with credentials', async () => {
    const host = `127.0.0.1:${secure.port}`;
    const r = await runSkopeo([
      'inspect',
      '--raw',
      '--cert-dir',
      pki.certDir,
      '--creds',
      'alice:wonderland',
      `docker://${host}/library/app:1`,
    ]);
    expect(Buffer.from(r.stdout).equals(store.index.bytes)).toBe(true);
    const denied = await runSkopeo(
      ['inspect', '--raw', '--cert-dir', pki.certDir, '--creds', 'alice:nope', `docker://${host}/library/app:1`],
      { allowFailure: true },
    );
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toMatch(/unauthorized|authentication/i);
  });

  it("works with ferry's pull over TLS with credentials", async () => {
    const dest = path.join(createTempDir('ferry-pull-tls'), 'store');
    const report = await pull({
      refs: [`127.0.0.1:${secure.port}/team/tool:2`],
      store: dest,
      staticCredential: { kind: 'basic', username: 'bob', password: 'builder' },
      caFiles: [pki.ca.certFile],
    });
    expect(report.failures).toEqual([]);
    const idx = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8')) as { manifests: Desc[] };
    expect(idx.manifests[0]!.digest).toBe(store.tool.digest);
  });

  it('throttles repeated failed logins with 429 TOOMANYREQUESTS', async () => {
    const throttled = await startServer({ sources: [content], listen: '127.0.0.1:0', htpasswd: htpasswdFile, limits: { authFailures: 2 } });
    try {
      const url = `${throttled.url}/v2/`;
      expect((await http(url, { headers: { Authorization: basic('alice', 'x') } })).status).toBe(401);
      expect((await http(url, { headers: { Authorization: basic('alice', 'y') } })).status).toBe(401);
      const r = await http(url, { headers: { Authorization: basic('alice', 'wonderland') } });
      expect(r.status).toBe(429);
      expect(errorCode(r)).toBe('TOOMANYREQUESTS');
      expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
    } finally {
      await throttled.close();
    }
  });

  it('refuses an htpasswd file with non-bcrypt entries at start-up', async () => {
    const file = path.join(createTempDir('bad-htpasswd'), 'htpasswd');
    writeFileSync(file, 'alice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n');
    await expect(startServer({ sources: [content], listen: '127.0.0.1:0', htpasswd: file })).rejects.toThrow(/bcrypt/);
  });
});

describe('ferry serve (CLI)', () => {
  it('prints the URL and what it serves, logs requests, and stops cleanly when signalled', async () => {
    const ac = new AbortController();
    const out: string[] = [];
    const err: string[] = [];
    let ready!: (s: RunningServer) => void;
    const started = new Promise<RunningServer>((r) => (ready = r));
    const done = runServe(
      { sources: [`oci:${store.dir}`], listen: '127.0.0.1:0', json: true },
      { signal: ac.signal, stdout: (t) => out.push(t), stderr: (t) => err.push(t), onReady: ready },
    );
    const s = await started;
    expect((await http(`${s.url}/v2/library/app/tags/list`)).status).toBe(200);
    ac.abort();
    expect(await done).toBe(0);
    const events = out
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(events[0]).toMatchObject({ type: 'warning' });
    expect(events.find((e) => e.type === 'listening')).toMatchObject({ url: s.url, tls: false, auth: false });
    expect(events.find((e) => e.type === 'repository' && e.name === 'library/app')).toMatchObject({
      tags: expect.arrayContaining([{ tag: 'latest', digest: store.index.digest }]),
    });
    expect(events.find((e) => e.type === 'request')).toMatchObject({ method: 'GET', target: '/v2/library/app/tags/list', status: 200 });
    expect(events.at(-1)).toEqual({ type: 'stopped' });
    // The port is free again.
    await expect(http(`${s.url}/v2/`)).rejects.toThrow();
  });

  it('refuses sources with nothing to serve, conflicting sources and half TLS flags', async () => {
    const signal = new AbortController().signal;
    const quiet = { signal, stdout: () => {}, stderr: () => {} };
    const bare = path.join(createTempDir('cli-bare'), 'layout');
    const w = new LayoutWriter(bare);
    const l = gzLayer(w, Buffer.from('bare\n'));
    const img = w.image('amd64', [l.desc], [l.diffId]);
    w.index([named(img, 'latest')]);
    const nothing = await runServe({ sources: [`oci:${bare}`], listen: '127.0.0.1:0' }, quiet).catch((e: unknown) => e);
    expect(nothing).toBeInstanceOf(FerryError);
    expect((nothing as FerryError).code).toBe('SERVE_NOTHING');

    const other = path.join(createTempDir('cli-other'), 'layout');
    const w2 = new LayoutWriter(other);
    const img2 = w2.image(
      's390x',
      [w2.blob(gzipSync('z'), 'application/vnd.oci.image.layer.v1.tar+gzip')],
      [sha256(gunzipSync(gzipSync('z')))],
    );
    w2.index([named(img2, 'docker.io/library/app:1')]);
    const clash = await runServe({ sources: [`oci:${store.dir}`, `oci:${other}`], listen: '127.0.0.1:0' }, quiet).catch((e: unknown) => e);
    expect((clash as FerryError).code).toBe('SERVE_CONFLICT');

    await expect(runServe({ sources: [`oci:${store.dir}`], listen: '127.0.0.1:0', 'tls-cert': 'x.crt' }, quiet)).rejects.toThrow(
      UsageError,
    );
    await expect(runServe({ sources: [`docker://nginx`], listen: '127.0.0.1:0' }, quiet)).rejects.toThrow(UsageError);
    await expect(runServe({ sources: [`oci:${store.dir}`], listen: 'nowhere' }, quiet)).rejects.toThrow(UsageError);
  });

  it('serves a bare-tag layout under oci:DIR:REPO and exits 0 on SIGTERM', async () => {
    const dir = path.join(createTempDir('cli-proc'), 'layout');
    const w = new LayoutWriter(dir);
    const l = gzLayer(w, Buffer.from('proc\n'));
    const img = w.image('amd64', [l.desc], [l.diffId]);
    w.index([named(img, 'v1')]);
    const code = [
      "const { default: yargs } = await import('yargs');",
      `const { serveCommand } = await import(${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, 'src/cli/serve.ts')).href)});`,
      'await serveCommand(yargs(process.argv.slice(1))).strict().parseAsync();',
    ].join('\n');
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', code, 'serve', `oci:${dir}:team/app`, '--listen', '127.0.0.1:0'],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    try {
      const deadline = Date.now() + 30_000;
      // The URL line and the list of served tags may arrive in separate chunks: wait for both.
      const listed = `  team/app:v1  ${img.digest}`;
      while (!(/Serving (http:\/\/\S+)/.test(stdout) && stdout.includes(listed)) && Date.now() < deadline && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const url = /Serving (http:\/\/\S+)/.exec(stdout)?.[1];
      expect(url, `no URL printed\nstdout: ${stdout}\nstderr: ${stderr}`).toBeDefined();
      expect(stdout).toContain(listed);
      const r = await http(`${url}/v2/team/app/manifests/v1`);
      expect(r.body.equals(img.bytes)).toBe(true);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(stderr).toMatch(/"GET \/v2\/team\/app\/manifests\/v1 HTTP\/1\.1" 200/);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});

describe('regclient testrepo fixture', () => {
  const fixture = path.resolve(REPO_ROOT, '../shared/fixtures/regclient/testdata/testrepo');
  const present = existsSync(path.join(fixture, 'index.json'));
  if (!present) {
    it.skip(`skipped: shared fixture not found at ${fixture}`, () => {});
    return;
  }
  let fx: RunningServer;
  beforeAll(async () => {
    fx = await startServer({ sources: [await layoutContent(fixture, { repository: 'testrepo' })], listen: '127.0.0.1:0' });
  });
  afterAll(async () => {
    await fx?.close();
  });

  it('serves its bare tags under the given repository, and nothing without one', async () => {
    const tags = JSON.parse((await http(`${fx.url}/v2/testrepo/tags/list`)).body.toString()).tags as string[];
    expect(tags).toContain('v1');
    expect(tags).toContain('loop');
    expect([...tags].sort()).toEqual(tags);
    const bare = await layoutContent(fixture);
    expect(bare.repositories()).toEqual([]);
    expect(bare.warnings.join('\n')).toMatch(/bare tag/);
  });

  it('lists the untagged SBOMs as referrers of v3', async () => {
    const v3 = await http(`${fx.url}/v2/testrepo/manifests/v3`, { method: 'HEAD' });
    const digest = v3.headers['docker-content-digest'] as string;
    const r = JSON.parse((await http(`${fx.url}/v2/testrepo/referrers/${digest}?artifactType=application/example.sbom`)).body.toString());
    expect(r.manifests.length).toBeGreaterThanOrEqual(2);
    for (const m of r.manifests) expect(m.artifactType).toBe('application/example.sbom');
  });

  it('skopeo copy --all of v1 keeps the digest', async () => {
    const v1 = await http(`${fx.url}/v2/testrepo/manifests/v1`);
    const dest = path.join(createTempDir('fixture-copy'), 'out');
    await runSkopeo([
      'copy',
      '--all',
      '--retry-times',
      '0',
      '--src-tls-verify=false',
      `docker://127.0.0.1:${fx.port}/testrepo:v1`,
      `oci:${dest}:v1`,
    ]);
    const idx = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8')) as { manifests: Desc[] };
    expect(idx.manifests[0]!.digest).toBe(sha256(v1.body));
  });
});
