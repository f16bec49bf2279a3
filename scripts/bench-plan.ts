/**
 * The plan section of `npm run bench` (alone with FERRY_BENCH_ONLY=plan): how `ferry plan -p`
 * grows with the number of images a profile selects. The scale corpus (scripts/corpus/scale.ts:
 * repositories of four tags each) is written into a loopback docker-registry's storage, and a
 * profile names N/4 and then 4N/4 of its repositories, each with a tag filter (so every
 * repository's tag list is read and filtered, then every selected manifest resolved). Timed at N
 * and 4N (N = PLAN_N, default 250: 1,000 images at 4N), best of two runs each, with ferry's peak
 * RSS; every run's JSON must name every generated image with its generated digest.
 */
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { mb, run, s, type Timed } from './bench-util.js';
import { generateScaleImages, type ScaleImage } from './corpus/scale.js';
import { startRegistry } from '../test/harness/registry.js';

export interface PlanBenchContext {
  cli: string;
  work: string;
}

interface PlanJson {
  images?: Array<{ name: string; digest: string }>;
  failures?: unknown[];
}

export async function benchPlan(ctx: PlanBenchContext): Promise<{ table: string; results: Record<string, unknown> }> {
  const n = Number(process.env.PLAN_N ?? 250);
  const dir = path.join(ctx.work, 'plan');
  await rm(dir, { recursive: true, force: true });
  const storage = path.join(dir, 'registry');
  const all = await generateScaleImages(storage, 4 * n + 3);
  const reg = await startRegistry({ storageDir: storage });
  const problems: string[] = [];
  const results: Record<number, { ms: number; rss: number; tagLists: number; images: number }> = {};
  try {
    for (const count of [n, 4 * n]) {
      // Whole repositories: the filters select every tag of each one named.
      const repos = [...new Set(all.slice(0, count).map((i) => i.repo))];
      const named = new Set(repos);
      const images = all.filter((i) => named.has(i.repo));
      const profile = path.join(dir, `plan-${count}.yaml`);
      await writeFile(
        profile,
        `apiVersion: ferry/v1\nkind: ImageSet\nmetadata: {name: plan-${count}}\nimages:\n${repos
          .map((r) => `  - ref: ${reg.host}/${r}\n    tags: {allow: ['v[0-9]+'], deny: ['v9']}\n`)
          .join('')}`,
      );
      let best: Timed | undefined;
      for (let attempt = 0; attempt < 2; attempt++) {
        const t = await run(process.execPath, [ctx.cli, 'plan', '-p', profile, '--json', '--store', path.join(dir, 'no-store')], {
          trackRss: true,
        });
        check(t, images, reg.host, `${count} images`, problems);
        if (!best || t.ms < best.ms) best = t;
      }
      results[count] = { ms: best!.ms, rss: best!.peakRssBytes ?? 0, tagLists: repos.length, images: images.length };
      console.log(`plan ${images.length} images (${repos.length} tag lists): ${s(best!.ms)}, ${mb(best!.peakRssBytes ?? 0)}`);
    }
  } finally {
    await reg.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const a = results[n]!;
  const b = results[4 * n]!;
  const ratio = b.ms / a.ms;
  const table = [
    `\`ferry plan -p PROFILE --json\` against a loopback docker-registry holding the scale corpus (\`scripts/corpus/scale.ts\`; \`scripts/bench-plan.ts\`, \`FERRY_BENCH_ONLY=plan\`): the profile names repositories of four tags each with \`tags: {allow: ['v[0-9]+'], deny: ['v9']}\`, so every tag list is read and filtered and every selected manifest resolved (no blobs). Best of two runs each. Every run names every generated image with its generated digest: ${problems.length === 0 ? 'all checks pass' : `**${problems.length} checks failed**: ${problems.slice(0, 3).join('; ')}`}.`,
    '',
    `| step | ${a.images} images (${a.tagLists} tag lists) | ${b.images} images (${b.tagLists} tag lists) | ratio | target | peak RSS at ${b.images} |`,
    '| --- | --- | --- | --- | --- | --- |',
    `| \`ferry plan -p PROFILE\` | ${s(a.ms)} | ${s(b.ms)} | ${ratio.toFixed(2)}x | ≤ 5x (linear): ${ratio <= 5 ? '**met**' : '**missed**'} | ${mb(b.rss)} |`,
  ].join('\n');
  if (problems.length > 0) throw new Error(`plan bench: ${problems.join('; ')}\n${table}`);
  return { table, results: { n, [n]: a, [4 * n]: b, ratio } };
}

function check(t: Timed, images: ScaleImage[], host: string, label: string, problems: string[]): void {
  const doc = t.report as PlanJson | undefined;
  if (!doc) {
    problems.push(`${label}: plan printed no JSON report`);
    return;
  }
  const byName = new Map((doc.images ?? []).map((i) => [i.name, i.digest]));
  let bad = 0;
  for (const img of images) if (byName.get(`${host}/${img.repo}:${img.tag}`) !== img.digest) bad++;
  if (bad > 0 || (doc.failures?.length ?? 0) > 0 || byName.size !== images.length) {
    problems.push(`${label}: ${bad} images missing or wrong, ${byName.size} planned, ${doc.failures?.length ?? '?'} failures`);
  }
}
