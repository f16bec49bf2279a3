/**
 * A blob download cut short by a dead run (SIGKILL, or Ctrl-C) resumes on the next run with
 * `Range`: the partial temp file is kept, its bytes hashed again, and only the rest is fetched
 * (counted by the proxy in front of the registry). A partial whose bytes are not the blob's is
 * never trusted: the digest check over the whole catches it and the blob is fetched from 0.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { open, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pull } from '../../src/commands/pull.js';
import type { CopyEvent } from '../../src/copy/events.js';
import { OciLayout } from '../../src/transports/oci/layout.js';
import { localHostId } from '../../src/util/fsutil.js';
import type { RunningFaultProxy } from '../harness/fault-proxy.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { CLI } from '../helpers/cli.js';
import { corpusBehindFaultProxy, type ProxiedImage } from './corpus-registry.js';

let proxy: RunningFaultProxy;
let medium: ProxiedImage;

beforeAll(async () => {
  ({ proxy, medium } = await corpusBehindFaultProxy());
}, 120_000);
afterAll(cleanupHarness);
beforeEach(() => {
  proxy.setRules([]);
  proxy.clearRequests();
});

const hexOf = (digest: string): string => digest.slice('sha256:'.length);
const layerGets = () => proxy.requests.filter((r) => r.method === 'GET' && r.url.endsWith(`/blobs/${medium.layer}`));

/** The temp files of the layer in the store, with their sizes. */
async function partials(store: string): Promise<Array<{ file: string; size: number }>> {
  const dir = path.join(store, 'blobs', 'sha256');
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: Array<{ file: string; size: number }> = [];
  for (const n of names.filter((n) => n.startsWith(`.${hexOf(medium.layer)}.`) && n.endsWith('.tmp'))) {
    const s = await stat(path.join(dir, n)).catch(() => undefined);
    if (s) out.push({ file: path.join(dir, n), size: s.size });
  }
  return out;
}

/** Start `ferry pull` of the medium image with its big layer throttled; stop it with `sig` once `atLeast` bytes of it are on disk. */
async function interruptedPull(store: string, sig: NodeJS.Signals, atLeast: number): Promise<{ code: number | null; kept: number }> {
  proxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${medium.layer}$`), fault: { kind: 'throttle', bytesPerSecond: 400_000 } }]);
  const child = spawn(process.execPath, [CLI, 'pull', medium.ref, '--store', store], {
    env: { ...process.env, CI: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  const until = Date.now() + 20_000;
  let reached = false;
  while (Date.now() < until && !reached) {
    reached = (await partials(store)).some((p) => p.size >= atLeast);
    if (!reached) await new Promise((r) => setTimeout(r, 20));
  }
  expect(reached, stderr).toBe(true);
  child.kill(sig);
  const code = await exited;
  proxy.setRules([]);
  const left = await partials(store);
  expect(left, 'the partial download is kept for the next run').toHaveLength(1);
  return { code, kept: left[0]!.size };
}

async function fileDigest(file: string): Promise<string> {
  return `sha256:${createHash('sha256')
    .update(await readFile(file))
    .digest('hex')}`;
}

describe('a blob download resumes across runs', () => {
  it('after SIGKILL mid-blob, the next pull fetches only the rest with Range; the stored blob is the same', async () => {
    const store = path.join(createTempDir('resume'), 'store');
    const { code, kept } = await interruptedPull(store, 'SIGKILL', 600_000);
    expect(code).toBeNull(); // killed
    expect(kept).toBeGreaterThanOrEqual(600_000);
    expect(kept).toBeLessThan(medium.size);
    proxy.clearRequests();

    const events: CopyEvent[] = [];
    const report = await pull({ refs: [medium.ref], store, onEvent: (e) => events.push(e) });
    expect(report.failures).toEqual([]);
    const gets = layerGets();
    expect(gets).toHaveLength(1);
    expect(gets[0]!.headers.range).toBe(`bytes=${kept}-`);
    // Proxy-side: the registry served only the rest of the blob.
    expect(gets[0]!.responseBytes).toBe(medium.size - kept);
    const done = events.find((e) => e.kind === 'blob' && e.state === 'done' && e.digest === medium.layer);
    expect(done && done.kind === 'blob' && done.bytes).toBe(medium.size - kept);
    // The result is the blob: same digest, nothing left over.
    expect(await fileDigest(path.join(store, 'blobs', 'sha256', hexOf(medium.layer)))).toBe(medium.layer);
    expect(await partials(store)).toEqual([]);
  }, 60_000);

  it('after Ctrl-C (exit 130) the partial is kept too, and resumed', async () => {
    const store = path.join(createTempDir('resume'), 'store');
    const { code, kept } = await interruptedPull(store, 'SIGINT', 400_000);
    expect(code).toBe(130);
    proxy.clearRequests();
    const report = await pull({ refs: [medium.ref], store });
    expect(report.failures).toEqual([]);
    const gets = layerGets();
    expect(gets.map((g) => g.headers.range)).toEqual([`bytes=${kept}-`]);
    expect(gets[0]!.responseBytes).toBe(medium.size - kept);
    expect(await fileDigest(path.join(store, 'blobs', 'sha256', hexOf(medium.layer)))).toBe(medium.layer);
  }, 60_000);

  it('a partial whose bytes are not the blob is not trusted: the whole is checked, then fetched again from 0', async () => {
    const store = path.join(createTempDir('resume'), 'store');
    const { kept } = await interruptedPull(store, 'SIGKILL', 300_000);
    // Flip a byte inside the kept prefix.
    const [p] = await partials(store);
    const fh = await open(p!.file, 'r+');
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, 1000);
    b[0] = b[0]! ^ 0xff;
    await fh.write(b, 0, 1, 1000);
    await fh.close();
    proxy.clearRequests();

    const report = await pull({ refs: [medium.ref], store });
    expect(report.failures).toEqual([]);
    // The resumed try fails its digest check; the blob is fetched once more, whole.
    expect(layerGets().map((g) => g.headers.range)).toEqual([`bytes=${kept}-`, undefined]);
    expect(await fileDigest(path.join(store, 'blobs', 'sha256', hexOf(medium.layer)))).toBe(medium.layer);
    expect(await partials(store)).toEqual([]);
  }, 60_000);

  it('a registry that ignores Range: the rest is still right (the kept bytes are skipped in the full answer)', async () => {
    const store = path.join(createTempDir('resume'), 'store');
    const { kept } = await interruptedPull(store, 'SIGKILL', 300_000);
    proxy.clearRequests();
    proxy.setRules([{ method: 'GET', path: new RegExp(`/blobs/${medium.layer}$`), fault: { kind: 'noRange' } }]);
    const report = await pull({ refs: [medium.ref], store });
    expect(report.failures).toEqual([]);
    const gets = layerGets();
    expect(gets.map((g) => g.headers.range)).toEqual([`bytes=${kept}-`]);
    expect(gets[0]!.status).toBe(200);
    expect(await fileDigest(path.join(store, 'blobs', 'sha256', hexOf(medium.layer)))).toBe(medium.layer);
    expect(await partials(store)).toEqual([]);
  }, 60_000);
});

describe('removeStaleTemps keeps what a rerun resumes', () => {
  it('per blob not stored yet, the longest partial of a dead writer; every other dead temp goes', async () => {
    const dir = path.join(createTempDir('stale'), 'store');
    const layout = await OciLayout.open(dir, { create: true });
    // A pid that certainly ended: a child that has exited.
    const gone = spawn(process.execPath, ['-e', '']);
    const deadPid = await new Promise<number>((resolve) => gone.on('exit', () => resolve(gone.pid!)));
    const blobs = path.join(dir, 'blobs', 'sha256');
    const a = 'a'.repeat(64);
    const b = 'b'.repeat(64);
    const stored = Buffer.from('stored blob');
    const storedHex = createHash('sha256').update(stored).digest('hex');
    await writeFile(path.join(blobs, storedHex), stored);
    const temp = (hex: string, tag: string): string => `.${hex}.${localHostId()}-${deadPid}.${tag}.tmp`;
    await writeFile(path.join(blobs, temp(a, '0000aaaa')), Buffer.alloc(100)); // longest of a: kept
    await writeFile(path.join(blobs, temp(a, '0000bbbb')), Buffer.alloc(10)); // shorter: removed
    await writeFile(path.join(blobs, temp(b, '0000cccc')), Buffer.alloc(0)); // empty: removed
    await writeFile(path.join(blobs, temp(storedHex, '0000dddd')), Buffer.alloc(5)); // blob already stored: removed
    await writeFile(path.join(blobs, `.${a}.${localHostId()}-${process.pid}.0000eeee.tmp`), Buffer.alloc(5)); // a live writer's: untouched
    expect(await layout.removeStaleTemps()).toBe(3);
    expect((await readdir(blobs)).sort()).toEqual(
      [temp(a, '0000aaaa'), `.${a}.${localHostId()}-${process.pid}.0000eeee.tmp`, storedHex].sort(),
    );
  });
});
