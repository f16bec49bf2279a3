/**
 * `ferry load` SIGKILLed in the middle of a blob, then rerun, for every destination: an OCI
 * layout, a docker-registry, Docker Engine and containerd. The bundle holds one image with an
 * 8 MiB layer and a 96 MiB incompressible one (gzip level 0), so the kill lands inside the big
 * blob: the --json stream says when it started (it carries no progress events) and a witness
 * at the destination shows part of it arrived. After the kill no name may point at incomplete
 * content; the same command run again finishes the job with the bundle's digests, and (registry,
 * OCI layout) does not send again the blobs that were already complete.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { startContainerd, startDockerd, type Engine } from '../../harness/engines.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';
import {
  CLI,
  blobStates,
  bundleManifest,
  ferry,
  killWhen,
  makeBigStore,
  registryManifestDigest,
  registryTags,
  reportOf,
  type BlobEvent,
  type JsonLine,
  type BigImage,
} from './helpers-cli.js';

let work: string;
let bundle: string;
let img: BigImage;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  work = createTempDir('load-kill');
  img = await makeBigStore(path.join(work, 'store'), 96, 8);
  bundle = path.join(work, 'big.ferry');
  await writeBundle({ store: await OciLayout.open(path.join(work, 'store')), output: bundle, compression: 'none' });
  const m = await bundleManifest(bundle);
  expect(m.images.map((i) => [i.ref, i.digest])).toEqual([[img.refName, img.manifestDigest]]);
}, 120_000);
afterAll(cleanupHarness);

/** Every file under `dir` (recursively), with its size; [] if `dir` does not exist. */
async function filesUnder(dir: string): Promise<Array<{ file: string; size: number }>> {
  const out: Array<{ file: string; size: number }> = [];
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isFile()) continue;
    const file = path.join(e.parentPath, e.name);
    const st = await stat(file).catch(() => undefined);
    if (st) out.push({ file, size: st.size });
  }
  return out;
}

/** The big blob has started and the small layer is complete. */
function bigStartedSmallDone(e: BlobEvent, seen: JsonLine[]): boolean {
  return blobStates(seen, img.big.digest).includes('start') && blobStates(seen, img.small.digest).includes('done') && e.kind === 'blob';
}

function bigStarted(e: BlobEvent): boolean {
  return e.digest === img.big.digest && e.state === 'start';
}

/** The kill came after the big blob started, with part of it at the destination, before it was done. */
function expectKilledMidBlob(k: Awaited<ReturnType<typeof killWhen>>): void {
  expect(k.trigger, `the big blob never started; stderr: ${k.stderr}`).toBeDefined();
  expect(k.witnessed, 'part of the big blob reached the destination before the kill').toBe(true);
  expect(k.exit.signal).toBe('SIGKILL');
  expect(blobStates(k.lines, img.big.digest)).not.toContain('done');
  expect(k.lines.some((l) => l.type === 'report')).toBe(false);
}

describe('SIGKILL + rerun: oci:DIR', () => {
  it('leaves no index entry for the image; the rerun completes it and skips the finished blobs', async () => {
    const dest = path.join(createTempDir('kill-oci'), 'store');
    const args = ['load', bundle, '--to', `oci:${dest}`, '--json'];
    const bigHex = img.big.digest.slice('sha256:'.length);
    const killed = await killWhen(args, {
      armed: bigStartedSmallDone,
      witness: async () =>
        (await filesUnder(path.join(dest, 'blobs', 'sha256'))).some((f) => path.basename(f.file).startsWith(`.${bigHex}.`) && f.size > 0),
    });
    expectKilledMidBlob(killed);

    // No entry names incomplete content: there is no entry at all, and the big blob is not in place.
    const layout = await OciLayout.open(dest);
    const entries = existsSync(path.join(dest, 'index.json')) ? (await layout.readIndex()).manifests : [];
    for (const e of entries) expect(await layout.hasBlob(e.digest), e.digest).toBe(true);
    expect(entries).toEqual([]);
    expect(await layout.hasBlob(img.big.digest)).toBe(false);
    expect(await layout.hasBlob(img.small.digest)).toBe(true);

    const rerun = await ferry(args);
    expect(rerun.code, rerun.stderr).toBe(0);
    const report = reportOf(rerun);
    expect(report.failures).toEqual([]);
    expect(report.mapping).toEqual({ [img.name]: { destination: `oci:${dest}:${img.name}`, digest: img.manifestDigest } });
    expect(report.blobs.skipped).toBeGreaterThanOrEqual(1);
    expect(report.blobs.bytesFetched).toBeLessThan(img.totalBlobBytes);
    expect(blobStates(jsonLinesOf(rerun.stdout), img.small.digest)).toEqual(['skipped']);
    expect((await layout.readIndex()).manifests.map((m) => m.digest)).toEqual([img.manifestDigest]);
    // No temp files left, and skopeo reads the image back out of the layout.
    expect((await readdir(path.join(dest, 'blobs', 'sha256'))).filter((n) => n.startsWith('.'))).toEqual([]);
    const raw = await runSkopeo(['inspect', '--config', `oci:${dest}:${img.name}`]);
    expect(JSON.parse(raw.stdout)).toMatchObject({ rootfs: { type: 'layers' } });
  });
});

function jsonLinesOf(stdout: string): JsonLine[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as JsonLine);
}

describe('SIGKILL + rerun: docker://HOST/PREFIX', () => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });

  it('leaves no tag; the rerun pushes only what is missing and the image is pullable', async () => {
    const args = ['load', bundle, '--to', `docker://${reg.host}/p`, '--json'];
    const repoDir = path.join(reg.storageDir, 'docker', 'registry', 'v2', 'repositories', 'p', 'ferry-test', 'big');
    const killed = await killWhen(args, {
      armed: bigStartedSmallDone,
      // An upload session of the registry holds part of a blob.
      witness: async () => (await filesUnder(path.join(repoDir, '_uploads'))).some((f) => path.basename(f.file) === 'data' && f.size > 0),
    });
    expectKilledMidBlob(killed);

    const tags = await registryTags(reg.url, 'p/ferry-test/big');
    expect(tags === undefined || tags.length === 0, JSON.stringify(tags)).toBe(true);
    expect(await registryManifestDigest(reg.url, 'p/ferry-test/big', img.manifestDigest)).toBeUndefined();
    // The small layer went up completely before the kill.
    expect((await fetch(`${reg.url}/v2/p/ferry-test/big/blobs/${img.small.digest}`, { method: 'HEAD' })).status).toBe(200);

    const rerun = await ferry(args);
    expect(rerun.code, rerun.stderr).toBe(0);
    const report = reportOf(rerun);
    expect(report.failures).toEqual([]);
    expect(report.mapping).toEqual({ [img.name]: { destination: `${reg.host}/p/ferry-test/big:1`, digest: img.manifestDigest } });
    expect(report.blobs.skipped).toBeGreaterThanOrEqual(1);
    expect(report.blobs.fetched).toBe(report.blobs.total - report.blobs.skipped);
    expect(report.blobs.bytesFetched).toBeLessThan(img.totalBlobBytes);
    expect(report.blobs.bytesFetched).toBeGreaterThanOrEqual(img.big.size);
    expect(blobStates(jsonLinesOf(rerun.stdout), img.small.digest)).toEqual(['skipped']);
    expect(await registryTags(reg.url, 'p/ferry-test/big')).toEqual(['1']);
    expect(await registryManifestDigest(reg.url, 'p/ferry-test/big', '1')).toBe(img.manifestDigest);
    const head = await fetch(`${reg.url}/v2/p/ferry-test/big/blobs/${img.big.digest}`, { method: 'HEAD' });
    expect([head.status, Number(head.headers.get('content-length'))]).toEqual([200, img.big.size]);
    const inspect = await runSkopeo(['inspect', '--tls-verify=false', `docker://${reg.host}/p/ferry-test/big:1`]);
    expect(JSON.parse(inspect.stdout)).toMatchObject({ Digest: img.manifestDigest });
  });
});

describe('SIGKILL + rerun: docker-daemon:SOCKET', () => {
  let docker: Engine;
  beforeAll(async () => {
    docker = await startDockerd();
  }, 60_000);
  afterAll(async () => {
    await docker?.stop();
  });

  async function imageIds(): Promise<string[]> {
    const r = await docker.run(['images', '-a', '-q', '--no-trunc']);
    return r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  }

  it('loads no image; the rerun loads it with ID = the config digest', async () => {
    const args = ['load', bundle, '--to', `docker-daemon:${docker.socket}`, '--json'];
    const tmp = path.join(path.dirname(docker.socket), 'data', 'tmp');
    const bigHex = img.big.digest.slice('sha256:'.length);
    const killed = await killWhen(args, {
      armed: bigStarted,
      // dockerd unpacks the incoming archive into data-root/tmp: part of the big blob is there.
      witness: async () => (await filesUnder(tmp)).some((f) => f.file.includes(bigHex) && f.size > 0),
    });
    expectKilledMidBlob(killed);
    expect(await imageIds()).toEqual([]);
    expect((await docker.run(['images', '--format', '{{.Repository}}:{{.Tag}}'])).stdout.trim()).toBe('');

    const rerun = await ferry(args);
    expect(rerun.code, rerun.stderr).toBe(0);
    const report = reportOf(rerun);
    expect(report.failures).toEqual([]);
    expect(report.mapping).toEqual({ [img.name]: { destination: 'docker-daemon:ferry-test/big:1', digest: img.configDigest } });
    const id = await docker.run(['image', 'inspect', '--format', '{{.Id}}', 'ferry-test/big:1']);
    expect(id.stdout.trim()).toBe(img.configDigest);
    expect(await imageIds()).toEqual([img.configDigest]);
  });
});

describe('SIGKILL + rerun: containerd:SOCKET?namespace=test', () => {
  let containerd: Engine;
  beforeAll(async () => {
    containerd = await startContainerd();
  }, 60_000);
  afterAll(async () => {
    await containerd?.stop();
  });

  async function images(): Promise<string> {
    return (await containerd.run(['-n', 'test', 'images', 'ls', '-q'])).stdout.trim();
  }

  it('names no image; the rerun imports and unpacks it at the bundle digest', async () => {
    // Unpacking uses the native snapshotter: overlayfs may not work in a sandbox.
    const args = ['load', bundle, '--to', `containerd:${containerd.socket}?namespace=test`, '--snapshotter', 'native', '--json'];
    const ingest = path.join(path.dirname(containerd.socket), 'root', 'io.containerd.content.v1.content', 'ingest');
    const killed = await killWhen(args, {
      armed: bigStarted,
      // containerd's content store is receiving part of the big blob.
      witness: async () => {
        for (const f of await filesUnder(ingest)) {
          if (path.basename(f.file) !== 'data' || f.size === 0) continue;
          const total = await readFile(path.join(path.dirname(f.file), 'total'), 'utf8').catch(() => '');
          if (total.trim() === String(img.big.size)) return true;
        }
        return false;
      },
    });
    expectKilledMidBlob(killed);
    // The ctr import ferry ran sees its input end early and names nothing.
    expect(await images()).toBe('');

    const rerun = await ferry(args);
    expect(rerun.code, rerun.stderr).toBe(0);
    const report = reportOf(rerun);
    expect(report.failures).toEqual([]);
    expect(report.mapping).toEqual({ [img.name]: { destination: `containerd:${img.name}`, digest: img.manifestDigest } });
    const ls = await containerd.run(['-n', 'test', 'images', 'ls']);
    const row = ls.stdout.split('\n').find((l) => l.startsWith(`${img.name} `));
    expect(row, ls.stdout).toContain(img.manifestDigest);
    const check = await containerd.run(['-n', 'test', 'images', 'check', '--snapshotter', 'native']);
    const rows = check.stdout.trim().split('\n').slice(1);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatch(/\scomplete \((\d+)\/\1\)/);
    expect(rows[0]).toMatch(/\strue\s*$/);
  });
});
