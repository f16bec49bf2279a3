/**
 * `ferry store …` through the built CLI on a store pulled from the small corpus: ls, inspect,
 * history, tag, rm, gc, df, verify; skopeo still reads the store after rm + gc; a gc killed
 * with SIGKILL half way leaves every name whole, and a rerun completes.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { sha256 } from '../../../src/oci/digest.js';
import { ferry, CLI } from '../../helpers/cli.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';

afterAll(cleanupHarness);

/** The last stdout line, parsed (commands with --json end with their result). */
function lastJson<T>(stdout: string): T {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

const blobNames = async (store: string): Promise<string[]> =>
  (await readdir(path.join(store, 'blobs', 'sha256'))).filter((n) => !n.startsWith('.')).sort();

async function corpusStore(label: string): Promise<{ store: string; corpus: CorpusManifest }> {
  const store = path.join(createTempDir(label), 'store');
  const { corpus } = await storeFromSmallCorpus(store);
  return { store, corpus };
}

describe('ferry store (CLI) on a corpus store', () => {
  it('ls, inspect, history, tag, rm, gc, df and verify; skopeo reads the store after rm + gc', async () => {
    const { store, corpus } = await corpusStore('store-cli');
    const s = ['--store', store];
    const refs = [...new Set(corpus.images.map((i) => i.ref))];

    const ls = await ferry(['store', 'ls', ...s, '--json']);
    expect(ls.code, ls.stderr).toBe(0);
    const listing = lastJson<{
      images: Array<{ name: string; digest: string; added?: string; platforms: string[]; size: number; unique: number }>;
      totals: { images: number; blobs: number; reclaimable: number };
    }>(ls.stdout);
    expect(listing.images.map((i) => i.name).sort()).toEqual(refs.sort());
    for (const img of corpus.images) {
      const row = listing.images.find((i) => i.name === img.ref)!;
      expect(row.digest, img.ref).toBe(img.digest);
      expect(row.added).toMatch(/^\d{4}-\d\d-\d\dT/);
      if (img.platforms) expect(row.platforms, img.ref).toEqual([...new Set(img.platforms)].filter((p) => p !== 'unknown/unknown').sort());
      expect(row.size).toBeGreaterThan(row.unique - 1);
    }
    expect(listing.totals.images).toBe(refs.length);
    expect(listing.totals.blobs).toBe((await blobNames(store)).length);
    expect(listing.totals.reclaimable).toBe(0);

    const table = await ferry(['store', 'ls', ...s]);
    expect(table.stdout.split('\n')[0]).toMatch(/^NAME\s+DIGEST\s+PLATFORMS\s+LAYERS\s+SIZE\s+UNIQUE\s+ADDED$/);
    expect(table.stdout).toMatch(new RegExp(`${refs.length} images, \\d+ blobs, .*reclaimable 0 B`));
    const q = await ferry(['store', 'ls', ...s, '-q', 'ferry-test/multi:*']);
    expect(q.stdout.trim().split('\n').sort()).toEqual(['ferry-test/multi:docker', 'ferry-test/multi:oci']);

    const inspect = await ferry(['store', 'inspect', ...s, 'ferry-test/app:1.0']);
    expect(inspect.code, inspect.stderr).toBe(0);
    const ins = JSON.parse(inspect.stdout) as {
      digest: string;
      images: Array<{ platform: string; config: { cmd: string[]; labels: Record<string, string> } }>;
    };
    expect(ins.digest).toBe(corpus.images.find((i) => i.ref === 'ferry-test/app:1.0')!.digest);
    expect(ins.images.map((i) => i.platform)).toEqual(['linux/amd64']);
    expect(ins.images[0]!.config.cmd).toEqual(['/srv/web/app.bin', '--serve']);
    expect(ins.images[0]!.config.labels['org.opencontainers.image.title']).toBe('app');
    const multi = JSON.parse((await ferry(['store', 'inspect', ...s, 'ferry-test/multi:oci'])).stdout) as {
      images: Array<{ platform: string }>;
    };
    const multiPlatforms = corpus.images.find((i) => i.ref === 'ferry-test/multi:oci')!.platforms!.filter((p) => p !== 'unknown/unknown');
    expect(multi.images.map((i) => i.platform).sort()).toEqual([...multiPlatforms].sort());

    const hist = await ferry(['store', 'history', ...s, 'ferry-test/app:1.0', '--json']);
    expect(hist.code, hist.stderr).toBe(0);
    const h = lastJson<{ images: Array<{ rows: Array<{ size: number | null; emptyLayer: boolean; createdBy: string }> }> }>(hist.stdout);
    const sizes = h.images[0]!.rows.filter((r) => !r.emptyLayer).map((r) => r.size);
    expect(sizes).toHaveLength(3);
    expect(sizes.every((x) => typeof x === 'number' && x > 0)).toBe(true);
    const histTable = await ferry(['store', 'history', ...s, 'ferry-test/app:1.0']);
    expect(histTable.stdout.split('\n')[0]).toMatch(/^CREATED\s+CREATED BY\s+SIZE\s+COMMENT$/);

    const tag = await ferry(['store', 'tag', ...s, 'ferry-test/raw:1', 'example.com/raw:copy']);
    expect(tag.code, tag.stderr).toBe(0);
    const refused = await ferry(['store', 'tag', ...s, 'ferry-test/app:1.0', 'example.com/raw:copy']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('already names');

    const none = await ferry(['store', 'rm', ...s, 'ferry-test/app:1.0', 'nothing-like-this*']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('"nothing-like-this*"');
    const before = await blobNames(store);
    const rm = await ferry(['store', 'rm', ...s, 'ferry-test/app:1.0', 'ferry-test/raw:1']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(await blobNames(store)).toEqual(before); // names only
    // raw's blobs are still named by example.com/raw:copy; app's own are not.
    const df = lastJson<{ totals: { reclaimable: number; reclaimableBlobs: number } }>(
      (await ferry(['store', 'df', ...s, '--json'])).stdout,
    );
    expect(df.totals.reclaimableBlobs).toBeGreaterThan(0);
    const dry = await ferry(['store', 'gc', ...s, '--dry-run', '--json']);
    const dryR = lastJson<{ blobs: Array<{ digest: string }>; bytesFreed: number }>(dry.stdout);
    expect(dryR.bytesFreed).toBe(df.totals.reclaimable);
    expect(await blobNames(store)).toEqual(before);
    const gc = await ferry(['store', 'gc', ...s]);
    expect(gc.code, gc.stderr).toBe(0);
    expect(gc.stdout).toMatch(new RegExp(`^Removed ${dryR.blobs.length} blobs and 0 temp files: `));
    expect(await blobNames(store)).toEqual(before.filter((b) => !dryR.blobs.some((d) => d.digest === `sha256:${b}`)));
    const df2 = lastJson<{ totals: { reclaimable: number; images: number } }>((await ferry(['store', 'df', ...s, '--json'])).stdout);
    expect(df2.totals).toMatchObject({ reclaimable: 0, images: refs.length - 1 });
    const verify = await ferry(['store', 'verify', ...s]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(verify.stdout).toMatch(/^OK: \d+ blobs/);

    // skopeo reads what is left, byte for byte (the lease directory is ignored).
    await mkdir(path.join(store, '.ferry-leases'), { recursive: true });
    for (const ref of ['ferry-test/base:1', 'ferry-test/multi:oci', 'example.com/raw:copy']) {
      const want =
        ref === 'example.com/raw:copy'
          ? corpus.images.find((i) => i.ref === 'ferry-test/raw:1')!.digest
          : corpus.images.find((i) => i.ref === ref)!.digest;
      const raw = await runSkopeo(['inspect', '--raw', `oci:${store}:${ref}`]);
      expect(sha256(Buffer.from(raw.stdout)), ref).toBe(want);
    }

    // Damage: one layer rewritten with other bytes; verify names it and who reaches it; exit 3.
    const base = corpus.images.find((i) => i.ref === 'ferry-test/base:1')!;
    const baseInspect = JSON.parse((await ferry(['store', 'inspect', ...s, base.ref])).stdout) as {
      images: Array<{ layers: Array<{ digest: string; size: number }> }>;
    };
    const layer = baseInspect.images[0]!.layers[0]!;
    await writeFile(path.join(store, 'blobs', 'sha256', layer.digest.slice(7)), Buffer.alloc(layer.size, 1));
    const bad = await ferry(['store', 'verify', ...s]);
    expect(bad.code).toBe(3);
    expect(bad.stdout).toContain(`damaged: ${layer.digest}: content hashes to ${sha256(Buffer.alloc(layer.size, 1))}; reached by `);
    expect(bad.stdout).toContain('ferry-test/base:1');
    expect(bad.stdout).toMatch(/FAILED: 1 damaged blobs/);
  });

  it('a gc killed with SIGKILL half way leaves every name whole; a rerun completes and the store verifies', async () => {
    const { store } = await corpusStore('store-gc-kill');
    const named = await blobNames(store);
    // Many blobs no name reaches (real content under its digest), so the kill lands mid-run.
    const dir = path.join(store, 'blobs', 'sha256');
    const junk = 12_000;
    for (let i = 0; i < junk; i += 500) {
      await Promise.all(
        Array.from({ length: Math.min(500, junk - i) }, (_, k) => {
          const b = Buffer.from(`junk ${i + k}`);
          return writeFile(path.join(dir, sha256(b).slice(7)), b);
        }),
      );
    }
    const total = named.length + junk;
    let killedAt: number | undefined;
    for (let attempt = 0; attempt < 3 && killedAt === undefined; attempt++) {
      const child = spawn(process.execPath, [CLI, 'store', 'gc', '--store', store], { stdio: 'ignore', env: { ...process.env, CI: '1' } });
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      let done = false;
      void exited.then(() => (done = true));
      const start = (await readdir(dir)).length;
      while (!done) {
        const n = (await readdir(dir)).length;
        if (n < start) {
          child.kill('SIGKILL');
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      await exited;
      const left = (await blobNames(store)).length;
      if (left > named.length) killedAt = left;
    }
    expect(killedAt, 'the gc was killed before it finished').toBeDefined();
    expect(killedAt!).toBeLessThan(total);
    // Every name is whole while the unreferenced rest waits for the next gc.
    expect((await blobNames(store)).filter((b) => named.includes(b))).toEqual(named);
    const verify = await ferry(['store', 'verify', '--store', store]);
    expect(verify.code, verify.stdout).toBe(0);
    // The dead gc's flag does not block writers or the next gc.
    const rerun = await ferry(['store', 'gc', '--store', store, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(lastJson<{ blobs: unknown[] }>(rerun.stdout).blobs).toHaveLength(killedAt! - named.length);
    expect(await blobNames(store)).toEqual(named);
    expect(await readdir(path.join(store, '.ferry-leases'))).toEqual([]);
    expect((await ferry(['store', 'verify', '--store', store])).code).toBe(0);
  });
});
