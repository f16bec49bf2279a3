/**
 * Generate a test-image corpus as an OCI image layout, optionally pushing it to a registry.
 *
 *   node --import tsx scripts/fixtures.ts OUTDIR [small|bench|demo] [--no-zstd] [--force]
 *        [--push HOST[:PORT] [--insecure | --ca-dir DIR]]
 *
 * Push credentials, if the registry needs them, come from FERRY_FIXTURES_USERNAME and
 * FERRY_FIXTURES_PASSWORD (never from flags, which other users can see in process listings).
 */
import { parseArgs } from 'node:util';
import { generateCorpus, type CorpusName } from './corpus/generate.js';
import { pushCorpus, type PushOptions } from './corpus/push.js';
import { FerryError, errorMessage } from '../src/util/errors.js';

const USAGE = 'usage: fixtures.ts OUTDIR [small|bench|demo] [--no-zstd] [--force] [--push HOST[:PORT] [--insecure | --ca-dir DIR]]';

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      'no-zstd': { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      push: { type: 'string' },
      insecure: { type: 'boolean', default: false },
      'ca-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const [outDir, name = 'small', ...extra] = positionals;
  if (!outDir || extra.length > 0 || !['small', 'bench', 'demo'].includes(name)) {
    console.error(USAGE);
    return 2;
  }

  const started = performance.now();
  const corpus = await generateCorpus(outDir, name as CorpusName, { zstd: !values['no-zstd'], force: values.force });
  const seconds = (performance.now() - started) / 1000;

  const rows = corpus.images.map((i) => [i.ref, i.kind, i.platforms?.join(',') ?? '-', i.digest.slice(0, 19)]);
  const widths = [0, 1, 2].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows) console.log(r.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell)).join('  '));
  console.log(
    `${corpus.spec} corpus at ${outDir}: ${corpus.images.length} refs, ${corpus.blobCount} blobs, ` +
      `${formatBytes(corpus.uniqueBlobBytes)} unique (largest layer ${formatBytes(corpus.largestLayer.size)}), ${seconds.toFixed(2)} s`,
  );

  if (values.push) {
    const opts: PushOptions = {};
    if (values.insecure) opts.insecure = true;
    if (values['ca-dir']) opts.tls = { caDir: values['ca-dir'] };
    const username = process.env.FERRY_FIXTURES_USERNAME;
    if (username) opts.creds = { username, password: process.env.FERRY_FIXTURES_PASSWORD ?? '' };
    const t = performance.now();
    await pushCorpus(outDir, corpus, values.push, opts);
    console.log(
      `pushed ${corpus.images.length} refs to ${values.push} in ${((performance.now() - t) / 1000).toFixed(2)} s, digests verified`,
    );
  }
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`fixtures: ${errorMessage(err)}`);
    if (err instanceof FerryError && err.hint) console.error(`hint: ${err.hint}`);
    process.exitCode = err instanceof FerryError ? err.exitCode : 1;
  },
);
