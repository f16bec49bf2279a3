// `ferry inventory` of an OCI layout and of a real docker-registry (distribution 2.8): the small
// corpus loaded there, then inventoried, must give exactly the names and digests loaded and every
// manifest, config and layer they reach; blobs nobody names, and missing ones, are not claimed;
// repositories outside the prefix are left out; a registry that will not list its catalog is an
// error with a hint; the CLI writes a signed file whose signature verifies.
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { load } from '../../../src/commands/load.js';
import { inventory } from '../../../src/commands/inventory.js';
import { readInventory } from '../../../src/inventory/format.js';
import { listCatalog } from '../../../src/inventory/registry.js';
import { RegistryClient } from '../../../src/transports/registry/client.js';
import { sha256 } from '../../../src/oci/digest.js';
import { type FerryError, RegistryError } from '../../../src/util/errors.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { corpusStore, sorted, type Expected } from './fixtures.js';

let work: string;
let expected: Expected;
let reg: RunningRegistry;
/** What `ferry load` reported it put under docker://HOST/site: name → digest. */
let loaded: Map<string, string>;

beforeAll(async () => {
  work = createTempDir('inventory');
  expected = await corpusStore(work);
  reg = await startRegistry();
  const report = await load({ source: `oci:${expected.storeDir}`, to: `docker://${reg.host}/site` });
  expect(report.failures).toEqual([]);
  loaded = new Map(Object.values(report.mapping).map((m) => [m.destination, m.digest]));
  expect(loaded.size).toBe(expected.names.size);
  // Outside the prefix: a repository beside it whose name merely starts with "site".
  const other = await load({ source: `oci:${expected.storeDir}:ferry-test/base:1`, to: `docker://${reg.host}/sitex` });
  expect(other.failures).toEqual([]);
}, 180_000);

afterAll(async () => {
  await reg?.stop();
  await cleanupHarness();
});

describe('inventory of an OCI layout', () => {
  it('names every index.json name and claims every blob the names reach, nothing else', async () => {
    const out = path.join(work, 'layout.json');
    const report = await inventory({ location: `oci:${expected.storeDir}`, output: out, now: new Date('2026-12-05T12:00:00Z') });
    const { inventory: inv, digest } = await readInventory(out);
    expect(report.digest).toBe(digest);
    expect(report.bytes).toBe((await readFile(out)).length);
    expect(inv.kind).toBe('oci');
    expect(inv.location).toBe(`oci:${expected.storeDir}`);
    expect(inv.created).toBe('2026-12-05T12:00:00.000Z');
    expect(inv.images).toEqual(sorted(expected.names.keys()).map((name) => ({ name, digest: expected.names.get(name) })));
    expect(inv.blobs).toEqual(sorted(expected.digests));
    expect(report).toMatchObject({ images: expected.names.size, blobs: expected.digests.size });
  });

  it('does not claim a stray blob file nobody names, nor a missing layer or one of the wrong size', async () => {
    const dir = path.join(work, 'damaged');
    await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
    for (const f of ['oci-layout', 'index.json']) await copyFile(path.join(expected.storeDir, f), path.join(dir, f));
    for (const d of expected.digests) {
      const hex = d.slice('sha256:'.length);
      await copyFile(path.join(expected.storeDir, 'blobs', 'sha256', hex), path.join(dir, 'blobs', 'sha256', hex));
    }
    const stray = Buffer.from('nobody names me');
    await writeFile(path.join(dir, 'blobs', 'sha256', sha256(stray).slice(7)), stray);
    // A layer of the medium image gone, another one (of the app image) cut short.
    const medium = expected.images.get('docker.io/ferry-test/medium:1')!;
    const app = expected.images.get('docker.io/ferry-test/app:1.0')!;
    const gone = medium.blobs.find((b) => !app.blobs.includes(b))!;
    const shortened = app.blobs.find((b) => b !== gone && !medium.blobs.includes(b) && b !== app.blobs[0])!;
    await rm(path.join(dir, 'blobs', 'sha256', gone.slice(7)));
    await writeFile(path.join(dir, 'blobs', 'sha256', shortened.slice(7)), 'short');

    const out = path.join(work, 'damaged.json');
    await inventory({ location: `oci:${dir}`, output: out });
    const { inventory: inv } = await readInventory(out);
    expect(inv.blobs).toEqual(sorted([...expected.digests].filter((d) => d !== gone && d !== shortened)));
    expect(inv.blobs).not.toContain(sha256(stray));
    expect(inv.notes).toContain('2 blobs that names reach missing or of the wrong size: not claimed');
    expect(inv.images).toHaveLength(expected.names.size);
  });

  it('refuses a directory that is no layout', async () => {
    const err = await inventory({ location: `oci:${path.join(work, 'nothing-here')}`, output: path.join(work, 'x.json') }).catch(
      (e: unknown) => e,
    );
    expect((err as FerryError).code).toBe('LAYOUT_NOT_FOUND');
  });
});

describe('inventory of a registry', () => {
  it('names every tag under the prefix at its digest and claims every blob they reference, confirmed by HEAD', async () => {
    const out = path.join(work, 'registry.json');
    const report = await inventory({ location: `docker://${reg.host}/site`, output: out, concurrency: 4 });
    const { inventory: inv } = await readInventory(out);
    expect(inv.kind).toBe('registry');
    expect(inv.location).toBe(`docker://${reg.host}/site`);
    expect(inv.images).toEqual(sorted(loaded.keys()).map((name) => ({ name, digest: loaded.get(name) })));
    expect(inv.images.some((i) => i.name.includes('/sitex/'))).toBe(false);
    expect(inv.blobs).toEqual(sorted(expected.digests));
    const repos = new Set([...loaded.keys()].map((n) => n.slice(0, n.lastIndexOf(':'))));
    expect(report.notes.some((n) => n.startsWith(`registry: ${repos.size} repositories under site;`))).toBe(true);
  });

  it('without a prefix takes every repository', async () => {
    const out = path.join(work, 'registry-all.json');
    await inventory({ location: `docker://${reg.host}`, output: out });
    const { inventory: inv } = await readInventory(out);
    expect(inv.images.map((i) => i.name)).toEqual(sorted([...loaded.keys(), `${reg.host}/sitex/ferry-test/base:1`]));
    expect(inv.blobs).toEqual(sorted(expected.digests));
  });

  it('follows the Link pages of the catalog', async () => {
    const client = new RegistryClient(reg.host);
    try {
      const all = await listCatalog(client);
      // 8 repositories under site/ and 1 under sitex/: pages of 2 are five pages.
      expect(all).toHaveLength(new Set([...loaded.keys()].map((n) => n.slice(0, n.lastIndexOf(':')))).size + 1);
      expect(await listCatalog(client, undefined, 2)).toEqual(all);
    } finally {
      await client.close();
    }
  });

  it('does not claim a blob whose HEAD finds nothing (its data gone from the storage)', async () => {
    const own = await startRegistry();
    try {
      const pushed = await load({ source: `oci:${expected.storeDir}:ferry-test/medium:1`, to: `docker://${own.host}` });
      expect(pushed.failures).toEqual([]);
      const medium = expected.images.get('docker.io/ferry-test/medium:1')!;
      const gone = medium.blobs.at(-1)!;
      const hex = gone.slice('sha256:'.length);
      await rm(path.join(own.storageDir, 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex), { recursive: true });
      const out = path.join(work, 'registry-gone.json');
      await inventory({ location: `docker://${own.host}`, output: out });
      const { inventory: inv } = await readInventory(out);
      expect(inv.images).toEqual([{ name: `${own.host}/ferry-test/medium:1`, digest: medium.root }]);
      expect(inv.blobs).toEqual(sorted([...medium.manifests, ...medium.blobs].filter((d) => d !== gone)));
      expect(inv.notes).toContain('1 blob referenced by manifests here but not found by HEAD: not claimed');
    } finally {
      await own.stop();
    }
  });

  it('a registry that refuses _catalog is CATALOG_UNAVAILABLE, with a hint', async () => {
    // A registry that answers /v2/ but keeps its catalog to itself, as many hosted ones do.
    const server: Server = createServer((req, res) => {
      res.setHeader('docker-distribution-api-version', 'registry/2.0');
      if (req.url === '/v2/' || req.url === '/v2') {
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        return;
      }
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"UNSUPPORTED","message":"not here"}]}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const err = await inventory({ location: `docker://${host}`, output: path.join(work, 'no-catalog.json') }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RegistryError);
      expect((err as RegistryError).code).toBe('CATALOG_UNAVAILABLE');
      expect((err as RegistryError).status).toBe(404);
      expect((err as FerryError).hint).toContain('_catalog');
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('inventory of a registry with basic auth', () => {
  it('without credentials is CATALOG_UNAVAILABLE (401) with a hint about credentials; with them, it lists', async () => {
    const auth = await startRegistry({ auth: 'htpasswd' });
    try {
      const err = await inventory({ location: `docker://${auth.host}`, output: path.join(work, 'auth-none.json') }).catch(
        (e: unknown) => e,
      );
      expect((err as RegistryError).code).toBe('CATALOG_UNAVAILABLE');
      expect((err as RegistryError).status).toBe(401);
      expect((err as FerryError).hint).toContain(`docker login ${auth.host}`);
      const pushed = await load({
        source: `oci:${expected.storeDir}:ferry-test/base:1`,
        to: `docker://${auth.host}/site`,
        staticCredential: { kind: 'basic', username: auth.username!, password: auth.password! },
      });
      expect(pushed.failures).toEqual([]);
      const out = path.join(work, 'auth.json');
      await inventory({
        location: `docker://${auth.host}/site`,
        output: out,
        staticCredential: { kind: 'basic', username: auth.username!, password: auth.password! },
      });
      const { inventory: inv } = await readInventory(out);
      const base = expected.images.get('docker.io/ferry-test/base:1')!;
      expect(inv.images).toEqual([{ name: `${auth.host}/site/ferry-test/base:1`, digest: base.root }]);
      expect(inv.blobs).toEqual(sorted(new Set([...base.manifests, ...base.blobs])));
    } finally {
      await auth.stop();
    }
  });
});

describe('ferry inventory (the CLI)', () => {
  it('writes a signed inventory, prints a summary, and a report line with --json', async () => {
    const keys = path.join(work, 'keys');
    await mkdir(keys);
    const { key, pub } = makeKeyPair(keys, 'site', 'ec-p256');
    const out = path.join(work, 'cli.json');
    const run = await ferry(['inventory', `docker://${reg.host}/site`, '-o', out, '--sign-key', key]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const read = await readInventory(out, { key: pub });
    expect(read.signature).toBe('valid');
    expect(read.inventory.blobs).toEqual(sorted(expected.digests));
    expect(run.stdout.split('\n')[0]).toBe(
      `Inventory of docker://${reg.host}/site: ${loaded.size} images, ${expected.digests.size} blobs → ${out} ` +
        `(${run.stdout.match(/\(([^,]+), sha256/)![1]}, ${read.digest}), signed (${out}.sig) in ${run.stdout.match(/ in ([^\n]+)\n/)![1]}`,
    );

    const json = await ferry(['inventory', `oci:${expected.storeDir}`, '-o', path.join(work, 'cli-layout.json'), '--json']);
    expect(json.code).toBe(0);
    const line = JSON.parse(json.stdout.trim()) as Record<string, unknown>;
    expect(line).toMatchObject({
      type: 'report',
      kind: 'oci',
      location: `oci:${expected.storeDir}`,
      images: expected.names.size,
      blobs: expected.digests.size,
      digest: (await readInventory(path.join(work, 'cli-layout.json'))).digest,
    });
  });

  it('exits 2 on a location that names an image, and 1 on an unreachable registry', async () => {
    const bad = await ferry(['inventory', 'oci:./x:ref', '-o', path.join(work, 'bad.json')]);
    expect(bad.code).toBe(2);
    const gone = await ferry(['inventory', 'docker://127.0.0.1:1', '-o', path.join(work, 'gone.json')]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('127.0.0.1:1');
  });
});
