/**
 * Differential bundles end to end: a full bundle of release 1 loaded at the far side (an OCI
 * layout, a registry under a prefix, containerd), then a bundle of release 2 built against a
 * base (a previous bundle: assumed; an inventory: confirmed) that leaves out the layers the far
 * side holds; it verifies on its own, loads where its base is, and where it is not fails with
 * BASE_MISSING naming nothing. Loading full + differential equals loading one full bundle of
 * the final set.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { INVENTORY_FORMAT_VERSION, INVENTORY_MEDIA_TYPE, writeInventory } from '../../../src/inventory/format.js';
import { RegistryClient } from '../../../src/transports/registry/client.js';
import { generateCorpus } from '../../../scripts/corpus/generate.js';
import { startContainerd, startDockerd, type Engine } from '../../harness/engines.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { layoutNames, ok } from '../../helpers/layout.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { pushLayers } from '../../helpers/tagged-registry.js';
import { manOf, readMembers } from './craft.js';

afterAll(cleanupHarness);

let src: RunningRegistry;
let far: RunningRegistry;
let ctrd: Engine;
let client: RegistryClient;
let work: string;
let store: string;
const img: Record<string, Awaited<ReturnType<typeof pushLayers>>> = {};
let full1: string;
let full12: string;
/** The base layer shared by both releases: 2 MB, so "left out" shows in the sizes. */
const BASE = randomBytes(2 * 1024 * 1024);
const V1 = randomBytes(30 * 1024);
const V2 = randomBytes(60 * 1024);

async function manifestDigestAt(reg: RunningRegistry, repo: string, tag: string): Promise<string | null> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
    method: 'HEAD',
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
  });
  return res.status === 200 ? res.headers.get('docker-content-digest') : null;
}

beforeAll(async () => {
  [src, far] = await Promise.all([startRegistry(), startRegistry()]);
  ctrd = await startContainerd();
  client = new RegistryClient(src.host);
  img.v1 = await pushLayers(client, 'team/app', '1', [BASE, V1]);
  img.v2 = await pushLayers(client, 'team/app', '2', [BASE, V2]);
  work = createTempDir('diff');
  store = path.join(work, 'store');
  full1 = path.join(work, 'full1.ferry');
  full12 = path.join(work, 'full12.ferry');
  const b1 = await ferry(['bundle', `${src.host}/team/app:1`, '-o', full1, '--store', store]);
  expect(b1.code, b1.stderr).toBe(0);
  const b12 = await ferry(['bundle', `${src.host}/team/app:1`, `${src.host}/team/app:2`, '-o', full12, '--store', store]);
  expect(b12.code, b12.stderr).toBe(0);
}, 180_000);

afterAll(async () => {
  await client?.close();
});

describe('a differential bundle built on a previous bundle (assumed base)', () => {
  let diff: string;
  beforeAll(async () => {
    diff = path.join(work, 'diff-on-bundle.ferry');
    const r = await ferry(['bundle', `${src.host}/team/app:2`, '--base', full1, '-o', diff, '--store', store]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('(assumed, not confirmed by the far side): 1 layers');
  });

  it('leaves out exactly the layer the base holds, records the base, and stays small', async () => {
    const man = manOf(await readMembers(diff));
    expect(man.formatVersion).toBe(2);
    expect(man.base?.kind).toBe('bundle');
    expect(man.base?.confirmed).toBe(false);
    expect(man.base?.blobs.map((b) => [b.digest, b.size])).toEqual([[img.v1!.layers[0], BASE.length]]);
    const carried = new Set(man.members.flatMap((m) => (m.digest ? [m.digest] : [])));
    expect(carried.has(img.v2!.layers[0]!)).toBe(false);
    expect(carried.has(img.v2!.layers[1]!)).toBe(true);
    expect(carried.has(img.v2!.config)).toBe(true);
    expect(carried.has(img.v2!.digest)).toBe(true);
    // At most the new unique bytes plus 1 MB (the tar, ferry-bundle.json, SHA256SUMS).
    const newBytes = img.v2!.bytes - BASE.length;
    expect(statSync(diff).size).toBeLessThanOrEqual(newBytes + 1024 * 1024);
    expect(statSync(diff).size).toBeLessThan(BASE.length);
    // The base digest is the first bundle's ferry-bundle.json.
    const inspected = JSON.parse((await ferry(['inspect', full1, '--json'])).stdout.trim().split('\n').at(-1)!) as {
      manifestDigest: string;
    };
    expect(man.base?.digest).toBe(inspected.manifestDigest);
  });

  it('ferry plan --base says what the differential bundle carries, to the byte', async () => {
    const r = await ferry(['plan', `${src.host}/team/app:1`, `${src.host}/team/app:2`, '--base', full1, '--json', '--store', store]);
    ok(r);
    const plan = JSON.parse(r.stdout) as { totals: { baseNewBytes: number }; images: Array<{ baseNewBytes: number }> };
    expect(plan.totals.baseNewBytes).toBe(img.v2!.bytes - BASE.length);
    // app:1 is at the far side under its name and digest: nothing of it travels.
    expect(plan.images.map((i) => i.baseNewBytes)).toEqual([0, img.v2!.bytes - BASE.length]);
    expect(manOf(await readMembers(diff)).totals.uniqueBytes).toBe(plan.totals.baseNewBytes);
  });

  it('leaves out images the base holds under the same name and digest; with nothing new, writes nothing (exit 0)', async () => {
    const dir = createTempDir('diff-unchanged');
    const both = path.join(dir, 'both.ferry');
    const r = await ferry(['bundle', `${src.host}/team/app:1`, `${src.host}/team/app:2`, '--base', full1, '-o', both, '--store', store]);
    ok(r);
    expect(r.stdout).toContain('1 unchanged images not carried');
    const man = manOf(await readMembers(both));
    expect(man.images.map((i) => i.ref)).toEqual([`${src.host}/team/app:2`]);
    const none = path.join(dir, 'none.ferry');
    const n = await ferry(['bundle', `${src.host}/team/app:1`, '--base', full1, '-o', none, '--store', store]);
    ok(n);
    expect(n.stdout).toContain('nothing to carry; no bundle written');
    expect(existsSync(none)).toBe(false);
  });

  it('verifies on its own and lists what it expects at the destination; inspect says it is differential', async () => {
    const v = await ferry(['verify', diff]);
    expect(v.code, v.stdout).toBe(0);
    expect(v.stdout).toContain(`expects at the destination 1 blobs`);
    expect(v.stdout).toContain(img.v1!.layers[0]!);
    const i = await ferry(['inspect', diff]);
    expect(i.stdout).toMatch(/differential against bundle sha256:[a-f0-9]{64} \(assumed/);
    expect(i.stdout).toContain('relies on the destination holding 1 blobs (2.10 MB)');
  });

  it('into an OCI layout: full then differential equals one full bundle of both', async () => {
    const layout = path.join(work, 'far-oci');
    ok(await ferry(['load', full1, '--to', `oci:${layout}`]));
    const l = await ferry(['load', diff, '--to', `oci:${layout}`, '--json']);
    ok(l);
    const once = path.join(work, 'far-oci-once');
    ok(await ferry(['load', full12, '--to', `oci:${once}`]));
    expect(layoutNames(layout)).toEqual(layoutNames(once));
    expect(layoutNames(layout)).toContain(`${src.host}/team/app:2@${img.v2!.digest}`);
    // skopeo reads the image the differential load completed.
    const { execFileSync } = await import('node:child_process');
    const raw = execFileSync('skopeo', ['inspect', '--raw', `oci:${layout}:${src.host}/team/app:2`]);
    expect(`sha256:${(await import('node:crypto')).createHash('sha256').update(raw).digest('hex')}`).toBe(img.v2!.digest);
  });

  it('into a registry under a prefix: full then differential, same digests', async () => {
    ok(await ferry(['load', full1, '--to', `docker://${far.host}/site`]));
    const l = await ferry(['load', diff, '--to', `docker://${far.host}/site`]);
    ok(l);
    expect(await manifestDigestAt(far, 'site/team/app', '2')).toBe(img.v2!.digest);
    expect(await manifestDigestAt(far, 'site/team/app', '1')).toBe(img.v1!.digest);
  });

  it('into containerd: full then differential, same digests, complete', async () => {
    const to = `containerd:${ctrd.socket}?namespace=diff`;
    const a = await ferry(['load', full1, '--to', to, '--no-unpack']);
    expect(a.code, a.stderr).toBe(0);
    const b = await ferry(['load', diff, '--to', to, '--no-unpack']);
    expect(b.code, b.stderr).toBe(0);
    const ls = await ctrd.run(['-n', 'diff', 'images', 'ls']);
    expect(ls.stdout).toContain(`${src.host}/team/app:2`);
    expect(ls.stdout).toContain(img.v2!.digest);
    const check = await ctrd.run(['-n', 'diff', 'images', 'check']);
    expect(check.stdout).toMatch(/team\/app:2\s+\S+\s+\S+\s+complete \(3\/3\)/);
  });

  it('where the base is missing: BASE_MISSING, the missing digest and its image named, nothing loaded', async () => {
    const empty = path.join(work, 'empty-oci');
    const o = await ferry(['load', diff, '--to', `oci:${empty}`]);
    expect(o.code).toBe(1);
    expect(o.stderr).toContain('lacks 1 blob this differential bundle relies on; nothing was loaded');
    expect(o.stderr).toContain(img.v1!.layers[0]!);
    expect(o.stderr).toContain(`${src.host}/team/app:2`);
    expect(layoutNames(empty)).toEqual([]);
    const r = await ferry(['load', diff, '--to', `docker://${far.host}/empty`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('lacks 1 blob this differential bundle relies on');
    // The stable code, for scripts.
    const j = await ferry(['load', diff, '--to', `docker://${far.host}/empty`, '--json']);
    expect(j.stdout).toContain('"code":"BASE_MISSING"');
    expect(await manifestDigestAt(far, 'empty/team/app', '2')).toBeNull();
    const c = await ferry(['load', diff, '--to', `containerd:${ctrd.socket}?namespace=empty`, '--no-unpack']);
    expect(c.code).toBe(1);
    expect(c.stderr).toContain('lacks 1 blob this differential bundle relies on');
    const ls = await ctrd.run(['-n', 'empty', 'images', 'ls', '-q']);
    expect(ls.stdout.trim()).toBe('');
  });
});

describe('a differential bundle built on an inventory (confirmed base)', () => {
  it('records the inventory, checks its signature with --base-key, and loads onto what it lists', async () => {
    const dir = createTempDir('diff-inv');
    const layout = path.join(dir, 'far');
    ok(await ferry(['load', full1, '--to', `oci:${layout}`]));
    const { key: privateKey, pub: publicKey } = makeKeyPair(dir, 'inv', 'ed25519');
    const inventoryFile = path.join(dir, 'far.inventory.json');
    // What `ferry inventory oci:DIR` reports: the blobs of the loaded layout.
    const { readdirSync } = await import('node:fs');
    const blobs = readdirSync(path.join(layout, 'blobs', 'sha256')).map((h) => `sha256:${h}`);
    const { digest } = await writeInventory(
      inventoryFile,
      {
        mediaType: INVENTORY_MEDIA_TYPE,
        formatVersion: INVENTORY_FORMAT_VERSION,
        tool: { name: 'ferry', version: 'test' },
        created: '2026-12-05T00:00:00Z',
        location: `oci:${layout}`,
        kind: 'oci',
        images: [{ name: `${src.host}/team/app:1`, digest: img.v1!.digest }],
        blobs,
        notes: [],
      },
      privateKey,
    );
    const diff = path.join(dir, 'diff.ferry');
    const r = await ferry([
      'bundle',
      `${src.host}/team/app:2`,
      '--base',
      inventoryFile,
      '--base-key',
      publicKey,
      '-o',
      diff,
      '--store',
      store,
    ]);
    expect(r.code, r.stderr).toBe(0);
    const man = manOf(await readMembers(diff));
    expect(man.base).toEqual({
      kind: 'inventory',
      digest,
      confirmed: true,
      location: `oci:${layout}`,
      created: '2026-12-05T00:00:00Z',
      blobs: [{ digest: img.v1!.layers[0], size: BASE.length, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }],
    });
    const l = await ferry(['load', diff, '--to', `oci:${layout}`]);
    ok(l);
    expect(layoutNames(layout)).toContain(`${src.host}/team/app:2@${img.v2!.digest}`);
    // A tampered inventory does not verify with the key: exit 3, no bundle.
    const bad = path.join(dir, 'bad.inventory.json');
    const { writeFileSync, copyFileSync } = await import('node:fs');
    writeFileSync(bad, readFileSync(inventoryFile, 'utf8').replace('"kind": "oci"', '"kind":  "oci"'));
    copyFileSync(`${inventoryFile}.sig`, `${bad}.sig`);
    const out = path.join(dir, 'never.ferry');
    const t = await ferry(['bundle', `${src.host}/team/app:2`, '--base', bad, '--base-key', publicKey, '-o', out, '--store', store]);
    expect(t.code).toBe(3);
    expect(t.stderr).toContain('does not verify');
    expect(existsSync(out)).toBe(false);
  });

  it('takes ferry inspect --json output of the previous bundle as its base, as the bundle itself', async () => {
    const dir = createTempDir('diff-inspect');
    const json = path.join(dir, 'full1.json');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(json, (await ferry(['inspect', full1, '--json'])).stdout);
    const a = path.join(dir, 'a.ferry');
    const b = path.join(dir, 'b.ferry');
    ok(await ferry(['bundle', `${src.host}/team/app:2`, '--base', json, '-o', a, '--store', store]));
    ok(await ferry(['bundle', `${src.host}/team/app:2`, '--base', full1, '-o', b, '--store', store]));
    const [ma, mb] = [manOf(await readMembers(a)), manOf(await readMembers(b))];
    expect(ma.base).toEqual(mb.base);
    expect(ma.base?.confirmed).toBe(false);
  });

  it('refuses a base that is neither an inventory nor a bundle (exit 3) and --base-key without --base (exit 2)', async () => {
    const dir = createTempDir('diff-bad');
    const { writeFileSync } = await import('node:fs');
    writeFileSync(path.join(dir, 'x.json'), '{"hello": 1}\n');
    const r = await ferry([
      'bundle',
      `${src.host}/team/app:2`,
      '--base',
      path.join(dir, 'x.json'),
      '-o',
      path.join(dir, 'o.ferry'),
      '--store',
      store,
    ]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('neither an inventory');
    const k = await ferry(['bundle', `${src.host}/team/app:2`, '--base-key', 'k.pem', '-o', path.join(dir, 'o.ferry'), '--store', store]);
    expect(k.code).toBe(2);
  });
});

describe('ferry serve of a differential bundle with its base', () => {
  it('serves the new image whole: its own blobs from the bundle, the base layer from the bundle given with it', async () => {
    const dir = createTempDir('diff-serve');
    const diff = path.join(dir, 'diff.ferry');
    // A new repository too, whose base layer only team/app's base holds.
    const other = await pushLayers(client, 'team/other', '1', [BASE, randomBytes(1000)]);
    ok(await ferry(['bundle', `${src.host}/team/app:2`, `${src.host}/team/other:1`, '--base', full1, '-o', diff, '--store', store]));
    const { spawn } = await import('node:child_process');
    const { CLI } = await import('../../helpers/cli.js');
    const child = spawn(process.execPath, [CLI, 'serve', diff, full1, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      const host = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /Serving https?:\/\/(\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`serve exited ${code}: ${stderr}`)));
      });
      expect(stderr).toContain('a differential bundle: 1 layer it relies on are served only from another source');
      expect(other.layers[0]).toBe(img.v1!.layers[0]);
      // The manifest as skopeo reads it, and every blob of it served with the right bytes.
      const { execFileSync } = await import('node:child_process');
      const { createHash } = await import('node:crypto');
      const hash = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
      const raw = execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/team/app:2`]);
      expect(hash(raw)).toBe(img.v2!.digest);
      for (const [repo, digest] of [
        ...[img.v2!.config, ...img.v2!.layers].map((d) => ['team/app', d] as const),
        ...[other.config, ...other.layers].map((d) => ['team/other', d] as const),
      ]) {
        const res = await fetch(`http://${host}/v2/${repo}/blobs/${digest}`);
        expect(res.status, `${repo} ${digest}`).toBe(200);
        expect(hash(Buffer.from(await res.arrayBuffer()))).toBe(digest);
      }
      // A blob no image of the repository references is not served from the other source.
      expect((await fetch(`http://${host}/v2/team/other/blobs/${img.v1!.layers[1]}`)).status).toBe(404);
    } finally {
      child.kill('SIGTERM');
    }
  });
});

describe('full → ferry inventory → differential → load, at each kind of destination', () => {
  async function inventoryOf(location: string, dir: string): Promise<string> {
    const file = path.join(dir, 'inventory.json');
    ok(await ferry(['inventory', location, '-o', file]));
    return file;
  }

  it('a registry under a prefix: the inventory confirms the base layer, the update relies on it', async () => {
    const dir = createTempDir('inv-reg');
    ok(await ferry(['load', full1, '--to', `docker://${far.host}/month`]));
    const inv = await inventoryOf(`docker://${far.host}/month`, dir);
    const diff = path.join(dir, 'update.ferry');
    ok(await ferry(['bundle', `${src.host}/team/app:1`, `${src.host}/team/app:2`, '--base', inv, '-o', diff, '--store', store]));
    const man = manOf(await readMembers(diff));
    expect(man.base?.kind).toBe('inventory');
    expect(man.base?.confirmed).toBe(true);
    expect(man.base?.location).toBe(`docker://${far.host}/month`);
    // Both of release 1's layers are at the far side: only release 2's own layer travels.
    expect(man.base?.blobs.map((b) => b.digest).sort()).toEqual([...img.v1!.layers].sort());
    ok(await ferry(['load', diff, '--to', `docker://${far.host}/month`]));
    expect(await manifestDigestAt(far, 'month/team/app', '2')).toBe(img.v2!.digest);
    expect(await manifestDigestAt(far, 'month/team/app', '1')).toBe(img.v1!.digest);
  });

  it('containerd: the content store is the inventory; the update loads onto it', async () => {
    const dir = createTempDir('inv-ctrd');
    const to = `containerd:${ctrd.socket}?namespace=month`;
    ok(await ferry(['load', full1, '--to', to, '--no-unpack']));
    const inv = await inventoryOf(to, dir);
    const diff = path.join(dir, 'update.ferry');
    ok(await ferry(['bundle', `${src.host}/team/app:2`, '--base', inv, '-o', diff, '--store', store]));
    expect(manOf(await readMembers(diff)).base?.blobs.map((b) => b.digest)).toEqual([img.v1!.layers[0]]);
    ok(await ferry(['load', diff, '--to', to, '--no-unpack']));
    const ls = await ctrd.run(['-n', 'month', 'images', 'ls']);
    expect(ls.stdout).toMatch(new RegExp(`team/app:2\\s+\\S+\\s+${img.v2!.digest}`));
  });
});

describe('Docker Engine: full → inventory → differential → load', () => {
  let docker: Engine;
  beforeAll(async () => {
    docker = await startDockerd();
  }, 120_000);
  afterAll(async () => {
    await docker?.stop();
  });

  it('Docker keeps no layers to confirm, so the update carries every layer, and loads with the same image IDs', async () => {
    const dir = createTempDir('inv-docker');
    const corpusDir = path.join(dir, 'corpus');
    const corpus = await generateCorpus(corpusDir, 'demo');
    const full = path.join(dir, 'full.ferry');
    const s = path.join(dir, 'store');
    ok(await ferry(['bundle', `oci:${corpusDir}:ferry-demo/app:1.0`, '-o', full, '--store', s]));
    const to = `docker-daemon:${docker.socket}`;
    ok(await ferry(['load', full, '--to', to]));
    const inv = path.join(dir, 'inventory.json');
    ok(await ferry(['inventory', to, '-o', inv]));
    const diff = path.join(dir, 'update.ferry');
    ok(await ferry(['bundle', `oci:${corpusDir}:ferry-demo/app:1.0.1`, '--base', inv, '-o', diff, '--store', s]));
    const man = manOf(await readMembers(diff));
    expect(man.base?.kind).toBe('inventory');
    expect(man.base?.blobs).toEqual([]);
    ok(await ferry(['load', diff, '--to', to]));
    // The image ID Docker gives is the config digest the corpus made.
    const want = corpus.images.find((i) => i.ref === 'ferry-demo/app:1.0.1')!;
    const manifest = JSON.parse(readFileSync(path.join(corpusDir, 'blobs', 'sha256', want.digest.slice(7)), 'utf8')) as {
      config: { digest: string };
    };
    const id = await docker.run(['image', 'inspect', '--format', '{{.Id}}', 'ferry-demo/app:1.0.1']);
    expect(id.stdout.trim()).toBe(manifest.config.digest);
  });
});
