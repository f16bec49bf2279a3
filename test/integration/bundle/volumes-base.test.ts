/**
 * Differential volumes (--volume-size with --base) end to end: release 1 bundled whole and
 * loaded into an OCI layout, `ferry inventory oci:DIR` of it, then release 2 split into volumes
 * against that inventory. Every volume leaves out the base's layers (packing counts only what
 * is carried: an image too large for a volume whole fits once its base layer stays home), records
 * both `base` and `volume`, loads alone on top of the far side, and all of them together give
 * the same layout as a full bundle of release 2. Nothing new at all: exit 0, no file. With
 * --allow-spanning too, an image too large for a volume even without its base layer spans
 * volumes that carry only its new layers, and loads only with all of them and the base.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spanOf } from '../../../src/bundle/volume-files.js';
import { RegistryClient } from '../../../src/transports/registry/client.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { layoutNames, ok } from '../../helpers/layout.js';
import { pushLayers } from '../../helpers/tagged-registry.js';
import { manOf, readMembers } from './craft.js';

afterAll(cleanupHarness);

const KiB = 1024;
const MiB = 1024 * KiB;
const VOLUME = 3 * MiB;
/** Shared by app:1, app:2 and tools:2; at the far side after release 1. */
const BASE = randomBytes(1536 * KiB);
const V1 = randomBytes(40 * KiB);
const W1 = randomBytes(60 * KiB);
const V2 = randomBytes(1200 * KiB);
const T2 = randomBytes(1200 * KiB);
const D2 = randomBytes(1500 * KiB);
/** big:2 = BASE + S1 + S2: too large for one volume even without BASE, so it spans. */
const S1 = randomBytes(1536 * KiB);
const S2 = randomBytes(1536 * KiB);

let src: RunningRegistry;
let client: RegistryClient;
let work: string;
let store: string;
let farLayout: string;
let inventory: string;
const refs: Record<string, string> = {};
const pushed: Record<string, Awaited<ReturnType<typeof pushLayers>>> = {};

function layoutBlobs(dir: string): string[] {
  return readdirSync(path.join(dir, 'blobs', 'sha256')).sort();
}

beforeAll(async () => {
  src = await startRegistry();
  client = new RegistryClient(src.host);
  const images: Array<[string, string, string, Buffer[]]> = [
    ['app1', 'vb/app', '1', [BASE, V1]],
    ['web1', 'vb/web', '1', [W1]],
    ['app2', 'vb/app', '2', [BASE, V2]],
    ['tools2', 'vb/tools', '2', [BASE, T2]],
    ['db2', 'vb/db', '2', [D2]],
    ['big2', 'vb/big', '2', [BASE, S1, S2]],
  ];
  for (const [k, repo, tag, layers] of images) {
    pushed[k] = await pushLayers(client, repo, tag, layers);
    refs[k] = `${src.host}/${repo}:${tag}`;
  }
  work = createTempDir('vol-base');
  store = path.join(work, 'store');
  const full1 = path.join(work, 'full1.ferry');
  ok(await ferry(['bundle', refs.app1!, refs.web1!, '-o', full1, '--store', store]));
  farLayout = path.join(work, 'far');
  ok(await ferry(['load', full1, '--to', `oci:${farLayout}`]));
  inventory = path.join(work, 'far.inventory.json');
  ok(await ferry(['inventory', `oci:${farLayout}`, '-o', inventory]));
}, 180_000);

afterAll(async () => {
  await client?.close();
});

const release2 = (): string[] => [refs.app2!, refs.web1!, refs.tools2!, refs.db2!];

describe('ferry bundle --volume-size with --base', () => {
  let volumes: string[];
  let out: string;
  beforeAll(async () => {
    out = path.join(work, 'upd');
    const r = await ferry([
      'bundle',
      ...release2(),
      '--base',
      inventory,
      '-o',
      `${out}.ferry`,
      '--store',
      store,
      '--volume-size',
      String(VOLUME),
    ]);
    ok(r);
    expect(r.stdout).toMatch(
      /each volume differential against inventory sha256:[a-f0-9]{64}: 1 layers .* left out, relied on at the destination; 1 unchanged images not carried/,
    );
    volumes = readdirSync(work)
      .filter((n) => /^upd\.\d{3}\.ferry$/.test(n))
      .sort()
      .map((n) => path.join(work, n));
  }, 120_000);

  it('without the base, app:2 (base layer + its own) would not fit one volume', async () => {
    const r = await ferry(['bundle', refs.app2!, '-o', path.join(work, 'nobase.ferry'), '--store', store, '--volume-size', String(VOLUME)]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`image ${refs.app2} needs about`);
    expect(readdirSync(work).filter((n) => n.startsWith('nobase'))).toEqual([]);
  });

  it('every volume leaves out the base layer, records base and volume, and stays within SIZE', async () => {
    // app:2, tools:2 and db:2 each carry ~1.2-1.5 MB: no two fit one 3 MB volume.
    expect(volumes.map((v) => path.basename(v))).toEqual(['upd.001.ferry', 'upd.002.ferry', 'upd.003.ferry']);
    const held: string[] = [];
    const setIds = new Set<string>();
    for (const [n, v] of volumes.entries()) {
      expect(statSync(v).size).toBeLessThanOrEqual(VOLUME);
      const man = manOf(await readMembers(v));
      expect(man.formatVersion).toBe(2);
      expect(man.base?.kind).toBe('inventory');
      expect(man.base?.confirmed).toBe(true);
      expect(man.volume?.number).toBe(n + 1);
      expect(man.volume?.count).toBe(3);
      setIds.add(man.volume!.setId);
      const carried = new Set(man.members.flatMap((m) => (m.digest ? [m.digest] : [])));
      expect(carried.has(pushed.app1!.layers[0]!)).toBe(false);
      held.push(...man.images.map((i) => i.ref));
      const reliesOnBase = man.images.some((i) => i.ref === refs.app2 || i.ref === refs.tools2);
      expect(man.base?.blobs.map((b) => b.digest)).toEqual(reliesOnBase ? [pushed.app1!.layers[0]] : []);
      ok(await ferry(['verify', v]));
    }
    expect(setIds.size).toBe(1);
    // web:1 is at the far side under its name and digest: not carried by any volume.
    expect(held.sort()).toEqual([refs.app2, refs.tools2, refs.db2].sort());
  });

  it('each volume loads alone on top of the far side; alone elsewhere, one relying on the base fails naming the missing layer', async () => {
    for (const v of volumes) {
      const man = manOf(await readMembers(v));
      const dest = path.join(createTempDir('vol-base-one'), 'oci');
      cpSync(farLayout, dest, { recursive: true });
      ok(await ferry(['load', v, '--to', `oci:${dest}`]));
      const want = [...layoutNames(farLayout), ...man.images.map((i) => `${i.ref}@${i.digest}`)].sort();
      expect(layoutNames(dest)).toEqual(want);
      if ((man.base?.blobs.length ?? 0) > 0) {
        const empty = path.join(createTempDir('vol-base-empty'), 'oci');
        const r = await ferry(['load', v, '--to', `oci:${empty}`]);
        expect(r.code).toBe(1);
        expect(r.stderr).toContain('lacks 1 blob this differential bundle relies on; nothing was loaded');
        expect(layoutNames(empty)).toEqual([]);
      }
    }
  }, 120_000);

  it('all volumes on top of the far side give the layout a full bundle of release 2 gives, in either order', async () => {
    const full2 = path.join(work, 'full2.ferry');
    ok(await ferry(['bundle', ...release2(), '-o', full2, '--store', store]));
    const viaFull = path.join(createTempDir('vol-base-full'), 'oci');
    cpSync(farLayout, viaFull, { recursive: true });
    ok(await ferry(['load', full2, '--to', `oci:${viaFull}`]));
    for (const order of [volumes, [...volumes].reverse()]) {
      const dest = path.join(createTempDir('vol-base-all'), 'oci');
      cpSync(farLayout, dest, { recursive: true });
      ok(await ferry(['load', ...order, '--to', `oci:${dest}`]));
      expect(layoutNames(dest)).toEqual(layoutNames(viaFull));
      expect(layoutBlobs(dest)).toEqual(layoutBlobs(viaFull));
    }
    expect(layoutNames(viaFull)).toContain(`${refs.app2}@${pushed.app2!.digest}`);
    expect(layoutNames(viaFull)).toContain(`${refs.db2}@${pushed.db2!.digest}`);
  }, 120_000);

  it('nothing new at all: exit 0 and no file', async () => {
    const upToDate = path.join(createTempDir('vol-base-none'), 'oci');
    cpSync(farLayout, upToDate, { recursive: true });
    ok(await ferry(['load', ...volumes, '--to', `oci:${upToDate}`]));
    const inv = path.join(work, 'uptodate.inventory.json');
    ok(await ferry(['inventory', `oci:${upToDate}`, '-o', inv]));
    const r = await ferry([
      'bundle',
      ...release2(),
      '--base',
      inv,
      '-o',
      path.join(work, 'none.ferry'),
      '--store',
      store,
      '--volume-size',
      String(VOLUME),
    ]);
    ok(r);
    expect(r.stdout).toContain('nothing to carry; no volume written');
    expect(readdirSync(work).filter((n) => n.startsWith('none'))).toEqual([]);
  }, 120_000);
});

describe('ferry bundle --volume-size --allow-spanning with --base', () => {
  let volumes: string[];
  beforeAll(async () => {
    const r = await ferry([
      'bundle',
      refs.big2!,
      refs.db2!,
      '--base',
      inventory,
      '-o',
      path.join(work, 'spanupd.ferry'),
      '--store',
      store,
      '--volume-size',
      String(VOLUME),
      '--allow-spanning',
    ]);
    ok(r);
    volumes = readdirSync(work)
      .filter((n) => /^spanupd\.\d{3}\.ferry$/.test(n))
      .sort()
      .map((n) => path.join(work, n));
  }, 120_000);

  it('the span carries only the new layers, one per volume, and every span volume relies on the base layer', async () => {
    const big = pushed.big2!;
    const carriers = new Map<string, number>();
    let span: number[] | undefined;
    for (const v of volumes) {
      expect(statSync(v).size).toBeLessThanOrEqual(VOLUME);
      const man = manOf(await readMembers(v));
      expect(man.base?.kind).toBe('inventory');
      const carried = new Set(man.members.flatMap((m) => (m.digest ? [m.digest] : [])));
      expect(carried.has(big.layers[0]!), `${v} carries the base layer`).toBe(false);
      for (const l of big.layers.slice(1)) if (carried.has(l)) carriers.set(l, man.volume!.number);
      const mine = spanOf(man);
      if (mine) {
        expect(mine.ref).toBe(refs.big2);
        span ??= mine.volumes;
        expect(mine.volumes).toEqual(span);
        expect(man.base?.blobs.map((b) => b.digest)).toEqual([big.layers[0]]);
      }
      ok(await ferry(['verify', v]));
    }
    // S1 and S2 each in one volume of the span, nothing carried twice; BASE in none.
    expect(span).toHaveLength(2);
    expect([...carriers.values()].sort()).toEqual(span);
  });

  it('on top of the far side all volumes load, in either order; a span volume alone, or all of them where the base is missing, load nothing of it', async () => {
    for (const order of [volumes, [...volumes].reverse()]) {
      const dest = path.join(createTempDir('vol-base-span'), 'oci');
      cpSync(farLayout, dest, { recursive: true });
      ok(await ferry(['load', ...order, '--to', `oci:${dest}`]));
      expect(layoutNames(dest)).toEqual(
        [...layoutNames(farLayout), `${refs.big2}@${pushed.big2!.digest}`, `${refs.db2}@${pushed.db2!.digest}`].sort(),
      );
    }
    const spanVolume: string[] = [];
    for (const v of volumes) if (spanOf(manOf(await readMembers(v)))) spanVolume.push(v);
    const alone = path.join(createTempDir('vol-base-span-alone'), 'oci');
    cpSync(farLayout, alone, { recursive: true });
    const one = await ferry(['load', spanVolume[0]!, '--to', `oci:${alone}`]);
    expect(one.code, one.stderr).toBe(1);
    expect(one.stderr).toContain('loads only with all of them');
    expect(layoutNames(alone)).toEqual(layoutNames(farLayout));
    const empty = path.join(createTempDir('vol-base-span-empty'), 'oci');
    const r = await ferry(['load', ...volumes, '--to', `oci:${empty}`]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain('lacks 1 blob this differential bundle relies on; nothing was loaded');
    expect(layoutNames(empty)).not.toContain(`${refs.big2}@${pushed.big2!.digest}`);
  }, 120_000);
});
