/**
 * Ctrl-C during `ferry bundle` stops it as it stops `pull`: a message, exit 130 within a few
 * seconds, and nothing left beside the output (no temp bundle, no zstd spools, no output). The
 * pull phase draws what pull draws (here, without a terminal, plain lines).
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { startFaultProxy, type RunningFaultProxy } from '../../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { CLI } from '../../helpers/cli.js';
import { pushSmallCorpus } from '../corpus-registry.js';
import { makeStore } from './craft.js';

let reg: RunningRegistry;
let proxy: RunningFaultProxy;
let corpus: CorpusManifest;

beforeAll(async () => {
  reg = await startRegistry();
  ({ corpus } = await pushSmallCorpus(reg));
  proxy = await startFaultProxy(reg.url);
}, 120_000);
afterAll(cleanupHarness);

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

/** Run `ferry bundle ARGS`, send SIGINT once `ready` says so; exit code, stderr, and how long the stop took. */
async function interrupted(args: string[], ready: (stderr: string) => Promise<boolean>) {
  const child = spawn(process.execPath, [CLI, 'bundle', ...args], { env: { ...process.env, CI: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const reached = await waitFor(() => ready(stderr), 30_000);
  expect(reached, stderr).toBe(true);
  const sentAt = Date.now();
  child.kill('SIGINT');
  const code = await exited;
  return { code, stderr, stopMs: Date.now() - sentAt };
}

describe('Ctrl-C in ferry bundle', () => {
  it('during the pull phase: progress was shown, exit 130, nothing beside the output, the store keeps only verified blobs', async () => {
    const work = createTempDir('bundle-int');
    const outDir = path.join(work, 'out');
    await mkdir(outDir);
    const store = path.join(work, 'store');
    const img = corpus.images.find((i) => i.repo === 'ferry-test/medium')!;
    const layer = corpus.largestLayer.digest;
    proxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${layer}$`), fault: { kind: 'throttle', bytesPerSecond: 200_000 } }]);
    const ref = `${proxy.host}/${img.repo}:${img.tag}`;
    const { code, stderr, stopMs } = await interrupted(
      [ref, '-o', path.join(outDir, 'b.ferry'), '--store', store],
      // The layer is being fetched (its partial is on disk) and the view said so.
      async (err) =>
        err.includes(`resolved ${ref}`) &&
        (await readdir(path.join(store, 'blobs', 'sha256')).catch(() => [] as string[])).some((n) => n.startsWith(`.${layer.slice(7)}.`)),
    );
    proxy.setRules([]);
    expect(code, stderr).toBe(130);
    expect(stopMs).toBeLessThan(5_000);
    expect(stderr).toContain('interrupted, stopping');
    expect(await readdir(outDir)).toEqual([]);
    // Named blobs only under their digests; the one partial kept (a dot file) is what a rerun resumes.
    const names = await readdir(path.join(store, 'blobs', 'sha256'));
    expect(names.filter((n) => n.startsWith('.')).every((n) => n.startsWith(`.${layer.slice(7)}.`))).toBe(true);
    expect(names).not.toContain(layer.slice(7));
  }, 60_000);

  it('while zstd members are spooled: exit 130, spools and temp bundle removed, no output', async () => {
    const work = createTempDir('bundle-int');
    const store = makeStore(path.join(work, 'store'), 192 * 1024 * 1024);
    const outDir = path.join(work, 'out');
    await mkdir(outDir);
    const { code, stderr, stopMs } = await interrupted(
      ['--from-store', '--store', store.dir, '-o', path.join(outDir, 'b.ferry'), '--compression', 'zstd'],
      async () => (await readdir(outDir)).some((n) => n.includes('.zst.')),
    );
    expect(code, stderr).toBe(130);
    expect(stopMs).toBeLessThan(5_000);
    expect(await readdir(outDir)).toEqual([]);
  }, 60_000);
});
