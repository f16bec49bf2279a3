/**
 * `ferry copy SRC DST` as a user runs it (the built CLI): one image from a layout into a
 * layout under a new name and into a registry under an image name, a whole bundle (--all)
 * into a registry prefix, and --dry-run writing nothing. Each asserts the digest at the far end.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { signedCorpusBundle } from '../load/fixtures.js';
import { CLI, ferry, jsonLines, registryManifestDigest, reportOf } from '../load/helpers-cli.js';

let corpus: CorpusManifest;
let work: string;
let bundle: string;
let store: string;
let reg: RunningRegistry;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  work = createTempDir('copy-cli');
  const made = await signedCorpusBundle(work);
  ({ corpus, bundle } = made);
  store = made.store.dir;
  reg = await startRegistry();
}, 120_000);
afterAll(async () => {
  await reg?.stop();
  await cleanupHarness();
});

async function indexEntry(dir: string, name: string): Promise<{ digest: string } | undefined> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name);
}

describe('ferry copy', () => {
  it('copies one image from a layout into a layout under the name DST gives', async () => {
    const img = corpus.images[0]!;
    const out = path.join(createTempDir('copy-oci'), 'out');
    const run = await ferry(['copy', `oci:${store}:${img.ref}`, `oci:${out}:renamed`, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(reportOf(run).images.map((i) => i.status)).toEqual(['done']);
    expect((await indexEntry(out, 'renamed'))?.digest).toBe(img.digest);
  });

  it('copies one image into a registry under an image name (docker://HOST/REPO:TAG)', async () => {
    const img = corpus.images[0]!;
    const run = await ferry(['copy', `oci:${store}:${img.ref}`, `docker://${reg.host}/copied/one:v1`, '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(await registryManifestDigest(reg.url, 'copied/one', 'v1')).toBe(img.digest);
  });

  it('refuses a source with several images without --all (exit 2)', async () => {
    const run = await ferry(['copy', `oci:${store}`, `oci:${path.join(createTempDir('copy-many'), 'out')}`]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/holds \d+ images; name one .* --all/);
  });

  it('--all copies a bundle into a registry prefix, every image at its digest', async () => {
    const run = await ferry(['copy', '--all', `bundle:${bundle}`, `docker://${reg.host}/all`, '--json']);
    expect(run.code, run.stderr).toBe(0);
    const report = reportOf(run);
    expect(report.failures).toEqual([]);
    for (const img of corpus.images) {
      expect(await registryManifestDigest(reg.url, `all/${img.repo}`, img.tag), img.ref).toBe(img.digest);
    }
  });

  it('--dry-run prints the plan and writes nothing', async () => {
    const img = corpus.images[0]!;
    const out = path.join(createTempDir('copy-dry'), 'out');
    const run = await ferry(['copy', '--dry-run', `oci:${store}:${img.ref}`, `oci:${out}`]);
    expect(run.code, run.stderr).toBe(0);
    const plan = jsonLines(run.stdout).find((l) => l.type === 'plan') as unknown as { images: Array<{ digest: string }> };
    expect(plan.images.map((i) => i.digest)).toEqual([img.digest]);
    expect(existsSync(out)).toBe(false);
  });
});
