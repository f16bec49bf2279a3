// `ferry mirror-config` as a command: the upstream registries of each kind of source (bundle,
// store directory, oci:DIR, lock file, profile), --for, the refusals (no upstream, bad
// --registry, colliding names, hostile sources), -o writing every file, and the stdout form.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { formatForStdout, mirrorConfig } from '../../../src/commands/mirror-config.js';
import { collectUpstreams } from '../../../src/mirrorconfig/upstreams.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { FerryError } from '../../../src/util/errors.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { ferry } from '../../helpers/cli.js';
import { writeStore } from './store-fixture.js';

let work: string;
let storeDir: string;
let bundle: string;
let lock: string;
let profile: string;

const DIGEST = `sha256:${'b'.repeat(64)}`;

beforeAll(async () => {
  work = createTempDir('mirror-config-unit');
  storeDir = path.join(work, 'store');
  writeStore(storeDir, ['docker.io/library/hub:1', 'ghcr.io/org/app:2', 'reg.example:5000/team/tool:3']);
  bundle = path.join(work, 'b.ferry');
  await writeBundle({ store: await OciLayout.open(storeDir), output: bundle, compression: 'none', created: new Date(0) });
  lock = path.join(work, 'site.lock.json');
  await writeFile(
    lock,
    JSON.stringify({
      apiVersion: 'ferry/v1',
      kind: 'ImageSetLock',
      created: '2026-01-01T00:00:00Z',
      profiles: [],
      images: [{ name: 'quay.io/jetstack/cm:1', ref: `quay.io/jetstack/cm:1@${DIGEST}`, digest: DIGEST, mediaType: 'x', size: 1 }],
    }),
  );
  profile = path.join(work, 'site.yaml');
  await writeFile(
    profile,
    [
      'apiVersion: ferry/v1',
      'kind: ImageSet',
      'metadata: {name: site}',
      'images:',
      '  - ref: nginx:1.27',
      '  - ref: registry.k8s.io/pause:3.10',
      '  - ref: ghcr.io/org/renamed:1',
      '    target: internal.example/org/renamed',
      '',
    ].join('\n'),
  );
});

afterAll(cleanupHarness);

async function refusal(p: Promise<unknown>): Promise<FerryError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FerryError);
  return err as FerryError;
}

describe('upstreams from sources', () => {
  it('a bundle (ferry-bundle.json), a store directory and oci:DIR name the same registries', async () => {
    const want = ['docker.io', 'ghcr.io', 'reg.example:5000'];
    for (const s of [bundle, `bundle:${bundle}`, storeDir, `oci:${storeDir}`]) {
      const c = await collectUpstreams([s]);
      expect(c.upstreams, s).toEqual(want);
      expect(c.images.map((i) => `${i.upstream}/${i.path}${i.suffix}`)).toEqual([
        'docker.io/library/hub:1',
        'ghcr.io/org/app:2',
        'reg.example:5000/team/tool:3',
      ]);
    }
    expect((await collectUpstreams([bundle])).sources[0]?.kind).toBe('bundle');
  });
  it('a lock file: the recorded names; a profile: references, and target: where it renames', async () => {
    expect((await collectUpstreams([lock])).upstreams).toEqual(['quay.io']);
    expect((await collectUpstreams([lock])).sources[0]?.kind).toBe('lock');
    const p = await collectUpstreams([profile]);
    expect(p.sources[0]?.kind).toBe('profile');
    expect(p.upstreams).toEqual(['docker.io', 'internal.example', 'registry.k8s.io']);
  });
  it('several sources and --for: one sorted union', async () => {
    expect((await collectUpstreams([lock, profile, bundle], ['docker.io', 'zot.example'])).upstreams).toEqual([
      'docker.io',
      'ghcr.io',
      'internal.example',
      'quay.io',
      'reg.example:5000',
      'registry.k8s.io',
      'zot.example',
    ]);
  });
  it('names in a store that are not references are skipped, and said so', async () => {
    const dir = path.join(work, 'junk-store');
    writeStore(dir, ['v1', 'UPPER/Case:1', '../../etc/passwd', 'ghcr.io/ok/img:1']);
    const r = await mirrorConfig({ registry: 'reg.local', format: 'k3s', sources: [dir] });
    // A bare tag names no repository: ferry serve does not serve it and ferry load refuses it,
    // so no runtime can ask the mirror for it (it is not docker.io/library/v1).
    expect(r.upstreams).toEqual(['ghcr.io']);
    expect(r.notes.join('\n')).toContain('3 name(s) that are not image references skipped (v1, UPPER/Case:1, ../../etc/passwd)');
  });
  it('a bare tag with a containerd name (a docker save layout) counts by that name, as ferry serve serves it', async () => {
    const dir = path.join(work, 'docker-save-store');
    writeStore(dir, ['v1']);
    const indexFile = path.join(dir, 'index.json');
    const index = JSON.parse(await readFile(indexFile, 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> };
    index.manifests[0]!.annotations['io.containerd.image.name'] = 'docker.io/library/busybox:1';
    await writeFile(indexFile, JSON.stringify(index));
    const r = await mirrorConfig({ registry: 'reg.local', format: 'k3s', sources: [dir] });
    expect(r.upstreams).toEqual(['docker.io']);
    expect(r.notes.join('\n')).not.toContain('skipped');
  });
  it('hostile or missing sources are refused by name', async () => {
    expect((await refusal(collectUpstreams([path.join(work, 'nope')]))).exitCode).toBe(2);
    const notRegular = await refusal(collectUpstreams(['/dev/null']));
    expect(notRegular.message).toContain('/dev/null');
    const badLock = path.join(work, 'bad.lock.json');
    await writeFile(badLock, '{"apiVersion":"ferry/v1","kind":"ImageSetLock","images":[{"name":1}]}');
    expect((await refusal(collectUpstreams([badLock]))).message).toContain(badLock);
    const notTar = path.join(work, 'x.ferry');
    await writeFile(notTar, 'images: [');
    expect((await refusal(collectUpstreams([`bundle:${notTar}`]))).exitCode).toBe(2);
  });
});

describe('mirrorConfig', () => {
  it('no upstream and no --for: exit 2 naming what to give', async () => {
    const e = await refusal(mirrorConfig({ registry: 'reg.local', format: 'containerd', sources: [] }));
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain('--for');
    const empty = path.join(work, 'empty-store');
    writeStore(empty, []);
    expect((await refusal(mirrorConfig({ registry: 'reg.local', format: 'containerd', sources: [empty] }))).exitCode).toBe(2);
  });
  it('a bad --registry is refused before any source is read', async () => {
    const e = await refusal(mirrorConfig({ registry: 'reg.local/Mirror', format: 'k3s', sources: ['/nonexistent'] }));
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain('--registry');
  });
  it('--for with a comma list; a bad --for is exit 2', async () => {
    const r = await mirrorConfig({ registry: 'reg.local', format: 'registries-conf', sources: [], for: ['docker.io,ghcr.io', 'quay.io'] });
    expect(r.upstreams).toEqual(['docker.io', 'ghcr.io', 'quay.io']);
    expect((await refusal(mirrorConfig({ registry: 'reg.local', format: 'k3s', sources: [], for: ['../../etc'] }))).exitCode).toBe(2);
  });
  it('the same repository path from two registries needs --scoped', async () => {
    const dir = path.join(work, 'collide');
    writeStore(dir, ['docker.io/org/app:1', 'ghcr.io/org/app:1']);
    const e = await refusal(mirrorConfig({ registry: 'reg.local/m', format: 'containerd', sources: [dir] }));
    expect(e.exitCode).toBe(2);
    expect(e.message).toContain('docker.io/org/app and ghcr.io/org/app');
    await mirrorConfig({ registry: 'reg.local/m', format: 'containerd', sources: [dir], scoped: true });
  });
  it('-o writes every file under the directory, byte for byte what stdout would show', async () => {
    const out = path.join(work, 'out');
    const r = await mirrorConfig({ registry: 'reg.local:5000/m', format: 'containerd', sources: [bundle], output: out });
    expect(r.written).toEqual(r.files.map((f) => path.join(out, ...f.path.split('/'))));
    for (const f of r.files) expect(await readFile(path.join(out, f.path), 'utf8')).toBe(f.text);
    expect(formatForStdout(r.files)).toContain('# file: certs.d/reg.example:5000/hosts.toml\n');
  });
});

describe('the CLI', () => {
  it('one file: its text on stdout; several: each after # file:', async () => {
    const one = await ferry(['mirror-config', bundle, '--registry', 'reg.local', '--format', 'k3s']);
    expect(one.code).toBe(0);
    expect(one.stdout.startsWith('# Generated by ferry mirror-config')).toBe(true);
    expect(one.stdout).not.toContain('# file:');
    const several = await ferry(['mirror-config', bundle, '--registry', 'reg.local', '--format', 'openshift']);
    expect(several.stdout.split('\n').filter((l) => l.startsWith('# file: '))).toEqual([
      '# file: imagedigestmirrorset.yaml',
      '# file: imagetagmirrorset.yaml',
    ]);
    // Deterministic: the same input, the same bytes.
    expect((await ferry(['mirror-config', bundle, '--registry', 'reg.local', '--format', 'openshift'])).stdout).toBe(several.stdout);
  });
  it.each([
    [['--registry', 'reg.local', '--format', 'k3s'], 'no upstream registry'],
    [['--registry', 'reg.local/UP', '--format', 'k3s', '--for', 'docker.io'], '--registry'],
    [['--registry', 'reg.local', '--format', 'helm', '--for', 'docker.io'], 'format'],
    [['--registry', 'reg.local/m', '--format', 'docker', '--for', 'docker.io'], 'registry-mirrors'],
    [['--format', 'k3s', '--for', 'docker.io'], 'registry'],
  ])('exit 2: %j', async (args, text) => {
    const r = await ferry(['mirror-config', ...args]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(text);
    expect(r.stdout).toBe('');
  });
  it('-o lists what it wrote', async () => {
    const out = path.join(work, 'cli-out');
    const r = await ferry(['mirror-config', bundle, '--registry', 'http://reg.local', '--format', 'docker', '-o', out]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`wrote ${path.join(out, 'daemon.json')}\nwrote ${path.join(out, 'README.md')}\n`);
    expect(r.stderr).toContain('note: Docker Engine uses the mirror for Docker Hub images only');
  });
});
