/**
 * Profiles end to end against a real docker-registry: tag filters over a repository with many
 * kinds of tags (through a paginating proxy, so the list spans pages), `ferry plan` and its lock
 * file, a tag moved after planning and still carried at its locked digest, all-or-nothing runs
 * and --keep-going, target names at the far side, the default bundle path.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCorpus, type CorpusManifest } from '../../../scripts/corpus/generate.js';
import { layoutContent } from '../../../src/server/layout-content.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { RegistryClient } from '../../../src/transports/registry/client.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { pushTagged, startPagingProxy, type PagingProxy } from '../../helpers/tagged-registry.js';
import { manOf, readMembers } from '../bundle/craft.js';

afterAll(cleanupHarness);

/** One image per tag (each its own layer, so each its own digest). */
const REDIS_TAGS = [
  '6.2.14',
  'v6.2.15',
  '7',
  '7.2',
  '7.2.0',
  '7.2.4',
  '7.2.4-alpine',
  'v7.2.5',
  '7.4.0-rc.1',
  '7.4.0',
  '7.4.1',
  '7.4.1-alpine',
  '8.0.0',
  '8.0.1-rc.2',
  'latest',
  'nightly-20260101',
];

let reg: RunningRegistry;
let client: RegistryClient;
let proxy: PagingProxy;
const digests = new Map<string, string>();

interface PlanJson {
  images: Array<{ name: string; ref: string; digest: string; size: number; newBytes: number; platforms: string[] }>;
  totals: { images: number; blobs: number; bytes: number; newBlobs: number; newBytes: number };
  failures: Array<{ name: string; error: string; errorCode?: string }>;
  lock?: { file: string; digest: string };
}

beforeAll(async () => {
  reg = await startRegistry();
  client = new RegistryClient(reg.host);
  for (const tag of REDIS_TAGS) digests.set(`team/redis:${tag}`, await pushTagged(client, 'team/redis', [tag], `redis ${tag}\n`));
  digests.set('team/app:1.0', await pushTagged(client, 'team/app', ['1.0'], 'app 1.0\n'));
  proxy = await startPagingProxy(reg.url);
}, 120_000);

afterAll(async () => {
  await client?.close();
});

async function profile(dir: string, name: string, body: string): Promise<string> {
  const file = path.join(dir, `${name}.yaml`);
  await writeFile(file, `apiVersion: ferry/v1\nkind: ImageSet\nmetadata: {name: ${name}}\n${body}`);
  return file;
}

function sha256File(file: string): string {
  return `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}`;
}

function storeNames(store: string): string[] {
  if (!existsSync(path.join(store, 'index.json'))) return [];
  const index = JSON.parse(readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return index.manifests.map((m) => `${m.annotations?.['org.opencontainers.image.ref.name']}@${m.digest}`).sort();
}

describe('ferry plan with tag filters', () => {
  it('selects exactly allow → deny → semver → latest over a tag list of three pages', async () => {
    const dir = createTempDir('plan');
    const file = await profile(
      dir,
      'site-a',
      `images:
  - ref: \${REG}/team/redis
    tags:
      allow: ['v?7\\..*']
      deny: ['.*-alpine']
      semver: '>=7.2 <8'
      latest: 3
  - ref: \${REG}/team/app:1.0
`,
    );
    proxy.tagRequests.length = 0;
    const r = await ferry(['plan', '-p', file, '--json', '--store', path.join(dir, 'none')], { env: { REG: proxy.host } });
    expect(r.stderr).toBe('');
    expect(r.code, r.stdout).toBe(0);
    const plan = JSON.parse(r.stdout) as PlanJson;
    expect(plan.images.map((i) => [i.name, i.digest])).toEqual([
      [`${proxy.host}/team/redis:7.4.1`, digests.get('team/redis:7.4.1')],
      [`${proxy.host}/team/redis:7.4.0`, digests.get('team/redis:7.4.0')],
      [`${proxy.host}/team/redis:v7.2.5`, digests.get('team/redis:v7.2.5')],
      [`${proxy.host}/team/app:1.0`, digests.get('team/app:1.0')],
    ]);
    // 16 tags in pages of 7: three requests, one list per repository however many entries use it.
    expect(proxy.tagRequests).toHaveLength(3);
    // Nothing is in the (missing) store: every byte is new; nothing was written.
    expect(plan.totals.newBytes).toBe(plan.totals.bytes);
    expect(plan.totals.images).toBe(4);
    expect(plan.images.every((i) => i.size > 0 && i.newBytes === i.size)).toBe(true);
    expect(existsSync(path.join(dir, 'none'))).toBe(false);
  });

  it('each filter alone, and no filter at all, against the registry itself', async () => {
    const dir = createTempDir('plan-each');
    const cases: Array<[string, string[]]> = [
      ["{allow: ['7\\.2.*']}", ['7.2', '7.2.0', '7.2.4', '7.2.4-alpine']],
      ["{deny: ['.*\\..*', 'latest']}", ['7', 'nightly-20260101']],
      ["{semver: '^6'}", ['v6.2.15', '6.2.14']],
      ['{latest: 2}', ['8.0.0', '7.4.1']],
      ["{semver: '>=8.0.0-0', prerelease: true}", ['8.0.1-rc.2', '8.0.0']],
      ['{}', [...REDIS_TAGS].sort()],
    ];
    for (const [filter, want] of cases) {
      const file = await profile(dir, 'each', `images:\n  - ref: ${reg.host}/team/redis\n    tags: ${filter}\n`);
      const r = await ferry(['plan', '-p', file, '--json']);
      expect(r.code, `${filter}: ${r.stderr}`).toBe(0);
      const plan = JSON.parse(r.stdout) as PlanJson;
      expect(
        plan.images.map((i) => i.name.split(':').pop()),
        filter,
      ).toEqual(want);
      for (const i of plan.images) expect(i.digest).toBe(digests.get(`team/redis:${i.name.split(':').pop()}`));
    }
  });

  it('a filter that selects nothing fails that entry, saying what each step kept (exit 1)', async () => {
    const dir = createTempDir('plan-none');
    const file = await profile(
      dir,
      'none',
      `images:\n  - ref: ${reg.host}/team/redis\n    tags: {allow: ['7\\..*'], semver: '>=9'}\n  - ref: ${reg.host}/team/app:1.0\n`,
    );
    const r = await ferry(['plan', '-p', file, '-o', path.join(dir, 'lock.json')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'the tag filters selected nothing (16 tags listed, allow kept 8, semver kept 0 (1 is not a semantic version))',
    );
    expect(r.stderr).toContain(`${file}:5:5`);
    expect(r.stderr).toContain('no lock written');
    expect(existsSync(path.join(dir, 'lock.json'))).toBe(false);
    // --keep-going: a lock of what resolved, still exit 1.
    const kept = await ferry(['plan', '-p', file, '-o', path.join(dir, 'lock.json'), '--keep-going']);
    expect(kept.code).toBe(1);
    const lock = JSON.parse(readFileSync(path.join(dir, 'lock.json'), 'utf8')) as { images: Array<{ name: string; digest: string }> };
    expect(lock.images.map((i) => [i.name, i.digest])).toEqual([[`${reg.host}/team/app:1.0`, digests.get('team/app:1.0')]]);
  });

  it('a bad profile is exit 2 with file:line:column and the field, before anything is contacted', async () => {
    const dir = createTempDir('plan-bad');
    const file = await profile(dir, 'bad', `images:\n  - ref: ${reg.host}/team/redis\n    tags: {semver: '>=banana'}\n`);
    const r = await ferry(['plan', '-p', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${file}:6:20: images[0].tags.semver: invalid semver range ">=banana"`);
    expect(r.stdout).toBe('');
  });
});

describe('lock files', () => {
  it('bundle --lock carries the locked digest after the tag moved upstream, and records the lock', async () => {
    const dir = createTempDir('lock');
    await pushTagged(client, 'team/moving', ['1.0.0'], 'moving before\n');
    const before = await pushTagged(client, 'team/moving', ['1.0.0'], 'moving before\n');
    const file = await profile(dir, 'moving', `images:\n  - ref: ${reg.host}/team/moving\n    tags: {semver: '1.x'}\n`);
    const lockFile = path.join(dir, 'moving.lock.json');
    const planned = await ferry(['plan', '-p', file, '-o', lockFile]);
    expect(planned.code, planned.stderr).toBe(0);
    expect(planned.stdout).toContain(`Lock written to ${lockFile}`);
    const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as {
      images: Array<{ name: string; ref: string; digest: string }>;
      profiles: Array<{ name: string; digest: string }>;
    };
    expect(lock.images).toEqual([
      expect.objectContaining({ name: `${reg.host}/team/moving:1.0.0`, ref: `${reg.host}/team/moving:1.0.0@${before}`, digest: before }),
    ]);
    expect(lock.profiles).toEqual([{ name: 'moving', file: expect.any(String), digest: sha256File(file) }]);
    // The tag moves.
    const after = await pushTagged(client, 'team/moving', ['1.0.0'], 'moving after\n');
    expect(after).not.toBe(before);
    const replanned = JSON.parse((await ferry(['plan', '-p', file, '--json'])).stdout) as PlanJson;
    expect(replanned.images[0]!.digest).toBe(after);
    // The lock still carries what was planned, under the tag's name.
    const out = path.join(dir, 'moving.ferry');
    const b = await ferry(['bundle', '--lock', lockFile, '-o', out, '--store', path.join(dir, 'store')]);
    expect(b.code, b.stderr).toBe(0);
    const man = manOf(await readMembers(out));
    expect(man.images.map((i) => [i.ref, i.digest])).toEqual([[`${reg.host}/team/moving:1.0.0`, before]]);
    // A bundle that records an image set is format version 2; a list's stays version 1.
    expect(man.formatVersion).toBe(2);
    expect((await ferry(['verify', out])).code).toBe(0);
    expect(man.imageSet).toEqual({ profiles: [{ name: 'moving', digest: sha256File(file) }], lock: { digest: sha256File(lockFile) } });
    const shown = await ferry(['inspect', out]);
    expect(shown.stdout).toContain(`planned from: moving (${sha256File(file).slice(0, 19)}); lock ${sha256File(lockFile)}`);
    // And pull --lock stores the same.
    const store = path.join(dir, 'pulled');
    const p = await ferry(['pull', '--lock', lockFile, '--store', store]);
    expect(p.code, p.stderr).toBe(0);
    expect(storeNames(store)).toEqual([`${reg.host}/team/moving:1.0.0@${before}`]);
  });

  it('refuses a lock whose reference is not pinned to its digest (exit 2), and -p with --lock', async () => {
    const dir = createTempDir('lock-bad');
    const lockFile = path.join(dir, 'l.json');
    const d = digests.get('team/app:1.0')!;
    await writeFile(
      lockFile,
      JSON.stringify({
        apiVersion: 'ferry/v1',
        kind: 'ImageSetLock',
        created: '2026-12-05T00:00:00Z',
        profiles: [],
        images: [{ name: `${reg.host}/team/app:1.0`, ref: `${reg.host}/team/app:1.0`, digest: d, mediaType: 'x', size: 1 }],
      }),
    );
    const r = await ferry(['pull', '--lock', lockFile, '--store', path.join(dir, 's')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`is not pinned to ${d}`);
    const both = await ferry(['pull', '--lock', lockFile, '-p', 'x.yaml', '--store', path.join(dir, 's')]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('--lock and -p cannot be combined');
  });
});

describe('all or nothing, and --keep-going', () => {
  const body = (host: string): string => `images:\n  - ref: ${host}/team/app:1.0\n  - ref: ${host}/team/missing:1\n`;

  it('pull -p stops before transferring anything when one entry does not resolve', async () => {
    const dir = createTempDir('aon');
    const file = await profile(dir, 'partial', body(reg.host));
    const store = path.join(dir, 'store');
    const r = await ferry(['pull', '-p', file, '--store', store]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('team/missing:1');
    expect(r.stderr).toContain('could not be resolved; nothing was pulled (--keep-going pulls the rest)');
    expect(storeNames(store)).toEqual([]);
    const blobs = path.join(store, 'blobs', 'sha256');
    expect(existsSync(blobs) ? readdirSync(blobs) : []).toEqual([]);
  });

  it('pull -p --keep-going pulls the rest and lists the failure beside the store', async () => {
    const dir = createTempDir('kg');
    const file = await profile(dir, 'partial', body(reg.host));
    const store = path.join(dir, 'store');
    const r = await ferry(['pull', '-p', file, '--store', store, '--keep-going']);
    expect(r.code).toBe(1);
    expect(storeNames(store)).toEqual([`${reg.host}/team/app:1.0@${digests.get('team/app:1.0')}`]);
    const failures = JSON.parse(readFileSync(`${store}.failures.json`, 'utf8')) as { command: string; failures: Array<{ name: string }> };
    expect(failures.command).toBe('pull');
    expect(failures.failures.map((f) => f.name)).toEqual([`${reg.host}/team/missing:1`]);
  });

  it('bundle -f is all or nothing; with --keep-going it bundles the rest and writes NAME.failures.json', async () => {
    const dir = createTempDir('bundle-kg');
    const list = path.join(dir, 'list.txt');
    await writeFile(list, `${reg.host}/team/app:1.0\n${reg.host}/team/missing:1\n`);
    const out = path.join(dir, 'b.ferry');
    const no = await ferry(['bundle', '-f', list, '-o', out, '--store', path.join(dir, 's1')]);
    expect(no.code).toBe(1);
    expect(existsSync(out)).toBe(false);
    expect(storeNames(path.join(dir, 's1'))).toEqual([]);
    const yes = await ferry(['bundle', '-f', list, '-o', out, '--store', path.join(dir, 's2'), '--keep-going']);
    expect(yes.code).toBe(1);
    const man = manOf(await readMembers(out));
    expect(man.formatVersion).toBe(1);
    expect(man.imageSet).toBeUndefined();
    expect(man.images.map((i) => [i.ref, i.digest])).toEqual([[`${reg.host}/team/app:1.0`, digests.get('team/app:1.0')]]);
    const failures = JSON.parse(readFileSync(`${out}.failures.json`, 'utf8')) as { failures: Array<{ name: string }> };
    expect(failures.failures.map((f) => f.name)).toEqual([`${reg.host}/team/missing:1`]);
    const v = await ferry(['verify', out]);
    expect(v.code).toBe(0);
  });

  it('mirror -p stops before sending anything, and --keep-going mirrors the rest', async () => {
    const dir = createTempDir('mirror-kg');
    const file = await profile(dir, 'partial', body(reg.host));
    const stopped = await ferry(['mirror', '-p', file, '--to', `docker://${reg.host}/aon`]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain('nothing was mirrored');
    expect((await fetch(`${reg.url}/v2/aon/team/app/tags/list`)).status).toBe(404);
    const kept = await ferry(['mirror', '-p', file, '--to', `docker://${reg.host}/kg`, '--keep-going']);
    expect(kept.code).toBe(1);
    const head = await fetch(`${reg.url}/v2/kg/team/app/manifests/1.0`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(head.headers.get('docker-content-digest')).toBe(digests.get('team/app:1.0'));
  });
});

describe('names', () => {
  it('target names the repository at the far side; the digest is unchanged (mirror and load)', async () => {
    const dir = createTempDir('target');
    const file = await profile(
      dir,
      'target',
      `images:\n  - ref: ${reg.host}/team/redis\n    tags: {semver: '~7.4'}\n    target: cache/redis\n`,
    );
    const m = await ferry(['mirror', '-p', file, '--to', `docker://${reg.host}/site`]);
    expect(m.code, m.stderr).toBe(0);
    for (const tag of ['7.4.0', '7.4.1']) {
      const head = await fetch(`${reg.url}/v2/site/cache/redis/manifests/${tag}`, {
        method: 'HEAD',
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(head.headers.get('docker-content-digest'), tag).toBe(digests.get(`team/redis:${tag}`));
    }
    const out = path.join(dir, 't.ferry');
    const b = await ferry(['bundle', '-p', file, '-o', out, '--store', path.join(dir, 'store')]);
    expect(b.code, b.stderr).toBe(0);
    const l = await ferry(['load', out, '--to', `docker://${reg.host}/far`]);
    expect(l.code, l.stderr).toBe(0);
    const head = await fetch(`${reg.url}/v2/far/cache/redis/manifests/7.4.1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(head.headers.get('docker-content-digest')).toBe(digests.get('team/redis:7.4.1'));
  });

  it('two entries that would take one name are refused before anything is fetched (exit 2)', async () => {
    const dir = createTempDir('clash');
    const file = await profile(
      dir,
      'clash',
      `images:\n  - ref: ${reg.host}/team/redis:7.4.1\n    target: cache/x\n  - ref: ${reg.host}/team/app:7.4.1\n    target: cache/x\n`,
    );
    // team/app has no 7.4.1: the clash is found before any manifest is asked for.
    const r = await ferry(['plan', '-p', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('would both be named docker.io/cache/x:7.4.1');
  });

  it('bundle -p without -o writes bundles/<name>-<UTC date>.ferry in the working directory', async () => {
    const dir = createTempDir('default-out');
    await mkdir(path.join(dir, 'p'));
    const file = await profile(path.join(dir, 'p'), 'site-b', `images:\n  - ref: ${reg.host}/team/app:1.0\n`);
    const r = await ferry(['bundle', '-p', file, '--store', path.join(dir, 'store')], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const date = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    expect(readdirSync(path.join(dir, 'bundles'))).toEqual([`site-b-${date}.ferry`]);
  });
});

describe('platforms', () => {
  let server: RunningServer;
  let host: string;
  let corpus: CorpusManifest;
  beforeAll(async () => {
    const dir = createTempDir('demo-corpus');
    corpus = await generateCorpus(dir, 'demo');
    server = await startServer({ sources: [await layoutContent(dir)], listen: '127.0.0.1:0', log: () => {} });
    host = `127.0.0.1:${server.port}`;
  });
  afterAll(async () => {
    await server?.close();
  });

  it('a per-image platforms: overrides the profile default; the lock keeps what was asked, pull --lock rewrites the index', async () => {
    const dir = createTempDir('platforms');
    const file = await profile(
      dir,
      'plat',
      `platforms: [linux/amd64]\nimages:\n  - ref: ${host}/ferry-demo/hello:1\n    platforms: [linux/arm64]\n  - ref: ${host}/ferry-demo/base:1\n`,
    );
    const lockFile = path.join(dir, 'lock.json');
    const r = await ferry(['plan', '-p', file, '--json', '-o', lockFile]);
    expect(r.code, r.stderr).toBe(0);
    const plan = JSON.parse(r.stdout) as PlanJson & { images: Array<{ selectedDigest?: string }> };
    const hello = corpus.images.find((i) => i.ref === 'ferry-demo/hello:1')!;
    expect(plan.images.map((i) => [i.name, i.digest, i.platforms])).toEqual([
      [`${host}/ferry-demo/hello:1`, hello.digest, ['linux/arm64']],
      [`${host}/ferry-demo/base:1`, corpus.images.find((i) => i.ref === 'ferry-demo/base:1')!.digest, ['linux/amd64']],
    ]);
    expect(plan.images[0]!.selectedDigest).toMatch(/^sha256:/);
    expect(plan.images[0]!.selectedDigest).not.toBe(hello.digest);
    const lock = JSON.parse(readFileSync(lockFile, 'utf8')) as { images: Array<{ digest: string; platforms?: string[] }> };
    expect(lock.images.map((i) => [i.digest, i.platforms])).toEqual([
      [hello.digest, ['linux/arm64']],
      [plan.images[1]!.digest, ['linux/amd64']],
    ]);
    const store = path.join(dir, 'store');
    const p = await ferry(['pull', '--lock', lockFile, '--store', store]);
    expect(p.code, p.stderr).toBe(0);
    const index = JSON.parse(readFileSync(path.join(store, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations: Record<string, string> }>;
    };
    const entry = index.manifests.find((m) => m.annotations['org.opencontainers.image.ref.name'] === `${host}/ferry-demo/hello:1`)!;
    expect(entry.digest).toBe(plan.images[0]!.selectedDigest);
    expect(entry.annotations['dev.ferry.original-index.digest']).toBe(hello.digest);
  });
});
