/**
 * The store section of `npm run bench` (alone with FERRY_BENCH_ONLY=store): `ferry store ls`,
 * `df`, `verify`, `rm` and `gc` on a store of N and 4N images (N = STORE_N, default 1,000: 4,000
 * at 4N), generated straight into an OCI layout (one shared base layer, one own layer and config
 * each, as the scale corpus). Linear target: each step at 4N at most 5x its time at N. After rm of
 * half the names and gc, every remaining name must be intact (`ferry store verify` exit 0) and
 * gc must have freed exactly the removed images' own blobs.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { capture, mb, run, s, type Timed } from './bench-util.js';

export interface StoreBenchContext {
  cli: string;
  work: string;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** An OCI layout of `n` single-platform images: names scale/appK:vJ (four tags per repository). */
async function generateStore(dir: string, n: number): Promise<{ ownBytes: number }> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = async (b: Buffer): Promise<string> => {
    const h = sha(b);
    await writeFile(path.join(dir, 'blobs', 'sha256', h), b);
    return `sha256:${h}`;
  };
  const base = Buffer.from('the base layer every image shares\n'.repeat(2048));
  const baseDigest = await put(base);
  const manifests: unknown[] = [];
  let ownBytes = 0;
  for (let i = 0; i < n; i++) {
    const own = Buffer.from(`image ${i}\n`.repeat(64));
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [] },
        config: { Labels: { i: String(i) } },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: await put(config), size: config.length },
        layers: [
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: baseDigest, size: base.length },
          { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: await put(own), size: own.length },
        ],
      }),
    );
    if (i % 2 === 1) ownBytes += own.length + config.length + manifest.length;
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: await put(manifest),
      size: manifest.length,
      annotations: {
        'org.opencontainers.image.ref.name': `registry.local/scale/app${Math.floor(i / 4)}:v${i % 4}${i % 2 === 1 ? '-odd' : ''}`,
      },
    });
  }
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  return { ownBytes };
}

const STEPS = [
  ['ls', '`ferry store ls --json`'],
  ['df', '`ferry store df`'],
  ['verify', '`ferry store verify` (rehash every blob)'],
  ['rm', "`ferry store rm '*-odd'` (half the names)"],
  ['gc', "`ferry store gc` (frees the removed images' own blobs)"],
] as const;

export async function benchStore(ctx: StoreBenchContext): Promise<{ table: string; results: Record<string, unknown> }> {
  const n = Number(process.env.STORE_N ?? 1000);
  const dir = path.join(ctx.work, 'store-bench');
  await rm(dir, { recursive: true, force: true });
  const problems: string[] = [];
  const results: Record<number, Record<string, Timed>> = {};
  try {
    for (const count of [n, 4 * n]) {
      const store = path.join(dir, `store-${count}`);
      const { ownBytes } = await generateStore(store, count);
      const ferry = (args: string[]): Promise<Timed> =>
        run(process.execPath, [ctx.cli, 'store', ...args, '--store', store], { trackRss: true });
      const r: Record<string, Timed> = {};
      r.ls = await ferry(['ls', '--json']);
      r.df = await ferry(['df']);
      r.verify = await ferry(['verify']);
      r.rm = await ferry(['rm', '*-odd']);
      const t0 = process.hrtime.bigint();
      const gcOut = await capture(process.execPath, [ctx.cli, 'store', 'gc', '--json', '--store', store]);
      r.gc = { ms: Number(process.hrtime.bigint() - t0) / 1e6 };
      const freed = (JSON.parse(gcOut.toString().trim().split('\n').at(-1)!) as { bytesFreed?: number }).bytesFreed;
      if (freed !== undefined && freed !== ownBytes) problems.push(`${count}: gc freed ${freed} bytes, the removed images own ${ownBytes}`);
      await run(process.execPath, [ctx.cli, 'store', 'verify', '--store', store]).catch((e: unknown) =>
        problems.push(`${count}: verify after gc: ${String(e)}`),
      );
      results[count] = r;
      console.log(`store ${count}: ${STEPS.map(([k]) => `${k} ${s(r[k]!.ms)}`).join(', ')}`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  const a = results[n]!;
  const b = results[4 * n]!;
  const rows = STEPS.map(([k, label]) => {
    const ratio = b[k]!.ms / a[k]!.ms;
    const rss = b[k]!.peakRssBytes;
    return `| ${label} | ${s(a[k]!.ms)} | ${s(b[k]!.ms)} | ${ratio.toFixed(2)}x | ≤ 5x: ${ratio <= 5 ? '**met**' : '**missed**'} | ${rss ? mb(rss) : '-'} |`;
  });
  const table = [
    `A store of N and 4N images generated straight into an OCI layout (\`scripts/bench-store.ts\`, \`FERRY_BENCH_ONLY=store\`: one shared 70 KB base layer, one own layer and config each), then, in order, each step below, one run each. After gc every remaining name verifies and gc freed exactly the removed images' own bytes: ${problems.length === 0 ? 'all checks pass' : `**failed**: ${problems.join('; ')}`}.`,
    '',
    `| step | ${n} images | ${4 * n} images | ratio | target | peak RSS at ${4 * n} |`,
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
  ].join('\n');
  if (problems.length > 0) throw new Error(`store bench: ${problems.join('; ')}\n${table}`);
  return { table, results: { n, [n]: a, [4 * n]: b } };
}
