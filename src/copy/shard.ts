/**
 * `--shard K/N`: a deterministic partition of a copy plan's images across N independent runs
 * (one Kubernetes Indexed Job pod each). Pure and machine-independent: the same plan gives the
 * same partition everywhere, so pods that each plan the whole set agree on who carries what
 * without talking to each other.
 *
 * Determinism: images are ordered by name bytes (not locale compare), then root digest; every
 * later step iterates arrays in that order, never Map/Set insertion order of the input.
 *
 * Grouping: images that share a layer go to one shard (the layer is then fetched once, by one
 * pod). A layer shared so widely that joining on it would make a group larger than the per-shard
 * share (total / N) is ignored for grouping: a common base image under every image would
 * otherwise put everything into one shard. Such layers are carried by every shard that needs them.
 *
 * Packing: groups largest-first (ties: the group's first image in the order above) onto the
 * least-loaded shard (ties: lowest shard index). A group's bytes are its distinct blobs and
 * manifests. Bound (greedy list scheduling): no shard carries more than packedBytes / N + the
 * largest group's bytes, where packedBytes is the sum of the groups' bytes (the plan's distinct
 * bytes plus the widely shared layers counted once per group that needs them).
 */
import { UsageError } from '../util/errors.js';

export interface ShardSpec {
  /** 1-based. */
  index: number;
  count: number;
}

export const MAX_SHARDS = 1000;

/** Parses `K/N` (1 ≤ K ≤ N ≤ 1000). Usage errors (exit 2) otherwise. */
export function parseShard(text: string): ShardSpec {
  const m = /^([0-9]{1,4})\/([0-9]{1,4})$/.exec(text.trim());
  if (!m) throw new UsageError(`--shard takes K/N (e.g. 2/4), not ${JSON.stringify(text)}`);
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || count > MAX_SHARDS) throw new UsageError(`--shard ${text}: N must be between 1 and ${MAX_SHARDS}`);
  if (index < 1 || index > count) throw new UsageError(`--shard ${text}: K must be between 1 and N (shards are numbered from 1)`);
  return { index, count };
}

export interface ShardInput {
  name: string;
  root: { digest: string };
  blobs: ReadonlyArray<{ digest: string; size: number }>;
  manifests: ReadonlyArray<{ digest: string; bytes: { length: number } }>;
}

export interface ShardGroup {
  /** Image names, in the partition's order. */
  names: string[];
  /** Distinct blob and manifest bytes of the group. */
  bytes: number;
  shard: number;
}

export interface Partition {
  /** 1-based shard per image name. */
  shardOf: Map<string, number>;
  groups: ShardGroup[];
  /** Distinct bytes each shard carries (index 0 = shard 1). */
  shardBytes: number[];
  /** Distinct bytes of the whole plan. */
  totalBytes: number;
  /** Sum of the groups' bytes (≥ totalBytes: widely shared layers count once per group). */
  packedBytes: number;
  /** The largest group's bytes: no shard exceeds packedBytes / count + largestGroup. */
  largestGroup: number;
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function compareImages(a: ShardInput, b: ShardInput): number {
  return compareBytes(a.name, b.name) || compareBytes(a.root.digest, b.root.digest);
}

/** Distinct content of a set of images: digest → size. */
function contentOf(images: readonly ShardInput[]): Map<string, number> {
  const sizes = new Map<string, number>();
  for (const img of images) {
    for (const b of img.blobs) sizes.set(b.digest, b.size);
    for (const m of img.manifests) sizes.set(m.digest, m.bytes.length);
  }
  return sizes;
}

function sumSizes(sizes: Map<string, number>): number {
  let n = 0;
  for (const v of sizes.values()) n += v;
  return n;
}

export function partitionImages(input: readonly ShardInput[], count: number): Partition {
  if (!Number.isInteger(count) || count < 1 || count > MAX_SHARDS) throw new UsageError(`shard count must be 1..${MAX_SHARDS}`);
  const images = [...input].sort(compareImages);
  for (let i = 1; i < images.length; i++) {
    if (images[i]!.name === images[i - 1]!.name) throw new UsageError(`image ${JSON.stringify(images[i]!.name)} is planned twice`);
  }
  const totalBytes = sumSizes(contentOf(images));
  const share = totalBytes / count;

  // Union-find over image indexes (in sorted order), joined on shared blobs. Blobs are visited
  // by how many images use them, fewest first (ties: digest bytes), so narrowly shared layers
  // join before wide ones; a join that would exceed the share is skipped (that blob is "too
  // widely shared" to group on).
  const parent = images.map((_, i) => i);
  const members = images.map((_, i) => [i]);
  const groupContent = images.map((img) => contentOf([img]));
  const groupBytes = groupContent.map(sumSizes);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  const users = new Map<string, number[]>();
  images.forEach((img, i) => {
    for (const b of img.blobs) {
      const list = users.get(b.digest);
      if (!list) users.set(b.digest, [i]);
      else if (list[list.length - 1] !== i) list.push(i);
    }
  });
  const shared = [...users.entries()]
    .filter(([, list]) => list.length > 1)
    .sort((a, b) => a[1].length - b[1].length || compareBytes(a[0], b[0]));
  for (const [, list] of shared) {
    const roots = [...new Set(list.map(find))];
    if (roots.length < 2) continue;
    // The largest group absorbs the others (ties: lowest index), so a join costs the size of
    // the smaller groups, not of everything joined so far.
    roots.sort((a, b) => groupBytes[b]! - groupBytes[a]! || a - b);
    const [root, ...rest] = roots as [number, ...number[]];
    const into = groupContent[root]!;
    const extra = new Map<string, number>();
    for (const r of rest) for (const [d, size] of groupContent[r]!) if (!into.has(d)) extra.set(d, size);
    const bytes = groupBytes[root]! + sumSizes(extra);
    // With one shard everything is one shard anyway; otherwise keep groups within the share.
    if (count > 1 && bytes > share) continue;
    for (const [d, size] of extra) into.set(d, size);
    groupBytes[root] = bytes;
    for (const r of rest) {
      parent[r] = root;
      members[root]!.push(...members[r]!);
      members[r] = [];
      groupContent[r] = new Map();
    }
  }

  const groups: ShardGroup[] = [];
  const firsts: number[] = [];
  for (let i = 0; i < images.length; i++) {
    if (find(i) !== i) continue;
    const idx = [...members[i]!].sort((a, b) => a - b);
    groups.push({ names: idx.map((j) => images[j]!.name), bytes: groupBytes[i]!, shard: 0 });
    firsts.push(idx[0]!);
  }
  // Largest first; ties by the group's first image in the sorted order.
  const order = groups.map((g, i) => ({ g, first: firsts[i]! })).sort((a, b) => b.g.bytes - a.g.bytes || a.first - b.first);
  const load = new Array<number>(count).fill(0);
  const shardOf = new Map<string, number>();
  for (const { g } of order) {
    let best = 0;
    for (let s = 1; s < count; s++) if (load[s]! < load[best]!) best = s;
    load[best]! += g.bytes;
    g.shard = best + 1;
    for (const n of g.names) shardOf.set(n, best + 1);
  }
  // What each shard actually carries: distinct content of its images (at most its load, as
  // groups may still share the widely shared layers).
  const perShard = load.map(() => new Map<string, number>());
  for (const img of images) {
    const m = perShard[shardOf.get(img.name)! - 1]!;
    for (const b of img.blobs) m.set(b.digest, b.size);
    for (const x of img.manifests) m.set(x.digest, x.bytes.length);
  }
  const shardBytes = perShard.map(sumSizes);
  const largestGroup = groups.reduce((m, g) => Math.max(m, g.bytes), 0);
  const packedBytes = groups.reduce((n, g) => n + g.bytes, 0);
  return { shardOf, groups, shardBytes, totalBytes, packedBytes, largestGroup };
}

/** The images (by name) of shard `spec.index` of `spec.count`. */
export function shardNames(input: readonly ShardInput[], spec: ShardSpec): Set<string> {
  const p = partitionImages(input, spec.count);
  return new Set(input.filter((i) => p.shardOf.get(i.name) === spec.index).map((i) => i.name));
}

/**
 * The part of a whole plan that shard `spec` carries: its images, and only the blobs they need.
 * Failures of the whole plan (images that never resolved, so have no blobs to place) are
 * reported by shard 1 only, so the N runs together report each failure once.
 */
export function shardPlan<
  P extends {
    images: ShardInput[];
    blobs: Array<{ images: string[] }>;
    failures: unknown[];
  },
>(plan: P, spec: ShardSpec): P {
  const keep = shardNames(plan.images, spec);
  const blobs = plan.blobs.flatMap((b) => {
    const images = b.images.filter((n) => keep.has(n));
    return images.length > 0 ? [{ ...b, images }] : [];
  });
  return {
    ...plan,
    images: plan.images.filter((i) => keep.has(i.name)),
    blobs,
    failures: spec.index === 1 ? plan.failures : [],
  };
}
