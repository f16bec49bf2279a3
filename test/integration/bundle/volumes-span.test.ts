/**
 * --allow-spanning end to end: an image larger than a volume spreads its layers over a run of
 * consecutive volumes. Each span volume is a bundle that verifies alone (listing what it
 * expects from the others) and inspects as part of the span; loaded alone it fails naming the
 * volume files it needs, and nothing is written; loaded with the others (in any order) the
 * image arrives with its digest, and non-spanning volumes still load one by one.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../../src/transports/registry/client.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';
import { ferry } from '../../helpers/cli.js';
import { layoutNames, ok } from '../../helpers/layout.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { pushLayers } from '../../helpers/tagged-registry.js';
import { manOf, readMembers, setMan, tarOf } from './craft.js';
import { serving } from '../../helpers/serve.js';

afterAll(cleanupHarness);

const KiB = 1024;
const MiB = 1024 * KiB;
/** Room for one 1.5 MB layer per volume (3 MiB less the margin and head). */
const VOLUME = 3 * MiB;
const LAYERS = [0, 1, 2, 3].map(() => randomBytes(1536 * KiB));
const SMALL = randomBytes(200 * KiB);

let src: RunningRegistry;
let client: RegistryClient;
let work: string;
let store: string;
let keys: { key: string; pub: string };
let big: Awaited<ReturnType<typeof pushLayers>>;
let small: Awaited<ReturnType<typeof pushLayers>>;
let bigRef: string;
let smallRef: string;
let volumes: string[];
let bundled: { stdout: string };

function layoutBlobCount(dir: string): number {
  const blobs = path.join(dir, 'blobs', 'sha256');
  return existsSync(blobs) ? readdirSync(blobs).length : 0;
}

beforeAll(async () => {
  src = await startRegistry();
  client = new RegistryClient(src.host);
  big = await pushLayers(client, 'span/big', '1', LAYERS);
  small = await pushLayers(client, 'span/small', '1', [SMALL]);
  bigRef = `${src.host}/span/big:1`;
  smallRef = `${src.host}/span/small:1`;
  work = createTempDir('vol-span');
  store = path.join(work, 'store');
  keys = makeKeyPair(work, 'span', 'ed25519');
  const r = await ferry([
    'bundle',
    bigRef,
    smallRef,
    '-o',
    path.join(work, 's.ferry'),
    '--store',
    store,
    '--volume-size',
    String(VOLUME),
    '--allow-spanning',
    '--sign-key',
    keys.key,
  ]);
  ok(r);
  bundled = r;
  volumes = readdirSync(work)
    .filter((n) => /^s\.\d{3}\.ferry$/.test(n))
    .sort()
    .map((n) => path.join(work, n));
}, 180_000);

afterAll(async () => {
  await client?.close();
});

describe('ferry bundle --volume-size --allow-spanning', () => {
  it('without the flag the image is refused (exit 2) with a hint naming --allow-spanning', async () => {
    const r = await ferry(['bundle', bigRef, '-o', path.join(work, 'no.ferry'), '--store', store, '--volume-size', String(VOLUME)]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`image ${bigRef} needs about`);
    expect(r.stderr).toContain('--allow-spanning');
    expect(readdirSync(work).filter((n) => n.startsWith('no.'))).toEqual([]);
  });

  it('spreads the image over volumes 2-5, every layer carried exactly once, manifest and config in each, each within SIZE', async () => {
    expect(volumes.map((v) => path.basename(v))).toEqual(['s.001.ferry', 's.002.ferry', 's.003.ferry', 's.004.ferry', 's.005.ferry']);
    expect(bundled.stdout).toContain(`image ${bigRef} spans volumes 2–5: load them together`);
    const carriedBy = new Map<string, number[]>();
    for (const [n, v] of volumes.entries()) {
      expect(statSync(v).size).toBeLessThanOrEqual(VOLUME);
      const man = manOf(await readMembers(v));
      expect(man.volume?.spans).toEqual([{ ref: bigRef, digest: big.digest, volumes: [2, 3, 4, 5] }]);
      const carried = new Set(man.members.flatMap((m) => (m.digest ? [m.digest] : [])));
      if (n === 0) {
        expect(man.images.map((i) => i.ref)).toEqual([smallRef]);
        expect(man.volume?.spanBlobs).toBeUndefined();
        continue;
      }
      expect(man.images.map((i) => [i.ref, i.digest])).toEqual([[bigRef, big.digest]]);
      expect(carried.has(big.digest)).toBe(true);
      expect(carried.has(big.config)).toBe(true);
      for (const l of big.layers) if (carried.has(l)) carriedBy.set(l, [...(carriedBy.get(l) ?? []), n + 1]);
      // What it lacks, it says where it is.
      const away = man.volume?.spanBlobs ?? [];
      expect(away.map((b) => b.digest).sort()).toEqual(big.layers.filter((l) => !carried.has(l)).sort());
      for (const b of away) expect(b.size).toBe(1536 * KiB);
    }
    expect([...carriedBy.keys()].sort()).toEqual([...big.layers].sort());
    for (const [l, where] of carriedBy) expect(where, l).toHaveLength(1);
    // The overhead reported is exact: every copy beyond the first, counted from the members
    // (only the manifest and the config travel more than once).
    const seen = new Set<string>();
    let extra = 0;
    for (const v of volumes) {
      for (const m of manOf(await readMembers(v)).members) {
        if (!m.digest) continue;
        if (seen.has(m.digest)) extra += m.size;
        seen.add(m.digest);
      }
    }
    expect(extra).toBeGreaterThan(0);
    expect(bundled.stdout).toContain(`, ${extra} bytes carried more than once`);
    for (const [n, v] of volumes.entries()) {
      const man = manOf(await readMembers(v));
      const away = man.volume?.spanBlobs ?? [];
      for (const b of away) expect(carriedBy.get(b.digest)).toEqual([b.volume]);
      if (n > 0) expect(away).toHaveLength(3);
    }
  });

  it('each span volume verifies alone (signature too), listing what it expects from the others; inspect names the span', async () => {
    for (const [n, v] of volumes.entries()) {
      const r = await ferry(['verify', v, '--key', keys.pub, '--require-signature']);
      ok(r);
      if (n > 0) {
        expect(r.stdout).toContain(`volume ${n + 1} of a span of set`);
        expect(r.stdout).toContain('expects from the other volumes 3 layers');
      }
      const shown = await ferry(['inspect', v]);
      ok(shown);
      expect(shown.stdout).toContain(`image ${bigRef} spans volumes 2–5: load them together`);
      if (n > 0) expect(shown.stdout).toMatch(/this volume needs 3 layers \(.*\) from volumes [0-9, ]+/);
    }
  });

  it('one span volume alone fails (exit 1) naming the volume files it needs; nothing is written', async () => {
    const layout = path.join(createTempDir('span-alone'), 'oci');
    const r = await ferry(['load', volumes[2]!, '--to', `oci:${layout}`]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`image ${bigRef} spans volumes 2–5 of its set and loads only with all of them`);
    expect(r.stderr).toContain(`missing: ${volumes[1]}, ${volumes[3]}, ${volumes[4]}; nothing was loaded`);
    expect(layoutNames(layout)).toEqual([]);
    expect(layoutBlobCount(layout)).toBe(0);
    const json = await ferry(['load', volumes[2]!, '--to', `oci:${layout}`, '--json']);
    expect(json.code).toBe(1);
    expect(`${json.stdout}${json.stderr}`).toContain('VOLUME_SPAN_INCOMPLETE');
  });

  it('an incomplete span among other volumes: the others load, the span is refused naming what is missing', async () => {
    const layout = path.join(createTempDir('span-partial'), 'oci');
    const r = await ferry(['load', volumes[0]!, volumes[1]!, volumes[4]!, '--to', `oci:${layout}`]);
    expect(r.code, r.stderr).toBe(1);
    expect(`${r.stdout}${r.stderr}`).toContain(`missing: ${volumes[2]}, ${volumes[3]}`);
    expect(layoutNames(layout)).toEqual([`${smallRef}@${small.digest}`]);
    // Nothing of the span: only the small image's manifest, config and layer.
    expect(layoutBlobCount(layout)).toBe(3);
  });

  it('all volumes load the whole set, forward and reverse, with the image digests', async () => {
    const want = [`${bigRef}@${big.digest}`, `${smallRef}@${small.digest}`].sort();
    for (const order of [volumes, [...volumes].reverse(), [volumes[3]!, volumes[0]!, volumes[4]!, volumes[1]!, volumes[2]!]]) {
      const layout = path.join(createTempDir('span-all'), 'oci');
      const r = await ferry(['load', ...order, '--to', `oci:${layout}`, '--key', keys.pub, '--require-signature']);
      ok(r);
      expect(r.stdout).toContain('Loaded 2 of 2 images');
      expect(layoutNames(layout)).toEqual(want);
      // Both configs are the same bytes (the same tag): the distinct blobs of the two images.
      expect(layoutBlobCount(layout)).toBe(
        new Set([big.digest, big.config, ...big.layers, small.digest, small.config, ...small.layers]).size,
      );
    }
    // A registry too: the spanning image's manifest is there under its digest.
    const far = await startRegistry();
    ok(await ferry(['load', ...[...volumes].reverse(), '--to', `docker://${far.host}/m`]));
    const res = await fetch(`${far.url}/v2/m/span/big/manifests/1`, {
      method: 'HEAD',
      headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    expect(res.headers.get('docker-content-digest')).toBe(big.digest);
  }, 120_000);

  it('a damaged span volume fails the span only (exit 3): the image is not named, the other volume loads', async () => {
    const dir = createTempDir('span-tamper');
    const copies = volumes.map((v) => path.join(dir, path.basename(v)));
    for (const [n, v] of volumes.entries()) copyFileSync(v, copies[n]!);
    const victim = copies[3]!;
    const bytes = readFileSync(victim);
    const layer = LAYERS.find((l) => bytes.includes(l.subarray(0, 64)))!;
    const at = bytes.indexOf(layer.subarray(0, 64));
    bytes[at + 4096] = bytes[at + 4096]! ^ 0xff;
    writeFileSync(victim, bytes);
    expect((await ferry(['verify', victim])).code).toBe(3);
    const layout = path.join(dir, 'oci');
    const r = await ferry(['load', ...copies, '--to', `oci:${layout}`]);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(3);
    expect(layoutNames(layout)).toEqual([`${smallRef}@${small.digest}`]);
  }, 120_000);

  it('a span volume that expects a layer in a volume that does not carry it is refused (exit 3, VOLUME_SPAN_INVALID) even signed; the rest loads', async () => {
    // A sender bug or a hostile volume, re-signed with the set's own key: every volume passes
    // its own checks, only the cross-volume check can see that the span does not add up.
    const dir = createTempDir('span-forged');
    const copies = volumes.map((v) => path.join(dir, path.basename(v)));
    for (const [n, v] of volumes.entries()) copyFileSync(v, copies[n]!);
    const forged = copies[2]!;
    const ms = await readMembers(forged);
    const man = manOf(ms);
    const expected = man.volume!.spanBlobs!;
    expect(expected.length).toBeGreaterThan(0);
    // Volume 3 says a layer is in another span volume than the one that carries it.
    const own = man.volume!.number;
    const elsewhere = man
      .volume!.spans!.find((sp) => sp.volumes.includes(own))!
      .volumes.find((n) => n !== own && n !== expected[0]!.volume)!;
    expected[0]!.volume = elsewhere;
    writeFileSync(forged, tarOf(setMan(ms, man, keys.key)));
    const alone = await ferry(['verify', forged, '--key', keys.pub]);
    expect(alone.code, alone.stderr).toBe(0);
    const layout = path.join(dir, 'oci');
    const r = await ferry(['load', ...copies, '--to', `oci:${layout}`, '--key', keys.pub, '--json']);
    expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(3);
    expect(`${r.stdout}${r.stderr}`).toContain('VOLUME_SPAN_INVALID');
    expect(`${r.stdout}${r.stderr}`).toContain(
      `expects layer ${expected[0]!.digest} (${expected[0]!.size} bytes) in volume ${expected[0]!.volume}`,
    );
    // The small image's volume loads; nothing of the span: its three blobs only.
    expect(layoutNames(layout)).toEqual([`${smallRef}@${small.digest}`]);
    expect(layoutBlobCount(layout)).toBe(3);
  }, 120_000);

  it('ferry serve of every volume serves the spanning image whole; one span volume alone says what it lacks', async () => {
    const repo = 'span/big:1';
    await serving([...volumes].reverse(), async (host) => {
      const dest = path.join(createTempDir('span-serve'), 'oci');
      const r = await runSkopeo(['copy', '--src-tls-verify=false', '--preserve-digests', `docker://${host}/${repo}`, `oci:${dest}:big`]);
      expect(r.code, r.stderr).toBe(0);
      expect(layoutNames(dest)).toEqual([`big@${big.digest}`]);
    });
    // Volume 3 alone: the manifest is there, the layers of volumes 2, 4 and 5 are not.
    const alone = await serving([volumes[2]!], async (host) => {
      const dest = path.join(createTempDir('span-serve-alone'), 'oci');
      const r = await runSkopeo(['copy', '--src-tls-verify=false', `docker://${host}/${repo}`, `oci:${dest}:big`], {
        allowFailure: true,
      });
      expect(r.code).not.toBe(0);
      expect(layoutNames(dest)).toEqual([]);
    });
    expect(alone).toContain(`${bigRef} spans volumes 2–5; its layers in volumes 2, 4, 5 are served only when those volumes are given too`);
  }, 120_000);
});
