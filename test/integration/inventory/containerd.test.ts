// `ferry inventory containerd:SOCKET?namespace=NS` against a private containerd (test/harness):
// the small corpus loaded with `ferry load`, then inventoried: the names and digests containerd
// lists, and exactly the content store's blobs (which hold every manifest, config and layer
// loaded); another namespace is not mixed in; a socket nobody answers on is DAEMON_UNAVAILABLE.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inventory } from '../../../src/commands/inventory.js';
import { load } from '../../../src/commands/load.js';
import { contentListArgv, parseContentList } from '../../../src/inventory/containerd.js';
import { readInventory } from '../../../src/inventory/format.js';
import { parseImageList } from '../../../src/transports/containerd/ctr.js';
import type { FerryError } from '../../../src/util/errors.js';
import { startContainerd, type Engine } from '../../harness/engines.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { corpusStore, sorted, type Expected } from './fixtures.js';

let containerd: Engine;
let work: string;
let expected: Expected;
let loaded: Map<string, string>;

beforeAll(async () => {
  containerd = await startContainerd();
  work = createTempDir('inventory-containerd');
  expected = await corpusStore(work);
  const report = await load({ source: `oci:${expected.storeDir}`, to: `containerd:${containerd.socket}?namespace=inv`, unpack: false });
  expect(report.failures).toEqual([]);
  loaded = new Map(Object.values(report.mapping).map((m) => [m.destination.replace(/^containerd:/, ''), m.digest]));
  expect(loaded.size).toBe(expected.names.size);
  // Something else in another namespace, which the inventory of `inv` must not mention.
  const other = await load({
    source: `oci:${expected.storeDir}:ferry-test/base:1`,
    to: `containerd:${containerd.socket}?namespace=other`,
    unpack: false,
  });
  expect(other.failures).toEqual([]);
}, 180_000);

afterAll(async () => {
  await containerd?.stop();
  await cleanupHarness();
});

describe('inventory of containerd', () => {
  it('names every image of the namespace at its digest, and claims exactly the content store', async () => {
    const out = path.join(work, 'containerd.json');
    const report = await inventory({ location: `containerd:${containerd.socket}?namespace=inv`, output: out });
    const { inventory: inv } = await readInventory(out);
    expect(inv.kind).toBe('containerd');
    expect(inv.location).toBe(`containerd:${containerd.socket}?namespace=inv`);
    expect(inv.images).toEqual(sorted(loaded.keys()).map((name) => ({ name, digest: loaded.get(name) })));
    // containerd's own listing, read here with the client directly.
    const listed = parseImageList((await containerd.run(['-n', 'inv', 'images', 'ls'])).stdout);
    expect(sorted(listed.keys())).toEqual(sorted(loaded.keys()));
    const content = (await containerd.run(['-n', 'inv', 'content', 'ls', '-q'])).stdout;
    expect(inv.blobs).toEqual(sorted(parseContentList(content)));
    for (const d of expected.digests) expect(inv.blobs, d).toContain(d);
    expect(report).toMatchObject({ images: loaded.size, blobs: inv.blobs.length });
    expect(inv.notes[0]).toContain('containerd namespace inv');
  });

  it('an empty namespace has no images and no blobs', async () => {
    const out = path.join(work, 'empty.json');
    await inventory({ location: `containerd:${containerd.socket}?namespace=empty`, output: out });
    const { inventory: inv } = await readInventory(out);
    expect(inv.images).toEqual([]);
    expect(inv.blobs).toEqual([]);
  });

  it('runs ctr content ls -q with the address and namespace', () => {
    expect(contentListArgv({ ctr: ['k3s', 'ctr'], address: '/run/x.sock', namespace: 'ns' })).toEqual([
      'k3s',
      'ctr',
      '--address',
      '/run/x.sock',
      '-n',
      'ns',
      'content',
      'ls',
      '-q',
    ]);
    expect(contentListArgv({ ctr: ['ctr'], address: undefined, namespace: 'k8s.io' })).toEqual([
      'ctr',
      '-n',
      'k8s.io',
      'content',
      'ls',
      '-q',
    ]);
  });

  it('the CLI: a report line with --json; a socket nobody answers on exits 1 with DAEMON_UNAVAILABLE', async () => {
    const out = path.join(work, 'cli.json');
    const run = await ferry(['inventory', `containerd:${containerd.socket}?namespace=inv`, '-o', out, '--json']);
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout.trim())).toMatchObject({ type: 'report', kind: 'containerd', images: loaded.size });
    const gone = await ferry(['inventory', `containerd:${path.join(work, 'no.sock')}`, '-o', path.join(work, 'gone.json'), '--json']);
    expect(gone.code).toBe(1);
    expect(gone.stdout + gone.stderr).toContain('DAEMON_UNAVAILABLE');
    const err = await inventory({ location: `containerd:${path.join(work, 'no.sock')}`, output: path.join(work, 'gone.json') }).catch(
      (e: unknown) => e,
    );
    expect((err as FerryError).code).toBe('DAEMON_UNAVAILABLE');
  });
});
