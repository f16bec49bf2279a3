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
 * against the first. Results go to .bench/results.json and, with --write-docs, into
 * docs/benchmarks.md between the BENCH markers.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateCorpus } from './corpus/generate.js';
import { pushCorpus } from './corpus/push.js';
import { startRegistry } from '../test/harness/registry.js';
import { cleanupHarness } from '../test/harness/temp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WORK = path.join(ROOT, '.bench');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');
const RUNS = Number(process.env.BENCH_RUNS ?? 2);

interface Timed {
  ms: number;
  peakRssBytes?: number;
  /** For `ferry --json`: the report's durationMs (the work, without process start-up). */
  reportMs?: number;
}

function run(cmd: string, args: string[], opts: { trackRss?: boolean } = {}): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out = (out + d.toString()).slice(-256 * 1024);
    });
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    let peak = 0;
    const poll = opts.trackRss
      ? setInterval(() => {
          readFile(`/proc/${child.pid}/status`, 'utf8').then(
            (s) => {
              const m = /VmHWM:\s+(\d+) kB/.exec(s);
              if (m) peak = Math.max(peak, Number(m[1]) * 1024);
            },
            () => {},
          );
        }, 20)
      : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (poll) clearInterval(poll);
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${stderr}`));
      else {
        let reportMs: number | undefined;
        try {
          const r = JSON.parse(out.trim().split('\n').at(-1) ?? '') as { type?: string; durationMs?: number };
          if (r.type === 'report') reportMs = r.durationMs;
        } catch {
          // not a ferry --json run
        }
        resolve({ ms, ...(opts.trackRss ? { peakRssBytes: peak } : {}), ...(reportMs !== undefined ? { reportMs } : {}) });
      }
    });
  });
}

const mb = (n: number): string => `${(n / 1e6).toFixed(1)} MB`;
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error('dist/cli/main.js is missing: npm run build');
  await mkdir(WORK, { recursive: true });
  const corpusDir = path.join(WORK, 'corpus');
  const t0 = Date.now();
  const corpus = await generateCorpus(corpusDir, 'bench');
  console.log(`corpus: ${corpus.images.length} images, ${corpus.blobCount} blobs, ${mb(corpus.uniqueBlobBytes)} unique, largest layer ${mb(corpus.largestLayer.size)} (${s(Date.now() - t0)})`);

  const reg = await startRegistry({ storageDir: path.join(WORK, 'registry') });
  try {
    await pushCorpus(corpusDir, corpus, reg.host, { insecure: true });
    const refs = corpus.images.map((i) => `${reg.host}/${i.repo}:${i.tag}`);
    const skopeoTimes: number[] = [];
    const ferryRuns: Timed[] = [];
    let second: Timed | undefined;
    for (let i = 0; i < RUNS; i++) {
      const sDir = path.join(WORK, 'skopeo-layout');
      await rm(sDir, { recursive: true, force: true });
      const started = Date.now();
      for (const img of corpus.images) {
        await run('skopeo', ['--insecure-policy', 'copy', '--all', '--preserve-digests', '--src-tls-verify=false', '-q', `docker://${reg.host}/${img.repo}:${img.tag}`, `oci:${sDir}:${img.repo.replace(/\//g, '_')}_${img.tag}`]);
      }
      skopeoTimes.push(Date.now() - started);

      const fDir = path.join(WORK, 'ferry-store');
      await rm(fDir, { recursive: true, force: true });
      ferryRuns.push(await run(process.execPath, [CLI, 'pull', '--json', '--store', fDir, ...refs], { trackRss: true }));
      second = await run(process.execPath, [CLI, 'pull', '--json', '--store', fDir, ...refs], { trackRss: true });
      console.log(`run ${i + 1}: skopeo loop ${s(skopeoTimes.at(-1)!)}, ferry pull ${s(ferryRuns.at(-1)!.ms)} (peak RSS ${mb(ferryRuns.at(-1)!.peakRssBytes ?? 0)}), second pull ${s(second.ms)}`);
    }
    const bestSkopeo = Math.min(...skopeoTimes);
    const bestFerry = ferryRuns.reduce((a, b) => (b.ms < a.ms ? b : a));
    const peak = Math.max(...ferryRuns.map((r) => r.peakRssBytes ?? 0), second?.peakRssBytes ?? 0);
    const results = {
      date: new Date().toISOString(),
      machine: `${process.platform} ${process.arch}, node ${process.version}`,
      corpus: { images: corpus.images.length, blobs: corpus.blobCount, uniqueBytes: corpus.uniqueBlobBytes, largestLayer: corpus.largestLayer.size },
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
      bundleRuns.push(await run(process.execPath, [CLI, 'bundle', '--from-store', '--store', store, '-o', bundleFile, '--json'], { trackRss: true }));
      shaTimes.push((await run('sha256sum', [bundleFile])).ms);
      verifyRuns.push(await run(process.execPath, [CLI, 'verify', bundleFile, '--json'], { trackRss: true }));
      console.log(`run ${i + 1}: tar -cf ${s(tarTimes.at(-1)!)}, ferry bundle ${s(bundleRuns.at(-1)!.ms)}, sha256sum ${s(shaTimes.at(-1)!)}, ferry verify ${s(verifyRuns.at(-1)!.ms)}`);
    }
    const { stat } = await import('node:fs/promises');
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
      `| second pull, nothing new (wall clock, incl. ~0.2 s Node start-up) | | ${s(second!.ms)} | **${(results.pull.secondPullFraction * 100).toFixed(1)}%** of the first | < 10% |`,
      `| second pull, nothing new (ferry's own report, start-up excluded) | | ${s(second!.reportMs ?? NaN)} | **${(results.pull.secondPullWorkFraction * 100).toFixed(1)}%** of the first's ${s(bestFerry.reportMs ?? NaN)} | < 10% |`,
    ].join('\n');
    console.log('\n' + table + '\n\n' + bundleTable + '\n');
    if (process.argv.includes('--write-docs')) {
      const doc = path.join(ROOT, 'docs', 'benchmarks.md');
      const text = await readFile(doc, 'utf8');
      const next = text
        .replace(/<!-- BENCH:pull -->[\s\S]*<!-- \/BENCH:pull -->/, `<!-- BENCH:pull -->\n${table}\n<!-- /BENCH:pull -->`)
        .replace(/<!-- BENCH:bundle -->[\s\S]*<!-- \/BENCH:bundle -->/, `<!-- BENCH:bundle -->\n${bundleTable}\n<!-- /BENCH:bundle -->`);
      await writeFile(doc, next);
      console.log('docs/benchmarks.md updated');
    }
  } finally {
    await reg.stop();
    await cleanupHarness();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
