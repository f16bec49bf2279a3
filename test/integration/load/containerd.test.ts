// `ferry load` into a real containerd: a private containerd (test/harness/engines.ts) receives
// the small corpus through `ctr images import`, and every check reads containerd's own view
// (`ctr images ls`, `images check`, `content ls`): names at the planned digests, every platform
// of the multi-arch indexes, content complete, a rerun that skips everything, a corrupted
// blob that names nothing (also across the two import runs of a bundle), an abort that names
// nothing and a rerun that finishes the job, a rerun that unpacks what was only imported.
// Unpacking uses the `native` snapshotter (overlayfs may not work in a sandbox).
import { cp, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { executeCopy } from '../../../src/copy/execute.js';
import { OciLayoutDestination } from '../../../src/transports/oci/destination.js';
import { planCopy, type CopyPlan } from '../../../src/copy/plan.js';
import { load } from '../../../src/commands/load.js';
import type { CopyEvent, EventSink } from '../../../src/copy/events.js';
import type { DestinationReport } from '../../../src/copy/report.js';
import { loadInto } from '../../helpers/destination.js';
import { ContainerdDestination, type ContainerdOptions } from '../../../src/transports/containerd/destination.js';
import type { ImageSource } from '../../../src/transports/types.js';
import { parseImageList } from '../../../src/transports/containerd/ctr.js';
import { parsePlatform } from '../../../src/oci/platform.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { LayoutSource } from '../../../src/transports/oci/source.js';
import { onlyIntegrityFailures } from '../../../src/commands/report.js';
import { FerryError } from '../../../src/util/errors.js';
import { startContainerd, type Engine } from '../../harness/engines.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';
import { planStore } from './fixtures.js';
import { flipByteOfMember } from '../../helpers/tar.js';

let containerd: Engine;
let storeDir: string;

/** Plan every image (or the layout refs in `only`) of the store at `dir`, named by full reference. */

async function listImages(namespace: string): Promise<Map<string, string>> {
  const r = await containerd.run(['-n', namespace, 'images', 'ls']);
  return new Map([...parseImageList(r.stdout).values()].map((row) => [row.name, row.digest]));
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

type LoadOptions = ContainerdOptions & { onEvent?: EventSink; signal?: AbortSignal; allOrNothing?: boolean };

/** The destination as `ferry load` drives it (all or nothing unless told). */
function loadIntoContainerd(plan: CopyPlan, sources: ImageSource[], o: LoadOptions): Promise<DestinationReport> {
  const { onEvent, signal, allOrNothing, ...options } = o;
  return loadInto(new ContainerdDestination(options), plan, sources, {
    ...(onEvent ? { onEvent } : {}),
    ...(signal ? { signal } : {}),
    ...(allOrNothing !== undefined ? { allOrNothing } : {}),
  });
}

function opts(namespace: string | undefined, extra: Partial<LoadOptions> = {}): LoadOptions {
  return { address: containerd.socket, ...(namespace ? { namespace } : {}), snapshotter: 'native', ...extra };
}

beforeAll(async () => {
  containerd = await startContainerd();
  storeDir = path.join(createTempDir('load-containerd'), 'store');
  await storeFromSmallCorpus(storeDir);
}, 120_000);

afterAll(async () => {
  await containerd?.stop();
  await cleanupHarness();
});

describe('the containerd destination', () => {
  it('imports every corpus image under its full name at the planned digest, all platforms, unpacked', async () => {
    const { plan, sources } = await planStore(storeDir);
    const events: CopyEvent[] = [];
    const report = await loadIntoContainerd(plan, sources, opts('ferry-test', { onEvent: (e) => events.push(e) }));

    expect(report.images.map((i) => [i.name, i.status, i.error])).toEqual(plan.images.map((i) => [i.name, 'done', undefined]));
    for (const [i, img] of report.images.entries()) {
      expect(img.destination).toBe(`containerd:${plan.images[i]!.name}`);
      expect(img.destinationDigest).toBe(plan.images[i]!.root.digest);
      expect(img.skipped).toBeUndefined();
    }
    expect(report.blobs).toMatchObject({ total: plan.blobs.length, fetched: plan.blobs.length, skipped: 0, failed: 0 });

    const listed = await listImages('ferry-test');
    for (const img of plan.images) expect(listed.get(img.name), img.name).toBe(img.root.digest);
    expect(listed.size).toBe(plan.images.length);
    expect(listed.get('docker.io/ferry-test/multi:oci')).toBeDefined();

    // Every manifest of every platform and every blob is in the content store.
    const content = await contentDigests('ferry-test');
    for (const img of plan.images) {
      for (const m of img.manifests) expect(content.has(m.digest), `${img.name} manifest ${m.digest}`).toBe(true);
      for (const b of img.blobs) expect(content.has(b.digest), `${img.name} blob ${b.digest}`).toBe(true);
    }
    const multi = plan.images.find((i) => i.name === 'docker.io/ferry-test/multi:oci')!;
    expect(multi.platforms).toEqual(['linux/amd64', 'linux/arm/v7', 'linux/arm64']);

    // containerd's own completeness check, and the host-platform images were unpacked.
    const check = await containerd.run(['-n', 'ferry-test', 'images', 'check', '--snapshotter', 'native']);
    const rows = check.stdout.trim().split('\n').slice(1);
    expect(rows).toHaveLength(plan.images.length);
    for (const row of rows) expect(row, row).toMatch(/\scomplete \((\d+)\/\1\)/);
    const app = rows.find((r) => r.startsWith('docker.io/ferry-test/app:1.0 '));
    expect(app).toMatch(/\strue\s*$/);
    // The artifact cannot be unpacked: it was imported content-only, with a warning.
    expect(events).toContainEqual(expect.objectContaining({ kind: 'warning', image: 'docker.io/ferry-test/artifact:1' }));
    expect(events.filter((e) => e.kind === 'image' && e.state === 'done')).toHaveLength(plan.images.length);
    expect(events.filter((e) => e.kind === 'blob' && e.state === 'done').length).toBeGreaterThanOrEqual(plan.blobs.length);

    // A second run finds everything in place.
    const again = await loadIntoContainerd(plan, sources, opts('ferry-test'));
    expect(again.images.every((i) => i.status === 'done' && i.skipped === true)).toBe(true);
    expect(again.blobs).toMatchObject({ fetched: 0, skipped: plan.blobs.length, bytesFetched: 0 });
  });

  it('uses the k8s.io namespace by default', async () => {
    const { plan, sources } = await planStore(storeDir, ['docker.io/ferry-test/base:1', 'docker.io/ferry-test/multi:docker']);
    const report = await loadIntoContainerd(plan, sources, opts(undefined));
    expect(report.images.map((i) => i.status)).toEqual(['done', 'done']);
    const listed = await listImages('k8s.io');
    for (const img of plan.images) expect(listed.get(img.name)).toBe(img.root.digest);
  });

  it('an index filtered to a foreign platform is imported (not unpacked) at its rewritten digest', async () => {
    const store = await OciLayout.open(storeDir);
    const source = new LayoutSource(store, 'ferry-test/multi:oci');
    const plan = await planCopy([{ source, name: 'docker.io/ferry-test/multi:arm64', platforms: [parsePlatform('linux/arm64')] }]);
    const img = plan.images[0]!;
    expect(img.originalDigest).toBeDefined();
    const events: CopyEvent[] = [];
    const report = await loadIntoContainerd(plan, [source], opts('ferry-arm64', { onEvent: (e) => events.push(e) }));
    expect(report.images[0]).toMatchObject({ status: 'done', destinationDigest: img.root.digest, originalDigest: img.originalDigest });
    expect(events).toContainEqual(expect.objectContaining({ kind: 'warning', image: img.name }));
    expect((await listImages('ferry-arm64')).get(img.name)).toBe(img.root.digest);
    const content = await contentDigests('ferry-arm64');
    for (const b of img.blobs) expect(content.has(b.digest)).toBe(true);
  });

  it('a corrupted blob fails every image of the import and names nothing', async () => {
    const work = createTempDir('load-containerd-corrupt');
    const badStore = path.join(work, 'store');
    await cp(storeDir, badStore, { recursive: true });
    const { plan, sources } = await planStore(badStore, ['docker.io/ferry-test/medium:1', 'docker.io/ferry-test/app:1.0']);
    // Flip one byte in the medium image's own 2 MiB layer (same size, wrong digest).
    const medium = plan.images.find((i) => i.name === 'docker.io/ferry-test/medium:1')!;
    const layer = medium.blobs.reduce((a, b) => (b.size > a.size ? b : a));
    const file = path.join(badStore, 'blobs', 'sha256', layer.digest.slice('sha256:'.length));
    const bytes = await readFile(file);
    bytes[1000] = bytes[1000]! ^ 0xff;
    await writeFile(file, bytes);

    const report = await loadIntoContainerd(plan, sources, opts('ferry-corrupt', { unpack: false }));
    for (const img of report.images) {
      expect(img.status).toBe('failed');
      expect(img.errorCode).toBe('DIGEST_MISMATCH');
      expect(img.error).toContain(layer.digest);
      expect(img.destinationDigest).toBeUndefined();
    }
    expect(report.blobs.failed).toBe(1);
    expect(await listImages('ferry-corrupt')).toEqual(new Map());
  });

  it('an abort mid-stream names nothing, and a rerun completes', async () => {
    const { plan, sources } = await planStore(storeDir, ['docker.io/ferry-test/medium:1', 'docker.io/ferry-test/zstd:1']);
    const big = plan.blobs.reduce((a, b) => (b.desc.size > a.desc.size ? b : a));
    const ac = new AbortController();
    const onEvent = (e: CopyEvent): void => {
      if (e.kind === 'blob' && e.state === 'progress' && e.digest === big.desc.digest && e.bytes > 0) ac.abort();
    };
    await expect(loadIntoContainerd(plan, sources, opts('ferry-abort', { signal: ac.signal, onEvent }))).rejects.toMatchObject({
      code: 'ABORTED',
    });
    expect(await listImages('ferry-abort')).toEqual(new Map());
    // An already-aborted signal stops before anything runs.
    await expect(loadIntoContainerd(plan, sources, opts('ferry-abort', { signal: ac.signal }))).rejects.toMatchObject({ code: 'ABORTED' });

    const report = await loadIntoContainerd(plan, sources, opts('ferry-abort'));
    expect(report.images.map((i) => [i.status, i.skipped])).toEqual([
      ['done', undefined],
      ['done', undefined],
    ]);
    const listed = await listImages('ferry-abort');
    for (const img of plan.images) expect(listed.get(img.name)).toBe(img.root.digest);
  });

  it('from a bundle, a bad blob of the second (--no-unpack) run names neither image', async () => {
    // A store with an amd64 image and an arm64-only index (not unpackable on this amd64 host,
    // so it goes in the second import run), bundled, then one byte of an arm64-only layer
    // flipped inside the bundle (blob content is checked while loading, not before).
    const work = createTempDir('load-containerd-aon');
    const src = await OciLayout.open(storeDir);
    const items = [
      { source: new LayoutSource(src, 'ferry-test/base:1'), name: 'docker.io/ferry-test/base:1' },
      {
        source: new LayoutSource(src, 'ferry-test/multi:oci'),
        name: 'docker.io/ferry-test/multi:arm64',
        platforms: [parsePlatform('linux/arm64')],
      },
    ];
    const plan = await planCopy(items);
    const store = await OciLayout.open(path.join(work, 'store'), { create: true });
    const copied = await executeCopy(
      plan,
      items.map((i) => i.source),
      new OciLayoutDestination(store),
    );
    expect(copied.images.map((i) => i.status)).toEqual(['done', 'done']);
    const bundle = path.join(work, 'aon.ferry');
    await writeBundle({ store, output: bundle, compression: 'none' });

    const [base, arm] = plan.images;
    expect(base!.root.mediaType).not.toMatch(/index|list/);
    const baseBlobs = new Set(base!.blobs.map((b) => b.digest));
    const armOnly = arm!.blobs.filter((b) => !baseBlobs.has(b.digest)).reduce((a, b) => (b.size > a.size ? b : a));
    await flipByteOfMember(bundle, `blobs/sha256/${armOnly.digest.slice('sha256:'.length)}`);

    const events: CopyEvent[] = [];
    const report = await load({
      source: bundle,
      to: `containerd:${containerd.socket}?namespace=ferry-aon`,
      snapshotter: 'native',
      onEvent: (e) => events.push(e),
    });
    // The bundle lists images in the order the store named them, which is the order they finished.
    const byName = [...report.images].sort((a, b) => a.name.localeCompare(b.name));
    expect(byName.map((i) => [i.name, i.status, i.errorCode])).toEqual([
      ['docker.io/ferry-test/base:1', 'failed', 'NOT_LOADED'],
      ['docker.io/ferry-test/multi:arm64', 'failed', 'DIGEST_MISMATCH'],
    ]);
    expect(byName[1]!.error).toContain(armOnly.digest);
    expect(report.mapping).toEqual({});
    expect(onlyIntegrityFailures(report.failures)).toBe(true); // exit 3
    expect(await listImages('ferry-aon')).toEqual(new Map());
    expect(events).toContainEqual(expect.objectContaining({ kind: 'warning', image: 'docker.io/ferry-test/multi:arm64' }));
  });

  it('a rerun unpacks what an earlier run only imported (name and digest alone are not enough)', async () => {
    const { plan, sources } = await planStore(storeDir, ['docker.io/ferry-test/app:1.0']);
    const first = await loadIntoContainerd(plan, sources, opts('ferry-unpack', { unpack: false }));
    expect(first.images.map((i) => i.status)).toEqual(['done']);
    const unpacked = async (): Promise<string> =>
      (await containerd.run(['-n', 'ferry-unpack', 'images', 'check', '--snapshotter', 'native'])).stdout.trim().split('\n')[1]!;
    expect(await unpacked()).toMatch(/\sfalse\s*$/);

    // With --no-unpack again, what is there is enough.
    const same = await loadIntoContainerd(plan, sources, opts('ferry-unpack', { unpack: false }));
    expect(same.images.map((i) => [i.status, i.skipped])).toEqual([['done', true]]);

    const events: CopyEvent[] = [];
    const again = await loadIntoContainerd(plan, sources, opts('ferry-unpack', { onEvent: (e) => events.push(e) }));
    expect(again.images.map((i) => [i.status, i.skipped])).toEqual([['done', undefined]]);
    expect(events).toContainEqual(expect.objectContaining({ kind: 'warning', message: expect.stringContaining('not unpacked') }));
    expect(await unpacked()).toMatch(/\scomplete \((\d+)\/\1\).*\strue\s*$/);
    const third = await loadIntoContainerd(plan, sources, opts('ferry-unpack'));
    expect(third.images.map((i) => [i.status, i.skipped])).toEqual([['done', true]]);
  });

  it('no containerd at the address: DAEMON_UNAVAILABLE naming it', async () => {
    const { plan, sources } = await planStore(storeDir, ['docker.io/ferry-test/base:1']);
    const dir = createTempDir('load-containerd-nosock');
    const missing = path.join(dir, 'containerd.sock');
    const err = await loadIntoContainerd(plan, sources, { address: missing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FerryError);
    expect(err).toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
    expect((err as FerryError).message).toContain(missing);
    expect((err as FerryError).hint).toContain('containerd:/path/to/containerd.sock');
    // A path that exists but where nothing listens goes through ctr's own dial.
    const notSocket = path.join(dir, 'file.sock');
    await writeFile(notSocket, '');
    await expect(loadIntoContainerd(plan, sources, { address: notSocket })).rejects.toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
    expect(await readdir(dir)).toEqual(['file.sock']);
  });

  it('no ctr client: CTR_NOT_FOUND with a hint naming the option', async () => {
    const { plan, sources } = await planStore(storeDir, ['docker.io/ferry-test/base:1']);
    const err = await loadIntoContainerd(plan, sources, { address: containerd.socket, ctr: ['/nonexistent/bin/ctr'] }).catch(
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'CTR_NOT_FOUND' });
    expect((err as FerryError).hint).toContain('--ctr "k3s ctr"');
  });
});
