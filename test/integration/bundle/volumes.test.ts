/**
 * Volumes end to end: images of known sizes pushed to a real registry, bundled with
 * --volume-size into 3 volumes; each verifies, inspects and loads on its own (a fresh OCI
 * layout and a fresh registry hold exactly its images); all volumes load the whole set in
 * either order; the reported overhead is the duplicated bytes; an image larger than a volume is
 * refused (exit 2); a damaged volume fails alone (exit 3) while the others load.
 */
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../../src/transports/registry/client.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { layoutNames, ok } from '../../helpers/layout.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { pushLayers } from '../../helpers/tagged-registry.js';

afterAll(cleanupHarness);

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME = 4 * MiB;
/** a1 and a2 share a big layer (one volume); c shares a small one with a1 (carried twice). */
const SHARED = randomBytes(1200 * KiB);
const SMALL = randomBytes(50 * KiB);
const A1 = randomBytes(300 * KiB);
const A2 = randomBytes(300 * KiB);
const B = randomBytes(2 * MiB);
const C = randomBytes(2 * MiB);

let src: RunningRegistry;
let client: RegistryClient;
let work: string;
let store: string;
let volumes: string[];
let keys: { key: string; pub: string };
const refs: Record<string, string> = {};
const digests: Record<string, string> = {};
let report: { setId: string; duplicatedBytes: number; uniqueBytes: number; volumes: Array<{ output: string; fileSize: number }> };

interface Manifest {
  images: Array<{ ref: string; digest: string }>;
  volume?: { setId: string; number: number; count: number; images: Array<{ volume: number; refs: string[] }> };
  totals: { uniqueBytes: number };
  members: Array<{ digest?: string; size: number }>;
  imageSet?: { profiles: Array<{ name: string; digest: string }>; lock?: { digest: string } };
}

async function manifestOf(file: string): Promise<Manifest> {
  const r = await ferry(['inspect', file, '--json']);
  ok(r);
  const doc = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { images: Manifest['images']; volume: Manifest['volume'] };
  // The exact manifest (for totals and members) is in the tar; inspect gives images and volume.
  const raw = readFileSync(file);
  const start = raw.indexOf('{\n  "mediaType": "application/vnd.ferry.bundle.manifest.v1+json"');
  const end = raw.indexOf('\n}\n', start) + 2;
  const man = JSON.parse(raw.subarray(start, end).toString('utf8')) as Manifest;
  expect(man.images.map((i) => i.ref)).toEqual(doc.images.map((i) => i.ref));
  expect(man.volume).toEqual(doc.volume);
  return man;
}

beforeAll(async () => {
  src = await startRegistry();
  client = new RegistryClient(src.host);
  const pushed = {
    // Distinct tags: the config (which holds the tag) is then each image's own.
    a1: await pushLayers(client, 'vol/a', 'a1', [SHARED, A1, SMALL]),
    a2: await pushLayers(client, 'vol/a', 'a2', [SHARED, A2]),
    b: await pushLayers(client, 'vol/b', 'b', [B]),
    c: await pushLayers(client, 'vol/c', 'c', [C, SMALL]),
  };
  for (const [k, v] of Object.entries(pushed)) {
    const repo = k.startsWith('a') ? 'vol/a' : `vol/${k}`;
    const tag = k;
    refs[k] = `${src.host}/${repo}:${tag}`;
    digests[k] = v.digest;
  }
  work = createTempDir('volumes');
  store = path.join(work, 'store');
  keys = makeKeyPair(work, 'vol', 'ed25519');
  const r = await ferry([
    'bundle',
    ...Object.values(refs),
    '-o',
    path.join(work, 'set.ferry'),
    '--store',
    store,
    '--compression',
    'none',
    '--volume-size',
    String(VOLUME),
    '--sign-key',
    keys.key,
    '--json',
  ]);
  ok(r);
  report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as typeof report;
  volumes = readdirSync(work)
    .filter((n) => /^set\.\d{3}\.ferry$/.test(n))
    .sort()
    .map((n) => path.join(work, n));
}, 180_000);

afterAll(async () => {
  await client?.close();
});

describe('ferry bundle --volume-size', () => {
  it('writes 3 volumes, each at most SIZE, images whole, a1 and a2 together', async () => {
    expect(volumes.map((v) => path.basename(v))).toEqual(['set.001.ferry', 'set.002.ferry', 'set.003.ferry']);
    expect(report.volumes.map((v) => v.output)).toEqual(volumes);
    const held: string[][] = [];
    for (const [n, v] of volumes.entries()) {
      expect(statSync(v).size).toBeLessThanOrEqual(VOLUME);
      const man = await manifestOf(v);
      expect(man.volume?.number).toBe(n + 1);
      expect(man.volume?.count).toBe(3);
      expect(man.volume?.setId).toBe(report.setId);
      held.push(man.images.map((i) => i.ref).sort());
      expect(man.volume?.images.find((x) => x.volume === n + 1)?.refs.sort()).toEqual(held[n]);
    }
    expect(held.flat().sort()).toEqual(Object.values(refs).sort());
    expect(held).toContainEqual([refs.a1, refs.a2].sort());
    expect(held).toContainEqual([refs.b]);
    expect(held).toContainEqual([refs.c]);
  });

  it('reports as overhead exactly the bytes carried twice (the small shared layer)', async () => {
    expect(report.duplicatedBytes).toBe(SMALL.length);
    // Counted again from the volumes' own member lists: every copy beyond the first.
    const seen = new Map<string, number>();
    let extra = 0;
    for (const v of volumes) {
      for (const m of (await manifestOf(v)).members) {
        if (!m.digest) continue;
        if (seen.has(m.digest)) extra += m.size;
        seen.set(m.digest, m.size);
      }
    }
    expect(extra).toBe(SMALL.length);
  });

  it('each volume verifies, inspects and loads alone into a fresh layout and a fresh registry', async () => {
    for (const [n, v] of volumes.entries()) {
      // Signed as any bundle: the signature covers its ferry-bundle.json, the set's listing included.
      ok(await ferry(['verify', v, '--key', keys.pub, '--require-signature']));
      expect(existsSync(`${v}.sig`)).toBe(true);
      const shown = await ferry(['inspect', v]);
      ok(shown);
      expect(shown.stdout).toContain(`volume ${n + 1} of 3 of set ${report.setId}`);
      const man = await manifestOf(v);
      for (const other of man.volume!.images.filter((x) => x.volume !== n + 1)) {
        expect(shown.stdout).toContain(`volume ${other.volume} holds: ${other.refs.join(', ')}`);
      }
      const layout = path.join(createTempDir('vol-layout'), 'oci');
      ok(await ferry(['load', v, '--to', `oci:${layout}`]));
      expect(layoutNames(layout)).toEqual(man.images.map((i) => `${i.ref}@${i.digest}`).sort());
      const far = await startRegistry();
      ok(await ferry(['load', v, '--to', `docker://${far.host}/m`]));
      for (const i of man.images) {
        const key = Object.keys(refs).find((k) => refs[k] === i.ref)!;
        const repoTag = i.ref.slice(src.host.length + 1);
        const [repo, tag] = repoTag.split(':') as [string, string];
        const res = await fetch(`${far.url}/v2/m/${repo}/manifests/${tag}`, {
          method: 'HEAD',
          headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
        });
        expect(res.headers.get('docker-content-digest')).toBe(digests[key]);
      }
    }
  }, 180_000);

  it('all volumes together load the whole set, forward and reverse alike, and one per run too', async () => {
    const fwd = path.join(createTempDir('vol-fwd'), 'oci');
    const rev = path.join(createTempDir('vol-rev'), 'oci');
    const f = await ferry(['load', ...volumes, '--to', `oci:${fwd}`]);
    ok(f);
    expect(f.stdout).toContain('Loaded 4 of 4 images');
    ok(await ferry(['load', ...[...volumes].reverse(), '--to', `oci:${rev}`]));
    const want = Object.keys(refs)
      .map((k) => `${refs[k]}@${digests[k]}`)
      .sort();
    expect(layoutNames(fwd)).toEqual(want);
    expect(layoutNames(rev)).toEqual(want);
    // One volume per run ("one today, the next next week"), last first: the same layout.
    const apart = path.join(createTempDir('vol-apart'), 'oci');
    for (const v of [...volumes].reverse()) ok(await ferry(['load', v, '--to', `oci:${apart}`]));
    expect(layoutNames(apart)).toEqual(want);
    const blobs = (dir: string): string[] => readdirSync(path.join(dir, 'blobs', 'sha256')).sort();
    expect(blobs(apart)).toEqual(blobs(fwd));
  }, 120_000);

  it('an image larger than a volume is refused, named with its size (exit 2)', async () => {
    const r = await ferry(['bundle', refs.b!, '-o', path.join(work, 'small.ferry'), '--store', store, '--volume-size', '2MiB']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`image ${refs.b} needs about`);
    expect(r.stderr).toMatch(/needs about \d+ bytes in a volume, more than --volume-size 2097152/);
    expect(readdirSync(work).filter((n) => n.startsWith('small'))).toEqual([]);
  });

  it('junk sizes and --allow-spanning without --volume-size are usage errors (exit 2)', async () => {
    const junk = await ferry(['bundle', refs.b!, '-o', path.join(work, 'j.ferry'), '--store', store, '--volume-size', '4.7X']);
    expect(junk.code).toBe(2);
    const span = await ferry(['bundle', refs.b!, '-o', path.join(work, 'j.ferry'), '--store', store, '--allow-spanning']);
    expect(span.code).toBe(2);
    expect(span.stderr).toContain('--allow-spanning lets an image span volumes; it needs --volume-size SIZE');
    expect(readdirSync(work).filter((n) => n.startsWith('j.'))).toEqual([]);
  });

  it('a damaged volume fails alone (exit 3); the others still load', async () => {
    const dir = createTempDir('vol-tamper');
    const copies = volumes.map((v) => path.join(dir, path.basename(v)));
    for (const [n, v] of volumes.entries()) copyFileSync(v, copies[n]!);
    // The volume holding b: flip a byte inside b's only layer.
    const bIndex = await Promise.all(volumes.map(async (v) => (await manifestOf(v)).images.some((i) => i.ref === refs.b)));
    const victim = copies[bIndex.indexOf(true)]!;
    const bytes = readFileSync(victim);
    const at = bytes.indexOf(B.subarray(0, 64));
    expect(at).toBeGreaterThan(0);
    bytes[at + 1000] = bytes[at + 1000]! ^ 0xff;
    writeFileSync(victim, bytes);
    expect((await ferry(['verify', victim])).code).toBe(3);
    const layout = path.join(dir, 'oci');
    const r = await ferry(['load', ...copies, '--to', `oci:${layout}`]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(3);
    expect(layoutNames(layout)).toEqual(['a1', 'a2', 'c'].map((k) => `${refs[k]}@${digests[k]}`).sort());
  }, 120_000);
});

describe('stale volumes of an earlier run', () => {
  const bundleTo = (out: string, images: string[], size: number): ReturnType<typeof ferry> =>
    ferry([
      'bundle',
      ...images,
      '-o',
      out,
      '--store',
      store,
      '--compression',
      'none',
      '--volume-size',
      String(size),
      '--sign-key',
      keys.key,
    ]);

  it('a smaller set under the same NAME removes the earlier volumes numbered above it (and their .sig), and says so', async () => {
    const dir = createTempDir('vol-stale');
    const out = path.join(dir, 'm.ferry');
    ok(await bundleTo(out, Object.values(refs), VOLUME));
    const names = (): string[] =>
      readdirSync(dir)
        .filter((n) => n.startsWith('m.'))
        .sort();
    expect(names()).toEqual(['m.001.ferry', 'm.001.ferry.sig', 'm.002.ferry', 'm.002.ferry.sig', 'm.003.ferry', 'm.003.ferry.sig']);
    // An earlier volume kept aside, to be mixed with the new set below.
    const aside = createTempDir('vol-stale-aside');
    copyFileSync(path.join(dir, 'm.003.ferry'), path.join(aside, 'm.003.ferry'));
    const oldSet = (await manifestOf(path.join(dir, 'm.003.ferry'))).volume!.setId;
    const r = await bundleTo(out, [refs.a1!, refs.a2!], VOLUME);
    ok(r);
    expect(r.stdout).toContain('Removed 2 stale volumes of an earlier run (numbered above 1): m.002.ferry, m.003.ferry');
    expect(names()).toEqual(['m.001.ferry', 'm.001.ferry.sig']);
    const newSet = (await manifestOf(path.join(dir, 'm.001.ferry'))).volume!.setId;
    expect(newSet).not.toBe(oldSet);

    // Volumes of two sets under one NAME: inspect and load warn; load still loads both.
    copyFileSync(path.join(aside, 'm.003.ferry'), path.join(dir, 'm.003.ferry'));
    const shown = await ferry(['inspect', path.join(dir, 'm.001.ferry')]);
    ok(shown);
    expect(shown.stderr).toContain('warning: m.NNN.ferry holds volumes of 2 different sets');
    expect(shown.stderr).toContain(`m.001.ferry of set ${newSet} (1 volumes)`);
    expect(shown.stderr).toContain(`m.003.ferry of set ${oldSet} (3 volumes)`);
    const layout = path.join(createTempDir('vol-mixed'), 'oci');
    const loaded = await ferry(['load', path.join(dir, 'm.001.ferry'), path.join(dir, 'm.003.ferry'), '--to', `oci:${layout}`]);
    ok(loaded);
    expect(loaded.stderr).toContain('warning: m.NNN.ferry holds volumes of 2 different sets');
    const want = [...(await manifestOf(path.join(dir, 'm.001.ferry'))).images, ...(await manifestOf(path.join(dir, 'm.003.ferry'))).images];
    // The old volume may hold a1 and a2 as well (packing order follows random digests).
    expect(layoutNames(layout)).toEqual([...new Set(want.map((i) => `${i.ref}@${i.digest}`))].sort());
  }, 180_000);

  it('a file under a stale volume name that is not a ferry volume is refused, not removed (exit 2), and nothing is written', async () => {
    const dir = createTempDir('vol-stale-junk');
    const junk = path.join(dir, 'j.004.ferry');
    writeFileSync(junk, 'my thesis, not a ferry volume\n');
    // A ferry bundle that is not a volume is not a volume either.
    const plainBundle = path.join(dir, 'j.005.ferry');
    ok(await ferry(['bundle', refs.a1!, '-o', plainBundle, '--store', store]));
    for (const victim of [junk, plainBundle]) {
      const r = await bundleTo(path.join(dir, 'j.ferry'), Object.values(refs), VOLUME);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toContain(`${victim} is named like volume ${victim === junk ? 4 : 5} of this set but is not a ferry volume`);
      expect(existsSync(path.join(dir, 'j.001.ferry'))).toBe(false);
      expect(existsSync(victim)).toBe(true);
      rmSync(victim);
    }
  }, 180_000);
});

describe('volumes planned from a profile and from its lock', () => {
  let profile: string;
  let lock: string;
  const setOf = async (stem: string): Promise<string[]> =>
    readdirSync(work)
      .filter((n) => new RegExp(`^${stem}\\.\\d{3}\\.ferry$`).test(n))
      .sort()
      .map((n) => path.join(work, n));
  /** `ferry bundle PLAN… -o STEM.ferry --volume-size VOLUME` as the -f run above; its volume files. */
  const volumeSet = async (plan: string[], stem: string): Promise<string[]> => {
    const out = path.join(work, `${stem}.ferry`);
    ok(await ferry(['bundle', ...plan, '-o', out, '--store', store, '--compression', 'none', '--volume-size', String(VOLUME)]));
    return setOf(stem);
  };
  const imagesOf = async (files: string[]): Promise<string[][]> =>
    Promise.all(files.map(async (f) => (await manifestOf(f)).images.map((i) => `${i.ref}@${i.digest}`).sort()));

  beforeAll(async () => {
    profile = path.join(work, 'vol-profile.yaml');
    // vol/a by a tag filter, the others by tag: the same four images as the -f run above.
    writeFileSync(
      profile,
      [
        'apiVersion: ferry/v1',
        'kind: ImageSet',
        'metadata: {name: vol-site}',
        'images:',
        `  - ref: ${src.host}/vol/a`,
        "    tags: {allow: ['a[0-9]']}",
        `  - ref: ${refs.b}`,
        `  - ref: ${refs.c}`,
        '',
      ].join('\n'),
    );
    lock = path.join(work, 'vol.lock.json');
    ok(await ferry(['plan', '-p', profile, '-o', lock]));
  }, 60_000);

  it('-p PROFILE --volume-size packs the selected images as the list did, each volume naming the profile', async () => {
    const files = await volumeSet(['-p', profile], 'prof');
    expect(await imagesOf(files)).toEqual(await imagesOf(volumes));
    for (const f of files) {
      expect((await manifestOf(f)).imageSet?.profiles.map((p) => p.name)).toEqual(['vol-site']);
      ok(await ferry(['verify', f]));
    }
  }, 120_000);

  it('--lock LOCK --volume-size records the lock digest in every volume, and the volumes load the whole set', async () => {
    const files = await volumeSet(['--lock', lock], 'locked');
    expect(await imagesOf(files)).toEqual(await imagesOf(volumes));
    const lockDigest = `sha256:${createHash('sha256').update(readFileSync(lock)).digest('hex')}`;
    for (const f of files) expect((await manifestOf(f)).imageSet?.lock?.digest).toBe(lockDigest);
    const layout = path.join(createTempDir('vol-lock'), 'oci');
    ok(await ferry(['load', ...files, '--to', `oci:${layout}`]));
    expect(layoutNames(layout)).toEqual(
      Object.keys(refs)
        .map((k) => `${refs[k]}@${digests[k]}`)
        .sort(),
    );
  }, 120_000);
});
