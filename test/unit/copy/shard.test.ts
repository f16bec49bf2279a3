import { describe, expect, it } from 'vitest';
import { parseShard, partitionImages, shardNames, shardPlan, type ShardInput } from '../../../src/copy/shard.js';
import { UsageError } from '../../../src/util/errors.js';

const d = (s: string): string => `sha256:${s.padEnd(64, '0')}`;

function image(name: string, layers: Array<[string, number]>, root = name.length.toString(16)): ShardInput {
  return {
    name,
    root: { digest: d(`f${root}`) },
    blobs: layers.map(([id, size]) => ({ digest: d(id), size })),
    manifests: [{ digest: d(`e${root}`), bytes: { length: 0 } }],
  };
}

/** A seeded shuffle (xorshift), so a failure reproduces. */
function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const out = [...xs];
  let s = seed || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    const j = Math.abs(s) % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** 4 families of 3 images; each family shares a family layer; everyone shares a base. */
function families(): ShardInput[] {
  const sizes = [900, 700, 500, 300];
  const out: ShardInput[] = [];
  ['a', 'b', 'c', 'd'].forEach((f, fi) => {
    for (let k = 0; k < 3; k++) {
      out.push(
        image(
          `reg.example/${f}/app${k}:1`,
          [
            ['bbbb', 200],
            [`${fi + 1}aa`, sizes[fi]!],
            [`${fi + 1}${k + 1}c`, 10 * (k + 1) * (fi + 1)],
          ],
          `${fi}${k}`,
        ),
      );
    }
  });
  return out;
}

function assignment(images: readonly ShardInput[], n: number): Array<[string, number]> {
  const p = partitionImages(images, n);
  return [...p.shardOf.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

describe('parseShard', () => {
  it('takes K/N with 1 ≤ K ≤ N ≤ 1000', () => {
    expect(parseShard('1/1')).toEqual({ index: 1, count: 1 });
    expect(parseShard('3/7')).toEqual({ index: 3, count: 7 });
    expect(parseShard('1000/1000')).toEqual({ index: 1000, count: 1000 });
  });
  it.each(['0/3', '4/3', '1/0', '1/1001', '1', '1/', '/3', 'a/b', '1/3/4', '-1/3', '1.5/3', ' '])('rejects %j as a usage error', (t) => {
    expect(() => parseShard(t)).toThrow(UsageError);
    try {
      parseShard(t);
    } catch (err) {
      expect((err as UsageError).exitCode).toBe(2);
    }
  });
});

describe('partitionImages', () => {
  it('is the same for shuffled input (order-free, machine-free)', () => {
    const imgs = families();
    const want = assignment(imgs, 3);
    for (let seed = 1; seed < 50; seed++) expect(assignment(shuffled(imgs, seed), 3)).toEqual(want);
  });

  it('covers every image exactly once, for every N', () => {
    const imgs = families();
    for (let n = 1; n <= 15; n++) {
      const seen = new Map<string, number>();
      for (let k = 1; k <= n; k++) for (const name of shardNames(imgs, { index: k, count: n })) seen.set(name, (seen.get(name) ?? 0) + 1);
      expect([...seen.keys()].sort()).toEqual(imgs.map((i) => i.name).sort());
      expect([...seen.values()].every((c) => c === 1)).toBe(true);
    }
  });

  it('keeps families together but ignores the base layer every image shares', () => {
    // N = 2: the share (1600 bytes) holds any one family (at most 1160), never two joined by the base.
    const p = partitionImages(families(), 2);
    expect(p.totalBytes).toBe(3200);
    for (const f of ['a', 'b', 'c', 'd']) {
      const shards = new Set([0, 1, 2].map((k) => p.shardOf.get(`reg.example/${f}/app${k}:1`)));
      expect(shards.size).toBe(1);
    }
    // Four family groups, not one group of everything.
    expect(p.groups.map((g) => g.bytes)).toEqual([1160, 1020, 880, 740]);
    // Largest first: a→1, b→2, c→2 (1020 < 1160), d→1. The base is carried by both shards.
    expect(p.shardBytes).toEqual([1160 + 740 - 200, 1020 + 880 - 200]);
  });

  it('splits a family larger than the per-shard share (a stated limit, not a bug)', () => {
    const p = partitionImages(families(), 3);
    expect(new Set([0, 1, 2].map((k) => p.shardOf.get(`reg.example/a/app${k}:1`))).size).toBeGreaterThan(1);
  });

  it('balances: no shard exceeds packedBytes/N + the largest group', () => {
    const imgs = families();
    for (let n = 1; n <= 12; n++) {
      const p = partitionImages(imgs, n);
      for (const b of p.shardBytes) expect(b).toBeLessThanOrEqual(p.packedBytes / n + p.largestGroup);
      expect(p.shardBytes.length).toBe(n);
    }
  });

  it('balances many random images within the bound', () => {
    let s = 7;
    const rnd = (m: number): number => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return s % m;
    };
    const imgs: ShardInput[] = [];
    for (let i = 0; i < 200; i++) {
      const layers: Array<[string, number]> = [['base', 5000]];
      for (let j = 0; j < 3; j++) {
        const id = `${rnd(120).toString(16)}1`;
        if (!layers.some(([l]) => l === id)) layers.push([id, 1000 + (parseInt(id, 16) % 97) * 100]);
      }
      imgs.push(image(`r/img${i}`, layers, `${i.toString(16)}9`));
    }
    for (const n of [2, 3, 5, 8]) {
      const p = partitionImages(imgs, n);
      expect(p.groups.length).toBeGreaterThan(1);
      for (const b of p.shardBytes) expect(b).toBeLessThanOrEqual(p.packedBytes / n + p.largestGroup);
      expect(p.shardOf.size).toBe(200);
      expect(assignment(shuffled(imgs, n), n)).toEqual(assignment(imgs, n));
    }
  });

  it('handles thousands of images and N = 1000 quickly, covering exactly', () => {
    const imgs: ShardInput[] = [];
    for (let i = 0; i < 5000; i++) {
      imgs.push(
        image(
          `r/x${i}`,
          [
            ['base', 100],
            [`${(i % 700).toString(16)}7`, 500 + (i % 13)],
            [`${i.toString(16)}8`, 50 + (i % 31)],
          ],
          `${i.toString(16)}6`,
        ),
      );
    }
    const started = Date.now();
    const p = partitionImages(imgs, 1000);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(p.shardOf.size).toBe(5000);
    expect(p.shardBytes.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(p.totalBytes);
    for (const b of p.shardBytes) expect(b).toBeLessThanOrEqual(p.packedBytes / 1000 + p.largestGroup);
  });

  it('packs largest group first onto the least-loaded shard, ties by index', () => {
    const imgs = [
      image('a', [['1', 100]], '1'),
      image('b', [['2', 300]], '2'),
      image('c', [['3', 200]], '3'),
      image('d', [['4', 100]], '4'),
    ];
    const p = partitionImages(imgs, 2);
    expect(Object.fromEntries(p.shardOf)).toEqual({ b: 1, c: 2, a: 2, d: 1 });
    expect(p.shardBytes).toEqual([400, 300]);
  });

  it('orders names by bytes, not locale (ties resolved the same everywhere)', () => {
    // Equal sizes: the tie goes by name bytes ('B' < 'a' in bytes, not in most locales).
    const imgs = [image('a', [['1', 100]], '1'), image('B', [['2', 100]], '2')];
    expect(Object.fromEntries(partitionImages(imgs, 2).shardOf)).toEqual({ B: 1, a: 2 });
  });

  it('gives empty shards when N exceeds the groups', () => {
    const imgs = [image('a', [['1', 100]], '1')];
    const p = partitionImages(imgs, 4);
    expect(p.shardBytes).toEqual([100, 0, 0, 0]);
    expect(shardNames(imgs, { index: 2, count: 4 }).size).toBe(0);
  });

  it('rejects one name planned twice', () => {
    expect(() => partitionImages([image('a', [['1', 1]], '1'), image('a', [['2', 1]], '2')], 2)).toThrow(UsageError);
  });
});

describe('shardPlan', () => {
  it('keeps the shard’s images, the blobs they need, and failures only in shard 1', () => {
    const imgs = [
      image(
        'a',
        [
          ['1', 100],
          ['9', 5],
        ],
        '1',
      ),
      image(
        'b',
        [
          ['2', 300],
          ['9', 5],
        ],
        '2',
      ),
    ];
    const plan = {
      images: imgs,
      blobs: [
        { desc: d('1'), images: ['a'] },
        { desc: d('2'), images: ['b'] },
        { desc: d('9'), images: ['a', 'b'] },
      ],
      failures: [{ name: 'x' }],
    };
    // '9' is shared by both, but joining would exceed the share (410/2): a and b are apart.
    const one = shardPlan(plan, { index: 1, count: 2 });
    const two = shardPlan(plan, { index: 2, count: 2 });
    expect(one.images.map((i) => i.name)).toEqual(['b']);
    expect(one.blobs).toEqual([
      { desc: d('2'), images: ['b'] },
      { desc: d('9'), images: ['b'] },
    ]);
    expect(one.failures).toEqual([{ name: 'x' }]);
    expect(two.images.map((i) => i.name)).toEqual(['a']);
    expect(two.blobs.map((b) => b.desc)).toEqual([d('1'), d('9')]);
    expect(two.failures).toEqual([]);
  });
});
