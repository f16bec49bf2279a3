/**
 * The scale section of `npm run bench` (called from scripts/bench.ts, or alone with
 * FERRY_BENCH_ONLY=scale): how ferry's cost grows with the number of images. N and 4N small
 * images (scripts/corpus/scale.ts: one shared base layer, one own layer each, every 50th a
 * two-platform index) are written straight into a loopback docker-registry's storage, then at
 * N and at 4N, one run each, timed:
 *   `ferry pull -f LIST` into a fresh store, the same pull again (nothing new), `ferry bundle
 *   --from-store`, `ferry load BUNDLE --to oci:DIR` and again, `ferry load BUNDLE --to
 *   docker://HOST` into an empty registry and again;
 * with ferry's peak RSS (VmHWM) for each, and a skopeo copy loop (`skopeo copy --all
 * --preserve-digests docker://… oci:DIR:NAME` per image) at N, and a bare Node client doing the
 * same requests and durable writes (scripts/bench-floor.mjs --manifests) at N. Every ferry step's report must
 * name every image done and nothing failed; the stores' index.json and the destination registry
 * (a sample, by `skopeo inspect --raw`) must hold the generated digests.
 *
 * SCALE_N overrides N (default 500).
 */
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { capture, mb, run, s, type Timed } from './bench-util.js';
import { generateScaleImages, type ScaleImage } from './corpus/scale.js';
import { startRegistry } from '../test/harness/registry.js';

export interface ScaleBenchContext {
  cli: string;
  work: string;
}

interface Report {
  images?: Array<{ name: string; status: string; skipped?: boolean }>;
  failures?: unknown[];
}

const STEPS = [
  ['pull', '`ferry pull -f LIST` into an empty store'],
  ['pullAgain', 'the same pull again (nothing new)'],
  ['bundle', '`ferry bundle --from-store`'],
  ['loadOci', '`ferry load BUNDLE --to oci:DIR` (empty layout)'],
  ['loadOciAgain', 'the same load again (nothing new)'],
  ['loadRegistry', '`ferry load BUNDLE --to docker://HOST` (empty registry)'],
  ['loadRegistryAgain', 'the same load again (nothing new)'],
] as const;
type Step = (typeof STEPS)[number][0];

const met = (ok: boolean): string => (ok ? '**met**' : '**missed**');

export async function benchScale(ctx: ScaleBenchContext): Promise<{ table: string; results: Record<string, unknown> }> {
  const n = Number(process.env.SCALE_N ?? 500);
  const dir = path.join(ctx.work, 'scale');
  await rm(dir, { recursive: true, force: true });
  const storage = path.join(dir, 'registry');
  const t0 = Date.now();
  const all = await generateScaleImages(storage, 4 * n);
  const genMs = Date.now() - t0;
  console.log(`scale: ${all.length} images written into registry storage in ${s(genMs)}`);
  const src = await startRegistry({ storageDir: storage });
  const problems: string[] = [];
  const check = (ok: boolean, what: string): void => {
    if (!ok) problems.push(what);
  };
  const checkReport = (t: Timed, label: string, count: number): void => {
    const r = t.report as Report | undefined;
    const done = r?.images?.filter((i) => i.status === 'done').length ?? 0;
    check(
      done === count && (r?.failures?.length ?? 0) === 0,
      `${label}: ${done}/${count} images done, ${r?.failures?.length ?? '?'} failures`,
    );
  };
  /** Every image named in the layout's index.json with its generated digest. */
  const checkLayout = async (layout: string, images: ScaleImage[], host: string, label: string): Promise<void> => {
    const doc = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
    };
    const byName = new Map(doc.manifests.map((m) => [m.annotations?.['org.opencontainers.image.ref.name'], m.digest]));
    let bad = 0;
    for (const img of images) if (byName.get(`${host}/${img.repo}:${img.tag}`) !== img.digest) bad++;
    check(bad === 0, `${label}: ${bad} of ${images.length} images missing or with another digest`);
  };
  const results: Record<string, Record<Step, Timed> & { images: number }> = {};
  let skopeoMs = 0;
  let floorMs = 0;
  try {
    for (const count of [n, 4 * n]) {
      const images = all.slice(0, count);
      const label = `${count} images`;
      const list = path.join(dir, `list-${count}.txt`);
      await writeFile(list, `${images.map((i) => `${src.host}/${i.repo}:${i.tag}`).join('\n')}\n`);
      const store = path.join(dir, `store-${count}`);
      const bundle = path.join(dir, `bundle-${count}.ferry`);
      const layout = path.join(dir, `layout-${count}`);
      const ferry = (args: string[]): Promise<Timed> => run(process.execPath, [ctx.cli, ...args, '--json'], { trackRss: true });
      const r = { images: count } as Record<Step, Timed> & { images: number };
      r.pull = await ferry(['pull', '-f', list, '--store', store]);
      checkReport(r.pull, `${label}: pull`, count);
      await checkLayout(store, images, src.host, `${label}: pull store`);
      r.pullAgain = await ferry(['pull', '-f', list, '--store', store]);
      checkReport(r.pullAgain, `${label}: pull again`, count);
      const again = (r.pullAgain.report as Report | undefined)?.images?.filter((i) => i.skipped).length ?? 0;
      check(again === count, `${label}: pull again skipped ${again} of ${count} images`);
      r.bundle = await ferry(['bundle', '--from-store', '--store', store, '-o', bundle]);
      r.loadOci = await ferry(['load', bundle, '--to', `oci:${layout}`]);
      checkReport(r.loadOci, `${label}: load oci`, count);
      await checkLayout(layout, images, src.host, `${label}: loaded layout`);
      r.loadOciAgain = await ferry(['load', bundle, '--to', `oci:${layout}`]);
      checkReport(r.loadOciAgain, `${label}: load oci again`, count);
      const dst = await startRegistry();
      try {
        r.loadRegistry = await ferry(['load', bundle, '--to', `docker://${dst.host}`]);
        checkReport(r.loadRegistry, `${label}: load registry`, count);
        r.loadRegistryAgain = await ferry(['load', bundle, '--to', `docker://${dst.host}`]);
        checkReport(r.loadRegistryAgain, `${label}: load registry again`, count);
        // A sample (every 37th image, and every index) read back by skopeo.
        for (const img of images.filter((im, i) => im.index || i % 37 === 0)) {
          const raw = await capture('skopeo', [
            'inspect',
            '--raw',
            '--tls-verify=false',
            `docker://${dst.host}/${img.repo}:${img.tag}`,
          ]).catch((e: unknown) => Buffer.from(String(e)));
          const got = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
          check(got === img.digest, `${label}: loaded registry has ${img.repo}:${img.tag} as ${got}, generated ${img.digest}`);
        }
      } finally {
        await dst.stop();
      }
      results[count] = r;
      console.log(`scale ${label}: ${STEPS.map(([k]) => `${k} ${s(r[k].ms)} (${mb(r[k].peakRssBytes ?? 0)})`).join(', ')}`);
      await rm(store, { recursive: true, force: true });
      await rm(layout, { recursive: true, force: true });
      await rm(bundle, { force: true });
      if (count === n) {
        const sDir = path.join(dir, 'skopeo-layout');
        const started = Date.now();
        for (const img of images) {
          await run('skopeo', [
            '--insecure-policy',
            'copy',
            '--all',
            '--preserve-digests',
            '--src-tls-verify=false',
            '-q',
            `docker://${src.host}/${img.repo}:${img.tag}`,
            `oci:${sDir}:${img.repo.replace(/\//g, '_')}_${img.tag}`,
          ]);
        }
        skopeoMs = Date.now() - started;
        console.log(`scale ${label}: skopeo copy loop ${s(skopeoMs)}`);
        await rm(sDir, { recursive: true, force: true });
        // The floor: a bare Node client doing the same requests and durable writes (every
        // manifest and blob fetched once, checked, fsynced and renamed; no layout, no lock, no
        // names), so the ratio to skopeo can be read against what any client reaches here.
        const fDir = path.join(dir, 'floor-out');
        floorMs = (
          await run(process.execPath, [
            fileURLToPath(new URL('./bench-floor.mjs', import.meta.url)),
            '--manifests',
            src.host,
            fDir,
            ...images.map((i) => `${i.repo}:${i.tag}`),
          ])
        ).ms;
        console.log(`scale ${label}: bare Node client ${s(floorMs)}`);
        await rm(fDir, { recursive: true, force: true });
      }
    }
  } finally {
    await src.stop();
    await rm(dir, { recursive: true, force: true });
  }
  const small = results[n]!;
  const big = results[4 * n]!;
  const peak = Math.max(...STEPS.map(([k]) => big[k].peakRssBytes ?? 0));
  const speedup = skopeoMs / small.pull.ms;
  const againFraction = big.pullAgain.ms / big.pull.ms;
  const rows = STEPS.map(([k, what]) => {
    const ratio = big[k].ms / small[k].ms;
    return `| ${what} | ${s(small[k].ms)} | ${s(big[k].ms)} | ${ratio.toFixed(2)}x | ≤ 5x: ${met(ratio <= 5)} | ${mb(big[k].peakRssBytes ?? 0)} |`;
  });
  const table = [
    `${n} and ${4 * n} small images (\`scripts/corpus/scale.ts\`: one shared base layer and one own layer each, every 50th a two-platform index; four tags per repository), written into a loopback docker-registry's storage in ${s(genMs)}; one run each. Every step's report names every image done with no failures; the pulled store and the loaded layout hold every generated digest, and a sample of the loaded registry's images is read back with \`skopeo inspect --raw\`: ${problems.length === 0 ? 'all checks pass' : `**${problems.length} checks failed**`}.`,
    '',
    `| step | ${n} images | ${4 * n} images | ratio | target | peak RSS at ${4 * n} |`,
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
    `| pull again at ${4 * n} vs the first pull at ${4 * n} | | ${s(big.pullAgain.ms)} / ${s(big.pull.ms)} | ${(againFraction * 100).toFixed(1)}% | ≤ 33%: ${met(againFraction <= 1 / 3)} | |`,
    `| peak RSS (VmHWM), largest of the steps at ${4 * n} | | ${mb(peak)} | | < 200 MB: ${met(peak < 200e6)} | |`,
    `| skopeo copy loop (one \`skopeo copy --all --preserve-digests\` per image) vs \`ferry pull\`, at ${n} | ${s(skopeoMs)} / ${s(small.pull.ms)} | | **${speedup.toFixed(1)}x** | ≥ 10x: ${met(speedup >= 10)} | |`,
    `| skopeo copy loop vs a bare Node client (\`scripts/bench-floor.mjs --manifests\`: the same requests and durable writes, nothing else), at ${n}: the most any client reaches here | ${s(skopeoMs)} / ${s(floorMs)} | | ${(skopeoMs / floorMs).toFixed(1)}x | (floor) | |`,
  ].join('\n');
  if (problems.length) console.error(`scale checks failed:\n  ${problems.slice(0, 20).join('\n  ')}`);
  const pick = (r: Record<Step, Timed>): Record<string, { ms: number; peakRssBytes?: number }> =>
    Object.fromEntries(
      STEPS.map(([k]) => [k, { ms: r[k].ms, ...(r[k].peakRssBytes !== undefined ? { peakRssBytes: r[k].peakRssBytes } : {}) }]),
    );
  return {
    table,
    results: {
      n,
      generateMs: genMs,
      small: pick(small),
      large: pick(big),
      skopeoLoopMs: skopeoMs,
      floorMs,
      speedup,
      againFraction,
      peak,
      problems,
    },
  };
}
