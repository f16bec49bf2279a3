// `ferry serve NAME.001.ferry NAME.002.ferry …` serves the union of a volume set: the small
// corpus bundled with --volume-size into several volumes (a blob two volumes need is carried
// in both: identical bytes, served from either), all volumes served by one `ferry serve`, and
// skopeo reads every image of the set with its published digest. One volume alone lacks the
// images the others hold.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';
import { ferry } from '../../helpers/cli.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';
import { serving } from '../../helpers/serve.js';

let corpus: CorpusManifest;
let volumes: string[];

const repoOf = (ref: string): { repo: string; tag: string } => {
  const i = ref.lastIndexOf(':');
  return { repo: ref.slice(0, i), tag: ref.slice(i + 1) };
};

beforeAll(async () => {
  const work = createTempDir('serve-volumes');
  const storeDir = path.join(work, 'store');
  ({ corpus } = await storeFromSmallCorpus(storeDir));
  const r = await ferry([
    'bundle',
    '--from-store',
    '--store',
    storeDir,
    '-o',
    path.join(work, 'set.ferry'),
    '--compression',
    'none',
    '--volume-size',
    '4MiB',
  ]);
  expect(r.code, r.stderr).toBe(0);
  volumes = readdirSync(work)
    .filter((n) => /^set\.\d{3}\.ferry$/.test(n))
    .sort()
    .map((n) => path.join(work, n));
}, 180_000);

afterAll(cleanupHarness);

describe('ferry serve of a volume set', () => {
  it('serves every image of the set from all its volumes, with its digest', async () => {
    expect(volumes.length).toBeGreaterThanOrEqual(2);
    await serving(volumes, async (host) => {
      for (const i of corpus.images) {
        const { repo, tag } = repoOf(i.ref);
        const raw = await runSkopeo(['inspect', '--raw', '--tls-verify=false', `docker://${host}/${repo}:${tag}`]);
        expect(`sha256:${createHash('sha256').update(Buffer.from(raw.stdout)).digest('hex')}`, i.ref).toBe(i.digest);
      }
      // Every blob too: skopeo copies each image (all platforms) and checks every digest.
      for (const i of corpus.images.filter((x) => x.kind === 'oci-image' || x.kind === 'oci-index')) {
        const { repo, tag } = repoOf(i.ref);
        const dest = path.join(createTempDir('serve-volumes-copy'), 'out');
        await runSkopeo([
          'copy',
          '--all',
          '--preserve-digests',
          '--src-tls-verify=false',
          `docker://${host}/${repo}:${tag}`,
          `oci:${dest}:x`,
        ]);
      }
    });
  }, 180_000);

  it('one volume alone serves only its own images', async () => {
    await serving([volumes[0]!], async (host) => {
      const found: boolean[] = [];
      for (const i of corpus.images) {
        const { repo, tag } = repoOf(i.ref);
        const r = await fetch(`http://${host}/v2/${repo}/manifests/${tag}`, {
          headers: { accept: '*/*' },
        });
        found.push(r.status === 200);
        if (r.status === 200) expect(r.headers.get('docker-content-digest'), i.ref).toBe(i.digest);
      }
      expect(found.some((f) => f)).toBe(true);
      expect(found.some((f) => !f)).toBe(true);
    });
  }, 60_000);
});
