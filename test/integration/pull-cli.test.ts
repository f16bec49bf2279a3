/**
 * The ferry CLI as a user runs it (the built dist/bin/ferry.mjs, the package's bin): exit codes, --json output,
 * image lists, --password-stdin, and a pull killed with SIGKILL mid-blob that a rerun completes.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../scripts/corpus/generate.js';
import { OciLayout } from '../../src/transports/oci/layout.js';
import { sha256 } from '../../src/oci/digest.js';
import { startFaultProxy, type RunningFaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { runSkopeo } from '../harness/tools.js';
import { CLI, ferry } from '../helpers/cli.js';
import { pushSmallCorpus } from './corpus-registry.js';

let reg: RunningRegistry;
let corpus: CorpusManifest;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  reg = await startRegistry({ auth: 'htpasswd' });
  ({ corpus } = await pushSmallCorpus(reg));
});
afterAll(cleanupHarness);

describe('ferry pull (CLI)', () => {
  it('pulls from a list with --password-stdin; --json ends with a report', async () => {
    const dir = createTempDir('cli');
    const list = path.join(dir, 'images.txt');
    const imgs = corpus.images.slice(0, 4);
    await writeFile(list, `# test list\n\n${imgs.map((i) => `${reg.host}/${i.repo}:${i.tag}`).join('\n')}\n`);
    const r = await ferry(
      ['pull', '-f', list, '--store', path.join(dir, 'store'), '--json', '--username', reg.username!, '--password-stdin'],
      { input: `${reg.password!}\n` },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; images?: Array<{ name: string; digest: string }> });
    const report = lines.at(-1)!;
    expect(report.type).toBe('report');
    expect(report.images!.map((i) => i.digest)).toEqual(imgs.map((i) => i.digest));
    expect(lines.some((l) => l.type === 'event')).toBe(true);
    expect(r.stdout).not.toContain(reg.password!);
  });

  it('plain output names images and a summary; FERRY_STORE sets the store', async () => {
    const dir = createTempDir('cli2');
    const img = corpus.images[0]!;
    const r = await ferry(['pull', `${reg.host}/${img.repo}:${img.tag}`, '--username', reg.username!, '--password-stdin'], {
      input: reg.password!,
      env: { FERRY_STORE: path.join(dir, 'envstore') },
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Pulled 1 of 1 images into .*envstore/);
    expect(existsSync(path.join(dir, 'envstore', 'index.json'))).toBe(true);
  });

  it('exit 1 when an image fails, with the registry error; exit 2 on usage errors', async () => {
    const dir = createTempDir('cli3');
    const r = await ferry(
      ['pull', `${reg.host}/ferry-test/base:nope`, '--store', path.join(dir, 's'), '--username', reg.username!, '--password-stdin'],
      { input: reg.password! },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('MANIFEST_UNKNOWN');
    const usage = await ferry(['pull', '--store', path.join(dir, 's')]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/nothing to pull/);
    const badRef = await ferry(['pull', 'Not/Valid', '--store', path.join(dir, 's')]);
    expect(badRef.code).toBe(2);
    expect(badRef.stderr).toMatch(/must be lowercase/);
    const badPlatform = await ferry(['pull', 'x', '--platform', 'linux', '--store', path.join(dir, 's')]);
    expect(badPlatform.code).toBe(2);
    const noCreds = await ferry([
      'pull',
      `${reg.host}/ferry-test/base:1`,
      '--store',
      path.join(dir, 's'),
      '--authfile',
      path.join(dir, 'none.json'),
    ]);
    expect(noCreds.code).toBe(1);
    expect(noCreds.stderr).toMatch(/UNAUTHORIZED|HTTP 401/);
  });
});

describe('a pull with nothing new', () => {
  it('costs one manifest request per image (the children of an index are read from the store) and writes nothing', async () => {
    const proxy = await startFaultProxy(reg.url);
    try {
      const imgs = corpus.images.filter((i) => i.kind === 'oci-index' || i.kind === 'docker-list' || i.repo === 'ferry-test/base');
      expect(imgs.some((i) => i.kind === 'oci-index')).toBe(true);
      const refs = imgs.map((i) => `${proxy.host}/${i.repo}:${i.tag}`);
      const store = path.join(createTempDir('again'), 'store');
      const args = ['pull', ...refs, '--store', store, '--username', reg.username!, '--password-stdin', '--json'];
      expect((await ferry(args, { input: reg.password! })).code).toBe(0);
      const index = await readFile(path.join(store, 'index.json'));
      const before = await stat(path.join(store, 'index.json'));
      proxy.clearRequests();
      const again = await ferry(args, { input: reg.password! });
      expect(again.code, again.stderr).toBe(0);
      const content = proxy.requests.filter((r) => /\/(manifests|blobs)\//.test(r.url) && r.status !== 401);
      expect(content.filter((r) => r.url.includes('/blobs/'))).toEqual([]);
      expect(content.map((r) => r.url.replace(/^\/v2\//, '')).sort()).toEqual(imgs.map((i) => `${i.repo}/manifests/${i.tag}`).sort());
      // No write: index.json is the same file with the same bytes.
      const after = await stat(path.join(store, 'index.json'));
      expect([after.ino, after.mtimeMs]).toEqual([before.ino, before.mtimeMs]);
      expect(await readFile(path.join(store, 'index.json'))).toEqual(index);
      const report = JSON.parse(again.stdout.trim().split('\n').at(-1)!) as { images: Array<{ skipped?: boolean }> };
      expect(report.images.map((i) => i.skipped)).toEqual(imgs.map(() => true));
    } finally {
      await proxy.stop();
    }
  });
});

describe('a pull killed mid-blob', () => {
  let proxy: RunningFaultProxy;
  beforeAll(async () => {
    proxy = await startFaultProxy(reg.url);
  });

  it('SIGKILL leaves no name for the unfinished image; a rerun completes a store skopeo reads', async () => {
    const img = corpus.images.find((i) => i.repo === 'ferry-test/medium')!;
    const layer = corpus.largestLayer;
    // Slow the big layer down so the kill lands in the middle of it.
    proxy.setRules([
      { method: 'GET', path: new RegExp(`/blobs/${layer.digest}$`), fault: { kind: 'throttle', bytesPerSecond: 256 * 1024 } },
    ]);
    const store = path.join(createTempDir('kill'), 'store');
    const ref = `${proxy.host}/${img.repo}:${img.tag}`;
    const child = spawn(process.execPath, [CLI, 'pull', ref, '--store', store, '--username', reg.username!, '--password-stdin'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    child.stdin.end(reg.password!);
    const blobs = path.join(store, 'blobs', 'sha256');
    // Wait until the layer's temp file exists and has some bytes, then kill.
    const deadline = Date.now() + 30_000;
    let partial: string | undefined;
    while (Date.now() < deadline && !partial) {
      await sleep(50);
      const names = existsSync(blobs) ? await readdir(blobs) : [];
      partial = names.find((n) => n.startsWith(`.${layer.digest.slice(7)}.`));
    }
    expect(partial, 'the layer download started').toBeDefined();
    await sleep(300);
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));

    const layout = await OciLayout.open(store);
    expect((await layout.readIndex()).manifests).toEqual([]);
    expect(await layout.hasBlob(layer.digest)).toBe(false);

    proxy.setRules([]);
    const rerun = await ferry(['pull', ref, '--store', store, '--username', reg.username!, '--password-stdin'], { input: reg.password! });
    expect(rerun.code).toBe(0);
    const names = await readdir(blobs);
    expect(names.filter((n) => n.startsWith('.'))).toEqual([]);
    const entry = (await layout.readIndex()).manifests[0]!;
    expect(entry.digest).toBe(img.digest);
    const raw = await runSkopeo(['inspect', '--raw', `oci:${store}:${ref}`]);
    expect(sha256(Buffer.from(raw.stdout))).toBe(img.digest);
    // skopeo can copy the image out of the store, so every blob is intact.
    await runSkopeo(['copy', `oci:${store}:${ref}`, `oci:${path.join(createTempDir('kill-copy'), 'out')}:x`]);
  });
});
