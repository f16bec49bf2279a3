/**
 * The copy-pair table: every source transport × every destination transport through `ferry
 * copy` (the built CLI), one image (the small corpus's ferry-test/app:1.0, linux/amd64), each
 * row asserting the digest at the far end: the manifest digest for a registry, an OCI layout
 * and containerd, the image ID (= config digest) for Docker Engine.
 *
 * Sources: docker:// (a loopback distribution registry, seeded by skopeo with the digests
 * preserved), oci: (the corpus layout itself, only read), oci-archive: (skopeo, digests
 * preserved), docker-archive: (skopeo) and a ferry bundle. A docker-archive holds no manifest:
 * ferry builds one from its manifest.json (plain-tar layers as Docker's own rootfs.diff.tar), so
 * that row expects what ferry's own reader makes of the archive, not the OCI original nor
 * skopeo's rewrite of it. The OCI layout destination is read from index.json directly: skopeo's
 * oci: reader skips entries with a Docker manifest media type, as the docker-archive row stores.
 *
 * Peers (one registry for both sides, a dockerd, a containerd) are started once for all rows,
 * and rows run concurrently. No row can pass on what another row wrote: each registry and layout
 * row writes a name of its own, each containerd row a namespace of its own (empty before), and
 * the Docker Engine rows take turns, each on an engine emptied first.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { parseImageList } from '../../../src/transports/containerd/ctr.js';
import { DockerArchiveSource } from '../../../src/transports/docker-archive/source.js';
import { startContainerd, startDockerd, type Engine } from '../../harness/engines.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';
import { smallCorpus, storeFromSmallCorpus } from '../corpus-registry.js';
import { CLI, ferry, registryManifestDigest, reportOf } from '../load/helpers-cli.js';

/** The image every row copies: single-platform (linux/amd64), so Docker Engine loads it as it is. */
const IMAGE = 'ferry-test/app:1.0';

/** What a source holds, as the far end must show it. */
interface Expected {
  manifest: string;
  config: string;
}

interface SourceRow {
  label: string;
  /** The SRC argument of ferry copy. */
  location: string;
  expected: Expected;
}

let work: string;
let reg: RunningRegistry;
let docker: Engine;
let containerd: Engine;
const sources = new Map<string, SourceRow>();

const SOURCE_LABELS = ['docker', 'oci', 'oci-archive', 'docker-archive', 'bundle'] as const;
const DEST_LABELS = ['docker', 'oci', 'docker-daemon', 'containerd'] as const;

/** The config digest named by manifest `bytes` (an image manifest, not an index). */
function configOf(bytes: Buffer, mediaType: string | undefined, what: string): string {
  const doc = parseManifest(bytes, mediaType, what);
  if (doc.kind !== 'manifest') throw new Error(`${what} is not an image manifest`);
  return doc.config.digest;
}

/** Seed every source with the one image; each expectation is what the source holds. */
async function seedSources(corpusDir: string, digest: string, mediaType: string): Promise<void> {
  const blob = (d: string): string => path.join(corpusDir, 'blobs', 'sha256', d.slice('sha256:'.length));
  const original: Expected = {
    manifest: digest,
    config: configOf(await readFile(blob(digest)), mediaType, IMAGE),
  };
  const ociArchive = path.join(work, 'app.oci.tar');
  const dockerArchive = path.join(work, 'app.docker.tar');
  const bundle = path.join(work, 'app.ferry');
  const srcRepo = `${reg.host}/pairs-src/app:1.0`;
  await Promise.all([
    runSkopeo(['copy', '--preserve-digests', '--dest-tls-verify=false', `oci:${corpusDir}:${IMAGE}`, `docker://${srcRepo}`]),
    runSkopeo(['copy', '--preserve-digests', `oci:${corpusDir}:${IMAGE}`, `oci-archive:${ociArchive}:${IMAGE}`]),
    runSkopeo(['copy', `oci:${corpusDir}:${IMAGE}`, `docker-archive:${dockerArchive}:${IMAGE}`]),
    (async () => {
      const { store } = await storeFromSmallCorpus(path.join(work, 'store'), [IMAGE]);
      await writeBundle({ store, output: bundle, compression: 'auto' });
    })(),
  ]);
  // What ferry reads from the docker-archive (its manifest is built from manifest.json).
  const archived = await DockerArchiveSource.open(dockerArchive, undefined);
  let fromArchive: Expected;
  try {
    const root = await archived.getRootManifest();
    fromArchive = { manifest: root.digest, config: configOf(root.bytes, root.mediaType, dockerArchive) };
  } finally {
    await archived.close();
  }
  const rows: SourceRow[] = [
    { label: 'docker', location: `docker://${srcRepo}`, expected: original },
    { label: 'oci', location: `oci:${corpusDir}:${IMAGE}`, expected: original },
    { label: 'oci-archive', location: `oci-archive:${ociArchive}:${IMAGE}`, expected: original },
    { label: 'docker-archive', location: `docker-archive:${dockerArchive}`, expected: fromArchive },
    { label: 'bundle', location: `bundle:${bundle}`, expected: original },
  ];
  for (const r of rows) sources.set(r.label, r);
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  work = createTempDir('copy-pairs');
  const [corpus, registry, dockerd, ctrd] = await Promise.all([smallCorpus(), startRegistry(), startDockerd(), startContainerd()]);
  reg = registry;
  docker = dockerd;
  containerd = ctrd;
  const img = corpus.corpus.images.find((i) => i.ref === IMAGE);
  if (!img) throw new Error(`the small corpus has no ${IMAGE}`);
  await seedSources(corpus.dir, img.digest, img.mediaType);
}, 120_000);

afterAll(async () => {
  await Promise.all([reg?.stop(), docker?.stop(), containerd?.stop()]);
  await cleanupHarness();
}, 60_000);

/** Image IDs Docker Engine holds. */
async function dockerImageIds(): Promise<string[]> {
  const r = await docker.run(['images', '--no-trunc', '--quiet']);
  return [
    ...new Set(
      r.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    ),
  ];
}

/**
 * Docker Engine has no namespaces: its rows take turns, each starting from an empty engine, so
 * the one image ID left is the one the row loaded.
 */
let dockerTurn: Promise<unknown> = Promise.resolve();
function dockerExclusive<T>(fn: () => Promise<T>): Promise<T> {
  const run = dockerTurn.then(fn);
  dockerTurn = run.catch(() => {});
  return run;
}

async function clearDocker(): Promise<void> {
  const ids = await dockerImageIds();
  if (ids.length > 0) await docker.run(['rmi', '--force', ...ids]);
}

/** Manifest digests of the images in a containerd namespace. */
async function containerdDigests(namespace: string): Promise<string[]> {
  const r = await containerd.run(['-n', namespace, 'images', 'ls']);
  return [...parseImageList(r.stdout).values()].map((row) => row.digest);
}

/** The digest index.json names `name` with, in the layout at `dir`. */
async function layoutEntry(dir: string, name: string): Promise<string | undefined> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === name)?.digest;
}

const ROWS = SOURCE_LABELS.flatMap((src) => DEST_LABELS.map((dst) => ({ src, dst })));

// Rows run concurrently (vitest's maxConcurrency, 5): every row writes somewhere of its own (a
// registry repository, a layout, a containerd namespace), except Docker Engine's (see above).
describe('ferry copy, every source to every destination', () => {
  it.concurrent.for(ROWS)('$src → $dst', async ({ src: srcLabel, dst: dstLabel }, { expect }) => {
    const src = sources.get(srcLabel)!;
    const namespace = `pairs-${srcLabel}`;
    const copyTo = async (dst: string): Promise<void> => {
      // containerd unpacks with the native snapshotter (overlayfs may not work in a sandbox).
      const run = await ferry(['copy', src.location, dst, '--json'], { env: { CONTAINERD_SNAPSHOTTER: 'native' } });
      expect(run.code, `${run.stderr}\n${run.stdout.slice(-2000)}`).toBe(0);
      const report = reportOf(run);
      expect(report.failures).toEqual([]);
      expect(report.images.map((i) => i.status)).toEqual(['done']);
    };
    switch (dstLabel) {
      case 'docker':
        await copyTo(`docker://${reg.host}/pairs/${srcLabel}:v1`);
        expect(await registryManifestDigest(reg.url, `pairs/${srcLabel}`, 'v1')).toBe(src.expected.manifest);
        break;
      case 'oci': {
        const dir = path.join(work, `out-${srcLabel}`);
        await copyTo(`oci:${dir}:v1`);
        expect(await layoutEntry(dir, 'v1')).toBe(src.expected.manifest);
        break;
      }
      case 'docker-daemon':
        await dockerExclusive(async () => {
          await clearDocker();
          expect(await dockerImageIds()).toEqual([]);
          await copyTo(`docker-daemon:${docker.socket}`);
          expect(await dockerImageIds()).toEqual([src.expected.config]);
        });
        break;
      case 'containerd':
        expect(await containerdDigests(namespace)).toEqual([]);
        await copyTo(`containerd:${containerd.socket}?namespace=${namespace}`);
        expect(await containerdDigests(namespace)).toEqual([src.expected.manifest]);
        break;
    }
  });
});
