/**
 * The volumes and shards section of `npm run bench` (alone with FERRY_BENCH_ONLY=volumes), issue 14:
 *
 * - Volume overhead: the bench corpus (scripts/corpus/generate.ts 'bench', ~410 MB, one 270 MB
 *   layer) bundled whole with `ferry bundle --from-store`, then as volume sets at two volume
 *   sizes. For each: how many volumes, the bytes carried more than once (as ferry reports it, and
 *   as measured from the volumes themselves: the sum of every volume's unique bytes minus the
 *   set's), every volume's file size against SIZE, and the time against the one-bundle write of
 *   the same store (the floor: the same bytes written once).
 * - Shards: N small images of the scale corpus (scripts/corpus/scale.ts) in a loopback
 *   docker-registry, `ferry bundle -f LIST` once, against `--shard 1/2` and `--shard 2/2` run at
 *   the same time (two processes, each with its own store, as two pods would). The shards'
 *   images together must be exactly the unsharded bundle's, with no image in both.
 */
import { cp, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { capture, mb, run, s, type Timed } from './bench-util.js';
import { generateCorpus } from './corpus/generate.js';
import { generateScaleImages } from './corpus/scale.js';
import { startRegistry } from '../test/harness/registry.js';

export interface VolumesBenchContext {
  cli: string;
  work: string;
  runs: number;
}

interface Inspected {
  images: Array<{ ref: string; digest: string }>;
  uniqueBytes: number;
  volume?: { number: number; spans?: Array<{ ref: string; volumes: number[] }> };
}

async function inspect(cli: string, file: string): Promise<Inspected> {
  const out = (await capture(process.execPath, [cli, 'inspect', file, '--json'])).toString().trim().split('\n').at(-1)!;
  return JSON.parse(out) as Inspected;
}

const best = (xs: number[]): number => Math.min(...xs);

/** How many images of the set span volumes (every volume lists the set's spans). */
async function spanCount(cli: string, volume: string): Promise<number> {
  return (await inspect(cli, volume)).volume?.spans?.length ?? 0;
}

/**
 * Volume sizes measured (decimal suffixes, as media are sold), always with --allow-spanning: the
 * largest corpus image is ~300 MB, so at 350M every image stays whole and at 300M the big one
 * spans volumes (no layer is ever split: the 273 MB one needs a volume to itself).
 */
const VOLUME_SIZES = (process.env.BENCH_VOLUME_SIZES ?? '350M,300M').split(',');

export async function benchVolumes(ctx: VolumesBenchContext): Promise<{ table: string; results: Record<string, unknown> }> {
  const dir = path.join(ctx.work, 'volumes');
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const problems: string[] = [];
  const ferry = (args: string[]): Promise<Timed> => run(process.execPath, [ctx.cli, ...args]);
  try {
    // ---- volume overhead on the bench corpus
    const corpusDir = path.join(ctx.work, 'corpus');
    const corpus = await generateCorpus(corpusDir, 'bench');
    // The corpus is an OCI layout: bundled from a copy (bundle writes its lease files into the
    // store; the cached corpus stays as generated).
    const store = path.join(dir, 'store');
    await cp(corpusDir, store, { recursive: true });
    const single = path.join(dir, 'single.ferry');
    const singleTimes: number[] = [];
    for (let i = 0; i < ctx.runs; i++) {
      await rm(single, { force: true });
      singleTimes.push((await ferry(['bundle', '--from-store', '--store', store, '-o', single, '--json'])).ms);
    }
    const singleSize = (await stat(single)).size;
    const whole = await inspect(ctx.cli, single);
    const volumeRows: string[] = [];
    const volumeResults: Array<Record<string, unknown>> = [];
    for (const size of VOLUME_SIZES) {
      const out = path.join(dir, `vol-${size}.ferry`);
      const times: number[] = [];
      let report: Record<string, unknown> | undefined;
      for (let i = 0; i < ctx.runs; i++) {
        const t = await ferry(['bundle', '--from-store', '--store', store, '-o', out, '--volume-size', size, '--allow-spanning', '--json']);
        times.push(t.ms);
        report = t.report;
      }
      const r = report as {
        volumeSize: number;
        uniqueBytes: number;
        duplicatedBytes: number;
        volumes: Array<{ output: string; fileSize: number }>;
      };
      let carried = 0;
      let files = 0;
      const seen = new Map<string, number>();
      for (const v of r.volumes) {
        const got = await inspect(ctx.cli, v.output);
        carried += got.uniqueBytes;
        const fileSize = (await stat(v.output)).size;
        files += fileSize;
        if (fileSize > r.volumeSize) problems.push(`${v.output}: ${fileSize} bytes > --volume-size ${r.volumeSize}`);
        // A spanning image is listed by every volume of its span: counted once, at its first.
        const spans = got.volume?.spans ?? [];
        for (const img of got.images) {
          const span = spans.find((sp) => sp.ref === img.ref);
          if (span && span.volumes[0] !== got.volume!.number) continue;
          seen.set(img.ref, (seen.get(img.ref) ?? 0) + 1);
        }
        await run(process.execPath, [ctx.cli, 'verify', v.output]);
      }
      const measured = carried - whole.uniqueBytes;
      if (measured !== r.duplicatedBytes) problems.push(`${size}: reported ${r.duplicatedBytes} duplicated bytes, measured ${measured}`);
      const wholeRefs = whole.images.map((i) => i.ref).sort();
      const volRefs = [...seen.keys()].sort();
      if (JSON.stringify(wholeRefs) !== JSON.stringify(volRefs) || [...seen.values()].some((n) => n !== 1)) {
        problems.push(`${size}: the volumes do not hold every image exactly once`);
      }
      const t = best(times);
      const spanning = await spanCount(ctx.cli, r.volumes[0]!.output);
      volumeRows.push(
        `| \`--volume-size ${size}\`${spanning > 0 ? ` (${spanning} image${spanning === 1 ? '' : 's'} spanning)` : ''} | ${r.volumes.length} (${r.volumes.map((v) => mb(v.fileSize)).join(', ')}) | ${mb(files)} | ${mb(r.duplicatedBytes)} (${((100 * r.duplicatedBytes) / whole.uniqueBytes).toFixed(1)}% of the unique bytes) | ${measured === r.duplicatedBytes ? 'equal' : '**differs**'} | ${s(t)} | ${(t / best(singleTimes)).toFixed(2)}x |`,
      );
      volumeResults.push({ size, volumes: r.volumes.length, fileBytes: files, duplicatedBytes: r.duplicatedBytes, measured, ms: t });
    }

    // ---- shards of a bundle, N = 2
    const n = Number(process.env.SHARD_N ?? 400);
    const storage = path.join(dir, 'registry');
    const images = await generateScaleImages(storage, n);
    const reg = await startRegistry({ storageDir: storage });
    let shardRows: string[];
    let shardResults: Record<string, unknown>;
    try {
      const list = path.join(dir, 'list.txt');
      await writeFile(list, `${images.map((i) => `${reg.host}/${i.repo}:${i.tag}`).join('\n')}\n`);
      const unsharded: number[] = [];
      const sharded: number[] = [];
      const each: number[][] = [[], []];
      const outs = [1, 2].map((k) => path.join(dir, `shard-${k}.ferry`));
      const whole = path.join(dir, 'unsharded.ferry');
      for (let i = 0; i < ctx.runs; i++) {
        for (const d of ['s0', 's1', 's2']) await rm(path.join(dir, d), { recursive: true, force: true });
        await rm(whole, { force: true });
        unsharded.push((await ferry(['bundle', '-f', list, '-o', whole, '--store', path.join(dir, 's0'), '--json'])).ms);
        for (const o of outs) await rm(o, { force: true });
        const started = Date.now();
        const both = await Promise.all(
          [1, 2].map((k) =>
            ferry(['bundle', '-f', list, '--shard', `${k}/2`, '-o', outs[k - 1]!, '--store', path.join(dir, `s${k}`), '--json']),
          ),
        );
        sharded.push(Date.now() - started);
        for (const [k, t] of both.entries()) each[k]!.push(t.ms);
      }
      const all = await inspect(ctx.cli, whole);
      const parts = await Promise.all(outs.map((o) => inspect(ctx.cli, o)));
      const names = parts.flatMap((p) => p.images.map((i) => `${i.ref}@${i.digest}`));
      const union = new Set(names);
      const expected = new Set(all.images.map((i) => `${i.ref}@${i.digest}`));
      if (union.size !== names.length) problems.push('shards: an image is in both shards');
      if (union.size !== expected.size || [...expected].some((x) => !union.has(x)))
        problems.push('shards: the union differs from the unsharded bundle');
      const u = best(unsharded);
      const sh = best(sharded);
      shardRows = [
        `| \`ferry bundle -f LIST\` (${n} images, unsharded) | ${s(u)} | 1.00x | ${all.images.length} images, ${mb(all.uniqueBytes)} |`,
        `| \`--shard 1/2\` and \`--shard 2/2\` at once (wall) | ${s(sh)} | ${(sh / u).toFixed(2)}x | ${parts.map((p) => `${p.images.length} images, ${mb(p.uniqueBytes)}`).join(' + ')} |`,
        ...[0, 1].map((k) => `| \`--shard ${k + 1}/2\` alone in that run | ${s(best(each[k]!))} | ${(best(each[k]!) / u).toFixed(2)}x | |`),
      ];
      shardResults = { n, unshardedMs: u, shardedWallMs: sh, shardMs: each.map(best), shardImages: parts.map((p) => p.images.length) };
    } finally {
      await reg.stop();
    }

    const table = [
      `Volume overhead: the bench corpus (${corpus.images.length} images, ${mb(whole.uniqueBytes)} unique, largest layer ${mb(corpus.largestLayer.size)}) bundled whole with \`ferry bundle --from-store\` (${mb(singleSize)} file, ${s(best(singleTimes))}), then as volume sets with \`--volume-size SIZE --allow-spanning\` (\`scripts/bench-volumes.ts\`, \`FERRY_BENCH_ONLY=volumes\`, best of ${ctx.runs}). "Duplicated" is what ferry reports as carried more than once; "measured" recomputes it from the volumes (the sum of each volume's unique bytes minus the set's). Every volume verifies alone, is at most SIZE, and the volumes hold every image exactly once (a spanning image: its layers once over its span): ${problems.length === 0 ? 'all checks pass' : `**failed**: ${problems.join('; ')}`}. The time ratio is against the one-bundle write of the same store.`,
      '',
      '| volume size | volumes (file sizes) | bytes written | duplicated | reported = measured | time | vs one bundle |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...volumeRows,
      '',
      `Shards, N = 2 on this machine (2 cores): ${n} images of the scale corpus in a loopback docker-registry, pulled and bundled by one \`ferry bundle -f LIST\`, against both shards run at the same time, each into its own store (as two pods would; here they share the two cores and the registry). Best of ${ctx.runs}. The two shards together hold exactly the unsharded bundle's images, none in both.`,
      '',
      '| run | time | vs unsharded | content |',
      '| --- | --- | --- | --- |',
      ...shardRows,
    ].join('\n');
    if (problems.length > 0) throw new Error(`volumes bench: ${problems.join('; ')}\n${table}`);
    return { table, results: { volumes: volumeResults, shards: shardResults } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
