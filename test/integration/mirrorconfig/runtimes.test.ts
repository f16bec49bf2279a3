// `ferry mirror-config` with the real runtimes, and no route to the upstream registries (they
// cannot be reached from here, which is the point: a pull that fell back to docker.io or
// ghcr.io would fail). A store holding `docker.io/library/mcfg-hub:1` and
// `ghcr.io/mcfg-org/tool:1` is bundled with `ferry bundle --from-store`; the bundle is loaded
// into a real docker-registry under a prefix (and under another prefix with --scoped), and
// served by `ferry serve`. The generated configuration is then the only thing that tells each
// runtime where to look: containerd (`ctr images pull --hosts-dir`), podman
// (CONTAINERS_REGISTRIES_CONF) and Docker Engine (daemon.json). Every pulled digest must be
// the bundle's. Missing tools fail the suite (requireTool); nothing is skipped.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseImageList } from '../../../src/transports/containerd/ctr.js';
import { createPodman, startContainerd, startDockerd, type Engine } from '../../harness/engines.js';
import { findFreePort, startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { requireTool } from '../../harness/tools.js';
import { CLI, ferry } from '../../helpers/cli.js';

const HUB = 'docker.io/library/mcfg-hub:1';
const GHCR = 'ghcr.io/mcfg-org/tool:1';

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A one-file ustar archive: the layer of a test image. */
function tarOneFile(name: string, content: Buffer): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 'utf8');
  header.write('0000644\0', 100, 'latin1');
  header.write('0000000\0', 108, 'latin1');
  header.write('0000000\0', 116, 'latin1');
  header.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write('00000000000\0', 136, 'latin1');
  header.write('        ', 148, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\0', 257, 'latin1');
  header.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([header, content, pad, Buffer.alloc(1024)]);
}

/** An OCI layout holding one linux/amd64 image per name; returns name → manifest digest. */
function writeStore(dir: string, names: readonly string[]): Map<string, string> {
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (b: Buffer): string => {
    const d = sha256(b);
    writeFileSync(path.join(dir, 'blobs', 'sha256', d.slice(7)), b);
    return d;
  };
  const digests = new Map<string, string>();
  const manifests = [];
  for (const name of names) {
    const tar = tarOneFile('hello.txt', Buffer.from(`mirror-config test image ${name}\n`));
    const layer = gzipSync(tar);
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: { Cmd: ['/hello'] },
        rootfs: { type: 'layers', diff_ids: [sha256(tar)] },
      }),
    );
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: put(layer), size: layer.length }],
      }),
    );
    const digest = put(manifest);
    digests.set(name, digest);
    manifests.push({
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest,
      size: manifest.length,
      annotations: { 'org.opencontainers.image.ref.name': name },
    });
  }
  writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  writeFileSync(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests }));
  return digests;
}

async function ok(args: string[]): Promise<string> {
  const r = await ferry(args);
  if (r.code !== 0) throw new Error(`ferry ${args.join(' ')} exited ${r.code}\n${r.stderr}`);
  return r.stdout;
}

let work: string;
let bundle: string;
let digests: Map<string, string>;
let registry: RunningRegistry;
let serve: ChildProcess;
let serveHost: string;

/** Start `ferry serve BUNDLE` (the built CLI) on a free loopback port and wait for /v2/. */
async function startServe(): Promise<void> {
  const port = await findFreePort();
  serveHost = `127.0.0.1:${port}`;
  serve = spawn(process.execPath, [CLI, 'serve', bundle, '--listen', serveHost], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  serve.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  serve.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (serve.exitCode !== null) throw new Error(`ferry serve exited ${serve.exitCode}: ${log}`);
    const status = await fetch(`http://${serveHost}/v2/`).then(
      (r) => r.status,
      () => undefined,
    );
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`ferry serve did not answer: ${log}`);
}

beforeAll(async () => {
  for (const tool of ['containerd', 'ctr', 'podman', 'dockerd', 'docker'] as const) requireTool(tool);
  work = createTempDir('mirror-config');
  const store = path.join(work, 'store');
  digests = writeStore(store, [HUB, GHCR]);
  bundle = path.join(work, 'images.ferry');
  await ok(['bundle', '--from-store', '--store', store, '-o', bundle]);
  registry = await startRegistry();
  await ok(['load', bundle, '--to', `docker://${registry.host}/mirror`]);
  await ok(['load', bundle, '--to', `docker://${registry.host}/scoped`, '--scoped']);
  await startServe();
}, 180_000);

afterAll(async () => {
  if (serve && serve.exitCode === null) {
    serve.kill('SIGTERM');
    await new Promise((r) => serve.once('close', r));
  }
  await registry?.stop();
  await cleanupHarness();
});

/** `ferry mirror-config BUNDLE --format F --registry R [extra] -o DIR`; returns DIR. */
async function generate(name: string, format: string, reg: string, extra: string[] = []): Promise<string> {
  const dir = path.join(work, 'generated', name);
  const out = await ok(['mirror-config', bundle, '--format', format, '--registry', reg, ...extra, '-o', dir]);
  expect(out).toContain(`wrote ${dir}`);
  return dir;
}

describe('containerd pulls the upstream names through the generated hosts.toml', () => {
  let containerd: Engine;

  beforeAll(async () => {
    containerd = await startContainerd();
  }, 60_000);

  afterAll(async () => {
    await containerd?.stop();
  });

  const cases = [
    { name: 'registry, prefix', reg: () => `http://${registry.host}/mirror`, extra: [] as string[] },
    { name: 'registry, prefix, --scoped', reg: () => `http://${registry.host}/scoped`, extra: ['--scoped'] },
    { name: 'ferry serve (?ns=)', reg: () => `http://${serveHost}`, extra: [] as string[] },
  ];

  it.each(cases)('$name', async ({ name, reg, extra }) => {
    const dir = await generate(`containerd-${name.replace(/\W+/g, '-')}`, 'containerd', reg(), extra);
    const ns = `mcfg-${cases.findIndex((c) => c.name === name)}`;
    for (const ref of [HUB, GHCR]) {
      await containerd.run(['-n', ns, 'images', 'pull', '--hosts-dir', path.join(dir, 'certs.d'), '--snapshotter', 'native', ref], {
        timeoutMs: 60_000,
      });
    }
    const images = new Map([...parseImageList((await containerd.run(['-n', ns, 'images', 'ls'])).stdout).values()].map((r) => [r.name, r.digest]));
    expect(images.get(HUB)).toBe(digests.get(HUB));
    expect(images.get(GHCR)).toBe(digests.get(GHCR));
  });

  it('without the generated configuration the same pull fails (no route upstream)', async () => {
    const r = await containerd.run(['-n', 'mcfg-none', 'images', 'pull', '--snapshotter', 'native', HUB], {
      allowFailure: true,
      timeoutMs: 60_000,
    });
    expect(r.code).not.toBe(0);
  });
});

describe('podman pulls the upstream names through the generated registries.conf', () => {
  it.each([
    { name: 'registry, prefix', reg: () => `http://${registry.host}/mirror`, extra: [] as string[] },
    { name: 'registry, prefix, --scoped', reg: () => `http://${registry.host}/scoped`, extra: ['--scoped'] },
    { name: 'ferry serve', reg: () => `http://${serveHost}`, extra: [] as string[] },
  ])('$name', async ({ name, reg, extra }) => {
    const dir = await generate(`podman-${name.replace(/\W+/g, '-')}`, 'registries-conf', reg(), extra);
    const conf = path.join(dir, 'registries.conf');
    expect(readFileSync(conf, 'utf8')).toContain('insecure = true');
    const podman = createPodman();
    const env = { CONTAINERS_REGISTRIES_CONF: conf };
    for (const ref of [HUB, GHCR]) {
      await podman.run(['pull', ref], { env, timeoutMs: 60_000 });
      const r = await podman.run(['image', 'inspect', '--format', '{{.Digest}}', ref], { env });
      expect(r.stdout.trim(), ref).toBe(digests.get(ref));
    }
  });
});

describe('Docker Engine pulls a Docker Hub name through the generated daemon.json', () => {
  let docker: Engine;
  let notes: string;

  beforeAll(async () => {
    const r = await ferry(['mirror-config', bundle, '--format', 'docker', '--registry', `http://${serveHost}`, '-o', path.join(work, 'generated', 'docker')]);
    expect(r.code).toBe(0);
    notes = r.stderr;
    const daemonJson = JSON.parse(readFileSync(path.join(work, 'generated', 'docker', 'daemon.json'), 'utf8')) as Record<string, unknown>;
    expect(daemonJson).toEqual({ 'registry-mirrors': [`http://${serveHost}`], 'insecure-registries': [serveHost] });
    docker = await startDockerd({ config: daemonJson });
  }, 60_000);

  afterAll(async () => {
    await docker?.stop();
  });

  it('docker pull mcfg-hub:1 comes from ferry serve with the bundle digest', async () => {
    await docker.run(['pull', 'mcfg-hub:1'], { timeoutMs: 60_000 });
    const r = await docker.run(['image', 'inspect', '--format', '{{json .RepoDigests}}', 'mcfg-hub:1']);
    expect(JSON.parse(r.stdout.trim())).toEqual([`mcfg-hub@${digests.get(HUB)}`]);
  });

  it('the ghcr.io image is listed by its mirror name, and that name pulls', async () => {
    expect(notes).toContain('ghcr.io');
    const readme = readFileSync(path.join(work, 'generated', 'docker', 'README.md'), 'utf8');
    const mirrorName = `${serveHost}/mcfg-org/tool:1`;
    expect(readme).toContain(`\`${GHCR}\` → \`${mirrorName}\``);
    await docker.run(['pull', mirrorName], { timeoutMs: 60_000 });
    const r = await docker.run(['image', 'inspect', '--format', '{{json .RepoDigests}}', mirrorName]);
    expect(JSON.parse(r.stdout.trim())).toEqual([`${serveHost}/mcfg-org/tool@${digests.get(GHCR)}`]);
  });
});
