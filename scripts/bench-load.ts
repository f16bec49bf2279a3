/**
 * The `ferry load` / `ferry mirror` section of `npm run bench` (called from scripts/bench.ts, or
 * alone with FERRY_BENCH_ONLY=load). On the bench corpus, in the same run, best of RUNS:
 *
 * 1. `ferry load BUNDLE --to docker://HOST` into an empty docker-registry (a fresh one per run)
 *    vs a skopeo copy loop `oci:LAYOUT:NAME → docker://HOST/REPO:TAG` out of the layout the pull
 *    section wrote (its entries are named `repo_tag`: skopeo's oci: transport cannot address the
 *    names in ferry's store, `127.0.0.1:PORT/repo:tag`, because of the colons); plus
 *    `ferry load oci:STORE --to docker://HOST`.
 * 2. A second `ferry load` of the same bundle into the now-full registry.
 * 3. `ferry mirror` of every corpus image from the seeded registry into an empty one vs a skopeo
 *    copy loop registry → registry; plus a second mirror (nothing changed).
 * 4. `ferry load BUNDLE --to docker-daemon:SOCKET` into a private dockerd vs `docker load -i TAR`
 *    of a `docker save` tar of the same images (made once, after an untimed ferry load); every
 *    image is removed between runs.
 *
 * Every result is checked: registry destinations by `skopeo inspect --raw` of every image (its
 * sha256 must be the corpus digest) plus ferry's report (no failures, every image, mapping
 * digests, nothing sent on a second run); Docker Engine by `docker image inspect` of every image
 * (its ID must be the config digest of the corpus manifest, amd64 child for the index).
 */
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { CorpusManifest } from './corpus/generate.js';
import { capture, mb, run, s, type Timed } from './bench-util.js';
import { startDockerd } from '../test/harness/engines.js';
import { startRegistry, type RunningRegistry } from '../test/harness/registry.js';

export interface LoadBenchContext {
  cli: string;
  work: string;
  runs: number;
  corpus: CorpusManifest;
  corpusDir: string;
  /** host:port of the docker-registry the corpus was pushed into. */
  srcHost: string;
  /** The bundle of the bundle section (`ferry bundle --from-store` of the pull section's store). */
  bundleFile: string;
  /** The ferry store the pull section wrote. */
  storeDir: string;
  /** The OCI layout the pull section's skopeo loop wrote (entries named `repo_tag`). */
  skopeoLayout: string;
  /** How the bundle was made, for the table (default: by the bundle section). */
  bundleOrigin?: string;
}

interface Report {
  images?: Array<{ name: string; status: string; skipped?: boolean; destination?: string; destinationDigest?: string }>;
  failures?: unknown[];
  blobs?: { total: number; fetched: number; skipped: number; failed: number; bytesFetched: number; mounted?: number };
  mapping?: Record<string, { destination: string; digest: string }>;
}

const layoutName = (img: { repo: string; tag: string }): string => `${img.repo.replace(/\//g, '_')}_${img.tag}`;
const best = (xs: number[]): number => Math.min(...xs);
const met = (ok: boolean): string => (ok ? '**met**' : '**missed**');
const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

export async function benchLoad(ctx: LoadBenchContext): Promise<{ table: string; results: Record<string, unknown> }> {
  const { cli, corpus, runs } = ctx;
  const problems: string[] = [];
  let checks = 0;
  const check = (ok: boolean, what: string): void => {
    checks++;
    if (!ok) problems.push(what);
  };

  // Every image at a registry destination has the corpus digest (manifest or index bytes).
  const verifyRegistry = async (host: string, label: string): Promise<void> => {
    for (const img of corpus.images) {
      const raw = await capture('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${host}/${img.repo}:${img.tag}`]).catch(
        (e: unknown) => Buffer.from(String(e)),
      );
      const got = `sha256:${createHash('sha256').update(raw).digest('hex')}`;
      check(got === img.digest, `${label}: ${host}/${img.repo}:${img.tag} is ${got}, corpus has ${img.digest}`);
    }
  };
  // ferry's own report: every image done, no failures, the mapping names the corpus digests.
  const verifyReport = (t: Timed, label: string, opts: { nothingSent?: boolean; registry?: boolean }): void => {
    const r = (t.report ?? {}) as Report;
    check(r.failures?.length === 0, `${label}: report has failures: ${JSON.stringify(r.failures)}`);
    check(
      r.images?.length === corpus.images.length && r.images.every((i) => i.status === 'done'),
      `${label}: report images ${JSON.stringify(r.images?.map((i) => [i.name, i.status]))}`,
    );
    if (opts.registry) {
      const entries = Object.values(r.mapping ?? {});
      for (const img of corpus.images) {
        const e = entries.find((m) => m.destination.endsWith(`/${img.repo}:${img.tag}`));
        check(e?.digest === img.digest, `${label}: mapping for ${img.repo}:${img.tag} is ${JSON.stringify(e)}, corpus has ${img.digest}`);
      }
    }
    if (opts.nothingSent) {
      check(
        r.blobs?.fetched === 0 && r.blobs.bytesFetched === 0,
        `${label}: expected nothing sent, report blobs ${JSON.stringify(r.blobs)}`,
      );
      check(
        !!r.images?.every((i) => i.skipped),
        `${label}: expected every image skipped, got ${JSON.stringify(r.images?.map((i) => [i.name, i.skipped]))}`,
      );
    }
  };
  const withRegistry = async <T>(fn: (reg: RunningRegistry) => Promise<T>): Promise<T> => {
    const reg = await startRegistry();
    try {
      return await fn(reg);
    } finally {
      await reg.stop();
    }
  };
  const ferry = (args: string[]): Promise<Timed> => run(process.execPath, [cli, ...args, '--json'], { trackRss: true });

  // skopeo's oci: transport must be able to address the layout entries it reads.
  const layoutIndex = JSON.parse(await readFile(path.join(ctx.skopeoLayout, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  for (const img of corpus.images) {
    const e = layoutIndex.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === layoutName(img));
    if (e?.digest !== img.digest)
      throw new Error(`${ctx.skopeoLayout} has no entry ${layoutName(img)} with ${img.digest}: run the pull section first`);
  }
  const bundleBytes = (await stat(ctx.bundleFile)).size;

  // What the registry itself needs to take the corpus in: every blob of the corpus layout PUT with
  // curl (POST for a session, then one streamed PUT ?digest=), one after another, largest first.
  // No client can beat the largest blob's time; a one-at-a-time client cannot beat the sum.
  const hasCurl = (() => {
    try {
      execFileSync('curl', ['--version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  const corpusBlobsDir = path.join(ctx.corpusDir, 'blobs', 'sha256');
  const corpusBlobs = await Promise.all(
    (await readdir(corpusBlobsDir)).map(async (f) => ({ f, size: (await stat(path.join(corpusBlobsDir, f))).size })),
  );
  corpusBlobs.sort((a, b) => b.size - a.size);
  const floorAll: number[] = [];
  const floorLargest: number[] = [];
  const curlPutAll = async (reg: RunningRegistry): Promise<void> => {
    const started = process.hrtime.bigint();
    let largest = 0;
    for (const [i, { f }] of corpusBlobs.entries()) {
      const t = process.hrtime.bigint();
      const head = (
        await capture('curl', ['-sS', '-D', '-', '-o', '/dev/null', '-X', 'POST', `${reg.url}/v2/floor/blobs/uploads/`])
      ).toString();
      const loc = /^location:\s*(\S+)/im.exec(head)?.[1];
      if (!loc) throw new Error(`registry gave no upload Location: ${head}`);
      const url = `${loc.startsWith('http') ? loc : reg.url + loc}${loc.includes('?') ? '&' : '?'}digest=sha256:${f}`;
      const code = (
        await capture('curl', [
          '-sS',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '-X',
          'PUT',
          '-H',
          'Content-Type: application/octet-stream',
          '-T',
          path.join(corpusBlobsDir, f),
          url,
        ])
      ).toString();
      check(code === '201', `curl PUT of sha256:${f}: HTTP ${code}`);
      if (i === 0) largest = Number(process.hrtime.bigint() - t) / 1e6;
    }
    floorAll.push(Number(process.hrtime.bigint() - started) / 1e6);
    floorLargest.push(largest);
  };

  // 1 + 2: load into an empty registry, then again into the full one; skopeo loop oci: → registry.
  const loadFirst: Timed[] = [];
  const loadSecond: Timed[] = [];
  const loadStore: Timed[] = [];
  const skopeoLoad: number[] = [];
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? (['ferry', 'store', 'skopeo', 'floor'] as const) : (['floor', 'skopeo', 'store', 'ferry'] as const);
    for (const which of order) {
      if (which === 'floor' && !hasCurl) continue;
      await withRegistry(async (reg) => {
        const to = `docker://${reg.host}`;
        if (which === 'floor') {
          await curlPutAll(reg);
        } else if (which === 'ferry') {
          const t = await ferry(['load', ctx.bundleFile, '--to', to]);
          loadFirst.push(t);
          verifyReport(t, `load bundle run ${i + 1}`, { registry: true });
          await verifyRegistry(reg.host, `load bundle run ${i + 1}`);
          const t2 = await ferry(['load', ctx.bundleFile, '--to', to]);
          loadSecond.push(t2);
          verifyReport(t2, `second load run ${i + 1}`, { registry: true, nothingSent: true });
        } else if (which === 'store') {
          const t = await ferry(['load', `oci:${ctx.storeDir}`, '--to', to]);
          loadStore.push(t);
          verifyReport(t, `load oci:STORE run ${i + 1}`, { registry: true });
          await verifyRegistry(reg.host, `load oci:STORE run ${i + 1}`);
        } else {
          const started = process.hrtime.bigint();
          for (const img of corpus.images) {
            await run('skopeo', [
              '--insecure-policy',
              'copy',
              '--all',
              '--preserve-digests',
              '--dest-tls-verify=false',
              '-q',
              `oci:${ctx.skopeoLayout}:${layoutName(img)}`,
              `docker://${reg.host}/${img.repo}:${img.tag}`,
            ]);
          }
          skopeoLoad.push(Number(process.hrtime.bigint() - started) / 1e6);
          await verifyRegistry(reg.host, `skopeo oci→registry run ${i + 1}`);
        }
      });
    }
    console.log(
      `run ${i + 1}: skopeo loop oci:→registry ${s(skopeoLoad.at(-1)!)}, ferry load bundle ${s(loadFirst.at(-1)!.ms)} (peak RSS ${mb(loadFirst.at(-1)!.peakRssBytes ?? 0)}), second load ${s(loadSecond.at(-1)!.ms)}, ferry load oci:STORE ${s(loadStore.at(-1)!.ms)}${hasCurl ? `; registry floor: curl PUT of every blob ${s(floorAll.at(-1)!)}, largest alone ${s(floorLargest.at(-1)!)}` : ''}`,
    );
  }

  // 3: mirror registry → empty registry, then again; skopeo loop registry → registry.
  const srcRefs = corpus.images.map((img) => `${ctx.srcHost}/${img.repo}:${img.tag}`);
  const mirrorFirst: Timed[] = [];
  const mirrorSecond: Timed[] = [];
  const skopeoMirror: number[] = [];
  for (let i = 0; i < runs; i++) {
    const order = i % 2 === 0 ? (['ferry', 'skopeo'] as const) : (['skopeo', 'ferry'] as const);
    for (const which of order) {
      await withRegistry(async (reg) => {
        if (which === 'ferry') {
          const t = await ferry(['mirror', ...srcRefs, '--to', `docker://${reg.host}`]);
          mirrorFirst.push(t);
          verifyReport(t, `mirror run ${i + 1}`, { registry: true });
          await verifyRegistry(reg.host, `mirror run ${i + 1}`);
          const t2 = await ferry(['mirror', ...srcRefs, '--to', `docker://${reg.host}`]);
          mirrorSecond.push(t2);
          verifyReport(t2, `second mirror run ${i + 1}`, { registry: true, nothingSent: true });
        } else {
          const started = process.hrtime.bigint();
          for (const img of corpus.images) {
            await run('skopeo', [
              '--insecure-policy',
              'copy',
              '--all',
              '--preserve-digests',
              '--src-tls-verify=false',
              '--dest-tls-verify=false',
              '-q',
              `docker://${ctx.srcHost}/${img.repo}:${img.tag}`,
              `docker://${reg.host}/${img.repo}:${img.tag}`,
            ]);
          }
          skopeoMirror.push(Number(process.hrtime.bigint() - started) / 1e6);
          await verifyRegistry(reg.host, `skopeo registry→registry run ${i + 1}`);
        }
      });
    }
    console.log(
      `run ${i + 1}: skopeo loop registry→registry ${s(skopeoMirror.at(-1)!)}, ferry mirror ${s(mirrorFirst.at(-1)!.ms)} (peak RSS ${mb(mirrorFirst.at(-1)!.peakRssBytes ?? 0)}), second mirror ${s(mirrorSecond.at(-1)!.ms)}`,
    );
  }

  // 4: Docker Engine. Expected image IDs: the config digest of each image's manifest (amd64 child of an index).
  const blob = async (d: string): Promise<Record<string, unknown>> =>
    JSON.parse(await readFile(path.join(ctx.corpusDir, 'blobs', 'sha256', d.slice('sha256:'.length)), 'utf8')) as Record<string, unknown>;
  const expectedId = new Map<string, string>();
  const zstdImages: string[] = [];
  for (const img of corpus.images) {
    let m = await blob(img.digest);
    if (Array.isArray(m.manifests)) {
      const child = (m.manifests as Array<{ digest: string; platform?: { os: string; architecture: string } }>).find(
        (c) => c.platform?.os === 'linux' && c.platform.architecture === 'amd64',
      );
      if (!child) throw new Error(`${img.repo}:${img.tag}: no linux/amd64 child`);
      m = await blob(child.digest);
    }
    expectedId.set(`${img.repo}:${img.tag}`, (m.config as { digest: string }).digest);
    if ((m.layers as Array<{ mediaType: string }>).some((l) => /zstd/.test(l.mediaType))) zstdImages.push(`${img.repo}:${img.tag}`);
  }
  // dockerd 20.10 cannot load zstd layers; the bench corpus has none (gzip -1 throughout), so nothing is excluded.
  if (zstdImages.length > 0)
    throw new Error(`the bench corpus has zstd layers (${zstdImages.join(', ')}): exclude them from the docker-daemon rows`);
  const engine = await startDockerd();
  const dockerConfig = path.join(ctx.work, 'docker-client');
  await mkdir(dockerConfig, { recursive: true });
  await writeFile(path.join(dockerConfig, 'config.json'), '{}\n');
  const docker = (args: string[]): Promise<Timed> =>
    run('docker', ['-H', `unix://${engine.socket}`, ...args], { env: { DOCKER_CONFIG: dockerConfig } });
  const dockerOut = async (args: string[]): Promise<string> => (await engine.run(args)).stdout;
  const tarFile = path.join(ctx.work, 'docker-save.tar');
  const daemonFirst: Timed[] = [];
  const daemonSecond: Timed[] = [];
  const dockerLoad: number[] = [];
  let names: string[] = [];
  let tarBytes = 0;
  try {
    const clear = async (): Promise<void> => {
      const ids = (await dockerOut(['images', '-aq', '--no-trunc'])).split(/\s+/).filter(Boolean);
      if (ids.length > 0) await engine.run(['rmi', '-f', ...new Set(ids)]);
      const left = (await dockerOut(['images', '-aq'])).trim();
      if (left !== '') throw new Error(`images left in dockerd after rmi: ${left}`);
    };
    // The engine name of each corpus image, as ferry names it (from the bundle's names).
    const verifyDaemon = async (label: string): Promise<void> => {
      for (const img of corpus.images) {
        const name = names.find((n) => n.endsWith(`/${img.repo}:${img.tag}`));
        const id = name
          ? (await engine.run(['image', 'inspect', '--format', '{{.Id}}', name], { allowFailure: true })).stdout.trim()
          : 'no name';
        const want = expectedId.get(`${img.repo}:${img.tag}`);
        check(id === want, `${label}: ${name ?? img.repo}: image ID ${id}, corpus config ${want}`);
      }
      const count = (await dockerOut(['images', '-q'])).split(/\s+/).filter(Boolean).length;
      check(count === corpus.images.length, `${label}: ${count} images in dockerd, expected ${corpus.images.length}`);
    };
    const daemonTo = `docker-daemon:${engine.socket}`;
    // Untimed: one ferry load to learn the names and write the docker save tar of exactly those images.
    const prep = await ferry(['load', ctx.bundleFile, '--to', daemonTo]);
    names = Object.values((prep.report as Report | undefined)?.mapping ?? {}).map((m) => m.destination.replace(/^docker-daemon:/, ''));
    verifyReport(prep, 'load into dockerd (untimed, before docker save)', {});
    await verifyDaemon('load into dockerd (untimed)');
    await rm(tarFile, { force: true });
    await docker(['save', '-o', tarFile, ...names]);
    tarBytes = (await stat(tarFile)).size;
    for (let i = 0; i < runs; i++) {
      const order = i % 2 === 0 ? (['ferry', 'docker'] as const) : (['docker', 'ferry'] as const);
      for (const which of order) {
        await clear();
        if (which === 'ferry') {
          const t = await ferry(['load', ctx.bundleFile, '--to', daemonTo]);
          daemonFirst.push(t);
          verifyReport(t, `load into dockerd run ${i + 1}`, {});
          await verifyDaemon(`ferry load into dockerd run ${i + 1}`);
          const t2 = await ferry(['load', ctx.bundleFile, '--to', daemonTo]);
          daemonSecond.push(t2);
          verifyReport(t2, `second load into dockerd run ${i + 1}`, { nothingSent: true });
        } else {
          dockerLoad.push((await docker(['load', '-q', '-i', tarFile])).ms);
          await verifyDaemon(`docker load run ${i + 1}`);
        }
      }
      console.log(
        `run ${i + 1}: docker load -i ${s(dockerLoad.at(-1)!)}, ferry load --to docker-daemon ${s(daemonFirst.at(-1)!.ms)} (peak RSS ${mb(daemonFirst.at(-1)!.peakRssBytes ?? 0)}), second load ${s(daemonSecond.at(-1)!.ms)}`,
      );
    }
    await clear();
  } finally {
    await engine.stop();
    await rm(tarFile, { force: true });
  }

  const r = {
    registry: {
      skopeoLoopMs: best(skopeoLoad),
      ferryLoadMs: best(loadFirst.map((t) => t.ms)),
      speedup: best(skopeoLoad) / best(loadFirst.map((t) => t.ms)),
      ferryLoadStoreMs: best(loadStore.map((t) => t.ms)),
      storeSpeedup: best(skopeoLoad) / best(loadStore.map((t) => t.ms)),
      secondLoadMs: best(loadSecond.map((t) => t.ms)),
      secondLoadFraction: best(loadSecond.map((t) => t.ms)) / best(loadFirst.map((t) => t.ms)),
      ferryLoadWorkMs: best(loadFirst.map((t) => t.reportMs ?? NaN)),
      secondLoadWorkMs: best(loadSecond.map((t) => t.reportMs ?? NaN)),
      peakRssBytes: Math.max(...[...loadFirst, ...loadStore].map((t) => t.peakRssBytes ?? 0)),
      ...(hasCurl
        ? {
            curlPutAllMs: best(floorAll),
            curlPutLargestMs: best(floorLargest),
            largestBlobBytes: corpusBlobs[0]!.size,
            corpusLayoutBlobs: corpusBlobs.length,
            corpusLayoutBytes: corpusBlobs.reduce((n, b) => n + b.size, 0),
          }
        : {}),
      runsMs: {
        skopeo: skopeoLoad,
        ferry: loadFirst.map((t) => t.ms),
        second: loadSecond.map((t) => t.ms),
        store: loadStore.map((t) => t.ms),
      },
    },
    mirror: {
      skopeoLoopMs: best(skopeoMirror),
      ferryMs: best(mirrorFirst.map((t) => t.ms)),
      speedup: best(skopeoMirror) / best(mirrorFirst.map((t) => t.ms)),
      secondMs: best(mirrorSecond.map((t) => t.ms)),
      secondFraction: best(mirrorSecond.map((t) => t.ms)) / best(mirrorFirst.map((t) => t.ms)),
      ferryWorkMs: best(mirrorFirst.map((t) => t.reportMs ?? NaN)),
      secondWorkMs: best(mirrorSecond.map((t) => t.reportMs ?? NaN)),
      peakRssBytes: Math.max(...mirrorFirst.map((t) => t.peakRssBytes ?? 0)),
      runsMs: { skopeo: skopeoMirror, ferry: mirrorFirst.map((t) => t.ms), second: mirrorSecond.map((t) => t.ms) },
    },
    dockerDaemon: {
      dockerLoadMs: best(dockerLoad),
      ferryMs: best(daemonFirst.map((t) => t.ms)),
      ratio: best(daemonFirst.map((t) => t.ms)) / best(dockerLoad),
      secondMs: best(daemonSecond.map((t) => t.ms)),
      tarBytes,
      peakRssBytes: Math.max(...daemonFirst.map((t) => t.peakRssBytes ?? 0)),
      runsMs: { docker: dockerLoad, ferry: daemonFirst.map((t) => t.ms), second: daemonSecond.map((t) => t.ms) },
    },
    verified: { checks, passed: checks - problems.length, problems },
  };
  const reg = r.registry;
  const mir = r.mirror;
  const dd = r.dockerDaemon;
  const table = [
    `Same run, same corpus (${corpus.images.length} images, one a two-platform index; gzip layers only, none zstd, so no image is left out of the Docker rows), best of ${runs}, alternating which side goes first. Every registry destination is a fresh, empty docker-registry on loopback (started before the clock starts); the source bundle is ${ctx.bundleOrigin ?? 'the one the bundle section wrote'} (${mb(bundleBytes)}).`,
    '',
    `- skopeo, load: \`skopeo --insecure-policy copy --all --preserve-digests --dest-tls-verify=false oci:LAYOUT:NAME docker://HOST/REPO:TAG\` for every image, one after another, out of the layout the pull section's skopeo loop wrote (entries named \`repo_tag\`; skopeo 1.9's \`oci:\` transport cannot address the names in ferry's store, \`127.0.0.1:PORT/repo:tag\`, since a ref name may not contain \`:\`).`,
    `- skopeo, mirror: \`skopeo … copy --all --preserve-digests docker://SRC/REPO:TAG docker://DST/REPO:TAG\`, one image after another, from the docker-registry of the pull section.`,
    `- Docker Engine: a private dockerd 20.10 (vfs, own data-root and socket), all images removed between runs; \`docker load -q -i TAR\` of a \`docker save\` tar (${mb(tarBytes)}, uncompressed layers) of the same images, written once after an untimed \`ferry load\`. For the index only its linux/amd64 child is loaded, on both sides.`,
    '',
    `Runs: load — skopeo ${reg.runsMs.skopeo.map(s).join(', ')}; ferry ${reg.runsMs.ferry.map(s).join(', ')}; second ${reg.runsMs.second.map(s).join(', ')}; oci:STORE ${reg.runsMs.store.map(s).join(', ')}. Mirror — skopeo ${mir.runsMs.skopeo.map(s).join(', ')}; ferry ${mir.runsMs.ferry.map(s).join(', ')}; second ${mir.runsMs.second.map(s).join(', ')}. Docker — docker load ${dd.runsMs.docker.map(s).join(', ')}; ferry ${dd.runsMs.ferry.map(s).join(', ')}; second ${dd.runsMs.second.map(s).join(', ')}.`,
    '',
    '| measurement | reference | ferry | ratio | target |',
    '| --- | --- | --- | --- | --- |',
    `| load every image into an empty registry | ${s(reg.skopeoLoopMs)} (skopeo loop from \`oci:\`) | ${s(reg.ferryLoadMs)} (\`ferry load BUNDLE --to docker://HOST\`) | **${reg.speedup.toFixed(2)}x** faster | ≥ 2x: ${met(reg.speedup >= 2)} |`,
    `| the same from ferry's store | ${s(reg.skopeoLoopMs)} | ${s(reg.ferryLoadStoreMs)} (\`ferry load oci:STORE --to docker://HOST\`) | **${reg.storeSpeedup.toFixed(2)}x** faster | |`,
    `| second load of the bundle, everything present (wall clock, incl. Node start-up) | | ${s(reg.secondLoadMs)} | **${pct(reg.secondLoadFraction)}** of the first | < 10%: ${met(reg.secondLoadFraction < 0.1)} |`,
    `| second load (ferry's own report, start-up excluded) | | ${s(reg.secondLoadWorkMs)} | **${pct(reg.secondLoadWorkMs / reg.ferryLoadWorkMs)}** of the first's ${s(reg.ferryLoadWorkMs)} | |`,
    ...(hasCurl
      ? [
          `| for scale: the registry taking the blobs in, \`curl\` POST + one streamed PUT per blob, one after another (${corpusBlobs.length} blobs, ${mb(corpusBlobs.reduce((n, b) => n + b.size, 0))}) | ${s(best(floorAll))} | | skopeo loop = **${(reg.skopeoLoopMs / best(floorAll)).toFixed(2)}x** this | |`,
          `| for scale: the largest blob alone (${mb(corpusBlobs[0]!.size)}), the least any client can take | ${s(best(floorLargest))} | | no client can be more than **${(reg.skopeoLoopMs / best(floorLargest)).toFixed(2)}x** faster than the skopeo loop here | |`,
        ]
      : []),
    `| mirror every image registry → empty registry | ${s(mir.skopeoLoopMs)} (skopeo loop) | ${s(mir.ferryMs)} (\`ferry mirror REF… --to docker://HOST\`) | **${mir.speedup.toFixed(2)}x** faster | ≥ 2.5x: ${met(mir.speedup >= 2.5)} |`,
    `| second mirror, nothing changed (wall clock / ferry's report) | | ${s(mir.secondMs)} / ${s(mir.secondWorkMs)} | **${pct(mir.secondFraction)}** / ${pct(mir.secondWorkMs / mir.ferryWorkMs)} of the first | |`,
    `| load into Docker Engine | ${s(dd.dockerLoadMs)} (\`docker load -i\`) | ${s(dd.ferryMs)} (\`ferry load BUNDLE --to docker-daemon:SOCK\`) | **${dd.ratio.toFixed(2)}x** docker load's time | ≤ 1.3x: ${met(dd.ratio <= 1.3)} |`,
    `| second load into Docker Engine, everything present | | ${s(dd.secondMs)} | ${pct(dd.secondMs / dd.ferryMs)} of the first | |`,
    `| ferry peak RSS: load to registry / mirror / load to Docker | | ${mb(reg.peakRssBytes)} / ${mb(mir.peakRssBytes)} / ${mb(dd.peakRssBytes)} | | |`,
    `| results verified: \`skopeo inspect --raw\` digest = corpus digest for every image at every registry destination (both sides), ferry's report (no failures, mapping digests, nothing sent on second runs), Docker image ID = corpus config digest (both sides), every curl PUT answered 201 | | ${r.verified.passed} / ${r.verified.checks} checks pass | | all pass: ${met(problems.length === 0)} |`,
  ].join('\n');
  if (problems.length > 0) {
    console.log(table);
    throw new Error(`load/mirror results do not match the corpus:\n${problems.join('\n')}`);
  }
  return { table, results: r };
}
