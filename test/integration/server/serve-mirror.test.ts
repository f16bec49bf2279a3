// `ferry serve` as a mirror for several registries at once, with real clients and no route to
// the upstream registries: a store names two different images `docker.io/org/x:1` and
// `ghcr.io/org/x:1` (one repository path on two registries), plus `ghcr.io/org/y:1` and
// `quay.io/org/y:1` (shared by two registries, neither Docker Hub). A private containerd pulls
// both `x` names through hand-written hosts.toml files (`ctr images pull --hosts-dir`), which send
// the unscoped path with `?ns=`; skopeo pulls through a registries.conf mirror, which sends the
// scoped path. Every pulled digest must be the store's.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runServe } from '../../../src/cli/serve.js';
import type { ServedContent } from '../../../src/server/content.js';
import { layoutContent } from '../../../src/server/layout-content.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { startContainerd, type Engine } from '../../harness/engines.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { requireTool, runSkopeo } from '../../harness/tools.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';

const REF_NAME = 'org.opencontainers.image.ref.name';
const SOURCES = ['ferry-test/app:1.0', 'ferry-test/docker-s2:1'] as const;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

let storeDir: string;
let content: ServedContent;
let server: RunningServer;
let host: string;
const log: string[] = [];
/** The digest each mirrored name must have. */
const want: Record<string, string> = {};

async function http(url: string): Promise<{ status: number; body: string }> {
  const r = await fetch(url);
  return { status: r.status, body: await r.text() };
}

function errorOf(body: string): { code: string; message: string } {
  return (JSON.parse(body) as { errors: Array<{ code: string; message: string }> }).errors[0]!;
}

beforeAll(async () => {
  requireTool('skopeo');
  requireTool('containerd');
  requireTool('ctr');
  const work = createTempDir('serve-mirror');
  storeDir = path.join(work, 'store');
  await storeFromSmallCorpus(storeDir, SOURCES);
  // Rename the two images: the same repository path on several registries, different digests.
  const indexFile = path.join(storeDir, 'index.json');
  const index = JSON.parse(readFileSync(indexFile, 'utf8')) as { manifests: Descriptor[] };
  const bySource = new Map(index.manifests.map((m) => [m.annotations?.[REF_NAME] ?? '', m]));
  // b is an OCI image (skopeo copies it to an OCI layout with its digest); a is Docker schema 2.
  const a = [...bySource].find(([n]) => n.includes('ferry-test/docker-s2'))![1];
  const b = [...bySource].find(([n]) => n.includes('ferry-test/app'))![1];
  expect(a.digest).not.toBe(b.digest);
  const names: Array<[string, Descriptor]> = [
    ['docker.io/org/x:1', a],
    ['ghcr.io/org/x:1', b],
    ['ghcr.io/org/y:1', a],
    ['quay.io/org/y:1', b],
  ];
  index.manifests = names.map(([name, d]) => {
    want[name] = d.digest;
    return { mediaType: d.mediaType, digest: d.digest, size: d.size, annotations: { [REF_NAME]: name } };
  });
  writeFileSync(indexFile, JSON.stringify(index));
  content = await layoutContent(storeDir);
  server = await startServer({ sources: [content], listen: '127.0.0.1:0', log: (l) => log.push(l) });
  host = `127.0.0.1:${server.port}`;
}, 120_000);

afterAll(async () => {
  await server?.close();
  await cleanupHarness();
});

describe('the distribution API as a mirror', () => {
  const u = (p: string): string => `${server.url}${p}`;
  const digestOf = async (p: string): Promise<string | null> => (await fetch(u(p))).headers.get('docker-content-digest');

  it('selects by ns among registries holding one path, and serves every scoped path', async () => {
    expect(await digestOf('/v2/org/x/manifests/1?ns=docker.io')).toBe(want['docker.io/org/x:1']);
    expect(await digestOf('/v2/org/x/manifests/1?ns=registry-1.docker.io')).toBe(want['docker.io/org/x:1']);
    expect(await digestOf('/v2/org/x/manifests/1?ns=ghcr.io')).toBe(want['ghcr.io/org/x:1']);
    expect(await digestOf('/v2/ghcr.io/org/x/manifests/1')).toBe(want['ghcr.io/org/x:1']);
    expect(await digestOf('/v2/docker.io/org/x/manifests/1')).toBe(want['docker.io/org/x:1']);
    expect(await digestOf('/v2/quay.io/org/y/manifests/1?ns=quay.io')).toBe(want['quay.io/org/y:1']);
    expect(await digestOf('/v2/org/y/manifests/1?ns=quay.io')).toBe(want['quay.io/org/y:1']);
    // Docker's registry-mirrors (no ns, unscoped path) is Docker Hub only: the shared path is Hub's.
    expect(await digestOf('/v2/org/x/manifests/1')).toBe(want['docker.io/org/x:1']);
    const tags = await http(u('/v2/org/y/tags/list?ns=ghcr.io'));
    expect(JSON.parse(tags.body)).toEqual({ name: 'org/y', tags: ['1'] });
    // Blobs resolve the same way: quay.io's org/y holds a's blobs, not b's.
    const bManifest = JSON.parse(await (await fetch(u('/v2/org/y/manifests/1?ns=ghcr.io'))).text()) as { config: { digest: string } };
    expect((await fetch(u(`/v2/org/y/blobs/${bManifest.config.digest}?ns=ghcr.io`))).status).toBe(200);
    expect((await fetch(u(`/v2/org/y/blobs/${bManifest.config.digest}?ns=quay.io`))).status).toBe(404);
  });

  it('answers an ambiguous path without ns 404 NAME_UNKNOWN, saying how to choose, and logs it once', async () => {
    for (let i = 0; i < 2; i++) {
      const r = await http(u('/v2/org/y/manifests/1'));
      expect(r.status).toBe(404);
      const e = errorOf(r.body);
      expect(e.code).toBe('NAME_UNKNOWN');
      expect(e.message).toMatch(/ambiguous.*ghcr\.io and quay\.io.*\?ns=.*\/v2\/ghcr\.io\/org\/y/);
    }
    expect(log.filter((l) => l.includes('org/y is ambiguous'))).toHaveLength(1);
  });

  it('refuses an ns it holds nothing for (404) and a malformed ns (400)', async () => {
    const none = await http(u('/v2/org/x/manifests/1?ns=registry.k8s.io'));
    expect(none.status).toBe(404);
    expect(errorOf(none.body)).toMatchObject({ code: 'NAME_UNKNOWN', message: expect.stringMatching(/nothing from registry\.k8s\.io/) });
    expect((await http(u('/v2/org/x/manifests/1?ns=quay.io'))).status).toBe(404);
    for (const bad of ['ns=', `ns=${'a.'.repeat(400)}io`, 'ns=ghcr.io%2Fx', 'ns=docker.io&ns=ghcr.io']) {
      const r = await http(u(`/v2/org/x/manifests/1?${bad}`));
      expect(r.status, bad).toBe(400);
      expect(errorOf(r.body).code).toBe('NAME_INVALID');
    }
  });

  it('lists unscoped and scoped names in the catalog', async () => {
    expect(JSON.parse((await http(u('/v2/_catalog'))).body)).toEqual({
      repositories: ['docker.io/org/x', 'ghcr.io/org/x', 'ghcr.io/org/y', 'org/x', 'org/y', 'quay.io/org/y'],
    });
  });
});

describe('ferry serve prints how each registry is served', () => {
  it('names the unscoped and scoped paths per registry, and the shared paths', async () => {
    const ac = new AbortController();
    const out: string[] = [];
    const done = runServe(
      { sources: [`oci:${storeDir}`], listen: '127.0.0.1:0' },
      { signal: ac.signal, stdout: (t) => out.push(t), stderr: () => {}, onReady: () => ac.abort() },
    );
    expect(await done).toBe(0);
    const text = out.join('');
    expect(text).toContain('docker.io: /v2/REPO (ns=docker.io) and /v2/docker.io/REPO\n');
    expect(text).toContain(`ghcr.io: /v2/REPO (ns=ghcr.io) and /v2/ghcr.io/REPO\n  org/x:1  ${want['ghcr.io/org/x:1']}\n`);
    expect(text).toMatch(/note: org\/x is held for docker\.io and ghcr\.io: a request without ns gets docker\.io's/);
    expect(text).toMatch(/note: org\/y is held for ghcr\.io and quay\.io: a request without ns is refused as ambiguous/);
  });
});

describe('containerd pulls docker.io and ghcr.io names through hosts.toml', () => {
  let containerd: Engine;
  let hostsDir: string;

  beforeAll(async () => {
    containerd = await startContainerd();
    hostsDir = createTempDir('hosts-d');
    for (const [registry, upstream] of [
      ['docker.io', 'https://registry-1.docker.io'],
      ['ghcr.io', 'https://ghcr.io'],
    ] as const) {
      mkdirSync(path.join(hostsDir, registry));
      // An http:// host entry is spoken to in plain HTTP; the upstream is never reached (no route).
      writeFileSync(
        path.join(hostsDir, registry, 'hosts.toml'),
        `server = "${upstream}"\n\n[host."http://${host}"]\n  capabilities = ["pull", "resolve"]\n`,
      );
    }
  }, 60_000);

  afterAll(async () => {
    await containerd?.stop();
  });

  it('gets each registry its own image of org/x, by digest', async () => {
    for (const name of ['docker.io/org/x:1', 'ghcr.io/org/x:1']) {
      // --all-platforms fetches the content without unpacking it (no snapshotter needed).
      await containerd.run(['images', 'pull', '--all-platforms', '--hosts-dir', hostsDir, name], { timeoutMs: 120_000 });
    }
    const ls = await containerd.run(['images', 'ls']);
    const digests = new Map(
      ls.stdout
        .trim()
        .split('\n')
        .slice(1)
        .map((row) => row.split(/\s+/))
        .map((cols) => [cols[0]!, cols.find((c) => c.startsWith('sha256:'))!]),
    );
    expect(digests.get('docker.io/org/x:1')).toBe(want['docker.io/org/x:1']);
    expect(digests.get('ghcr.io/org/x:1')).toBe(want['ghcr.io/org/x:1']);
    // containerd named the upstream in ns, for manifests and blobs alike.
    expect(log.some((l) => /GET \/v2\/org\/x\/manifests\/[^ ]*\?ns=ghcr\.io/.test(l))).toBe(true);
    expect(log.some((l) => /GET \/v2\/org\/x\/blobs\/sha256:[0-9a-f]{64}\?ns=ghcr\.io/.test(l))).toBe(true);
  }, 180_000);
});

describe('skopeo pulls through a registries.conf mirror (scoped path)', () => {
  it('inspects and copies ghcr.io/org/x:1 from the mirror with its digest', async () => {
    const dir = createTempDir('registries-conf');
    const conf = path.join(dir, 'registries.conf');
    writeFileSync(
      conf,
      [
        '[[registry]]',
        'prefix = "ghcr.io"',
        'location = "ghcr.io"',
        '[[registry.mirror]]',
        `location = "${host}/ghcr.io"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    const raw = await runSkopeo(['--registries-conf', conf, 'inspect', '--raw', 'docker://ghcr.io/org/x:1']);
    const { createHash } = await import('node:crypto');
    expect(`sha256:${createHash('sha256').update(raw.stdout).digest('hex')}`).toBe(want['ghcr.io/org/x:1']);
    const dest = path.join(dir, 'out');
    await runSkopeo(['--registries-conf', conf, 'copy', '--preserve-digests', 'docker://ghcr.io/org/x:1', `oci:${dest}:x`]);
    const index = JSON.parse(readFileSync(path.join(dest, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(index.manifests[0]!.digest).toBe(want['ghcr.io/org/x:1']);
    expect(log.some((l) => l.includes('GET /v2/ghcr.io/org/x/manifests/1 '))).toBe(true);
  }, 120_000);
});
