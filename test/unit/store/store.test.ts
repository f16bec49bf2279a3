/**
 * ferry store's cores on a store made by hand: ls (sizes, unique bytes, added, patterns), tag,
 * rm, df, gc (what it removes and keeps, dead temps, refusal while a writer holds a lease,
 * waiting for it), verify (damage, missing blobs), inspect and history.
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  gcStore,
  globMatcher,
  storeDf,
  storeHistory,
  storeInspect,
  storeLs,
  storeRm,
  storeTag,
  verifyOk,
  verifyStore,
} from '../../../src/commands/store.js';
import { type Digest, sha256 } from '../../../src/oci/digest.js';
import { MediaType } from '../../../src/oci/mediatypes.js';
import { acquireWriterLease } from '../../../src/store/leases.js';
import { OciLayoutDestination } from '../../../src/transports/oci/destination.js';
import { ADDED_ANNOTATION, OciLayout, REF_NAME } from '../../../src/transports/oci/layout.js';
import { localHostId } from '../../../src/util/fsutil.js';

interface Img {
  digest: Digest;
  size: number;
  config: Digest;
  layers: Digest[];
}

async function putImage(store: OciLayout, tag: string, layers: string[], arch = 'amd64'): Promise<Img> {
  const layerDescs = [];
  for (const l of layers) {
    const b = Buffer.from(l);
    layerDescs.push({
      mediaType: MediaType.OciLayer ?? 'application/vnd.oci.image.layer.v1.tar',
      digest: await store.putBytes(b),
      size: b.length,
    });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      created: '2026-01-02T03:04:05Z',
      config: { Env: ['PATH=/bin', `TAG=${tag}`], Entrypoint: ['/bin/app'], Cmd: ['serve'], Labels: { tag } },
      rootfs: { type: 'layers', diff_ids: layers.map((l) => sha256(l)) },
      history: [
        ...layers.map((l) => ({ created: '2026-01-02T03:04:05Z', created_by: `ADD ${l}` })),
        { created: '2026-01-02T03:04:06Z', created_by: 'CMD ["serve"]', empty_layer: true },
      ],
    }),
  );
  const configDigest = await store.putBytes(config);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: layerDescs,
    }),
  );
  const digest = await store.putBytes(manifest);
  await store.putIndexEntries([{ mediaType: MediaType.OciManifest, digest, size: manifest.length, annotations: { [REF_NAME]: tag } }]);
  return { digest, size: manifest.length, config: configDigest, layers: layerDescs.map((l) => l.digest) };
}

async function newStore(): Promise<{ dir: string; store: OciLayout }> {
  const dir = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-store-cmd-')), 'store');
  return { dir, store: await OciLayout.open(dir, { create: true }) };
}

const names = async (dir: string): Promise<string[]> => (await storeLs(dir)).images.map((i) => i.name ?? '');
const blobFiles = async (dir: string): Promise<string[]> =>
  (await readdir(path.join(dir, 'blobs', 'sha256'))).filter((n) => !n.startsWith('.')).sort();

describe('globMatcher', () => {
  it('* is any run, ? one character; short names match too', () => {
    expect(globMatcher('docker.io/library/nginx:*')('docker.io/library/nginx:1.27')).toBe(true);
    expect(globMatcher('nginx:*')('docker.io/library/nginx:1.27')).toBe(true);
    expect(globMatcher('nginx:1.2?')('docker.io/library/nginx:1.27')).toBe(true);
    expect(globMatcher('nginx:1.2?')('docker.io/library/nginx:1.2')).toBe(false);
    expect(globMatcher('*/app:*')('example.com/org/app:1')).toBe(true);
    expect(globMatcher('app')('example.com/org/app:1')).toBe(false);
    expect(globMatcher('a.c')('abc')).toBe(false);
  });
});

describe('ferry store on a hand-made store', () => {
  it('ls: sizes, unique bytes, platforms, added time, footer; patterns', async () => {
    const { dir, store } = await newStore();
    const a = await putImage(store, 'example.com/a:1', ['shared layer', 'only a']);
    await putImage(store, 'example.com/b:1', ['shared layer', 'only b!!'], 'arm64');
    const orphan = await store.putBytes(Buffer.from('nobody names me'));
    const l = await storeLs(dir);
    expect(l.images.map((i) => i.name)).toEqual(['example.com/a:1', 'example.com/b:1']);
    const ia = l.images[0]!;
    expect(ia.digest).toBe(a.digest);
    expect(ia.platforms).toEqual(['linux/amd64']);
    expect(l.images[1]!.platforms).toEqual(['linux/arm64']);
    expect(ia.layers).toBe(2);
    const configSize = (await readFile(store.blobPath(a.config))).length;
    expect(ia.size).toBe(a.size + configSize + 'shared layer'.length + 'only a'.length);
    expect(ia.unique).toBe(a.size + configSize + 'only a'.length);
    expect(ia.added).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(l.totals.images).toBe(2);
    expect(l.totals.blobs).toBe(8);
    expect(l.totals.reclaimableBlobs).toBe(1);
    expect(l.totals.reclaimable).toBe('nobody names me'.length);
    expect((await storeLs(dir, '*b:?')).images.map((i) => i.name)).toEqual(['example.com/b:1']);
    expect((await storeDf(dir)).totals.reclaimable).toBe('nobody names me'.length);
    expect(orphan).toBe(sha256('nobody names me'));
  });

  it('a repeated name of the same digest keeps its added time; a name of an entry without one shows none', async () => {
    const { dir, store } = await newStore();
    const a = await putImage(store, 'example.com/a:1', ['x']);
    const first = (await store.readIndex()).manifests[0]!.annotations?.[ADDED_ANNOTATION];
    await new Promise((r) => setTimeout(r, 5));
    expect(
      await store.putIndexEntries([
        { mediaType: MediaType.OciManifest, digest: a.digest, size: a.size, annotations: { [REF_NAME]: 'example.com/a:1' } },
      ]),
    ).toBe(false);
    expect((await store.readIndex()).manifests[0]!.annotations?.[ADDED_ANNOTATION]).toBe(first);
    // An entry an earlier version wrote (no added time) stays without one.
    const idx = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'));
    delete idx.manifests[0].annotations[ADDED_ANNOTATION];
    await writeFile(path.join(dir, 'index.json'), JSON.stringify(idx));
    expect((await storeLs(dir)).images[0]!.added).toBeUndefined();
  });

  it('tag: a new name for the same descriptor, normalised; refuses another digest without --force', async () => {
    const { dir, store } = await newStore();
    const a = await putImage(store, 'example.com/a:1', ['x']);
    const b = await putImage(store, 'example.com/b:1', ['y']);
    const t = await storeTag(dir, 'example.com/a:1', 'nginx');
    expect(t).toMatchObject({ name: 'docker.io/library/nginx:latest', digest: a.digest, changed: true });
    expect(await names(dir)).toEqual(['example.com/a:1', 'example.com/b:1', 'docker.io/library/nginx:latest']);
    expect((await storeTag(dir, a.digest, 'nginx:latest')).changed).toBe(false);
    await expect(storeTag(dir, 'example.com/b:1', 'nginx')).rejects.toMatchObject({ code: 'NAME_EXISTS' });
    const moved = await storeTag(dir, 'example.com/b:1', 'nginx', { force: true });
    expect(moved).toMatchObject({ digest: b.digest, replaced: a.digest });
    expect((await store.resolve('docker.io/library/nginx:latest')).digest).toBe(b.digest);
    await expect(storeTag(dir, 'example.com/none:1', 'x')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('rm: names only, patterns, and a pattern matching nothing removes nothing', async () => {
    const { dir, store } = await newStore();
    await putImage(store, 'example.com/a:1', ['x']);
    await putImage(store, 'example.com/a:2', ['y']);
    await putImage(store, 'example.com/b:1', ['z']);
    const before = await blobFiles(dir);
    await expect(storeRm(dir, ['example.com/a:*', 'nothing*'])).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('"nothing*"'),
    });
    expect(await names(dir)).toEqual(['example.com/a:1', 'example.com/a:2', 'example.com/b:1']);
    const r = await storeRm(dir, ['example.com/a:*']);
    expect(r.removed.map((x) => x.name)).toEqual(['example.com/a:1', 'example.com/a:2']);
    expect(await names(dir)).toEqual(['example.com/b:1']);
    expect(await blobFiles(dir)).toEqual(before);
  });

  it('gc: removes exactly the blobs no name reaches and dead temps; dry-run removes nothing; verify passes after', async () => {
    const { dir, store } = await newStore();
    const a = await putImage(store, 'example.com/a:1', ['shared', 'only a']);
    const b = await putImage(store, 'example.com/b:1', ['shared', 'only b']);
    const deadTemp = path.join(dir, 'blobs', 'sha256', `.${'0'.repeat(64)}.${localHostId()}-999999999.abcd.tmp`);
    await writeFile(deadTemp, 'partial');
    await storeRm(dir, ['example.com/a:1']);
    const dry = await gcStore(store, { dryRun: true });
    expect(dry.blobs.map((x) => x.digest).sort()).toEqual([a.digest, a.config, sha256('only a')].sort());
    expect(dry.temps.map((t) => t.file)).toEqual([deadTemp]);
    expect((await blobFiles(dir)).length).toBe(7);
    const r = await gcStore(store);
    expect(r.blobs.length).toBe(3);
    expect(r.bytesFreed).toBe(dry.bytesFreed);
    expect(r.kept).toBe(4);
    expect(await blobFiles(dir)).toEqual([b.digest, b.config, ...b.layers].map((d) => d.slice(7)).sort());
    expect(await readdir(path.join(dir, 'blobs', 'sha256'))).not.toContain(path.basename(deadTemp));
    expect(verifyOk(await verifyStore(store))).toBe(true);
    expect((await gcStore(store)).blobs).toEqual([]);
  });

  it('gc refuses while a writer holds a lease (an open destination), waits for it with --wait, and writers wait for gc', async () => {
    const { dir, store } = await newStore();
    await putImage(store, 'example.com/a:1', ['x']);
    const orphan = await store.putBytes(Buffer.from('orphan'));
    const dest = await OciLayoutDestination.open(dir);
    await expect(gcStore(store)).rejects.toMatchObject({
      code: 'STORE_BUSY',
      message: expect.stringContaining(`in use by pid ${process.pid}`),
    });
    expect(await store.hasBlob(orphan)).toBe(true);
    // With --wait, gc proceeds once the writer closes.
    const waiting = gcStore(store, { waitMs: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    await dest.close();
    expect((await waiting).blobs.map((b) => b.digest)).toEqual([orphan]);
    // A writer opening while gc holds its flag waits until gc is done.
    const gcFile = path.join(dir, '.ferry-leases', 'gc');
    await writeFile(gcFile, `${process.pid}@host 00000000 abcd`);
    let opened = false;
    const writer = acquireWriterLease(dir, { waitMs: 10_000 }).then((l) => {
      opened = true;
      return l;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(opened).toBe(false);
    await rm(gcFile);
    await (await writer).release();
    expect(opened).toBe(true);
    expect(await readdir(path.join(dir, '.ferry-leases'))).toEqual([]);
  });

  it('leases and gc files of dead processes are removed, not obeyed', async () => {
    const { dir, store } = await newStore();
    await putImage(store, 'example.com/a:1', ['x']);
    await OciLayoutDestination.open(dir).then((d) => d.close()); // makes .ferry-leases
    const deadPid = 999_999_999;
    await writeFile(path.join(dir, '.ferry-leases', `${deadPid}-abcdef`), `${deadPid}@h ${localHostId()} 0011\nferry pull x\n`);
    await writeFile(path.join(dir, '.ferry-leases', 'gc'), `${deadPid}@h ${localHostId()} 0011`);
    expect((await gcStore(store)).blobs).toEqual([]);
    expect(await readdir(path.join(dir, '.ferry-leases'))).toEqual([]);
  });

  it('verify: a damaged blob exits as damage, naming who reaches it; a missing blob names its image; gc refuses a name whose manifest is gone', async () => {
    const { dir, store } = await newStore();
    const a = await putImage(store, 'example.com/a:1', ['layer of a']);
    const b = await putImage(store, 'example.com/b:1', ['layer of b']);
    expect(verifyOk(await verifyStore(store))).toBe(true);
    await writeFile(store.blobPath(a.layers[0]!), 'layer of A'); // same size, other bytes
    await rm(store.blobPath(b.layers[0]!));
    const r = await verifyStore(store);
    expect(verifyOk(r)).toBe(false);
    expect(r.damaged).toEqual([{ digest: a.layers[0], problem: `content hashes to ${sha256('layer of A')}`, names: ['example.com/a:1'] }]);
    expect(r.missing).toEqual([{ name: 'example.com/b:1', digests: [b.layers[0]] }]);
    await rm(store.blobPath(b.digest));
    await expect(gcStore(store)).rejects.toMatchObject({ code: 'STORE_DAMAGED', message: expect.stringContaining('example.com/b:1') });
    expect(await store.hasBlob(b.config)).toBe(true);
    expect(dir).toBeTruthy();
  });

  it('inspect and history read the config', async () => {
    const { dir, store } = await newStore();
    const a = await putImage(store, 'example.com/a:1', ['one', 'three']);
    const i = await storeInspect(dir, 'example.com/a:1');
    expect(i.digest).toBe(a.digest);
    expect(i.images).toHaveLength(1);
    expect(i.images[0]!.config).toMatchObject({
      architecture: 'amd64',
      os: 'linux',
      created: '2026-01-02T03:04:05Z',
      env: ['PATH=/bin', 'TAG=example.com/a:1'],
      entrypoint: ['/bin/app'],
      cmd: ['serve'],
      labels: { tag: 'example.com/a:1' },
    });
    expect(i.images[0]!.platform).toBe('linux/amd64');
    const h = await storeHistory(dir, a.digest);
    expect(h.images[0]!.rows.map((r) => [r.createdBy, r.size])).toEqual([
      ['CMD ["serve"]', 0],
      ['ADD three', 5],
      ['ADD one', 3],
    ]);
    await expect(storeInspect(dir, 'example.com/none:1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
