// Real container clients pull from `ferry serve`: a store pulled from the small corpus is served
// on loopback, and so is a bundle built from that store (compression auto), served in place from
// the bundle file by a second server. A private dockerd and a private containerd (each with its
// own socket and data dir) pull from both; a daemonless podman with its own storage and config
// pulls too. Every check is that the digest the client records is the one the corpus published —
// ferry serves manifests byte for byte, and the engines verify every blob on the way.
// Missing binaries fail the suite (requireTool names the Debian package); nothing is skipped.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { bundleContent } from '../../../src/server/bundle-content.js';
import type { ServedContent } from '../../../src/server/content.js';
import { layoutContent } from '../../../src/server/layout-content.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import type { OciLayout } from '../../../src/transports/oci/layout.js';
import { createPodman, startContainerd, startDockerd, type Engine, type Podman } from '../../harness/engines.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { requireTool } from '../../harness/tools.js';

const REFS = ['ferry-test/app:1.0', 'ferry-test/multi:oci', 'ferry-test/docker-s2:1'] as const;

/** What a server serves: the OCI store as a directory, or a bundle file in place. */
const SOURCES = ['store', 'bundle'] as const;
type Source = (typeof SOURCES)[number];

let corpus: CorpusManifest;
let store: OciLayout;
const contents: ServedContent[] = [];
const servers: RunningServer[] = [];
/** host:port of the server for each source. */
const hosts = {} as Record<Source, string>;

/** The digest the corpus published for a ref name. */
function published(ref: string): string {
  const image = corpus.images.find((i) => i.ref === ref);
  if (!image) throw new Error(`corpus has no ${ref}`);
  return image.digest;
}

/** The child manifest digest of ferry-test/multi:oci for one platform ("linux/arm64"). */
function multiChild(platform: string): string {
  const index = JSON.parse(readFileSync(store.blobPath(published('ferry-test/multi:oci'))).toString('utf8')) as {
    manifests: Array<{ digest: string; platform?: { os: string; architecture: string; variant?: string } }>;
  };
  const found = index.manifests.find((m) => {
    const p = m.platform;
    return p && [p.os, p.architecture, p.variant].filter(Boolean).join('/') === platform;
  });
  if (!found) throw new Error(`ferry-test/multi:oci has no ${platform} child`);
  return found.digest;
}

beforeAll(async () => {
  // Fail loudly, before any setup, when an engine or its client is not installed.
  for (const tool of ['dockerd', 'docker', 'containerd', 'ctr', 'podman'] as const) requireTool(tool);
  const work = createTempDir('serve-clients');
  const storeDir = path.join(work, 'store');
  ({ corpus, store } = await storeFromSmallCorpus(storeDir, REFS));
  const bundle = path.join(work, 'images.ferry');
  await writeBundle({ store, output: bundle, compression: 'auto' });
  const opened: Record<Source, () => Promise<ServedContent>> = {
    store: () => layoutContent(storeDir),
    bundle: () => bundleContent(bundle),
  };
  for (const source of SOURCES) {
    const content = await opened[source]();
    contents.push(content);
    const server = await startServer({ sources: [content], listen: '127.0.0.1:0' });
    servers.push(server);
    hosts[source] = `127.0.0.1:${server.port}`;
  }
}, 120_000);

afterAll(async () => {
  for (const server of servers) await server.close();
  for (const content of contents) await content.close();
  await cleanupHarness();
});

// Each source gets its own engines: a daemon that had already pulled from the store server
// would find the layers it has and never fetch them from the bundle server.

describe.each(SOURCES)('docker pulls from ferry serve (%s)', (source) => {
  let docker: Engine;
  let host: string;

  beforeAll(async () => {
    host = hosts[source];
    docker = await startDockerd({ insecureRegistries: [host] });
  }, 60_000);

  afterAll(async () => {
    await docker?.stop();
  });

  async function repoDigests(ref: string): Promise<string[]> {
    const r = await docker.run(['image', 'inspect', '--format', '{{json .RepoDigests}}', ref]);
    return JSON.parse(r.stdout.trim()) as string[];
  }

  it.each(REFS)('docker pull %s keeps the published digest', async (ref) => {
    const remote = `${host}/${ref}`;
    const r = await docker.run(['pull', remote], { timeoutMs: 60_000 });
    const digest = published(ref);
    expect(r.stdout).toContain(`Digest: ${digest}`);
    const repo = remote.slice(0, remote.lastIndexOf(':'));
    expect(await repoDigests(remote)).toContain(`${repo}@${digest}`);
  });

  it('docker pull by digest resolves the same image', async () => {
    const digest = published('ferry-test/multi:oci');
    const byDigest = `${host}/ferry-test/multi@${digest}`;
    await docker.run(['pull', byDigest], { timeoutMs: 60_000 });
    expect(await repoDigests(byDigest)).toContain(byDigest);
    // The multi-arch pull unpacked the host (linux/amd64) child.
    const arch = await docker.run(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', byDigest]);
    expect(arch.stdout.trim()).toBe('linux/amd64');
  });
});

describe.each(SOURCES)('containerd (ctr) pulls from ferry serve (%s)', (source) => {
  let containerd: Engine;
  let host: string;

  beforeAll(async () => {
    host = hosts[source];
    containerd = await startContainerd();
  }, 60_000);

  afterAll(async () => {
    await containerd?.stop();
  });

  /** `ctr images ls` as ref → digest. */
  async function listImages(namespace: string): Promise<Map<string, string>> {
    const r = await containerd.run(['-n', namespace, 'images', 'ls']);
    const rows = r.stdout.trim().split('\n').slice(1);
    return new Map(rows.map((line) => line.trim().split(/\s+/)).map((cols) => [cols[0] as string, cols[2] as string]));
  }

  async function contentDigests(namespace: string): Promise<Set<string>> {
    const r = await containerd.run(['-n', namespace, 'content', 'ls', '-q']);
    return new Set(
      r.stdout
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean),
    );
  }

  const ctrPull = (namespace: string, ref: string, extra: string[] = []) =>
    containerd.run(['-n', namespace, 'images', 'pull', '--plain-http', '--snapshotter', 'native', ...extra, `${host}/${ref}`], {
      timeoutMs: 60_000,
    });

  it('ctr images pull of every ref keeps the published digests', async () => {
    for (const ref of REFS) await ctrPull('ferry-test', ref);
    const images = await listImages('ferry-test');
    for (const ref of REFS) expect(images.get(`${host}/${ref}`), ref).toBe(published(ref));
    // Host-platform pull of the index fetched the amd64 child.
    expect(await contentDigests('ferry-test')).toContain(multiChild('linux/amd64'));
  });

  it('ctr images pull --platform linux/arm64 fetches only the arm64 child', async () => {
    await ctrPull('ferry-test-arm64', 'ferry-test/multi:oci', ['--platform', 'linux/arm64']);
    const images = await listImages('ferry-test-arm64');
    expect(images.get(`${host}/ferry-test/multi:oci`)).toBe(published('ferry-test/multi:oci'));
    const blobs = await contentDigests('ferry-test-arm64');
    expect(blobs).toContain(published('ferry-test/multi:oci'));
    expect(blobs).toContain(multiChild('linux/arm64'));
    expect(blobs).not.toContain(multiChild('linux/amd64'));
    expect(blobs).not.toContain(multiChild('linux/arm/v7'));
  });
});

describe.each(SOURCES)('podman pulls from ferry serve (%s)', (source) => {
  let podman: Podman;
  let host: string;

  beforeAll(() => {
    host = hosts[source];
    podman = createPodman();
  });

  const podmanPull = (remote: string) => podman.run(['pull', '--tls-verify=false', remote], { timeoutMs: 60_000 });

  const inspect = async (remote: string, format: string): Promise<string> =>
    (await podman.run(['image', 'inspect', '--format', format, remote])).stdout.trim();

  it('podman pull ferry-test/app:1.0 keeps the published digest', async () => {
    const remote = `${host}/ferry-test/app:1.0`;
    await podmanPull(remote);
    const digest = published('ferry-test/app:1.0');
    expect(await inspect(remote, '{{.Digest}}')).toBe(digest);
    expect(JSON.parse(await inspect(remote, '{{json .RepoDigests}}'))).toContain(`${host}/ferry-test/app@${digest}`);
  });

  it('podman pull ferry-test/multi:oci records the index digest and the amd64 instance', async () => {
    const remote = `${host}/ferry-test/multi:oci`;
    await podmanPull(remote);
    const index = published('ferry-test/multi:oci');
    // Podman records the digest it pulled by (the index) as the image digest, and lists both the
    // index and the host-platform instance it unpacked among the repo digests.
    expect(await inspect(remote, '{{.Digest}}')).toBe(index);
    const repoDigests = JSON.parse(await inspect(remote, '{{json .RepoDigests}}')) as string[];
    expect(repoDigests).toContain(`${host}/ferry-test/multi@${index}`);
    expect(repoDigests).toContain(`${host}/ferry-test/multi@${multiChild('linux/amd64')}`);
    expect(await inspect(remote, '{{.Os}}/{{.Architecture}}')).toBe('linux/amd64');
  });
});
