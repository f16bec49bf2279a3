// The docker-daemon destination without a dockerd: its pure parts (names, platform choice,
// manifest.json), and the whole flow against a fake Engine API on a unix socket that records
// the uploaded docker-archive, so the archive's shape and the error paths (error inside a 200
// stream, non-200, integrity failure mid-upload, confirmation mismatch) are checked exactly.
import { createHash } from 'node:crypto';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { UnixHttpServer } from '../../../helpers/unix-http.js';
import type { CopyEvent } from '../../../../src/copy/events.js';
import { planCopy, type CopyPlan } from '../../../../src/copy/plan.js';
import {
  buildManifestJson,
  chooseImage,
  daemonPlatform,
  DockerDaemonDestination,
  engineName,
  engineNames,
  type DockerDaemonOptions,
} from '../../../../src/transports/docker-daemon/destination.js';
import { parseNamePrefix } from '../../../../src/transports/registry/names.js';
import { UsageError } from '../../../../src/util/errors.js';
import { executeCopy } from '../../../../src/copy/execute.js';
import type { DestinationReport } from '../../../../src/copy/report.js';
import type { EventSink } from '../../../../src/copy/events.js';
import { DigestVerifier, sha256, type Digest } from '../../../../src/oci/digest.js';
import type { Descriptor } from '../../../../src/oci/manifest.js';
import { MediaType } from '../../../../src/oci/mediatypes.js';
import { parsePlatform } from '../../../../src/oci/platform.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes } from '../../../../src/transports/types.js';
import { iterateTar } from '../../../../src/tar/reader.js';
import { collect } from '../../../helpers/streams.js';

// ---------------------------------------------------------------------------------------------
// In-memory images

interface Blob {
  bytes: Buffer;
  mediaType: string;
}

class MemSource implements ImageSource {
  /** Digests whose bytes are served with one byte flipped. */
  readonly corrupt = new Set<string>();
  /** Digests whose (correct) bytes arrive slowly. */
  readonly slow = new Set<string>();
  constructor(
    readonly description: string,
    private readonly root: Digest,
    private readonly blobs: Map<string, Blob>,
  ) {}
  async getRootManifest(): Promise<ManifestBytes> {
    return this.getManifest(this.root);
  }
  async getManifest(digest: Digest): Promise<ManifestBytes> {
    const b = this.blobs.get(digest)!;
    return { bytes: b.bytes, mediaType: b.mediaType, digest };
  }
  openBlob(desc: Descriptor, _opts: BlobOpenOptions): Readable {
    const bytes = Buffer.from(this.blobs.get(desc.digest)!.bytes);
    if (this.corrupt.has(desc.digest)) bytes[bytes.length - 1]! ^= 0xff;
    // Several chunks, so the held-back last chunk is a real part of the blob.
    const parts = [bytes.subarray(0, 100), bytes.subarray(100, 200), bytes.subarray(200)].filter((p) => p.length > 0);
    if (!this.corrupt.has(desc.digest) && !this.slow.has(desc.digest)) return Readable.from(parts);
    // A bad blob arrives slowly, so what precedes it has reached the daemon when it fails.
    return Readable.from(
      (async function* () {
        for (const p of parts) {
          await new Promise((r) => setTimeout(r, 20));
          yield p;
        }
      })(),
    );
  }
  async close(): Promise<void> {}
}

const store = new Map<string, Blob>();
function put(bytes: Buffer | string, mediaType: string): Descriptor {
  const b = Buffer.from(bytes);
  const digest = sha256(b);
  store.set(digest, { bytes: b, mediaType });
  return { mediaType, digest, size: b.length };
}

function image(arch: string, layerTypes: string[] = [MediaType.OciLayerGzip], configType: string = MediaType.OciConfig): Descriptor {
  const layers = layerTypes.map((t, i) => put(Buffer.alloc(300 + i, `${arch}-${i}-${t}`), t));
  const config = put(
    JSON.stringify({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) } }),
    configType,
  );
  return put(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers }), MediaType.OciManifest);
}

function index(children: Array<[Descriptor, string]>): Descriptor {
  const manifests = children.map(([d, p]) => {
    const [os, architecture, variant] = p.split('/');
    return { ...d, platform: { os, architecture, ...(variant ? { variant } : {}) } };
  });
  return put(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }), MediaType.OciIndex);
}

const single = image('amd64');
const multi = index([
  [image('amd64', [MediaType.OciLayerGzip, MediaType.OciLayer]), 'linux/amd64'],
  [image('arm64'), 'linux/arm64'],
  [image('arm', [MediaType.OciLayerGzip]), 'linux/arm/v6'],
]);
const artifact = image('none', [], 'application/vnd.example.config.v1+json');
const zstd = image('amd64', [MediaType.OciLayerZstd]);

async function planOf(items: Array<[string, Descriptor]>): Promise<{ plan: CopyPlan; sources: MemSource[] }> {
  const sources = items.map(([name, d]) => new MemSource(`mem:${name}`, d.digest as Digest, store));
  const plan = await planCopy(items.map(([name], i) => ({ name, source: sources[i]! })));
  expect(plan.failures).toEqual([]);
  return { plan, sources };
}

function configOf(manifest: Descriptor, arch?: string): string {
  let doc = JSON.parse(store.get(manifest.digest)!.bytes.toString()) as {
    config?: Descriptor;
    manifests?: Array<Descriptor & { platform: { architecture: string } }>;
  };
  if (doc.manifests) doc = JSON.parse(store.get(doc.manifests.find((m) => m.platform.architecture === arch)!.digest)!.bytes.toString());
  return doc.config!.digest;
}

// ---------------------------------------------------------------------------------------------
// A fake Engine API

interface Upload {
  names: string[];
  files: Map<string, Buffer>;
  complete: boolean;
}

class FakeDaemon extends UnixHttpServer {
  readonly requests: string[] = [];
  readonly uploads: Upload[] = [];
  /** Name or ID → image ID. */
  readonly images = new Map<string, string>();
  apiVersion = '1.41';
  /** The answer to a complete upload; default: register every image, like dockerd. */
  answer: (u: Upload) => { status: number; body: string } = (u) => this.register(u);
  /** Refuse every load at once, before reading any of the upload (a daemon out of space). */
  refuseAtOnce: string | undefined;

  constructor() {
    super('ferry-fake-dockerd-');
  }

  reset(): void {
    this.requests.length = 0;
    this.uploads.length = 0;
    this.images.clear();
    this.apiVersion = '1.41';
    this.answer = (u) => this.register(u);
    this.refuseAtOnce = undefined;
  }

  register(u: Upload): { status: number; body: string } {
    const manifest = JSON.parse(u.files.get('manifest.json')!.toString()) as Array<{ Config: string; RepoTags: string[] }>;
    const lines: string[] = [];
    for (const m of manifest) {
      const id = `sha256:${createHash('sha256').update(u.files.get(m.Config)!).digest('hex')}`;
      this.images.set(id, id);
      for (const t of m.RepoTags) this.images.set(t, id);
      lines.push(JSON.stringify({ stream: `Loaded image: ${m.RepoTags[0] ?? id}\n` }));
    }
    return { status: 200, body: lines.map((l) => `${l}\r\n`).join('') };
  }

  protected async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url!, 'http://docker');
    this.requests.push(`${req.method} ${url.pathname}${url.search}`);
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/_ping') {
      res.writeHead(200, { 'API-Version': this.apiVersion });
      res.end('OK');
      return;
    }
    const prefix = `/v${this.apiVersion}`;
    if (!url.pathname.startsWith(prefix)) return json(400, { message: 'unversioned' });
    const p = url.pathname.slice(prefix.length);
    if (p === '/version') return json(200, { Os: 'linux', Arch: 'amd64', Version: '20.10.24', ApiVersion: this.apiVersion });
    const inspect = /^\/images\/(.+)\/json$/.exec(p);
    if (inspect && req.method === 'GET') {
      const id = this.images.get(decodeURIComponent(inspect[1]!));
      return id ? json(200, { Id: id, RepoTags: [] }) : json(404, { message: `No such image: ${inspect[1]}` });
    }
    const tag = /^\/images\/(.+)\/tag$/.exec(p);
    if (tag && req.method === 'POST') {
      const id = this.images.get(decodeURIComponent(tag[1]!));
      if (!id) return json(404, { message: 'No such image' });
      this.images.set(`${url.searchParams.get('repo')}:${url.searchParams.get('tag')}`, id);
      res.writeHead(201);
      res.end();
      return;
    }
    if (p === '/images/load' && req.method === 'POST' && this.refuseAtOnce !== undefined) {
      res.writeHead(500, { 'Content-Type': 'application/json', Connection: 'close' });
      res.end(JSON.stringify({ message: this.refuseAtOnce }), () => req.socket.destroy());
      return;
    }
    if (p === '/images/load' && req.method === 'POST') {
      const upload: Upload = { names: [], files: new Map(), complete: false };
      this.uploads.push(upload);
      try {
        for await (const { entry, body } of iterateTar(req)) {
          upload.names.push(entry.name);
          const data = await collect(body);
          if (entry.type === 'file') upload.files.set(entry.name, data);
        }
        upload.complete = true;
      } catch {
        res.destroy();
        return;
      }
      const a = this.answer(upload);
      res.writeHead(a.status, { 'Content-Type': 'application/json' });
      res.end(a.body);
      return;
    }
    json(404, { message: `page not found: ${p}` });
  }
}

const daemon = new FakeDaemon();
beforeAll(() => daemon.listen());
afterAll(() => daemon.close());
afterEach(() => daemon.reset());

/** The destination's options and the executor's (all-or-nothing by default, as `ferry load` of a bundle). */
type LoadOptions = DockerDaemonOptions & { onEvent?: EventSink; allOrNothing?: boolean };
const opts = (extra: Partial<LoadOptions> = {}): LoadOptions => ({ socket: daemon.socket, ...extra });

/** What `ferry load --to docker-daemon` does: the one executor over the destination. */
async function load(plan: CopyPlan, sources: ImageSource[], o: LoadOptions): Promise<DestinationReport> {
  const { onEvent, allOrNothing, ...destOpts } = o;
  const dest = new DockerDaemonDestination(destOpts);
  try {
    return await executeCopy(plan, sources, dest, {
      action: 'loading',
      allOrNothing: allOrNothing ?? true,
      ...(onEvent ? { onEvent } : {}),
    });
  } finally {
    await dest.close();
  }
}

// ---------------------------------------------------------------------------------------------

describe('engineName', () => {
  it('tags by full name; a tag+digest name by its tag; a digest-only name by a sha256-<hex> tag', () => {
    const tagged = engineName('docker.io/library/nginx:1.25');
    expect([tagged.repoTag, tagged.lookup, tagged.destination, tagged.digestTag]).toEqual([
      'docker.io/library/nginx:1.25',
      'docker.io/library/nginx:1.25',
      'docker-daemon:nginx:1.25',
      false,
    ]);
    const both = engineName(`localhost:5000/a/b:2@${sha256('m')}`);
    expect([both.repoTag, both.destination]).toEqual(['localhost:5000/a/b:2', 'docker-daemon:localhost:5000/a/b:2']);
    const m = sha256('m');
    const digestOnly = engineName(`docker.io/x/y@${m}`);
    const tag = `sha256-${m.slice('sha256:'.length)}`;
    expect([digestOnly.repoTag, digestOnly.lookup, digestOnly.destination, digestOnly.digestTag]).toEqual([
      `docker.io/x/y:${tag}`,
      `docker.io/x/y:${tag}`,
      `docker-daemon:x/y:${tag}`,
      true,
    ]);
    expect(tag).toHaveLength(71);
  });

  it('refuses a nameless image (no repository to tag)', () => {
    expect(() => engineName(`@${sha256('m')}`)).toThrow();
  });
});

describe('engineNames', () => {
  const d1 = sha256('one');
  const d2 = sha256('two');
  const imgs = [
    { name: 'docker.io/library/nginx:1.27', root: { digest: d1 } },
    { name: `ghcr.io/org/app@${d2}`, root: { digest: d2 } },
  ];

  it('keeps the source names by default', () => {
    expect(engineNames(imgs).map((n) => (n instanceof Error ? n.message : n.repoTag))).toEqual([
      'docker.io/library/nginx:1.27',
      `ghcr.io/org/app:sha256-${d2.slice(7)}`,
    ]);
  });

  it('--prefix HOST/PATH puts the repository path under it, as registryTargets does; --scoped keeps the host', () => {
    const prefix = parseNamePrefix('registry.local:5000/mirror');
    expect(engineNames(imgs, { prefix, scoped: false }).map((n) => (n instanceof Error ? n.message : n.repoTag))).toEqual([
      'registry.local:5000/mirror/library/nginx:1.27',
      `registry.local:5000/mirror/org/app:sha256-${d2.slice(7)}`,
    ]);
    expect(engineNames(imgs, { prefix, scoped: true }).map((n) => (n instanceof Error ? n.message : n.repoTag))).toEqual([
      'registry.local:5000/mirror/docker.io/library/nginx:1.27',
      `registry.local:5000/mirror/ghcr.io/org/app:sha256-${d2.slice(7)}`,
    ]);
    // A plain path lies on docker.io, as `docker pull mirror/team/...` reads it.
    const plain = engineNames(imgs, { prefix: parseNamePrefix('mirror/team'), scoped: false });
    expect(plain.map((n) => (n instanceof Error ? n.message : n.destination))[0]).toBe('docker-daemon:mirror/team/library/nginx:1.27');
  });

  it('two images on one name are a UsageError naming both, for the whole run', () => {
    const clash = [
      { name: 'docker.io/x/a:1', root: { digest: d1 } },
      { name: 'quay.io/x/a:1', root: { digest: d2 } },
    ];
    expect(() => engineNames(clash, { prefix: parseNamePrefix('reg:5000/m'), scoped: false })).toThrow(
      /docker\.io\/x\/a:1 and quay\.io\/x\/a:1 would both be loaded as reg:5000\/m\/x\/a:1 \(use --scoped/,
    );
    const err = (() => {
      try {
        engineNames(clash, { prefix: parseNamePrefix('reg:5000/m'), scoped: false });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(UsageError);
    // A source tag spelled like a digest tag, at another digest.
    const spelled = [
      { name: `docker.io/x/a@${d1}`, root: { digest: d1 } },
      { name: `docker.io/x/a:sha256-${d1.slice(7)}`, root: { digest: d2 } },
    ];
    expect(() => engineNames(spelled)).toThrow(/would both be loaded as docker\.io\/x\/a:sha256-/);
  });
});

describe('parseNamePrefix', () => {
  it.each([
    ['registry.local:5000/mirror', { host: 'registry.local:5000', prefix: 'mirror' }],
    ['registry.local:5000', { host: 'registry.local:5000', prefix: '' }],
    ['localhost/a/b/', { host: 'localhost', prefix: 'a/b' }],
    ['mirror/team', { host: 'docker.io', prefix: 'mirror/team' }],
    ['mirror', { host: 'docker.io', prefix: 'mirror' }],
  ])('%s', (input, want) => {
    expect(parseNamePrefix(input)).toEqual(want);
  });

  it.each(['', '/abs', 'Mirror/x', 'reg:5000/a:b', 'reg:5000/a@b', 'a//b', 'reg:99999999/x', 'bad host!/x'])('refuses %j', (input) => {
    expect(() => parseNamePrefix(input)).toThrow(UsageError);
  });
});

describe('daemonPlatform', () => {
  it.each([
    [['linux', 'amd64', undefined], 'linux/amd64'],
    [['linux', 'arm64', undefined], 'linux/arm64'],
    [['linux', 'arm', 'armv7l'], 'linux/arm/v7'],
    [['linux', 'arm', 'armv6l'], 'linux/arm/v6'],
    [['linux', 'arm', undefined], 'linux/arm/v7'],
    [['windows', 'amd64', 'x86_64'], 'windows/amd64'],
  ] as const)('%j → %s', ([os, arch, machine], want) => {
    const p = daemonPlatform(os, arch, machine);
    expect([p.os, p.architecture, p.variant].filter(Boolean).join('/')).toBe(want);
  });
});

describe('chooseImage', () => {
  it('picks the index child for the platform, refuses missing platforms and artifacts', async () => {
    const { plan } = await planOf([
      ['docker.io/t/multi:1', multi],
      ['docker.io/t/art:1', artifact],
    ]);
    const m = plan.images[0]!;
    expect(chooseImage(m, parsePlatform('linux/arm64')).manifest.config.digest).toBe(configOf(multi, 'arm64'));
    expect(chooseImage(m, parsePlatform('linux/amd64')).platform).toBe('linux/amd64');
    // An ARMv7 engine runs the v6 image when there is no v7 one.
    expect(chooseImage(m, parsePlatform('linux/arm/v7')).platform).toBe('linux/arm/v6');
    let err: { code?: string; message: string; hint?: string } | undefined;
    try {
      chooseImage(m, parsePlatform('linux/s390x'));
    } catch (e) {
      err = e as typeof err;
    }
    expect(err?.code).toBe('NOT_FOUND');
    expect(err?.message).toContain('docker.io/t/multi:1 has no image for platform linux/s390x');
    expect(err?.hint).toBe('it has: linux/amd64, linux/arm64, linux/arm/v6');
    expect(() => chooseImage(plan.images[1]!, parsePlatform('linux/amd64'))).toThrow(
      /is not a container image \(config media type application\/vnd.example.config/,
    );
  });
});

describe('buildManifestJson', () => {
  it('writes docker-archive paths, tags and layers in order', () => {
    const [c, l1, l2] = [sha256('c'), sha256('l1'), sha256('l2')];
    expect(
      JSON.parse(
        buildManifestJson([
          { config: c, repoTags: ['docker.io/a/b:1'], layers: [l1, l2] },
          { config: c, repoTags: [], layers: [] },
        ]).toString(),
      ),
    ).toEqual([
      {
        Config: `blobs/sha256/${c.slice(7)}`,
        RepoTags: ['docker.io/a/b:1'],
        Layers: [`blobs/sha256/${l1.slice(7)}`, `blobs/sha256/${l2.slice(7)}`],
      },
      { Config: `blobs/sha256/${c.slice(7)}`, RepoTags: [], Layers: [] },
    ]);
  });
});

it('a DigestVerifier holding its last chunk passes everything on, the last chunk only at a clean, matching end', async () => {
  const holding = (content: string): DigestVerifier =>
    new DigestVerifier({ digest: sha256(content), size: content.length, what: 'test', holdLast: true });
  const out: Buffer[] = [];
  await pipeline(
    Readable.from([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]),
    holding('abc'),
    async (src: AsyncIterable<unknown>) => {
      for await (const c of src) out.push(c as Buffer);
    },
  );
  expect(Buffer.concat(out).toString()).toBe('abc');
  // Content that does not match: the digest error, and the last chunk is never passed on.
  const partial: string[] = [];
  const wrong = await pipeline(
    Readable.from([Buffer.from('a'), Buffer.from('b'), Buffer.from('X')]),
    holding('abc'),
    async (src: AsyncIterable<unknown>) => {
      for await (const c of src) partial.push((c as Buffer).toString());
    },
  ).catch((e: { code?: string }) => e.code);
  expect(wrong).toBe('DIGEST_MISMATCH');
  expect(partial).not.toContain('X');
  const seen: string[] = [];
  const failing = new Readable({ read() {} });
  const hold = holding('xyz');
  hold.on('data', (c: Buffer) => seen.push(c.toString()));
  const done = pipeline(failing, hold).catch((e: Error) => e.message);
  failing.push(Buffer.from('x'));
  failing.push(Buffer.from('y'));
  await new Promise((r) => setImmediate(r));
  failing.destroy(new Error('bad'));
  expect(await done).toBe('bad');
  expect(seen).toEqual(['x']);
});

describe('DockerDaemonDestination under executeCopy against a fake Engine API', () => {
  it('streams one docker-archive: manifest.json first, each blob once, full names as RepoTags', async () => {
    const digestOnly = `docker.io/t/pinned@${single.digest}`;
    const digestTag = `t/pinned:sha256-${single.digest.slice('sha256:'.length)}`;
    const { plan, sources } = await planOf([
      ['docker.io/t/single:1', single],
      ['docker.io/t/multi:1', multi],
      ['docker.io/t/single:also', single],
      [digestOnly, single],
    ]);
    const events: CopyEvent[] = [];
    const report = await load(plan, sources, opts({ onEvent: (e) => events.push(e) }));

    expect(daemon.requests.filter((r) => r.startsWith('POST /v1.41/images/load'))).toEqual(['POST /v1.41/images/load?quiet=1']);
    const up = daemon.uploads[0]!;
    expect(up.complete).toBe(true);
    expect(up.names[0]).toBe('manifest.json');
    const blobNames = up.names.filter((n) => n.startsWith('blobs/sha256/'));
    expect(new Set(blobNames).size).toBe(blobNames.length);
    // amd64 only: single (config + 1 layer, shared by three names) and multi's amd64 child
    // (config + the same first layer + 1 more).
    expect(blobNames).toHaveLength(4);
    for (const n of blobNames) expect(sha256(up.files.get(n)!)).toBe(`sha256:${n.slice('blobs/sha256/'.length)}`);
    const manifest = JSON.parse(up.files.get('manifest.json')!.toString()) as Array<{ RepoTags: string[]; Config: string }>;
    expect(manifest.map((m) => m.RepoTags)).toEqual([
      ['docker.io/t/single:1'],
      ['docker.io/t/multi:1'],
      ['docker.io/t/single:also'],
      [`docker.io/${digestTag}`],
    ]);
    // The digest-only name: one warning saying which tag it got.
    expect(events.filter((e) => e.kind === 'warning').map((e) => (e as { message: string }).message)).toEqual([
      `docker has no digest-only names; ${digestOnly} is tagged as docker.io/${digestTag}`,
    ]);

    expect(report.images.map((i) => [i.name, i.status, i.destination, i.destinationDigest, i.skipped])).toEqual([
      ['docker.io/t/single:1', 'done', 'docker-daemon:t/single:1', configOf(single), undefined],
      ['docker.io/t/multi:1', 'done', 'docker-daemon:t/multi:1', configOf(multi, 'amd64'), undefined],
      ['docker.io/t/single:also', 'done', 'docker-daemon:t/single:also', configOf(single), undefined],
      [digestOnly, 'done', `docker-daemon:${digestTag}`, configOf(single), undefined],
    ]);
    expect(report.images[1]!.platforms).toEqual(['linux/amd64']);
    expect(report.blobs).toMatchObject({ total: 4, fetched: 4, skipped: 0, failed: 0 });
    expect(events.filter((e) => e.kind === 'blob' && e.state === 'done')).toHaveLength(4);
    expect(events.filter((e) => e.kind === 'image' && e.state === 'done')).toHaveLength(4);

    // A rerun sends nothing.
    const again = await load(plan, sources, opts());
    expect(again.images.map((i) => [i.status, i.skipped])).toEqual(Array(4).fill(['done', true]));
    expect(again.blobs).toMatchObject({ total: 4, fetched: 0, skipped: 4 });
    expect(daemon.uploads).toHaveLength(1);
  });

  it('an image present under another name is only tagged', async () => {
    const { plan, sources } = await planOf([['docker.io/t/single:new', single]]);
    daemon.images.set(configOf(single), configOf(single));
    const report = await load(plan, sources, opts());
    expect(report.images.map((i) => [i.status, i.skipped])).toEqual([['done', true]]);
    expect(daemon.uploads).toHaveLength(0);
    expect(daemon.requests).toContain(`POST /v1.41/images/${configOf(single)}/tag?repo=docker.io%2Ft%2Fsingle&tag=new`);
    expect(daemon.images.get('docker.io/t/single:new')).toBe(configOf(single));
  });

  it('platform option, artifacts and zstd on an old engine fail alone; the rest loads', async () => {
    const { plan, sources } = await planOf([
      ['docker.io/t/multi:1', multi],
      ['docker.io/t/art:1', artifact],
      ['docker.io/t/zstd:1', zstd],
    ]);
    const report = await load(plan, sources, opts({ platform: parsePlatform('linux/arm64') }));
    expect(report.images.map((i) => [i.name, i.status, i.errorCode])).toEqual([
      ['docker.io/t/multi:1', 'done', undefined],
      ['docker.io/t/art:1', 'failed', 'NOT_A_CONTAINER_IMAGE'],
      ['docker.io/t/zstd:1', 'failed', 'ZSTD_UNSUPPORTED'],
    ]);
    expect(report.images[0]!.destinationDigest).toBe(configOf(multi, 'arm64'));
    expect(report.images[2]!.hint).toMatch(/23\.0/);

    const s390 = await load(plan, sources, opts({ platform: parsePlatform('linux/s390x') }));
    expect(s390.images[0]).toMatchObject({
      status: 'failed',
      errorCode: 'NOT_FOUND',
      hint: 'it has: linux/amd64, linux/arm64, linux/arm/v6',
    });
  });

  it('zstd layers go through on an engine that decompresses them (API 1.42+)', async () => {
    daemon.apiVersion = '1.43';
    const { plan, sources } = await planOf([['docker.io/t/zstd:1', zstd]]);
    const report = await load(plan, sources, opts());
    expect(report.images.map((i) => i.status)).toEqual(['done']);
    expect(daemon.requests).toContain('POST /v1.43/images/load?quiet=1');
  });

  it('an error inside the 200 stream fails the images the daemon did not load, naming its message', async () => {
    const { plan, sources } = await planOf([
      ['docker.io/t/single:1', single],
      ['docker.io/t/multi:1', multi],
    ]);
    daemon.answer = () => ({
      status: 200,
      body: '{"errorDetail":{"message":"failed to register layer: no space left on device"},"error":"no space"}\r\n',
    });
    const report = await load(plan, sources, opts());
    for (const img of report.images) {
      expect(img).toMatchObject({ status: 'failed', errorCode: 'DAEMON_LOAD_FAILED' });
      expect(img.error).toContain('failed to register layer: no space left on device');
    }
  });

  it('a non-200 answer is a failure with the daemon message', async () => {
    const { plan, sources } = await planOf([['docker.io/t/single:1', single]]);
    daemon.answer = () => ({ status: 500, body: '{"message":"write /var/lib/docker/tmp: read-only file system"}' });
    const report = await load(plan, sources, opts());
    expect(report.images[0]).toMatchObject({ status: 'failed', errorCode: 'DAEMON_LOAD_FAILED' });
    expect(report.images[0]!.error).toMatch(/\(500\): write \/var\/lib\/docker\/tmp: read-only file system/);
  });

  it('a daemon that refuses the load before reading it: every image fails with its message, not our broken write', async () => {
    const { plan, sources } = await planOf([
      ['docker.io/t/single:1', single],
      ['docker.io/t/multi:1', multi],
    ]);
    daemon.refuseAtOnce = 'write /var/lib/docker/tmp: no space left on device';
    // Every blob arrives slowly, so the refusal breaks the stream while one is being sent.
    for (const s of sources) for (const d of plan.blobs) s.slow.add(d.desc.digest);
    const report = await load(plan, sources, opts());
    for (const img of report.images) {
      expect(img).toMatchObject({ status: 'failed', errorCode: 'DAEMON_LOAD_FAILED' });
      expect(img.error).toContain('no space left on device');
    }
    expect(report.blobs.failed).toBe(1);
  });

  it('a load the daemon reports done but that is not there is an error', async () => {
    const { plan, sources } = await planOf([['docker.io/t/single:1', single]]);
    daemon.answer = () => ({ status: 200, body: '{"stream":"Loaded image: docker.io/t/single:1\\n"}' });
    const report = await load(plan, sources, opts());
    expect(report.images[0]).toMatchObject({ status: 'failed', errorCode: 'DAEMON_LOAD_INCOMPLETE' });
  });

  it('a corrupt blob truncates the upload (its last chunk is never sent) and fails every image of the load', async () => {
    const { plan, sources } = await planOf([
      ['docker.io/t/single:1', single],
      ['docker.io/t/multi:1', multi],
    ]);
    const multiConfig = configOf(multi, 'amd64');
    const bad = (JSON.parse(store.get(multiConfig)!.bytes.toString()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids[0]!;
    for (const s of sources) s.corrupt.add(bad);
    const report = await load(plan, sources, opts());
    for (const img of report.images) {
      expect(img).toMatchObject({ status: 'failed', errorCode: 'DIGEST_MISMATCH' });
      expect(img.error).toContain(bad);
    }
    expect(report.blobs.failed).toBe(1);
    await new Promise((r) => setTimeout(r, 50));
    const up = daemon.uploads[0]!;
    expect(up.complete).toBe(false);
    // The daemon saw the bad blob's header and part of it, never all of it.
    expect(up.names).toContain(`blobs/sha256/${bad.slice(7)}`);
    expect(up.files.has(`blobs/sha256/${bad.slice(7)}`)).toBe(false);
    expect(daemon.images.size).toBe(0);
  });

  it('all-or-nothing: an image that only needs a tag is not tagged when a blob of the load fails its check', async () => {
    const { plan, sources } = await planOf([
      ['docker.io/t/single:new', single],
      ['docker.io/t/multi:1', multi],
    ]);
    // single's content is there under another name; multi is loaded, with a bad layer.
    daemon.images.set(configOf(single), configOf(single));
    daemon.images.set('docker.io/t/single:old', configOf(single));
    const multiConfig = configOf(multi, 'amd64');
    const bad = (JSON.parse(store.get(multiConfig)!.bytes.toString()) as { rootfs: { diff_ids: string[] } }).rootfs.diff_ids[1]!;
    for (const s of sources) s.corrupt.add(bad);
    const report = await load(plan, sources, opts());
    expect(report.images.map((i) => [i.name, i.status, i.errorCode])).toEqual([
      ['docker.io/t/single:new', 'failed', 'NOT_LOADED'],
      ['docker.io/t/multi:1', 'failed', 'DIGEST_MISMATCH'],
    ]);
    expect(report.images[0]!.error).toContain(bad);
    expect(daemon.requests.filter((r) => r.includes('/tag?'))).toEqual([]);
    expect(daemon.images.has('docker.io/t/single:new')).toBe(false);

    // Without all-or-nothing, the tag does not depend on the bad blob and is given.
    const loose = await load(plan, sources, opts({ allOrNothing: false }));
    expect(loose.images.map((i) => [i.status, i.errorCode])).toEqual([
      ['done', undefined],
      ['failed', 'DIGEST_MISMATCH'],
    ]);
    expect(daemon.images.get('docker.io/t/single:new')).toBe(configOf(single));
  });

  it('a tag is given after the load, and still when the load fails for a reason other than a bad blob', async () => {
    const { plan, sources } = await planOf([
      ['docker.io/t/single:new', single],
      ['docker.io/t/multi:1', multi],
    ]);
    daemon.images.set(configOf(single), configOf(single));
    daemon.answer = () => ({ status: 500, body: '{"message":"no space left on device"}' });
    const report = await load(plan, sources, opts());
    expect(report.images.map((i) => [i.status, i.errorCode])).toEqual([
      ['done', undefined],
      ['failed', 'DAEMON_LOAD_FAILED'],
    ]);
    const loaded = daemon.requests.findIndex((r) => r.includes('/images/load'));
    const tag = daemon.requests.findIndex((r) => r.includes('/tag?'));
    expect(loaded).toBeGreaterThanOrEqual(0);
    expect(tag).toBeGreaterThan(loaded);
  });

  it('a broken stream: later putBlob calls reject at once with the same error, commit() names nothing', async () => {
    const { plan, sources } = await planOf([['docker.io/t/multi:1', multi]]);
    const dest = new DockerDaemonDestination(opts());
    try {
      const prepared = await dest.prepare(plan, {});
      const p = prepared[0]!;
      if (p.state !== 'copy') throw new Error(`want copy, got ${p.state}`);
      expect(p.manifests).toEqual([]);
      expect(p.platforms).toEqual(['linux/amd64']);
      const [config, bad, next] = p.blobs!;
      sources[0]!.corrupt.add(bad!.digest);
      const put = (d: Descriptor) =>
        dest.putBlob(d, (start) => sources[0]!.openBlob(d, { what: d.digest, start }), { what: `blob ${d.digest}`, images: [0] });
      expect(await put(config!)).toEqual({ bytes: config!.size, sent: true });
      const first = await put(bad!).catch((e: unknown) => e);
      expect((first as { code?: string }).code).toBe('DIGEST_MISMATCH');
      const opened: string[] = [];
      const again = await dest
        .putBlob(
          next!,
          (start) => {
            opened.push(next!.digest);
            return sources[0]!.openBlob(next!, { what: next!.digest, start });
          },
          { what: 'next', images: [0] },
        )
        .catch((e: unknown) => e);
      expect(again).toBe(first);
      expect(opened).toEqual([]);
      expect(await dest.commit()).toEqual({ failed: new Map() });
    } finally {
      await dest.close();
    }
    expect(daemon.uploads[0]!.complete).toBe(false);
    expect(daemon.images.size).toBe(0);
    expect(daemon.requests.filter((r) => r.includes('/images/load'))).toHaveLength(1);
  });

  it('closed without commit(): the daemon reads a truncated archive and loads nothing', async () => {
    const { plan, sources } = await planOf([['docker.io/t/single:1', single]]);
    const dest = new DockerDaemonDestination(opts());
    const p = (await dest.prepare(plan, {}))[0]!;
    if (p.state !== 'copy') throw new Error(`want copy, got ${p.state}`);
    for (const d of p.blobs!) {
      await dest.putBlob(d, (start) => sources[0]!.openBlob(d, { what: d.digest, start }), { what: d.digest, images: [0] });
    }
    await dest.setName({ index: 0, name: plan.images[0]!.name, root: plan.images[0]!.root });
    await dest.close();
    await new Promise((r) => setTimeout(r, 50));
    // The request may die before the daemon even starts reading it; it never gets a whole archive.
    expect(daemon.uploads.filter((u) => u.complete)).toEqual([]);
    expect(daemon.images.size).toBe(0);
  });

  it('no daemon on the socket → DAEMON_UNAVAILABLE naming it, with a hint', async () => {
    const missing = path.join(tmpdir(), `ferry-no-such-${process.pid}.sock`);
    const { plan, sources } = await planOf([['docker.io/t/single:1', single]]);
    const err = (await load(plan, sources, { socket: missing }).catch((e: unknown) => e)) as {
      code: string;
      message: string;
      hint: string;
    };
    expect(err.code).toBe('DAEMON_UNAVAILABLE');
    expect(err.message).toContain(`unix://${missing}`);
    expect(err.hint).toContain('is dockerd running?');
  });
});
