/**
 * `ferry store gc` racing `ferry pull` from a real docker-registry (behind a fault proxy that only
 * slows one blob), as separate processes: each round removes names (so gc has blobs to delete
 * that the pull needs again), starts a gc, starts a pull of every corpus image as soon as that gc
 * has raised its flag, and keeps running gc while the pull runs. Whatever interleaving happens,
 * every name's blobs must exist afterwards and `ferry store verify` must pass.
 *
 * Both sides of the race are forced by ordering rather than left to luck (a CI run once saw
 * every gc turned away): the first gc of a round flags the store before the pull process even
 * starts, so it removes the victims' blobs and the pull must wait for it; the later gcs start
 * only once the pull's lease is on disk, while the slowed blob keeps the pull inside the store,
 * so they are turned away.
 */
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { storeRm } from '../../../src/commands/store.js';
import { analyzeStore } from '../../../src/store/graph.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { ferry, type Run } from '../../helpers/cli.js';
import { startFaultProxy, type RunningFaultProxy } from '../../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { pushSmallCorpus } from '../corpus-registry.js';

let reg: RunningRegistry;
let proxy: RunningFaultProxy;
let corpus: CorpusManifest;

beforeAll(async () => {
  reg = await startRegistry();
  ({ corpus } = await pushSmallCorpus(reg));
  proxy = await startFaultProxy(reg.url);
}, 300_000);

/** Resolves when `cond` holds or `done` has settled (then the caller's later checks decide). */
async function until(cond: () => Promise<boolean> | boolean, done: Promise<unknown>): Promise<void> {
  let settled = false;
  void done.finally(() => {
    settled = true;
  });
  while (!settled && !(await cond())) await new Promise((r) => setTimeout(r, 10));
}
afterAll(cleanupHarness);

describe('gc racing a concurrent pull', () => {
  it('never removes a blob a name or an in-flight pull needs', async () => {
    const store = path.join(createTempDir('gc-race'), 'store');
    const refs = [...new Set(corpus.images.map((i) => `${proxy.host}/${i.repo}:${i.tag}`))];
    const pullArgs = ['pull', '--store', store, ...refs];
    const first = await ferry(pullArgs);
    expect(first.code, first.stderr).toBe(0);
    const leases = path.join(store, '.ferry-leases');
    const gcArgs = ['store', 'gc', '--store', store, '--json'];
    let removed = 0;
    let busy = 0;
    const count = (gc: Run): void => {
      if (gc.code === 0) removed += (JSON.parse(gc.stdout.trim().split('\n').at(-1)!) as { blobs: unknown[] }).blobs.length;
      else {
        expect(gc.stderr, gc.stderr).toMatch(/in use by pid \d+ \(ferry pull/);
        busy++;
      }
    };
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      // Half the names go each round: their own blobs become garbage that the pull needs again.
      const victims = refs.filter((_, i) => i % 2 === round % 2);
      await storeRm(store, victims);
      // The first blob the pull fetches is slow: its lease stays on disk for seconds.
      proxy.setRules([{ method: 'GET', path: /\/blobs\/sha256:/, times: 1, fault: { kind: 'delay', ms: 2500 } }]);
      const firstGc = ferry(gcArgs);
      await until(() => existsSync(path.join(leases, 'gc')), firstGc);
      let pulling = true;
      const pull = ferry(pullArgs).finally(() => {
        pulling = false;
      });
      const gcLoop = (async () => {
        count(await firstGc);
        while (pulling) {
          const writerLease = async (): Promise<boolean> => (await readdir(leases).catch(() => [])).some((f) => f !== 'gc');
          await until(writerLease, pull);
          if (!pulling) break;
          count(await ferry(gcArgs));
        }
      })();
      const [p] = await Promise.all([pull, gcLoop]);
      expect(p.code, p.stderr).toBe(0);
      // Every name whole after every round.
      const graph = await analyzeStore(await OciLayout.open(store));
      expect(graph.entries.map((e) => e.name).sort()).toEqual([...refs].sort());
      for (const e of graph.entries) expect(e.missing, e.name).toEqual([]);
    }
    expect(removed, 'gc removed blobs').toBeGreaterThan(0);
    expect(busy, 'a running pull turned gc away at least once').toBeGreaterThan(0);
    const verify = await ferry(['store', 'verify', '--store', store]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(await readdir(leases)).toEqual([]);
  }, 300_000);
});
