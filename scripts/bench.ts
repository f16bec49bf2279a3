/**
 * npm run bench: ferry against skopeo on the same corpus, in the same run, as ratios.
 *
 * The corpus ('bench': 7 images sharing layers, ~410 MB of unique blobs, one 270 MB layer) is
 * generated deterministically into .bench/corpus (cached), pushed with skopeo into a loopback
 * docker-registry, and then each contender copies every image into a fresh OCI layout:
 *   - skopeo: `skopeo copy --all --preserve-digests docker://… oci:DIR:NAME`, one image after
 *     another (the loop people script today);
 *   - ferry:  one `ferry pull` of the whole list.
 * Each is run RUNS times, alternating, and the best time is kept. ferry's peak RSS is read from
 * /proc (VmHWM) while it runs. A second `ferry pull` into the same store (nothing new) is timed
 * against the first. The store is bundled (vs tar) and verified (vs sha256sum); the bundle is then
 * served with `ferry serve` and skopeo copies every image out of it, against the same copy loop out
 * of the docker-registry (ferry serve's peak RSS is polled; each served digest is checked). The
 * bundle is then loaded with `ferry load` into empty registries and a private dockerd, and the
 * corpus mirrored registry to registry with `ferry mirror`, against skopeo copy loops and `docker
 * load` (scripts/bench-load.ts; FERRY_BENCH_ONLY=load runs only that section). Then, in
 * the same run: `ferry bundle` of a generated `docker save`-style
 * archive with uncompressed, compressible layers (bundle size vs input size), and pull / bundle
 * (--compression auto and none) / verify of an image with one 2 GiB uncompressed layer, with
 * peak RSS (inputs from scripts/corpus/bench-2g.ts, cached under .bench/). Results go to
 * .bench/results.json and, with --write-docs, into docs/benchmarks.md between the BENCH markers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchLoad } from './bench-load.js';
import { benchDiff } from './bench-diff.js';
import { benchPlan } from './bench-plan.js';
import { benchStore } from './bench-store.js';
import { benchScale } from './bench-scale.js';
import { benchVolumes } from './bench-volumes.js';
import { capture, mb, run, s, type Timed } from './bench-util.js';
import { generateBigLayerLayout, generateDockerSave } from './corpus/bench-2g.js';
import { generateCorpus } from './corpus/generate.js';
import { pushCorpus } from './corpus/push.js';
import { startRegistry } from '../test/harness/registry.js';
import { cleanupHarness } from '../test/harness/temp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = path.join(ROOT, '.bench');
const DIST = path.join(ROOT, 'dist');
/**
 * ferry as built, copied to .bench/dist when the bench starts: a rebuild of dist/ while the
 * bench runs (another checkout step, a test run) must not change the binary between runs.
 * Packages still resolve from ROOT/node_modules.
 */
const CLI = path.join(WORK, 'dist', 'bin', 'ferry.mjs');
const FLOOR = path.join(ROOT, 'scripts', 'bench-floor.mjs');
const RUNS = Number(process.env.BENCH_RUNS ?? 2);
/** FERRY_BENCH_ONLY=load: only the load/mirror section (its inputs are written untimed first); the other tables in the doc are left as they are. */
const ONLY = process.env.FERRY_BENCH_ONLY;

interface Serving {
  /** host:port, as skopeo wants it after docker:// */
  host: string;
  child: ChildProcess;
  /** Largest VmHWM of the serve process seen so far (polled every 20 ms until stop). */
  peakRssBytes: () => number;
  stop: () => Promise<void>;
  /** From spawning the process to its "Serving" line. */
  startMs: number;
}

/** `ferry serve FILE --listen 127.0.0.1:0` as a child process; the URL comes from its `Serving http://…` line. */
function startServe(bundle: string): Promise<Serving> {
  return new Promise((resolve, reject) => {
    const spawnedAt = process.hrtime.bigint();
    const child = spawn(process.execPath, [CLI, 'serve', bundle, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let peak = 0;
    let started = false;
    const poll = setInterval(() => {
      readFile(`/proc/${child.pid}/status`, 'utf8').then(
        (st) => {
          const m = /VmHWM:\s+(\d+) kB/.exec(st);
          if (m) peak = Math.max(peak, Number(m[1]) * 1024);
        },
        () => {},
      );
    }, 20);
    const exited = new Promise<void>((res) => child.on('close', () => res()));
    const timer = setTimeout(() => {
      if (!started) {
        child.kill('SIGTERM');
        reject(new Error(`ferry serve printed no "Serving" line within 30 s: ${out} ${err}`));
      }
    }, 30_000);
    child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-4000)));
    child.stdout!.on('data', (d: Buffer) => {
      out = (out + d.toString()).slice(-64 * 1024);
      const m = /Serving https?:\/\/(\S+)/.exec(out);
      if (m && !started) {
        started = true;
        clearTimeout(timer);
        resolve({
          startMs: Number(process.hrtime.bigint() - spawnedAt) / 1e6,
          host: m[1]!,
          child,
          peakRssBytes: () => peak,
          stop: async () => {
            // One last read so the peak includes the end of the last copy.
            const st = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
            const hwm = /VmHWM:\s+(\d+) kB/.exec(st);
            if (hwm) peak = Math.max(peak, Number(hwm[1]) * 1024);
            clearInterval(poll);
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            await exited;
          },
        });
      }
    });
    child.on('error', (e) => {
      clearInterval(poll);
      reject(e);
    });
    child.on('close', (code) => {
      clearInterval(poll);
      if (!started) {
        clearTimeout(timer);
        reject(new Error(`ferry serve exited ${code} before serving: ${err}`));
      }
    });
  });
}

/**
 * A store of many small images (IMAGES x (manifest + config + LAYERS layers) blobs), for
 * measuring how fast `ferry serve` starts on a bundle of thousands of blobs.
 */
async function manyBlobsStore(dir: string, images = 400, layers = 8): Promise<number> {
  const { OciLayout } = await import('../src/transports/oci/layout.js');
  const { sha256 } = await import('../src/oci/digest.js');
  await rm(dir, { recursive: true, force: true });
  const store = await OciLayout.open(dir, { create: true });
  const entries = [];
  for (let i = 0; i < images; i++) {
    const layerDescs = [];
    for (let j = 0; j < layers; j++) {
      const bytes = Buffer.from(`image ${i} layer ${j}\n`.repeat(8));
      layerDescs.push({
        mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: await store.putBytes(bytes),
        size: bytes.length,
      });
    }
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: layerDescs.map((d) => d.digest) } }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: layerDescs,
      }),
    );
    await store.putBytes(config);
    const digest = await store.putBytes(manifest);
    const name = `bench.local/many/img${i}:1`;
    entries.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest,
      size: manifest.length,
      annotations: { 'org.opencontainers.image.ref.name': name, 'io.containerd.image.name': name },
    });
  }
  await store.putIndexEntries(entries);
  return images * (layers + 2);
}

/** Replaces the text between `<!-- BENCH:NAME -->` and `<!-- /BENCH:NAME -->` in docs/benchmarks.md for each section given. */
async function writeDocs(sections: Record<string, string>): Promise<void> {
  const doc = path.join(ROOT, 'docs', 'benchmarks.md');
  let text = await readFile(doc, 'utf8');
  for (const [name, table] of Object.entries(sections)) {
    const re = new RegExp(`<!-- BENCH:${name} -->[\\s\\S]*<!-- \\/BENCH:${name} -->`);
    if (!re.test(text)) throw new Error(`docs/benchmarks.md has no BENCH:${name} markers`);
    text = text.replace(re, () => `<!-- BENCH:${name} -->\n${table}\n<!-- /BENCH:${name} -->`);
  }
  await writeFile(doc, text);
  console.log(`docs/benchmarks.md updated (${Object.keys(sections).join(', ')})`);
}

/** The scale section (scripts/bench-scale.ts): its own registries and corpus; results merged into results.json. */
async function runScale(): Promise<void> {
  const scale = await benchScale({ cli: CLI, work: WORK });
  console.log(`\n${scale.table}\n`);
  const prev = JSON.parse(await readFile(path.join(WORK, 'results.json'), 'utf8').catch(() => '{}')) as Record<string, unknown>;
  await writeFile(
    path.join(WORK, 'results.json'),
    JSON.stringify({ ...prev, scale: { date: new Date().toISOString(), ...scale.results } }, null, 2),
  );
  if (process.argv.includes('--write-docs')) await writeDocs({ scale: scale.table });
}

async function runStore(): Promise<void> {
  const store = await benchStore({ cli: CLI, work: WORK });
  console.log(`\n${store.table}\n`);
  if (process.argv.includes('--write-docs')) await writeDocs({ store: store.table });
}

async function runDiff(): Promise<void> {
  const diff = await benchDiff({ cli: CLI, work: WORK });
  console.log(`\n${diff.table}\n`);
  if (process.argv.includes('--write-docs')) await writeDocs({ diff: diff.table });
}

async function runVolumes(): Promise<void> {
  const volumes = await benchVolumes({ cli: CLI, work: WORK, runs: RUNS });
  console.log(`\n${volumes.table}\n`);
  if (process.argv.includes('--write-docs')) await writeDocs({ volumes: volumes.table });
}

async function runPlan(): Promise<void> {
  const plan = await benchPlan({ cli: CLI, work: WORK });
  console.log(`\n${plan.table}\n`);
  if (process.argv.includes('--write-docs')) await writeDocs({ plan: plan.table });
}

async function main(): Promise<void> {
  if (!existsSync(path.join(DIST, 'bin', 'ferry.mjs'))) throw new Error('dist/bin/ferry.mjs is missing: npm run build');
  const alone = ['load', 'scale', 'plan', 'diff', 'store', 'volumes'];
  if (ONLY !== undefined && !alone.includes(ONLY)) {
    throw new Error(`FERRY_BENCH_ONLY=${ONLY}: the sections that run alone are ${alone.join(', ')}`);
  }
  await mkdir(WORK, { recursive: true });
  await rm(path.join(WORK, 'dist'), { recursive: true, force: true });
  await cp(DIST, path.join(WORK, 'dist'), { recursive: true });
  if (ONLY === 'scale') {
    await runScale();
    return;
  }
  if (ONLY === 'plan') {
    await runPlan();
    return;
  }
  if (ONLY === 'diff') {
    await runDiff();
    return;
  }
  if (ONLY === 'store') {
    await runStore();
    return;
  }
  if (ONLY === 'volumes') {
    await runVolumes();
    return;
  }
  const corpusDir = path.join(WORK, 'corpus');
  const t0 = Date.now();
  const corpus = await generateCorpus(corpusDir, 'bench');
  console.log(
    `corpus: ${corpus.images.length} images, ${corpus.blobCount} blobs, ${mb(corpus.uniqueBlobBytes)} unique, largest layer ${mb(corpus.largestLayer.size)} (${s(Date.now() - t0)})`,
  );

  const reg = await startRegistry({ storageDir: path.join(WORK, 'registry') });
  try {
    await pushCorpus(corpusDir, corpus, reg.host, { insecure: true });
    const refs = corpus.images.map((i) => `${reg.host}/${i.repo}:${i.tag}`);
    const loadContext = {
      cli: CLI,
      work: WORK,
      runs: RUNS,
      corpus,
      corpusDir,
      srcHost: reg.host,
      bundleFile: path.join(WORK, 'bench.ferry'),
      storeDir: path.join(WORK, 'ferry-store'),
      skopeoLayout: path.join(WORK, 'skopeo-layout'),
    };
    if (ONLY === 'load') {
      // Only the load/mirror section: write its inputs the way the pull and bundle sections do
      // (one skopeo loop into the layout, one ferry pull, one ferry bundle), untimed.
      await rm(loadContext.skopeoLayout, { recursive: true, force: true });
      for (const img of corpus.images) {
        await run('skopeo', [
          '--insecure-policy',
          'copy',
          '--all',
          '--preserve-digests',
          '--src-tls-verify=false',
          '-q',
          `docker://${reg.host}/${img.repo}:${img.tag}`,
          `oci:${loadContext.skopeoLayout}:${img.repo.replace(/\//g, '_')}_${img.tag}`,
        ]);
      }
      await rm(loadContext.storeDir, { recursive: true, force: true });
      await run(process.execPath, [CLI, 'pull', '--json', '--store', loadContext.storeDir, ...refs]);
      await rm(loadContext.bundleFile, { force: true });
      await run(process.execPath, [CLI, 'bundle', '--from-store', '--store', loadContext.storeDir, '-o', loadContext.bundleFile, '--json']);
      const load = await benchLoad({
        ...loadContext,
        bundleOrigin:
          'written in this run by `ferry bundle --from-store` of a fresh `ferry pull` (FERRY_BENCH_ONLY=load: the other sections did not run)',
      });
      console.log(`\n${load.table}\n`);
      const prev = JSON.parse(await readFile(path.join(WORK, 'results.json'), 'utf8').catch(() => '{}')) as Record<string, unknown>;
      await writeFile(
        path.join(WORK, 'results.json'),
        JSON.stringify({ ...prev, load: { date: new Date().toISOString(), ...load.results } }, null, 2),
      );
      if (process.argv.includes('--write-docs')) await writeDocs({ load: load.table });
      return;
    }
    const skopeoTimes: number[] = [];
    const ferryRuns: Timed[] = [];
    let second: Timed | undefined;
    const floorTimes: number[] = [];
    const nodeStartTimes: number[] = [];
    const ferryStartTimes: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const sDir = path.join(WORK, 'skopeo-layout');
      await rm(sDir, { recursive: true, force: true });
      const started = Date.now();
      for (const img of corpus.images) {
        await run('skopeo', [
          '--insecure-policy',
          'copy',
          '--all',
          '--preserve-digests',
          '--src-tls-verify=false',
          '-q',
          `docker://${reg.host}/${img.repo}:${img.tag}`,
          `oci:${sDir}:${img.repo.replace(/\//g, '_')}_${img.tag}`,
        ]);
      }
      skopeoTimes.push(Date.now() - started);

      const fDir = path.join(WORK, 'ferry-store');
      await rm(fDir, { recursive: true, force: true });
      ferryRuns.push(await run(process.execPath, [CLI, 'pull', '--json', '--store', fDir, ...refs], { trackRss: true }));
      const secondRun = await run(process.execPath, [CLI, 'pull', '--json', '--store', fDir, ...refs], { trackRss: true });
      if (!second || secondRun.ms < second.ms) second = secondRun;
      // The floor: the least a Node client does for the same pull (scripts/bench-floor.mjs).
      const floorDir = path.join(WORK, 'floor-out');
      await rm(floorDir, { recursive: true, force: true });
      floorTimes.push(
        (await run(process.execPath, [FLOOR, reg.host, floorDir, ...corpus.images.map((img) => `${img.repo}:${img.tag}`)])).ms,
      );
      // Start-up alone: Node, and ferry printing its version.
      nodeStartTimes.push((await run(process.execPath, ['-e', '0'])).ms);
      ferryStartTimes.push((await run(process.execPath, [CLI, '--version'])).ms);
      console.log(
        `run ${i + 1}: skopeo loop ${s(skopeoTimes.at(-1)!)}, ferry pull ${s(ferryRuns.at(-1)!.ms)} (peak RSS ${mb(ferryRuns.at(-1)!.peakRssBytes ?? 0)}), second pull ${s(secondRun.ms)}, bare Node client ${s(floorTimes.at(-1)!)}, node -e 0 ${s(nodeStartTimes.at(-1)!)}, ferry --version ${s(ferryStartTimes.at(-1)!)}`,
      );
    }
    await rm(path.join(WORK, 'floor-out'), { recursive: true, force: true });
    const bestFloor = Math.min(...floorTimes);
    const nodeStart = Math.min(...nodeStartTimes);
    const ferryStart = Math.min(...ferryStartTimes);
    const bestSkopeo = Math.min(...skopeoTimes);
    const bestFerry = ferryRuns.reduce((a, b) => (b.ms < a.ms ? b : a));
    const peak = Math.max(...ferryRuns.map((r) => r.peakRssBytes ?? 0), second?.peakRssBytes ?? 0);
    const results = {
      date: new Date().toISOString(),
      machine: `${process.platform} ${process.arch}, node ${process.version}`,
      corpus: {
        images: corpus.images.length,
        blobs: corpus.blobCount,
        uniqueBytes: corpus.uniqueBlobBytes,
        largestLayer: corpus.largestLayer.size,
      },
      pull: {
        skopeoLoopMs: bestSkopeo,
        ferryMs: bestFerry.ms,
        speedup: bestSkopeo / bestFerry.ms,
        ferryPeakRssBytes: peak,
        secondPullMs: second!.ms,
        secondPullFraction: second!.ms / bestFerry.ms,
        ferryWorkMs: bestFerry.reportMs,
        secondPullWorkMs: second!.reportMs,
        secondPullWorkFraction: (second!.reportMs ?? NaN) / (bestFerry.reportMs ?? NaN),
        bareNodeClientMs: bestFloor,
        ceilingSpeedup: bestSkopeo / bestFloor,
        nodeStartMs: nodeStart,
        ferryStartMs: ferryStart,
      },
    };
    // Bundle and verify, on the store the last ferry pull wrote.
    const store = path.join(WORK, 'ferry-store');
    const bundleFile = path.join(WORK, 'bench.ferry');
    const tarFile = path.join(WORK, 'store.tar');
    const tarTimes: number[] = [];
    const tarSyncTimes: number[] = [];
    const bundleRuns: Timed[] = [];
    const shaTimes: number[] = [];
    const verifyRuns: Timed[] = [];
    for (let i = 0; i < RUNS; i++) {
      await rm(tarFile, { force: true });
      const tarMs = (await run('tar', ['-cf', tarFile, '-C', store, '.'])).ms;
      tarTimes.push(tarMs);
      // ferry fsyncs what it writes before renaming it into place; tar does not.
      tarSyncTimes.push(tarMs + (await run('sync', [tarFile])).ms);
      await rm(bundleFile, { force: true });
      bundleRuns.push(
        await run(process.execPath, [CLI, 'bundle', '--from-store', '--store', store, '-o', bundleFile, '--json'], { trackRss: true }),
      );
      shaTimes.push((await run('sha256sum', [bundleFile])).ms);
      verifyRuns.push(await run(process.execPath, [CLI, 'verify', bundleFile, '--json'], { trackRss: true }));
      console.log(
        `run ${i + 1}: tar -cf ${s(tarTimes.at(-1)!)}, ferry bundle ${s(bundleRuns.at(-1)!.ms)}, sha256sum ${s(shaTimes.at(-1)!)}, ferry verify ${s(verifyRuns.at(-1)!.ms)}`,
      );
    }
    const bundleSize = (await stat(bundleFile)).size;
    const bestTar = Math.min(...tarTimes);
    const bestTarSync = Math.min(...tarSyncTimes);
    const bestBundle = Math.min(...bundleRuns.map((r) => r.ms));
    const bestSha = Math.min(...shaTimes);
    const bestVerify = Math.min(...verifyRuns.map((r) => r.ms));
    const bundleResults = {
      tarMs: bestTar,
      bundleMs: bestBundle,
      bundleVsTar: bestBundle / bestTar,
      tarSyncMs: bestTarSync,
      bundleVsTarSync: bestBundle / bestTarSync,
      bundleBytes: bundleSize,
      uniqueBytes: corpus.uniqueBlobBytes,
      overheadBytes: bundleSize - corpus.uniqueBlobBytes,
      overheadLimitBytes: corpus.uniqueBlobBytes * 0.005 + 1e6,
      sha256sumMs: bestSha,
      verifyMs: bestVerify,
      verifySpeedup: bestSha / bestVerify,
      bundlePeakRssBytes: Math.max(...bundleRuns.map((r) => r.peakRssBytes ?? 0)),
      verifyPeakRssBytes: Math.max(...verifyRuns.map((r) => r.peakRssBytes ?? 0)),
    };
    await writeFile(path.join(WORK, 'results.json'), JSON.stringify({ ...results, bundle: bundleResults }, null, 2));
    const bundleTable = [
      `Same run, same corpus: the store written by the last \`ferry pull\` above (registry layers, already compressed, so no member is recompressed).`,
      '',
      '| measurement | reference | ferry | ratio | target |',
      '| --- | --- | --- | --- | --- |',
      `| bundle the store | ${s(bestTar)} (\`tar -cf\`) | ${s(bestBundle)} (\`ferry bundle --from-store\`) | **${bundleResults.bundleVsTar.toFixed(2)}x** tar's time | ≤ 1.5x |`,
      `| bundle the store, both durable on disk | ${s(bestTarSync)} (\`tar -cf\` + \`sync FILE\`) | ${s(bestBundle)} | **${bundleResults.bundleVsTarSync.toFixed(2)}x** | ≤ 1.5x |`,
      `| bundle size vs unique blob bytes | ${mb(corpus.uniqueBlobBytes)} | ${mb(bundleSize)} | **+${(bundleResults.overheadBytes / 1e3).toFixed(1)} KB** | ≤ 0.5% + 1 MB (${mb(bundleResults.overheadLimitBytes)}) |`,
      `| verify the bundle | ${s(bestSha)} (\`sha256sum FILE\`) | ${s(bestVerify)} (\`ferry verify\`) | **${bundleResults.verifySpeedup.toFixed(2)}x** faster | ≥ 1.5x |`,
      `| peak RSS: bundle / verify | | ${mb(bundleResults.bundlePeakRssBytes)} / ${mb(bundleResults.verifyPeakRssBytes)} | | < 200 MB |`,
    ].join('\n');
    const table = [
      `Measured ${results.date.slice(0, 10)} on ${results.machine}, best of ${RUNS} runs; corpus: ${results.corpus.images} images, ${results.corpus.blobs} blobs, ${mb(results.corpus.uniqueBytes)} unique, largest layer ${mb(results.corpus.largestLayer)}, served by docker-registry on loopback.`,
      '',
      '| measurement | skopeo | ferry | ratio | target |',
      '| --- | --- | --- | --- | --- |',
      `| pull every image into one OCI layout | ${s(bestSkopeo)} (copy loop) | ${s(bestFerry.ms)} | **${results.pull.speedup.toFixed(2)}x** faster | ≥ 2.5x |`,
      `| ferry peak RSS during pull | | ${mb(peak)} | | < 200 MB |`,
      `| second pull, nothing new (wall clock, start-up included) | | ${s(second!.ms)} | **${(results.pull.secondPullFraction * 100).toFixed(1)}%** of the first | < 10% |`,
      `| second pull, nothing new (ferry's own report, start-up excluded) | | ${s(second!.reportMs ?? NaN)} | **${(results.pull.secondPullWorkFraction * 100).toFixed(1)}%** of the first's ${s(bestFerry.reportMs ?? NaN)} | < 10% |`,
      `| for scale: a bare Node client (\`scripts/bench-floor.mjs\`: resolve, then every blob once, largest first, 4 at a time: GET → sha256 → writev → fsync → rename; no store, lock, resume or checks beyond the digest) | | ${s(bestFloor)} | skopeo loop = **${results.pull.ceilingSpeedup.toFixed(2)}x** this: the most a Node client reaches here | |`,
      `| for scale: start-up, \`node -e 0\` / \`ferry --version\` | | ${s(nodeStart)} / ${s(ferryStart)} | ferry's start-up = ${((ferryStart / bestFerry.ms) * 100).toFixed(1)}% of the first pull | |`,
    ].join('\n');
    console.log(`\n${table}\n\n${bundleTable}\n`);

    // ferry serve of the bench bundle vs the docker-registry holding the same images: skopeo copies
    // every image out of each, one after another (same loop as above), alternating, best of RUNS.
    // One serve process serves all runs; its peak RSS is its VmHWM over the whole time it serves.
    const copyLoop = async (host: string, dir: string): Promise<number> => {
      await rm(dir, { recursive: true, force: true });
      const started = process.hrtime.bigint();
      for (const img of corpus.images) {
        await run('skopeo', [
          '--insecure-policy',
          'copy',
          '--all',
          '--preserve-digests',
          '--src-tls-verify=false',
          '-q',
          `docker://${host}/${img.repo}:${img.tag}`,
          `oci:${dir}:${img.repo.replace(/\//g, '_')}_${img.tag}`,
        ]);
      }
      return Number(process.hrtime.bigint() - started) / 1e6;
    };
    const serving = await startServe(bundleFile);
    const regCopyTimes: number[] = [];
    const serveCopyTimes: number[] = [];
    let served: { images: number; digestsMatch: number; mismatches: string[] };
    try {
      for (let i = 0; i < RUNS; i++) {
        // Alternate which source goes first, so neither always gets the warmer page cache.
        const order = i % 2 === 0 ? (['registry', 'serve'] as const) : (['serve', 'registry'] as const);
        for (const which of order) {
          if (which === 'registry') regCopyTimes.push(await copyLoop(reg.host, path.join(WORK, 'serve-copy-registry')));
          else serveCopyTimes.push(await copyLoop(serving.host, path.join(WORK, 'serve-copy-ferry')));
        }
        console.log(
          `run ${i + 1}: skopeo copy loop from docker-registry ${s(regCopyTimes.at(-1)!)}, from ferry serve ${s(serveCopyTimes.at(-1)!)} (serve peak RSS so far ${mb(serving.peakRssBytes())})`,
        );
      }
      // Verify: the manifest (or index) ferry serves for each image has the corpus digest, and
      // the layout skopeo wrote from ferry serve records that digest for each image.
      const mismatches: string[] = [];
      const copiedIndex = JSON.parse(await readFile(path.join(WORK, 'serve-copy-ferry', 'index.json'), 'utf8')) as {
        manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
      };
      for (const img of corpus.images) {
        const raw = await capture('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${serving.host}/${img.repo}:${img.tag}`]);
        const got = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
        if (got !== img.digest) mismatches.push(`${img.repo}:${img.tag}: ferry serve gives ${got}, corpus has ${img.digest}`);
        const name = `${img.repo.replace(/\//g, '_')}_${img.tag}`;
        const entry = copiedIndex.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name);
        if (entry?.digest !== img.digest)
          mismatches.push(`${img.repo}:${img.tag}: copied layout has ${entry?.digest ?? 'no entry'}, corpus has ${img.digest}`);
      }
      served = { images: corpus.images.length, digestsMatch: corpus.images.length * 2 - mismatches.length, mismatches };
      if (mismatches.length > 0) throw new Error(`ferry serve copies do not match the corpus:\n${mismatches.join('\n')}`);
    } finally {
      await serving.stop();
      await rm(path.join(WORK, 'serve-copy-registry'), { recursive: true, force: true });
      await rm(path.join(WORK, 'serve-copy-ferry'), { recursive: true, force: true });
    }
    const bestRegCopy = Math.min(...regCopyTimes);
    const bestServeCopy = Math.min(...serveCopyTimes);
    const serveResults = {
      registryCopyLoopMs: bestRegCopy,
      serveCopyLoopMs: bestServeCopy,
      /** > 1: ferry serve is faster. */
      speedup: bestRegCopy / bestServeCopy,
      registryCopyLoopRunsMs: regCopyTimes,
      serveCopyLoopRunsMs: serveCopyTimes,
      servePeakRssBytes: serving.peakRssBytes(),
      verified: served,
    };
    const serveMet = (ok: boolean): string => (ok ? '**met**' : '**missed**');
    let serveTable = [
      `Same run, same corpus: the bundle written by the last \`ferry bundle\` above (${mb(bundleSize)}), served with \`ferry serve FILE --listen 127.0.0.1:0\` (one process for all runs), against the docker-registry of the pull section holding the same images. Each side: \`skopeo --insecure-policy copy --all --preserve-digests --src-tls-verify=false docker://HOST/REPO:TAG oci:DIR:NAME\` for every image, one after another, into a fresh layout; ${RUNS} runs each, alternating (and alternating which goes first), best kept. Runs: registry ${regCopyTimes.map(s).join(', ')}; ferry serve ${serveCopyTimes.map(s).join(', ')}.`,
      '',
      '| measurement | docker-registry | ferry serve | ratio | target |',
      '| --- | --- | --- | --- | --- |',
      `| skopeo copies every image out of it | ${s(bestRegCopy)} | ${s(bestServeCopy)} | **${serveResults.speedup.toFixed(2)}x** (registry time / ferry serve time) | ≥ 1.0x: ${serveMet(serveResults.speedup >= 1)} |`,
      `| ferry serve peak RSS (VmHWM) while serving all runs | | ${mb(serveResults.servePeakRssBytes)} | | < 150 MB: ${serveMet(serveResults.servePeakRssBytes < 150e6)} |`,
      `| copies verified: \`skopeo inspect --raw\` digest from ferry serve = corpus digest, and the copied layout's digest | | ${served.digestsMatch} / ${served.images * 2} checks pass (${served.images} images) | | all pass |`,
    ].join('\n');
    // Start-up on a bundle of thousands of blobs: the index is read, blobs are never hashed.
    const manyDir = path.join(WORK, 'many-store');
    const manyBlobs = await manyBlobsStore(manyDir);
    const manyBundle = path.join(WORK, 'many.ferry');
    await rm(manyBundle, { force: true });
    await run(process.execPath, [CLI, 'bundle', '--from-store', '--store', manyDir, '-o', manyBundle, '--compression', 'none', '--json']);
    const startups: number[] = [];
    for (let i = 0; i < Math.max(3, RUNS); i++) {
      const sv = await startServe(manyBundle);
      startups.push(sv.startMs);
      await sv.stop();
    }
    const bestStart = Math.min(...startups);
    const startupRow = `| \`ferry serve\` start-up on a bundle of ${manyBlobs} blobs (400 images), spawn to listening, best of ${startups.length} | | ${s(bestStart)} (runs: ${startups.map(s).join(', ')}) | | well under 1 s: ${serveMet(bestStart < 1000)} |`;
    serveTable += `\n${startupRow}`;
    Object.assign(serveResults, { manyBlobs, startupMs: bestStart, startupRunsMs: startups });
    console.log(`${serveTable}\n`);
    await writeFile(path.join(WORK, 'results.json'), JSON.stringify({ ...results, bundle: bundleResults, serve: serveResults }, null, 2));

    // ferry load / ferry mirror against skopeo copy loops and docker load (scripts/bench-load.ts).
    const load = await benchLoad(loadContext);
    console.log(`${load.table}\n`);
    await writeFile(
      path.join(WORK, 'results.json'),
      JSON.stringify({ ...results, bundle: bundleResults, serve: serveResults, load: load.results }, null, 2),
    );

    // docker save input with uncompressed layers → bundle (compression auto: zstd in the bundle).
    const ds = await generateDockerSave(path.join(WORK, 'docker-save'));
    if (ds.size < ds.layerBytes)
      throw new Error(
        `docker-save input ${ds.size} B is smaller than its layer tars (${ds.layerBytes} B): layers are not stored uncompressed`,
      );
    const dsStore = path.join(WORK, 'docker-save-store');
    const dsBundle = path.join(WORK, 'docker-save.ferry');
    const dsSources = ds.refs.map((r) => `docker-archive:${ds.file}:${r}`);
    const dsBundleRuns: Timed[] = [];
    const dsVerifyRuns: Timed[] = [];
    /** The same verify with the in-process decoder (fzstd), as on a far side without a zstd command. */
    const dsVerifyJsRuns: Timed[] = [];
    for (let i = 0; i < RUNS; i++) {
      await rm(dsStore, { recursive: true, force: true });
      await rm(dsBundle, { force: true });
      dsBundleRuns.push(
        await run(process.execPath, [CLI, 'bundle', ...dsSources, '--store', dsStore, '-o', dsBundle, '--compression', 'auto', '--json'], {
          trackRss: true,
        }),
      );
      dsVerifyRuns.push(await run(process.execPath, [CLI, 'verify', dsBundle, '--json'], { trackRss: true }));
      dsVerifyJsRuns.push(await run(process.execPath, [CLI, 'verify', dsBundle, '--json'], { trackRss: true, env: { FERRY_ZSTD: 'js' } }));
      console.log(
        `run ${i + 1}: docker-save bundle ${s(dsBundleRuns.at(-1)!.ms)}, verify ${s(dsVerifyRuns.at(-1)!.ms)} (zstd CLI) / ${s(dsVerifyJsRuns.at(-1)!.ms)} (fzstd)`,
      );
    }
    const dsBundleSize = (await stat(dsBundle)).size;
    const maxOf = (rs: Timed[], k: 'peakRssBytes' | 'childPeakRssBytes'): number => Math.max(...rs.map((r) => r[k] ?? 0));
    const dockerSave = {
      inputBytes: ds.size,
      layerBytes: ds.layerBytes,
      textBytes: ds.textBytes,
      randomBytes: ds.randomBytes,
      images: ds.refs.length,
      bundleBytes: dsBundleSize,
      ratio: dsBundleSize / ds.size,
      bundleMs: Math.min(...dsBundleRuns.map((r) => r.ms)),
      bundlePeakRssBytes: maxOf(dsBundleRuns, 'peakRssBytes'),
      zstdPeakRssBytes: maxOf(dsBundleRuns, 'childPeakRssBytes'),
      verifyMs: Math.min(...dsVerifyRuns.map((r) => r.ms)),
      verifyPeakRssBytes: maxOf(dsVerifyRuns, 'peakRssBytes'),
      verifyChildPeakRssBytes: maxOf(dsVerifyRuns, 'childPeakRssBytes'),
      verifyJsMs: Math.min(...dsVerifyJsRuns.map((r) => r.ms)),
      verifyJsPeakRssBytes: maxOf(dsVerifyJsRuns, 'peakRssBytes'),
    };
    const pct = (n: number, d: number): string => `${((n / d) * 100).toFixed(1)}%`;
    const met = (ok: boolean): string => (ok ? '**met**' : '**missed**');
    const dsTable = [
      `Same run. Input: a \`docker save\`-style archive (legacy layout, plain uncompressed layer tars) of ${ds.refs.length} images sharing layers, generated by \`scripts/corpus/bench-2g.ts\`: ${mb(ds.size)}, of which ${mb(ds.layerBytes)} layer tars (input ≥ layer bytes: layers stored uncompressed). Layer file content: ${pct(ds.textBytes, ds.textBytes + ds.randomBytes)} text-like, ${pct(ds.randomBytes, ds.textBytes + ds.randomBytes)} incompressible (see below). \`ferry bundle docker-archive:FILE:REF… --compression auto\` (into a fresh store, then zstd -9 per layer inside the bundle), best of ${RUNS}.`,
      '',
      '| measurement | input | ferry | ratio | target |',
      '| --- | --- | --- | --- | --- |',
      `| bundle size vs docker save input | ${mb(ds.size)} | ${mb(dsBundleSize)} | **${(dockerSave.ratio * 100).toFixed(1)}%** of the input | < 50%: ${met(dockerSave.ratio < 0.5)} |`,
      `| bundle time (import into store + compress + write) | | ${s(dockerSave.bundleMs)} | | |`,
      `| peak RSS: bundle (ferry process / zstd children) | | ${mb(dockerSave.bundlePeakRssBytes)} / ${mb(dockerSave.zstdPeakRssBytes)} | | < 200 MB (ferry): ${met(dockerSave.bundlePeakRssBytes < 200e6)} |`,
      `| \`ferry verify\` of that bundle (restores every zstd layer and checks its digest) | | ${s(dockerSave.verifyMs)}, peak RSS ${mb(dockerSave.verifyPeakRssBytes)} / ${mb(dockerSave.verifyChildPeakRssBytes)} | | passes |`,
      `| the same verify with the in-process decoder (\`FERRY_ZSTD=js\`: fzstd, as on a host without \`zstd\`) vs the \`zstd\` CLI | ${s(dockerSave.verifyMs)} (CLI) | ${s(dockerSave.verifyJsMs)}, peak RSS ${mb(dockerSave.verifyJsPeakRssBytes)} | **${(dockerSave.verifyJsMs / dockerSave.verifyMs).toFixed(2)}x** the CLI's time | passes; the CLI is kept where present (faster), fzstd where not |`,
    ].join('\n');
    console.log(`${dsTable}\n`);

    // One ≥ 2 GB layer: pull into a store, bundle (auto and none), verify; one run each.
    const big = await generateBigLayerLayout(path.join(WORK, 'big-2g'));
    const bigStore = path.join(WORK, 'big-2g-store');
    await rm(bigStore, { recursive: true, force: true });
    const bigPull = await run(process.execPath, [CLI, 'pull', '--json', '--store', bigStore, `oci:${big.dir}:${big.ref}`], {
      trackRss: true,
    });
    console.log(`2 GB layer: pull ${s(bigPull.ms)} (peak RSS ${mb(bigPull.peakRssBytes ?? 0)})`);
    const bigRows: Array<{ compression: string; bundle: Timed; size: number; verify: Timed }> = [];
    for (const compression of ['auto', 'none']) {
      const f = path.join(WORK, `big-2g-${compression}.ferry`);
      await rm(f, { force: true });
      const bundle = await run(
        process.execPath,
        [CLI, 'bundle', '--from-store', '--store', bigStore, '-o', f, '--compression', compression, '--json'],
        { trackRss: true },
      );
      const size = (await stat(f)).size;
      const verify = await run(process.execPath, [CLI, 'verify', f, '--json'], { trackRss: true });
      bigRows.push({ compression, bundle, size, verify });
      console.log(
        `2 GB layer, --compression ${compression}: bundle ${s(bundle.ms)} (peak RSS ${mb(bundle.peakRssBytes ?? 0)}, zstd ${mb(bundle.childPeakRssBytes ?? 0)}) → ${mb(size)}; verify ${s(verify.ms)} (peak RSS ${mb(verify.peakRssBytes ?? 0)})`,
      );
      await rm(f, { force: true });
    }
    await rm(bigStore, { recursive: true, force: true });
    const bigResults = {
      layerBytes: big.layerSize,
      pullMs: bigPull.ms,
      pullPeakRssBytes: bigPull.peakRssBytes,
      runs: bigRows.map((r) => ({
        compression: r.compression,
        bundleMs: r.bundle.ms,
        bundlePeakRssBytes: r.bundle.peakRssBytes,
        zstdPeakRssBytes: r.bundle.childPeakRssBytes,
        bundleBytes: r.size,
        verifyMs: r.verify.ms,
        verifyPeakRssBytes: r.verify.peakRssBytes,
        verifyChildPeakRssBytes: r.verify.childPeakRssBytes,
      })),
    };
    const bigTable = [
      `Same run, one run each. Input: an OCI layout with one image whose only layer is an uncompressed \`application/vnd.oci.image.layer.v1.tar\` of ${mb(big.layerSize)} (8 files of 256 MiB, each a 1 MiB pseudo-random block repeated, generated by \`scripts/corpus/bench-2g.ts\`), pulled with \`ferry pull oci:DIR:REF\` into a fresh store, then \`ferry bundle --from-store\`, then \`ferry verify\`. Peak RSS is the ferry process's VmHWM (worker threads included); zstd runs as a child process and its RSS is shown separately.`,
      '',
      '| step | time | ferry peak RSS | zstd child RSS | output | target (ferry RSS) |',
      '| --- | --- | --- | --- | --- | --- |',
      `| \`ferry pull oci:…\` into the store | ${s(bigPull.ms)} | ${mb(bigPull.peakRssBytes ?? 0)} | | | < 200 MB: ${met((bigPull.peakRssBytes ?? 0) < 200e6)} |`,
      ...bigRows.flatMap((r) => [
        `| \`ferry bundle --compression ${r.compression}\` | ${s(r.bundle.ms)} | ${mb(r.bundle.peakRssBytes ?? 0)} | ${r.compression === 'none' ? '–' : mb(r.bundle.childPeakRssBytes ?? 0)} | ${mb(r.size)} bundle | < 200 MB: ${met((r.bundle.peakRssBytes ?? 0) < 200e6)} |`,
        `| \`ferry verify\` of that bundle | ${s(r.verify.ms)} | ${mb(r.verify.peakRssBytes ?? 0)} | ${r.compression === 'none' ? '–' : mb(r.verify.childPeakRssBytes ?? 0)} | passes | < 200 MB: ${met((r.verify.peakRssBytes ?? 0) < 200e6)} |`,
      ]),
    ].join('\n');
    console.log(`${bigTable}\n`);
    await writeFile(
      path.join(WORK, 'results.json'),
      JSON.stringify(
        { ...results, bundle: bundleResults, serve: serveResults, load: load.results, dockerSave, bigLayer: bigResults },
        null,
        2,
      ),
    );
    if (process.argv.includes('--write-docs')) {
      await writeDocs({
        pull: table,
        bundle: bundleTable,
        serve: serveTable,
        load: load.table,
        'docker-save': dsTable,
        'big-layer': bigTable,
      });
    }
    await runScale();
    await runPlan();
    await runDiff();
    await runStore();
    await runVolumes();
  } finally {
    await reg.stop();
    await cleanupHarness();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
