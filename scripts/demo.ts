/**
 * npm run demo: ferry's main job, offline, needing nothing but `npm ci`.
 *
 * 1. Generate a small deterministic set of images (an OCI layout; two single-platform images
 *    and a linux/amd64 + linux/arm64 index) in .demo/source.
 * 2. Serve it with `ferry serve` on a loopback port: the source registry.
 * 3. `ferry plan -p profiles/demo.yaml -o .demo/demo.lock.json`: what the profile selects (tag
 *    filters over the served tag list), pinned in a lock file.
 * 4. `ferry pull --lock` into .demo/store, then one platform into .demo/store-arm64, then
 *    pull the profile again to show nothing is fetched twice.
 * 5. Check every digest in the stores against the source and print a summary.
 * 6. Bundle the lock into one file (recording which plan it came from), verify it and inspect it.
 * 7. The far side: load the bundle into a fresh OCI layout (checked first, every blob verified
 *    as it streams), with a mapping file; load again to show nothing is redone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { generateCorpus } from './corpus/generate.js';
import { OciLayout } from '../src/transports/oci/layout.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist', 'bin', 'ferry.mjs');
const WORK = path.join(ROOT, '.demo');

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function step(title: string): void {
  console.log(`\n${bold(`== ${title}`)}`);
}

/** The served registry, as profiles/demo.yaml reads it (${FERRY_DEMO_REGISTRY}). */
let demoRegistry = '';

function ferry(args: string[], opts: { echo?: boolean } = {}): Promise<{ code: number | null; stdout: string }> {
  console.log(`$ ferry ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, CI: '1', FERRY_DEMO_REGISTRY: demoRegistry },
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.echo !== false) process.stdout.write(d);
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

async function startServe(dir: string): Promise<{ host: string; child: ChildProcess }> {
  console.log(`$ ferry serve oci:${path.relative(ROOT, dir)} --listen 127.0.0.1:0`);
  const child = spawn(process.execPath, [CLI, 'serve', `oci:${dir}`, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stderr!.resume(); // access log; not shown
  const lines = createInterface({ input: child.stdout! });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('ferry serve did not start within 15 s')), 15_000);
    child.on('exit', (code) => reject(new Error(`ferry serve exited with ${code}`)));
    lines.on('line', (line) => {
      console.log(`  ${line}`);
      const m = /Serving https?:\/\/(\S+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ host: m[1]!, child });
      }
    });
  });
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error('dist/bin/ferry.mjs is missing; `npm ci` builds it (or run `npm run build`)');
  await rm(WORK, { recursive: true, force: true });
  const source = path.join(WORK, 'source');

  step('1. Generate demo images (deterministic, offline)');
  const corpus = await generateCorpus(source, 'demo');
  for (const i of corpus.images)
    console.log(`  ${i.ref.padEnd(22)} ${i.kind.padEnd(10)} ${(i.platforms ?? []).join(', ').padEnd(24)} ${i.digest}`);

  step("2. Serve them with ferry's read-only registry");
  const { host, child: server } = await startServe(source);
  demoRegistry = host;
  console.log(`  (FERRY_DEMO_REGISTRY=${host}: profiles/demo.yaml names its images there)`);
  try {
    const rel = (p: string): string => path.relative(process.cwd(), p);
    const profile = rel(path.join(ROOT, 'profiles', 'demo.yaml'));
    const lockFile = rel(path.join(WORK, 'demo.lock.json'));
    const store = path.join(WORK, 'store');
    const digestOf = (name: string): string | undefined => corpus.images.find((i) => `${host}/${i.repo}:${i.tag}` === name)?.digest;

    step('3. Plan the profile: tag filters over the served tags, every image pinned in a lock file');
    const planned = await ferry(['plan', '-p', profile, '-o', lockFile]);
    if (planned.code !== 0) throw new Error(`ferry plan exited ${planned.code}`);
    const lock = JSON.parse(await readFile(lockFile, 'utf8')) as { images: Array<{ name: string; digest: string }> };
    const names = lock.images.map((i) => i.name);
    const want = ['ferry-demo/base:1', 'ferry-demo/app:1.1.0', 'ferry-demo/app:1.0.1', 'ferry-demo/hello:1'].map((n) => `${host}/${n}`);
    if (JSON.stringify(names) !== JSON.stringify(want))
      throw new Error(`the plan selected ${names.join(', ')}; expected ${want.join(', ')}`);

    step('4. Pull exactly what the lock pinned into an OCI layout store');
    const first = await ferry(['pull', '--lock', lockFile, '--store', rel(store)]);
    if (first.code !== 0) throw new Error(`ferry pull exited ${first.code}`);

    step('5. Pull one platform only: the index is rewritten, the published digest is kept');
    const multi = corpus.images.find((i) => i.kind === 'oci-index')!;
    const armStore = path.join(WORK, 'store-arm64');
    const arm = await ferry(['pull', `${host}/${multi.repo}:${multi.tag}`, '--platform', 'linux/arm64', '--store', rel(armStore)]);
    if (arm.code !== 0) throw new Error(`ferry pull --platform exited ${arm.code}`);

    step('6. Pull the profile again: everything is already there, nothing is fetched');
    const again = await ferry(['pull', '-p', profile, '--store', rel(store), '--json'], { echo: false });
    const report = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as {
      blobs: { fetched: number; skipped: number };
      durationMs: number;
    };
    console.log(`  --json report: ${report.blobs.fetched} blobs fetched, ${report.blobs.skipped} already present, ${report.durationMs} ms`);
    if (again.code !== 0 || report.blobs.fetched !== 0) throw new Error('the second pull fetched blobs');

    step('7. Check: every digest in the store is the published one');
    const layout = await OciLayout.open(store);
    const entries = (await layout.readIndex()).manifests;
    let ok = true;
    for (const name of names) {
      const entry = entries.find((e) => e.annotations?.['org.opencontainers.image.ref.name'] === name);
      const same = entry !== undefined && entry.digest === digestOf(name);
      ok &&= same;
      console.log(`  ${same ? 'ok  ' : 'FAIL'} ${name} ${entry?.digest ?? '(missing)'}`);
      // Re-read the manifest through the store, verifying its bytes against the digest.
      if (entry) await layout.readBlobBytes(entry, name);
    }
    const armEntry = (await (await OciLayout.open(armStore)).readIndex()).manifests[0]!;
    console.log(
      `  arm64-only index ${armEntry.digest}, published index recorded as ${armEntry.annotations?.['dev.ferry.original-index.digest']}`,
    );
    ok &&= armEntry.annotations?.['dev.ferry.original-index.digest'] === multi.digest;
    if (!ok) throw new Error('digest check failed');

    step('8. Bundle the lock into one file (nothing to fetch: the store has it all), verify it, inspect it');
    const bundleFile = rel(path.join(WORK, 'images.ferry'));
    const b = await ferry(['bundle', '--lock', lockFile, '--store', rel(store), '-o', bundleFile]);
    if (b.code !== 0) throw new Error(`ferry bundle exited ${b.code}`);
    const v = await ferry(['verify', bundleFile]);
    if (v.code !== 0) throw new Error(`ferry verify exited ${v.code}`);
    await ferry(['inspect', bundleFile]);

    step('9. Far side: load the bundle into a fresh OCI layout, then load it again');
    const farSide = rel(path.join(WORK, 'far-side'));
    const mappingFile = rel(path.join(WORK, 'loaded.json'));
    const l = await ferry(['load', bundleFile, '--to', `oci:${farSide}`, '--mapping', mappingFile]);
    if (l.code !== 0) throw new Error(`ferry load exited ${l.code}`);
    const reload = await ferry(['load', bundleFile, '--to', `oci:${farSide}`]);
    if (reload.code !== 0) throw new Error(`ferry load (again) exited ${reload.code}`);
    const mapping = JSON.parse(await readFile(mappingFile, 'utf8')) as Record<string, { destination: string; digest: string }>;
    for (const name of names) {
      const got = mapping[name];
      const same = got !== undefined && got.digest === digestOf(name);
      ok &&= same;
      console.log(`  ${same ? 'ok  ' : 'FAIL'} ${got?.destination ?? `${name} (missing)`} ${got?.digest ?? ''}`);
    }
    if (!ok) throw new Error('the far side does not hold the published digests');

    step('Done');
    console.log(
      `  The store at ${path.relative(process.cwd(), store)} is a standard OCI image layout (oci-layout, index.json, blobs/sha256).`,
    );
    console.log('  skopeo, podman, crane and oras read it; `ferry serve oci:DIR` serves it as a registry.');
  } finally {
    server.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
