/**
 * The differential section of `npm run bench` (alone with FERRY_BENCH_ONLY=diff): how big the
 * monthly update is. Month 1 is N images of the scale corpus (scripts/corpus/scale.ts) bundled
 * whole; month 2 is the same N plus N/10 new images. The month-2 bundle built with
 * `--base MONTH1.ferry` is compared with the bytes month 2 adds (the new images' own layers,
 * configs and manifests) and with a full month-2 bundle; every image of month 2 must load from
 * month 1 + the update into a fresh OCI layout with its generated digest.
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { capture, run, s } from './bench-util.js';

const kb = (n: number): string => `${(n / 1e3).toFixed(1)} KB`;
import { generateScaleImages } from './corpus/scale.js';
import { startRegistry } from '../test/harness/registry.js';

export interface DiffBenchContext {
  cli: string;
  work: string;
}

export async function benchDiff(ctx: DiffBenchContext): Promise<{ table: string; results: Record<string, unknown> }> {
  const n = Number(process.env.DIFF_N ?? 500);
  const added = Math.max(1, Math.floor(n / 10));
  const dir = path.join(ctx.work, 'diff');
  await rm(dir, { recursive: true, force: true });
  const storage = path.join(dir, 'registry');
  const all = await generateScaleImages(storage, n + added);
  const reg = await startRegistry({ storageDir: storage });
  const problems: string[] = [];
  try {
    const ref = (i: { repo: string; tag: string }): string => `${reg.host}/${i.repo}:${i.tag}`;
    const list1 = path.join(dir, 'month1.txt');
    const list2 = path.join(dir, 'month2.txt');
    await writeFile(list1, `${all.slice(0, n).map(ref).join('\n')}\n`);
    await writeFile(list2, `${all.map(ref).join('\n')}\n`);
    const store = path.join(dir, 'store');
    const ferry = (args: string[]): ReturnType<typeof run> => run(process.execPath, [ctx.cli, ...args]);
    const m1 = path.join(dir, 'month1.ferry');
    const full2 = path.join(dir, 'month2-full.ferry');
    const diff = path.join(dir, 'month2-update.ferry');
    await ferry(['bundle', '-f', list1, '-o', m1, '--store', store]);
    await ferry(['bundle', '-f', list2, '-o', full2, '--store', store]);
    // What month 2 adds: the unique bytes of the full month-2 bundle minus month 1's.
    const totals = async (f: string): Promise<{ uniqueBytes: number }> =>
      JSON.parse((await capture(process.execPath, [ctx.cli, 'inspect', f, '--json'])).toString().trim().split('\n').at(-1)!) as {
        uniqueBytes: number;
      };
    const newBytes = (await totals(full2)).uniqueBytes - (await totals(m1)).uniqueBytes;
    const t = await ferry(['bundle', '-f', list2, '--base', m1, '-o', diff, '--store', store]);
    const diffSize = (await stat(diff)).size;
    const fullSize = (await stat(full2)).size;
    // The far side: month 1, then the update, into a fresh layout: every image at its digest.
    const layout = path.join(dir, 'far');
    await ferry(['load', m1, '--to', `oci:${layout}`]);
    await ferry(['load', diff, '--to', `oci:${layout}`]);
    const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
    };
    const byName = new Map(index.manifests.map((m) => [m.annotations?.['org.opencontainers.image.ref.name'], m.digest]));
    const bad = all.filter((i) => byName.get(ref(i)) !== i.digest).length;
    if (bad > 0) problems.push(`${bad} of ${all.length} images missing or wrong after month 1 + update`);
    const overhead = diffSize - newBytes;
    const table = [
      `Month 1: ${n} images of the scale corpus (\`scripts/corpus/scale.ts\`: one shared base layer, one own layer each), bundled whole; month 2: the same plus ${added} new images. \`scripts/bench-diff.ts\`, \`FERRY_BENCH_ONLY=diff\`. The update is \`ferry bundle -f MONTH2 --base MONTH1.ferry\` (a previous bundle as base: assumed). After loading month 1 and then the update into a fresh OCI layout, every month-2 image is there at its generated digest: ${problems.length === 0 ? 'all checks pass' : `**failed**: ${problems.join('; ')}`}. The update leaves out the ${n} images month 1 holds under the same name and digest, and carries the new images' manifests, configs and the layers month 1 lacks.`,
      '',
      '| bundle | size | beyond the new bytes | target | time |',
      '| --- | --- | --- | --- | --- |',
      `| what month 2 adds (unique blob bytes: full month 2 − month 1) | ${kb(newBytes)} | | | |`,
      `| \`ferry bundle --base MONTH1.ferry\` (the update) | ${kb(diffSize)} | +${kb(overhead)} (tar headers and padding, ferry-bundle.json, SHA256SUMS) | ≤ new + 1 MB: ${overhead <= 1e6 ? '**met**' : '**missed**'} | ${s(t.ms)} |`,
      `| the full month 2 bundle, for comparison | ${kb(fullSize)} | +${kb(fullSize - newBytes)} | | |`,
    ].join('\n');
    if (problems.length > 0) throw new Error(`diff bench: ${problems.join('; ')}\n${table}`);
    return { table, results: { n, added, newBytes, diffSize, fullSize } };
  } finally {
    await reg.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
