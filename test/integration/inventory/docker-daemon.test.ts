// `ferry inventory docker-daemon:SOCKET` against a private dockerd (test/harness): images loaded
// with `ferry load` are named by their tags at their image IDs (config digests, since Docker
// keeps no manifest for a loaded image); an image Docker pulled from a registry is also named by
// its repository digest (REPO@sha256:… at the manifest digest); the blobs are exactly the configs,
// and the file says that layers could not be confirmed.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inventory } from '../../../src/commands/inventory.js';
import { load } from '../../../src/commands/load.js';
import { readInventory } from '../../../src/inventory/format.js';
import { parseManifest } from '../../../src/oci/manifest.js';
import { OciLayout, REF_NAME } from '../../../src/transports/oci/layout.js';
import type { FerryError } from '../../../src/util/errors.js';
import { startDockerd, type Engine } from '../../harness/engines.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { corpusStore, sorted, type Expected } from './fixtures.js';

const REFS = ['ferry-test/base:1', 'ferry-test/base:latest', 'ferry-test/app:1.0'];

let docker: Engine;
let reg: RunningRegistry;
let work: string;
let expected: Expected;
/** Store name → config digest (the image ID Docker gives it). */
const configs = new Map<string, string>();

beforeAll(async () => {
  [docker, reg] = await Promise.all([startDockerd(), startRegistry()]);
  work = createTempDir('inventory-docker');
  expected = await corpusStore(work, REFS);
  const layout = await OciLayout.open(expected.storeDir);
  for (const e of (await layout.readIndex()).manifests) {
    const doc = parseManifest(await layout.readBlobBytes(e, 'test'), e.mediaType, 'test');
    if (doc.kind !== 'manifest') throw new Error('expected single-platform images');
    configs.set(e.annotations![REF_NAME]!, doc.config.digest);
  }
  const report = await load({ source: `oci:${expected.storeDir}`, to: `docker-daemon:${docker.socket}` });
  expect(report.failures).toEqual([]);
  // One image through a registry, so that Docker records a repository digest for it.
  const pushed = await load({ source: `oci:${expected.storeDir}:ferry-test/app:1.0`, to: `docker://${reg.host}` });
  expect(pushed.failures).toEqual([]);
  await docker.run(['pull', `${reg.host}/ferry-test/app:1.0`]);
}, 180_000);

afterAll(async () => {
  await docker?.stop();
  await reg?.stop();
  await cleanupHarness();
});

describe('inventory of Docker Engine', () => {
  it('names tags at image IDs and repository digests at manifest digests; blobs are the configs', async () => {
    const out = path.join(work, 'docker.json');
    await inventory({ location: `docker-daemon:${docker.socket}`, output: out });
    const { inventory: inv } = await readInventory(out);
    expect(inv.kind).toBe('docker-daemon');
    expect(inv.location).toBe(`docker-daemon:${docker.socket}`);
    const app = configs.get('ferry-test/app:1.0')!;
    expect(inv.images).toEqual(
      [
        { name: 'ferry-test/app:1.0', digest: app },
        { name: 'ferry-test/base:1', digest: configs.get('ferry-test/base:1') },
        { name: 'ferry-test/base:latest', digest: configs.get('ferry-test/base:latest') },
        { name: `${reg.host}/ferry-test/app:1.0`, digest: app },
        {
          name: `${reg.host}/ferry-test/app@${expected.names.get('ferry-test/app:1.0')}`,
          digest: expected.names.get('ferry-test/app:1.0'),
        },
      ].sort((a, b) => (a.name < b.name ? -1 : 1)),
    );
    expect(inv.blobs).toEqual(sorted(new Set(configs.values())));
    expect(inv.notes[0]).toContain('layers could not be confirmed');
    expect(inv.notes[1]).toMatch(/^4 tagged names recorded at the image ID \(the config digest\)/);
  });

  it('a socket nobody answers on is DAEMON_UNAVAILABLE (exit 1)', async () => {
    const sock = path.join(work, 'no.sock');
    const err = await inventory({ location: `docker-daemon:${sock}`, output: path.join(work, 'x.json') }).catch((e: unknown) => e);
    expect((err as FerryError).code).toBe('DAEMON_UNAVAILABLE');
    const run = await ferry(['inventory', `docker-daemon:${sock}`, '-o', path.join(work, 'x.json')]);
    expect(run.code).toBe(1);
  });
});
