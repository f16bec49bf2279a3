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
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseImageList } from '../../../src/transports/containerd/ctr.js';
import { createPodman, startContainerd, startDockerd, type Engine } from '../../harness/engines.js';
import { findFreePort, startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { requireTool } from '../../harness/tools.js';
import { CLI, ferry } from '../../helpers/cli.js';
import { writeStore } from '../../unit/mirrorconfig/store-fixture.js';

const HUB = 'docker.io/library/mcfg-hub:1';
const GHCR = 'ghcr.io/mcfg-org/tool:1';

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
    const images = new Map(
      [...parseImageList((await containerd.run(['-n', ns, 'images', 'ls'])).stdout).values()].map((r) => [r.name, r.digest]),
    );
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
    const r = await ferry([
      'mirror-config',
      bundle,
      '--format',
      'docker',
      '--registry',
      `http://${serveHost}`,
      '-o',
      path.join(work, 'generated', 'docker'),
    ]);
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
