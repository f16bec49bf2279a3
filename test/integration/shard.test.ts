/**
 * `--shard K/N` end to end against a real docker-registry: 12 images in 4 families (each family
 * shares a layer; every image shares a base), pulled by 3 separate `ferry pull --shard k/3`
 * processes and once unsharded. The union is the unsharded store, no image is in two shards,
 * families stay together, and every shard stays within the documented balance bound. Also
 * bundle --shard (each shard bundle verifies and holds its shard) and mirror --shard.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../src/transports/registry/client.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { ferry } from '../helpers/cli.js';
import { pushLayers } from '../helpers/tagged-registry.js';

afterAll(cleanupHarness);

/** Family layer sizes (KiB): each family alone is under a third of the whole, any two are over. */
const FAMILIES: Array<[string, number]> = [
  ['fam-a', 24],
  ['fam-b', 22],
  ['fam-c', 20],
  ['fam-d', 18],
];
const KIB = 1024;

let reg: RunningRegistry;
let dst: RunningRegistry;
let client: RegistryClient;
const refs: string[] = [];
/** name → manifest digest. */
const digests = new Map<string, string>();
const familyOf = new Map<string, string>();
/** Distinct bytes of each family (blobs and manifests, the base counted in each family). */
const familyBytes = new Map<string, number>();

function blob(label: string, size: number): Buffer {
  // Deterministic, distinct content per label.
  const out = Buffer.alloc(size);
  let seed = createHash('sha256').update(label).digest();
  for (let o = 0; o < size; o += seed.length) {
    seed.copy(out, o);
    seed = createHash('sha256').update(seed).digest();
  }
  return out;
}

beforeAll(async () => {
  [reg, dst] = await Promise.all([startRegistry(), startRegistry()]);
  client = new RegistryClient(reg.host);
  const base = blob('base', 4 * KIB);
  for (const [fam, kib] of FAMILIES) {
    const shared = blob(`${fam}-shared`, kib * KIB);
    const content = new Map<string, number>();
    for (let k = 0; k < 3; k++) {
      const own = blob(`${fam}-${k}`, (k + 1) * KIB);
      // A tag of its own per image: pushLayers labels the config with it, so configs differ.
      const tag = `1-${fam}-${k}`;
      const pushed = await pushLayers(client, `${fam}/app${k}`, tag, [base, shared, own]);
      const name = `${reg.host}/${fam}/app${k}:${tag}`;
      refs.push(name);
      digests.set(name, pushed.digest);
      familyOf.set(name, fam);
      // The manifest and config (distinct per image) are what pushLayers' total adds to the layers.
      content.set(pushed.digest, pushed.bytes - base.length - shared.length - own.length);
      content.set(pushed.layers[2]!, own.length);
    }
    content.set('base', base.length);
    content.set('shared', shared.length);
    familyBytes.set(
      fam,
      [...content.values()].reduce((a, b) => a + b, 0),
    );
  }
}, 120_000);

afterAll(async () => {
  await client?.close();
  await Promise.all([reg?.stop(), dst?.stop()]);
});

function storeImages(store: string): Map<string, string> {
  const index = JSON.parse(readFileSync(path.join(store, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return new Map(
    index.manifests.map((m) => [
      m.annotations?.['io.containerd.image.name'] ?? m.annotations?.['org.opencontainers.image.ref.name'] ?? '',
      m.digest,
    ]),
  );
}

function blobBytes(store: string): number {
  const dir = path.join(store, 'blobs', 'sha256');
  return readdirSync(dir).reduce((n, f) => n + statSync(path.join(dir, f)).size, 0);
}

/** The balance bound the docs state: packed bytes / N + the largest group. */
function bound(n: number): number {
  const sizes = [...familyBytes.values()];
  return sizes.reduce((a, b) => a + b, 0) / n + Math.max(...sizes);
}

const N = 3;
/** Largest family first onto the least-loaded shard: a→1, b→2, c→3, d→3 (c is the lightest). */
const EXPECTED: Record<string, number> = { 'fam-a': 1, 'fam-b': 2, 'fam-c': 3, 'fam-d': 3 };

describe('ferry pull --shard', () => {
  it('N processes together pull exactly what one unsharded pull does, without overlap, families together, balanced', async () => {
    const dir = createTempDir('shard-pull');
    const stores = [1, 2, 3].map((k) => path.join(dir, `s${k}`));
    const whole = path.join(dir, 'whole');
    const runs = await Promise.all([
      ...stores.map((s, i) => ferry(['pull', ...refs, '--store', s, '--shard', `${i + 1}/${N}`])),
      ferry(['pull', ...refs, '--store', whole]),
    ]);
    for (const r of runs) expect(r.code, r.stderr).toBe(0);

    const wholeImages = storeImages(whole);
    expect(wholeImages.size).toBe(12);
    const union = new Map<string, string>();
    for (const [k, s] of stores.entries()) {
      for (const [name, digest] of storeImages(s)) {
        expect(union.has(name), `${name} in two shards`).toBe(false);
        union.set(name, digest);
        expect(digest).toBe(digests.get(name));
        expect(EXPECTED[familyOf.get(name)!], name).toBe(k + 1);
      }
    }
    expect([...union.entries()].sort()).toEqual([...wholeImages.entries()].sort());
    for (const s of stores) expect(blobBytes(s)).toBeLessThanOrEqual(bound(N));
    // The unsharded store holds the base once; the shards hold it once each.
    const shared = 4 * KIB;
    expect(stores.reduce((n, s) => n + blobBytes(s), 0)).toBe(blobBytes(whole) + (N - 1) * shared);
  }, 120_000);

  it('rejects a malformed --shard with exit 2 before contacting anything', async () => {
    for (const bad of ['0/3', '4/3', '1/1001', 'x']) {
      const r = await ferry(['pull', refs[0]!, '--store', createTempDir('shard-bad'), '--shard', bad]);
      expect(r.code, bad).toBe(2);
      expect(r.stderr).toContain('--shard');
    }
  });
});

describe('ferry pull --shard with a lock and with failures', () => {
  it('shards a lock the same way in every process', async () => {
    const dir = createTempDir('shard-lock');
    const lock = path.join(dir, 'site.lock.json');
    const planned = await ferry(['plan', ...refs, '--store', path.join(dir, 'none'), '-o', lock]);
    expect(planned.code, planned.stderr).toBe(0);
    const runs = await Promise.all(
      [1, 2, 3].map((k) => ferry(['pull', '--lock', lock, '--store', path.join(dir, `s${k}`), '--shard', `${k}/${N}`])),
    );
    const union: string[] = [];
    for (const [i, r] of runs.entries()) {
      expect(r.code, r.stderr).toBe(0);
      for (const [name, digest] of storeImages(path.join(dir, `s${i + 1}`))) {
        expect(EXPECTED[familyOf.get(name)!], name).toBe(i + 1);
        expect(digest).toBe(digests.get(name));
        union.push(name);
      }
    }
    expect(union.sort()).toEqual([...refs].sort());
  }, 120_000);

  it('reports an image that did not resolve in shard 1 only', async () => {
    const dir = createTempDir('shard-fail');
    const missing = `${reg.host}/nowhere/app:1`;
    const runs = await Promise.all(
      [1, 2, 3].map((k) => ferry(['pull', ...refs, missing, '--store', path.join(dir, `s${k}`), '--shard', `${k}/${N}`, '--json'])),
    );
    const failed = runs.map((r) => {
      const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { failures: Array<{ name: string }> };
      return report.failures.map((f) => f.name);
    });
    expect(failed).toEqual([[missing], [], []]);
    expect(runs.map((r) => r.code)).toEqual([1, 0, 0]);
  }, 120_000);
});

describe('ferry bundle --shard and ferry plan --shard', () => {
  it('each shard bundle verifies and holds exactly its shard', async () => {
    const dir = createTempDir('shard-bundle');
    const runs = await Promise.all(
      [1, 2, 3].map((k) =>
        ferry(['bundle', ...refs, '--store', path.join(dir, `s${k}`), '--shard', `${k}/${N}`, '-o', path.join(dir, `b${k}.ferry`)]),
      ),
    );
    for (const r of runs) expect(r.code, r.stderr).toBe(0);
    const seen: string[] = [];
    for (const k of [1, 2, 3]) {
      const file = path.join(dir, `b${k}.ferry`);
      const v = await ferry(['verify', file]);
      expect(v.code, v.stderr).toBe(0);
      const ins = await ferry(['inspect', file, '--json']);
      expect(ins.code, ins.stderr).toBe(0);
      const report = JSON.parse(ins.stdout.trim().split('\n').at(-1)!) as { images: Array<{ ref: string }> };
      const names = report.images.map((i) => i.ref);
      for (const n of names) expect(EXPECTED[familyOf.get(n)!], n).toBe(k);
      seen.push(...names);
    }
    expect(seen.sort()).toEqual([...refs].sort());
  }, 120_000);

  it('an empty shard (more shards than images) writes nothing and exits 0', async () => {
    const dir = createTempDir('shard-empty');
    const out = path.join(dir, 'b2.ferry');
    const r = await ferry(['bundle', refs[0]!, '--store', path.join(dir, 's'), '--shard', '2/2', '-o', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('shard 2/2 holds no images');
    expect(existsSync(out)).toBe(false);
  }, 60_000);

  it('plan --shard previews the same shard', async () => {
    const r = await ferry(['plan', ...refs, '--store', createTempDir('shard-plan'), '--shard', `3/${N}`, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { images: Array<{ name: string }>; shard: unknown };
    expect(report.shard).toEqual({ index: 3, count: 3 });
    expect(report.images.map((i) => i.name).sort()).toEqual(refs.filter((n) => EXPECTED[familyOf.get(n)!] === 3).sort());
  }, 60_000);
});

describe('ferry mirror --shard', () => {
  it('N mirror processes together send every image once', async () => {
    const runs = await Promise.all(
      [1, 2, 3].map((k) => ferry(['mirror', ...refs, '--to', `docker://${dst.host}/m`, '--shard', `${k}/${N}`, '--json'])),
    );
    const sent = new Map<string, number>();
    for (const [i, r] of runs.entries()) {
      expect(r.code, r.stderr).toBe(0);
      const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
        images: Array<{ name: string; status: string; destinationDigest: string }>;
      };
      for (const img of report.images) {
        expect(img.status).toBe('done');
        expect(sent.has(img.name), `${img.name} mirrored twice`).toBe(false);
        sent.set(img.name, i + 1);
        expect(img.destinationDigest).toBe(digests.get(img.name));
        expect(EXPECTED[familyOf.get(img.name)!]).toBe(i + 1);
      }
    }
    expect([...sent.keys()].sort()).toEqual([...refs].sort());
  }, 120_000);
});
