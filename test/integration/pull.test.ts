/**
 * ferry pull against the real distribution registry: every corpus image arrives with its
 * digests; skopeo reads ferry's store and ferry reads skopeo's; a second pull fetches nothing;
 * platform filtering; concurrent pulls into one store.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../scripts/corpus/generate.js';
import { skopeoSource } from '../../scripts/corpus/push.js';
import { pull } from '../../src/commands/pull.js';
import { sha256 } from '../../src/oci/digest.js';
import { parsePlatform } from '../../src/oci/platform.js';
import { OciLayout } from '../../src/transports/oci/layout.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { runSkopeo } from '../harness/tools.js';
import { pushSmallCorpus } from './corpus-registry.js';

let reg: RunningRegistry;
let corpus: CorpusManifest;
let corpusDir: string;

beforeAll(async () => {
  reg = await startRegistry();
  ({ corpus, dir: corpusDir } = await pushSmallCorpus(reg));
});
afterAll(cleanupHarness);

const refOf = (repo: string, tag: string): string => `${reg.host}/${repo}:${tag}`;

async function storedBlobs(store: string): Promise<string[]> {
  return (await readdir(path.join(store, 'blobs', 'sha256'))).filter((n) => !n.startsWith('.')).sort();
}

describe('ferry pull from docker-registry', () => {
  let store: string;
  const allRefs = (): string[] => corpus.images.map((i) => refOf(i.repo, i.tag));

  it('pulls every corpus image with the published digests, each blob once', async () => {
    store = path.join(createTempDir('pull-store'), 'store');
    const r = await pull({ refs: allRefs(), store, concurrency: 6 });
    expect(r.failures).toEqual([]);
    for (const img of corpus.images) {
      const got = r.images.find((i) => i.name === refOf(img.repo, img.tag));
      expect(got?.digest, img.ref).toBe(img.digest);
      expect(got?.mediaType).toBe(img.mediaType);
    }
    // Every blob of the corpus arrived, byte-identical, and nothing else.
    const want = (await storedBlobs(corpusDir)).sort();
    expect(await storedBlobs(store)).toEqual(want);
    for (const name of want) {
      const a = await readFile(path.join(store, 'blobs', 'sha256', name));
      expect(sha256(a)).toBe(`sha256:${name}`);
    }
    const index = await (await OciLayout.open(store)).readIndex();
    expect(index.manifests.map((d) => d.annotations?.['org.opencontainers.image.ref.name']).sort()).toEqual(allRefs().sort());
    for (const d of index.manifests) {
      expect(d.annotations?.['io.containerd.image.name']).toBe(d.annotations?.['org.opencontainers.image.ref.name']);
    }
  });

  it('a second pull with nothing new fetches no blob', async () => {
    const r = await pull({ refs: allRefs(), store, concurrency: 6 });
    expect(r.failures).toEqual([]);
    expect(r.blobs.fetched).toBe(0);
    expect(r.blobs.skipped).toBe(r.blobs.total);
  });

  it("skopeo copies every pulled ref from ferry's store to a registry with unchanged digests", async () => {
    for (const img of corpus.images) {
      const scratch = createTempDir('skopeo-dir');
      // skopeo 1.9's oci: transport only lists OCI-typed entries; Docker-typed images are
      // handed to it as a dir: view of the same store blobs.
      const src = await skopeoSource(store, { ref: refOf(img.repo, img.tag), digest: img.digest, mediaType: img.mediaType }, scratch);
      const dest = `docker://${reg.host}/roundtrip/${img.repo}:${img.tag}`;
      await runSkopeo(['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', src, dest]);
      const raw = await runSkopeo(['inspect', '--raw', '--tls-verify=false', dest]);
      expect(sha256(Buffer.from(raw.stdout, 'utf8')), img.ref).toBe(img.digest);
    }
  });

  it('reads an OCI layout that skopeo wrote', async () => {
    const skopeoLayout = path.join(createTempDir('skopeo-layout'), 'layout');
    const oci = corpus.images.filter((i) => i.kind === 'oci-index' || i.kind === 'oci-image');
    for (const img of oci) {
      await runSkopeo([
        'copy',
        '--all',
        '--preserve-digests',
        '--src-tls-verify=false',
        `docker://${refOf(img.repo, img.tag)}`,
        `oci:${skopeoLayout}:${img.repo}-${img.tag}`,
      ]);
    }
    const target = path.join(createTempDir('from-skopeo'), 'store');
    const r = await pull({ refs: oci.map((i) => `oci:${skopeoLayout}:${i.repo}-${i.tag}`), store: target });
    expect(r.failures).toEqual([]);
    for (const img of oci) {
      expect(r.images.find((i) => i.name === `${img.repo}-${img.tag}`)?.digest).toBe(img.digest);
    }
  });

  it('--platform keeps only the chosen children, rewrites the index and records the published digest', async () => {
    const multi = corpus.images.filter((i) => i.kind === 'oci-index' || i.kind === 'docker-list');
    expect(multi.length).toBe(2);
    const target = path.join(createTempDir('platform'), 'store');
    const r = await pull({ refs: multi.map((i) => refOf(i.repo, i.tag)), store: target, platforms: [parsePlatform('linux/arm64')] });
    expect(r.failures).toEqual([]);
    const layout = await OciLayout.open(target);
    for (const img of multi) {
      const res = r.images.find((i) => i.name === refOf(img.repo, img.tag))!;
      expect(res.originalDigest).toBe(img.digest);
      expect(res.digest).not.toBe(img.digest);
      expect(res.platforms).toEqual(['linux/arm64']);
      const published = JSON.parse((await readFile(path.join(corpusDir, 'blobs', 'sha256', img.digest.slice(7)))).toString()) as {
        manifests: Array<{ digest: string; platform: { architecture: string } }>;
      };
      const rewritten = JSON.parse((await layout.readBlobBytes({ digest: res.digest }, 't')).toString()) as {
        mediaType: string;
        manifests: Array<{ digest: string }>;
        annotations: Record<string, string>;
      };
      expect(rewritten.mediaType).toBe(img.mediaType);
      expect(rewritten.manifests.map((m) => m.digest)).toEqual(
        published.manifests.filter((m) => m.platform.architecture === 'arm64').map((m) => m.digest),
      );
      expect(rewritten.annotations['dev.ferry.original-index.digest']).toBe(img.digest);
    }
    // The amd64 and arm/v7 layers that only those platforms use were not fetched.
    expect((await storedBlobs(target)).length).toBeLessThan((await storedBlobs(corpusDir)).length);
  });

  it('a platform the image lacks is an error listing what it has', async () => {
    const multi = corpus.images.find((i) => i.kind === 'oci-index')!;
    const r = await pull({
      refs: [refOf(multi.repo, multi.tag)],
      store: path.join(createTempDir('p2'), 's'),
      platforms: [parsePlatform('linux/s390x')],
    });
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.errorCode).toBe('NOT_FOUND');
    expect(r.failures[0]!.error).toContain('linux/s390x');
  });

  it('a missing tag fails that image only, naming the registry error', async () => {
    const base = corpus.images[0]!;
    const r = await pull({
      refs: [refOf(base.repo, base.tag), refOf(base.repo, 'no-such-tag')],
      store: path.join(createTempDir('p3'), 's'),
    });
    expect(r.images.map((i) => i.status)).toEqual(['done']);
    expect(r.failures).toEqual([expect.objectContaining({ name: refOf(base.repo, 'no-such-tag'), errorCode: 'MANIFEST_UNKNOWN' })]);
  });

  it('pulls by digest and by tag+digest', async () => {
    const img = corpus.images.find((i) => i.kind === 'oci-image')!;
    const target = path.join(createTempDir('p4'), 's');
    const r = await pull({
      refs: [`${reg.host}/${img.repo}@${img.digest}`, `${reg.host}/${img.repo}:${img.tag}@${img.digest}`],
      store: target,
    });
    expect(r.failures).toEqual([]);
    expect(r.images.map((i) => i.name)).toEqual([
      `${reg.host}/${img.repo}@${img.digest}`,
      `${reg.host}/${img.repo}:${img.tag}@${img.digest}`,
    ]);
    expect(r.images.every((i) => i.digest === img.digest)).toBe(true);
  });

  it('a tag+digest whose digest is not what the registry has fails with a named error', async () => {
    const img = corpus.images.find((i) => i.kind === 'oci-image')!;
    const bogus = `sha256:${'0'.repeat(64)}`;
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}@${bogus}`], store: path.join(createTempDir('p5'), 's') });
    expect(r.failures[0]!.errorCode).toBe('MANIFEST_UNKNOWN');
  });

  it('two pulls into one store at once both land, and index.json stays valid', async () => {
    const target = path.join(createTempDir('concurrent'), 's');
    const refs = allRefs();
    const half = Math.ceil(refs.length / 2);
    const [a, b] = await Promise.all([
      pull({ refs: refs.slice(0, half + 1), store: target }),
      pull({ refs: refs.slice(half - 1), store: target }),
    ]);
    expect(a.failures).toEqual([]);
    expect(b.failures).toEqual([]);
    const index = await (await OciLayout.open(target)).readIndex();
    expect(index.manifests.map((d) => d.annotations?.['org.opencontainers.image.ref.name']).sort()).toEqual([...refs].sort());
    const inspect = await runSkopeo(['inspect', '--raw', `oci:${target}:${refOf('ferry-test/app', '1.0')}`]);
    expect(sha256(Buffer.from(inspect.stdout))).toBe(corpus.images.find((i) => i.repo === 'ferry-test/app')!.digest);
  });
});
