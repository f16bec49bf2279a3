// Names in Docker Engine and containerd through the CLI, read back from the engines themselves:
// `--prefix` (registryTargets' rule) and `--scoped` in a private dockerd (`docker image
// inspect` by the new name gives the config digest) and a private containerd (`ctr images ls`
// names and target digests); `--keep-names` with `--prefix` and a name collision are exit 2
// with nothing loaded; a digest-only name gets a `sha256-<hex>` tag in Docker that survives
// the prune endpoint, with a warning, and stays a digest name in containerd.
import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../../src/oci/manifest.js';
import { parseImageList } from '../../../src/transports/containerd/ctr.js';
import { startContainerd, startDockerd, type Engine } from '../../harness/engines.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { smallCorpus } from '../corpus-registry.js';
import { ok } from '../../helpers/layout.js';
import { ferry } from './helpers-cli.js';

let docker: Engine;
let containerd: Engine;
/** A layout naming two different images on one repository path of two registries, and a digest-only name. */
let layout: string;
/** name in the layout → { root digest, config digest } */
const images = new Map<string, { root: string; config: string }>();
let rawDigest: string;

async function inspectId(name: string): Promise<string | undefined> {
  const r = await docker.run(['image', 'inspect', '--format', '{{.Id}}', name], { allowFailure: true });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

async function dockerTags(): Promise<string[]> {
  const r = await docker.run(['images', '--format', '{{.Repository}}:{{.Tag}}']);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .sort();
}

async function ctrImages(): Promise<Map<string, string>> {
  const r = await containerd.run(['-n', 'k8s.io', 'images', 'ls']);
  return new Map([...parseImageList(r.stdout)].map(([name, row]) => [name, row.digest]));
}

/** `POST /images/prune` on the engine's socket (what `docker image prune -f` calls). */
function prune(socket: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: socket, path: '/images/prune', method: 'POST' }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  [docker, containerd] = await Promise.all([startDockerd(), startContainerd()]);
  const { dir: corpus } = await smallCorpus();
  layout = path.join(createTempDir('engine-names'), 'L');
  const index = JSON.parse(await readFile(path.join(corpus, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations: Record<string, string> }>;
  };
  rawDigest = index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === 'ferry-test/raw:1')!.digest;
  const names: Array<[string, string]> = [
    ['ferry-test/base:1', 'quay.io/ferry-test/base:1'],
    ['ferry-test/app:1.0', 'docker.io/ferry-test/base:1'],
    ['ferry-test/raw:1', `docker.io/ferry-test/raw@${rawDigest}`],
  ];
  for (const [from, to] of names) {
    ok(await ferry(['copy', `oci:${corpus}:${from}`, `oci:${layout}:${to}`]));
    const root = index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === from)!.digest;
    const m = parseManifest(await readFile(path.join(corpus, 'blobs', 'sha256', root.slice(7))), undefined, from);
    if (m.kind !== 'manifest') throw new Error(`${from} is not a single image`);
    images.set(to, { root, config: m.config.digest });
  }
}, 180_000);

afterAll(async () => {
  await Promise.all([docker?.stop(), containerd?.stop()]);
  await cleanupHarness();
});

describe('naming flags, refused before anything is loaded (exit 2)', () => {
  it.each([
    [['--keep-names', '--prefix', 'reg.local:5000/m'], /--keep-names keeps the source names; it cannot be combined with --prefix/],
    [['--keep-names', '--scoped'], /--keep-names .* cannot be combined with --scoped/],
    [['--scoped'], /--scoped needs --prefix for docker-daemon/],
    [['--prefix', 'Reg/UPPER'], /--prefix "Reg\/UPPER": .* is not a repository path/],
    [['--prefix', 'reg.local:5000/m:tag'], /--prefix "reg.local:5000\/m:tag"/],
  ])('%j', async (flags, message) => {
    const r = await ferry(['load', `oci:${layout}`, '--to', `docker-daemon:${docker.socket}`, ...flags]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(await dockerTags()).toEqual([]);
  });

  it('--prefix into a registry or a layout is refused, pointing at docker://HOST/PREFIX', async () => {
    const r = await ferry(['load', `oci:${layout}`, '--to', 'docker://127.0.0.1:1/m', '--prefix', 'x']);
    expect([r.code, r.stderr]).toEqual([2, expect.stringMatching(/--prefix is for docker-daemon and containerd destinations/)]);
    const c = await ferry(['copy', '--all', `oci:${layout}`, `oci:${createTempDir('nope')}/x`, '--prefix', 'x']);
    expect([c.code, c.stderr]).toEqual([2, expect.stringMatching(/--prefix is for docker-daemon and containerd destinations/)]);
  });

  it('a collision under --prefix is exit 2 naming both images; nothing is loaded in Docker or containerd', async () => {
    for (const to of [`docker-daemon:${docker.socket}`, `containerd:${containerd.socket}`]) {
      const r = await ferry(['load', `oci:${layout}`, '--to', to, '--prefix', 'reg.local:5000/mirror']);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(
        /quay\.io\/ferry-test\/base:1 and docker\.io\/ferry-test\/base:1 would both be loaded as reg\.local:5000\/mirror\/ferry-test\/base:1 \(use --scoped/,
      );
      expect(r.stderr).toContain('nothing was loaded');
    }
    expect(await dockerTags()).toEqual([]);
    expect([...(await ctrImages()).keys()]).toEqual([]);
  });
});

describe('Docker Engine', () => {
  it('--prefix --scoped: every image under PREFIX/<registry>/<path>, ID = config digest; the digest-only one tagged sha256-<hex>', async () => {
    const mapping = path.join(createTempDir('engine-names-map'), 'map.json');
    const r = ok(
      await ferry([
        'load',
        `oci:${layout}`,
        '--to',
        `docker-daemon:${docker.socket}`,
        '--prefix',
        'reg.local:5000/mirror',
        '--scoped',
        '--mapping',
        mapping,
      ]),
    );
    const hex = rawDigest.slice('sha256:'.length);
    const want: Record<string, string> = {
      'quay.io/ferry-test/base:1': 'reg.local:5000/mirror/quay.io/ferry-test/base:1',
      'docker.io/ferry-test/base:1': 'reg.local:5000/mirror/docker.io/ferry-test/base:1',
      [`docker.io/ferry-test/raw@${rawDigest}`]: `reg.local:5000/mirror/docker.io/ferry-test/raw:sha256-${hex}`,
    };
    for (const [src, name] of Object.entries(want)) {
      expect(await inspectId(name), name).toBe(images.get(src)!.config);
      expect(r.stdout).toContain(`${src} → docker-daemon:${name} (${images.get(src)!.config})`);
    }
    expect(await dockerTags()).toEqual(Object.values(want).sort());
    expect(r.stderr.match(/docker has no digest-only names/g)).toHaveLength(1);
    expect(r.stderr).toContain(
      `docker has no digest-only names; docker.io/ferry-test/raw@${rawDigest} is tagged as ${Object.values(want)[2]}`,
    );
    const map = JSON.parse(await readFile(mapping, 'utf8')) as Record<string, { destination: string; digest: string }>;
    expect(Object.fromEntries(Object.entries(map).map(([k, v]) => [k, v.destination]))).toEqual(
      Object.fromEntries(Object.entries(want).map(([k, v]) => [k, `docker-daemon:${v}`])),
    );
  });

  it('the digest-tagged image survives the prune endpoint; a plain path prefix lies on docker.io', async () => {
    const hex = rawDigest.slice('sha256:'.length);
    const pruned = await prune(docker.socket);
    expect(pruned.status).toBe(200);
    expect(await inspectId(`reg.local:5000/mirror/docker.io/ferry-test/raw:sha256-${hex}`)).toBe(
      images.get(`docker.io/ferry-test/raw@${rawDigest}`)!.config,
    );
    // Keep-names (the default) gives the digest tag under the source name; only the tag is new.
    const keep = ok(await ferry(['load', `oci:${layout}:docker.io/ferry-test/raw@${rawDigest}`, '--to', `docker-daemon:${docker.socket}`]));
    expect(keep.stdout).toContain(`→ docker-daemon:ferry-test/raw:sha256-${hex} (`);
    await prune(docker.socket);
    expect(await inspectId(`ferry-test/raw:sha256-${hex}`)).toBe(images.get(`docker.io/ferry-test/raw@${rawDigest}`)!.config);
    // ferry copy takes the same flags.
    const c = ok(
      await ferry(['copy', `oci:${layout}:quay.io/ferry-test/base:1`, `docker-daemon:${docker.socket}`, '--prefix', 'mirror/team']),
    );
    expect(c.stdout).toContain('→ docker-daemon:mirror/team/ferry-test/base:1 (');
    expect(await inspectId('docker.io/mirror/team/ferry-test/base:1')).toBe(images.get('quay.io/ferry-test/base:1')!.config);
  });
});

describe('containerd', () => {
  it('--prefix and --scoped name images in ctr images ls at their root digests; a digest-only name stays one', async () => {
    ok(
      await ferry([
        'load',
        `oci:${layout}`,
        '--to',
        `containerd:${containerd.socket}`,
        '--prefix',
        'reg.local:5000/mirror',
        '--scoped',
        '--no-unpack',
      ]),
    );
    const want = new Map([
      ['reg.local:5000/mirror/quay.io/ferry-test/base:1', images.get('quay.io/ferry-test/base:1')!.root],
      ['reg.local:5000/mirror/docker.io/ferry-test/base:1', images.get('docker.io/ferry-test/base:1')!.root],
      [`reg.local:5000/mirror/docker.io/ferry-test/raw@${rawDigest}`, rawDigest],
    ]);
    expect(await ctrImages()).toEqual(want);
    // Without --scoped: the path under the prefix.
    const r = ok(
      await ferry([
        'load',
        `oci:${layout}:quay.io/ferry-test/base:1`,
        '--to',
        `containerd:${containerd.socket}`,
        '--prefix',
        'reg.local:5000/other',
        '--no-unpack',
      ]),
    );
    expect(r.stdout).toContain('→ containerd:reg.local:5000/other/ferry-test/base:1 (');
    expect((await ctrImages()).get('reg.local:5000/other/ferry-test/base:1')).toBe(images.get('quay.io/ferry-test/base:1')!.root);
  });
});
