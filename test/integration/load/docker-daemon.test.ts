// `ferry load` into a real Docker Engine: a private dockerd (test/harness/engines.ts) receives
// the small corpus through one streamed `POST /images/load`, and every check reads the engine's
// own view (`docker image inspect`, `docker images`): each loadable image under its full name
// with ID = the config digest we compute from the stored manifests (linux/amd64 for the
// multi-arch ones), the artifact refused by code, zstd refused on engines before 23.0, a rerun
// that skips everything, a corrupted blob and an abort that load nothing, and a missing socket.
import { cp, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { executeCopy } from '../../../src/copy/execute.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CopyEvent } from '../../../src/copy/events.js';
import { planCopy } from '../../../src/copy/plan.js';
import { compareApiVersions } from '../../../src/transports/docker-daemon/api.js';
import type { EventSink } from '../../../src/copy/events.js';
import type { CopyPlan } from '../../../src/copy/plan.js';
import type { DestinationReport } from '../../../src/copy/report.js';
import { openDockerDaemonDestination } from '../../../src/transports/docker-daemon/destination.js';
import type { ImageSource } from '../../../src/transports/types.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { platformMatches } from '../../../src/oci/platform.js';
import { parseReference } from '../../../src/ref/reference.js';
import { OciLayout, REF_NAME } from '../../../src/transports/oci/layout.js';
import { LayoutSource } from '../../../src/transports/oci/source.js';
import { FerryError } from '../../../src/util/errors.js';
import { startDockerd, type Engine } from '../../harness/engines.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';
import { planStore } from './fixtures.js';

let docker: Engine;

/** `ferry load --to docker-daemon:SOCKET` as the transport table opens it (all-or-nothing, as a bundle). */
async function load(
  plan: CopyPlan,
  sources: ImageSource[],
  o: { socket: string; signal?: AbortSignal; onEvent?: EventSink },
): Promise<DestinationReport> {
  const dest = openDockerDaemonDestination(o.socket);
  try {
    return await executeCopy(plan, sources, dest, {
      action: 'loading',
      allOrNothing: true,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
    });
  } finally {
    await dest.close();
  }
}
let storeDir: string;
/** Full name → the image ID the engine must report (config digest of the linux/amd64 image). */
let expected: Map<string, { id: string; layers: string[]; zstd: boolean } | 'artifact'>;
let zstdSupported: boolean;

/** Plan every image of the store at `dir`, named by full reference. */

/** What each stored image should become in the engine, computed from the stored manifests. */
async function expectedImages(dir: string): Promise<typeof expected> {
  const store = await OciLayout.open(dir);
  const out: typeof expected = new Map();
  for (const entry of (await store.readIndex()).manifests) {
    const name = parseReference(entry.annotations![REF_NAME]!).toString();
    let doc = parseManifest(await store.readBlobBytes(entry, name), entry.mediaType, name);
    if (doc.kind === 'index') {
      const child = doc.manifests.find((d) => platformMatches({ os: 'linux', architecture: 'amd64', variant: undefined }, d.platform))!;
      doc = parseManifest(await store.readBlobBytes(child, name), child.mediaType, name);
    }
    if (doc.kind !== 'manifest') throw new Error('nested index in the corpus');
    out.set(
      name,
      doc.config.mediaType.includes('image.config') || doc.config.mediaType.includes('container.image')
        ? { id: doc.config.digest, layers: doc.layers.map((l) => l.digest), zstd: doc.layers.some((l) => l.mediaType.endsWith('+zstd')) }
        : 'artifact',
    );
  }
  return out;
}

/**
 * A copy of the store with one byte flipped in the middle of the largest layer (medium:1's
 * 2 MiB one), so most of it has already streamed to the daemon when the digest check fails.
 */
async function corruptedStore(): Promise<{ dir: string; medium: { id: string; layers: string[] } }> {
  const bad = path.join(createTempDir('load-docker-bad'), 'store');
  await cp(storeDir, bad, { recursive: true });
  const medium = expected.get('docker.io/ferry-test/medium:1');
  if (!medium || medium === 'artifact') throw new Error('corpus has no ferry-test/medium:1');
  const layer = path.join(bad, 'blobs', 'sha256', medium.layers.at(-1)!.slice('sha256:'.length));
  const size = (await stat(layer)).size;
  const fh = await open(layer, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, Math.floor(size / 2));
  b[0] = b[0]! ^ 0xff;
  await fh.write(b, 0, 1, Math.floor(size / 2));
  await fh.close();
  return { dir: bad, medium };
}

/** Names that should load on this engine. */
function loadable(): string[] {
  return [...expected].filter(([, e]) => e !== 'artifact' && (zstdSupported || !e.zstd)).map(([n]) => n);
}

async function inspectId(name: string): Promise<string | undefined> {
  const r = await docker.run(['image', 'inspect', '--format', '{{.Id}}', name], { allowFailure: true });
  return r.code === 0 ? r.stdout.trim() : undefined;
}

async function imageCount(): Promise<number> {
  const r = await docker.run(['images', '-a', '-q', '--no-trunc']);
  return r.stdout.split('\n').filter((l) => l.trim() !== '').length;
}

beforeAll(async () => {
  docker = await startDockerd();
  storeDir = path.join(createTempDir('load-docker'), 'store');
  await storeFromSmallCorpus(storeDir);
  expected = await expectedImages(storeDir);
  const v = await docker.run(['version', '--format', '{{.Server.APIVersion}}']);
  zstdSupported = compareApiVersions(v.stdout.trim(), '1.42') >= 0;
}, 120_000);

afterAll(async () => {
  await docker?.stop();
  await cleanupHarness();
});

describe('docker-daemon destination', () => {
  it('fails with DAEMON_UNAVAILABLE naming the socket when no daemon listens there', async () => {
    const socket = path.join(createTempDir('no-dockerd'), 'docker.sock');
    const { plan, sources } = await planStore(storeDir);
    const err = await load(plan, sources, { socket }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).code).toBe('DAEMON_UNAVAILABLE');
    expect((err as FerryError).message).toContain(socket);
    expect((err as FerryError).hint).toMatch(/dockerd running.*DOCKER_HOST/);
  });

  it('an abort mid-stream loads nothing (the next tests are the rerun that completes)', async () => {
    const { plan, sources } = await planStore(storeDir);
    const ac = new AbortController();
    const onEvent = (e: CopyEvent): void => {
      // Abort inside a large blob, once part of it has gone to the daemon.
      if (e.kind === 'blob' && e.state === 'progress' && e.bytes >= 256 * 1024 && e.bytes < e.total && !ac.signal.aborted) ac.abort();
    };
    await expect(load(plan, sources, { socket: docker.socket, signal: ac.signal, onEvent })).rejects.toThrow();
    expect(ac.signal.aborted).toBe(true);
    expect(await imageCount()).toBe(0);
  });

  it('a corrupted layer blob fails every image of the load with the integrity error, and nothing is loaded', async () => {
    const { dir: bad, medium } = await corruptedStore();
    const { plan, sources } = await planStore(bad);
    const report = await load(plan, sources, { socket: docker.socket });
    for (const name of loadable()) {
      const img = report.images.find((i) => i.name === name)!;
      expect([name, img.status, img.errorCode]).toEqual([name, 'failed', 'DIGEST_MISMATCH']);
      expect(img.error).toContain(medium.layers.at(-1));
    }
    expect(report.blobs.failed).toBe(1);
    expect(await imageCount()).toBe(0);
    expect((await docker.run(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.trim()).toBe('');
  });

  it('a digest-only name loads tagged sha256-<hex> (Docker keeps no digest-only names), with a warning', async () => {
    const store = await OciLayout.open(storeDir);
    const entry = (await store.readIndex()).manifests.find((m) => m.annotations?.[REF_NAME] === 'ferry-test/raw:1')!;
    const name = `docker.io/ferry-test/raw@${entry.digest}`;
    const plan = await planCopy([{ source: new LayoutSource(store, 'ferry-test/raw:1'), name }]);
    const events: CopyEvent[] = [];
    const report = await load(plan, [new LayoutSource(store, 'ferry-test/raw:1')], {
      socket: docker.socket,
      onEvent: (e) => events.push(e),
    });
    const want = expected.get('docker.io/ferry-test/raw:1');
    if (!want || want === 'artifact') throw new Error('corpus has no ferry-test/raw:1');
    const tag = `ferry-test/raw:sha256-${entry.digest.slice('sha256:'.length)}`;
    expect(report.images.map((i) => [i.status, i.destination, i.destinationDigest])).toEqual([['done', `docker-daemon:${tag}`, want.id]]);
    expect(await inspectId(tag)).toBe(want.id);
    expect(events.filter((e) => e.kind === 'warning')).toHaveLength(1);
  });

  it('loads every container image under its full name with ID = config digest; refuses the artifact', async () => {
    const { plan, sources } = await planStore(storeDir);
    const events: CopyEvent[] = [];
    const report = await load(plan, sources, { socket: docker.socket, onEvent: (e) => events.push(e) });
    expect(report.images).toHaveLength(plan.images.length);
    for (const img of report.images) {
      const want = expected.get(img.name)!;
      if (want === 'artifact') {
        expect([img.name, img.status, img.errorCode]).toEqual([img.name, 'failed', 'NOT_A_CONTAINER_IMAGE']);
        continue;
      }
      if (want.zstd && !zstdSupported) {
        expect([img.name, img.status, img.errorCode]).toEqual([img.name, 'failed', 'ZSTD_UNSUPPORTED']);
        expect(await inspectId(img.name)).toBeUndefined();
        continue;
      }
      expect([img.name, img.status, img.error]).toEqual([img.name, 'done', undefined]);
      expect(img.destinationDigest).toBe(want.id);
      // raw:1 is there under its digest tag since the digest-only load: it only gets its tag.
      expect(img.skipped, img.name).toBe(img.name === 'docker.io/ferry-test/raw:1' ? true : undefined);
      expect(img.destination).toBe(`docker-daemon:${parseReference(img.name).familiar()}`);
      expect(await inspectId(img.name), img.name).toBe(want.id);
    }
    expect(report.images.find((i) => i.name === 'docker.io/ferry-test/multi:oci')?.platforms).toEqual(['linux/amd64']);
    expect(report.blobs.fetched).toBeGreaterThan(0);
    expect(report.blobs.failed).toBe(0);
    // Each blob streamed once, with start and done events.
    const done = events.filter((e) => e.kind === 'blob' && e.state === 'done').map((e) => (e as { digest: string }).digest);
    expect(new Set(done).size).toBe(done.length);
    expect(done.length).toBe(report.blobs.fetched);
    expect(events.filter((e) => e.kind === 'image' && e.state === 'done')).toHaveLength(loadable().length);
  });

  it('a rerun skips everything; a lost tag is restored without sending anything', async () => {
    const { plan, sources } = await planStore(storeDir);
    let report = await load(plan, sources, { socket: docker.socket });
    for (const name of loadable()) {
      const img = report.images.find((i) => i.name === name)!;
      expect([name, img.status, img.skipped]).toEqual([name, 'done', true]);
    }
    expect(report.blobs.fetched).toBe(0);

    // Untag one name (its content stays under the other tag): only a tag is needed.
    await docker.run(['rmi', 'docker.io/ferry-test/base:latest']);
    expect(await inspectId('docker.io/ferry-test/base:latest')).toBeUndefined();
    report = await load(plan, sources, { socket: docker.socket });
    expect(report.blobs.fetched).toBe(0);
    const base = report.images.find((i) => i.name === 'docker.io/ferry-test/base:latest')!;
    expect([base.status, base.skipped]).toEqual(['done', true]);
    const want = expected.get(base.name);
    expect(want !== 'artifact' && (await inspectId(base.name)) === want?.id).toBe(true);
  });

  it('a corrupted blob of the load: an image whose content is there under another name gets no new tag', async () => {
    const base = 'docker.io/ferry-test/base:latest';
    const want = expected.get(base);
    if (!want || want === 'artifact') throw new Error('corpus has no ferry-test/base:latest');
    // base:latest's content stays under base:1 (only the tag is missing); medium:1 goes.
    await docker.run(['rmi', base]);
    await docker.run(['rmi', 'docker.io/ferry-test/medium:1']);
    expect(await inspectId('docker.io/ferry-test/base:1')).toBe(want.id);
    expect(await inspectId(base)).toBeUndefined();

    const { dir: bad, medium } = await corruptedStore();
    const only = [base, 'docker.io/ferry-test/medium:1'];
    const broken = await planStore(bad, only);
    const report = await load(broken.plan, broken.sources, { socket: docker.socket });
    const byName = new Map(report.images.map((i) => [i.name, i]));
    expect([...byName].map(([n, i]) => [n, i.status, i.errorCode]).sort()).toEqual([
      [base, 'failed', 'NOT_LOADED'],
      ['docker.io/ferry-test/medium:1', 'failed', 'DIGEST_MISMATCH'],
    ]);
    expect(byName.get(base)!.error).toContain(medium.layers.at(-1));
    // The engine's own view: neither name is there.
    expect(await inspectId(base)).toBeUndefined();
    expect(await inspectId('docker.io/ferry-test/medium:1')).toBeUndefined();

    // The intact store then tags base:latest and loads medium:1.
    const good = await planStore(storeDir, only);
    const again = await load(good.plan, good.sources, { socket: docker.socket });
    expect(again.images.map((i) => [i.name, i.status, i.skipped]).sort()).toEqual([
      [base, 'done', true],
      ['docker.io/ferry-test/medium:1', 'done', undefined],
    ]);
    expect(await inspectId(base)).toBe(want.id);
    expect(await inspectId('docker.io/ferry-test/medium:1')).toBe(medium.id);
  });
});
