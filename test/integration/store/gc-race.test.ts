/**
 * `ferry store gc` racing `ferry pull` from a real docker-registry, as separate processes: each
 * round removes names (so gc has blobs to delete that the pull needs again), then runs a pull
 * of every corpus image while gc runs in a loop. Whatever interleaving happens, every name's
 * blobs must exist afterwards and `ferry store verify` must pass; gc must have both removed
 * blobs and been turned away by a running pull at least once, or the race was not exercised.
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { storeRm } from '../../../src/commands/store.js';
import { analyzeStore } from '../../../src/store/graph.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { ferry } from '../../helpers/cli.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { pushSmallCorpus } from '../corpus-registry.js';

let reg: RunningRegistry;
let corpus: CorpusManifest;

beforeAll(async () => {
  reg = await startRegistry();
  ({ corpus } = await pushSmallCorpus(reg));
}, 300_000);
afterAll(cleanupHarness);

describe('gc racing a concurrent pull', () => {
  it('never removes a blob a name or an in-flight pull needs', async () => {
    const store = path.join(createTempDir('gc-race'), 'store');
    const refs = [...new Set(corpus.images.map((i) => `${reg.host}/${i.repo}:${i.tag}`))];
    const pullArgs = ['pull', '--store', store, ...refs];
    const first = await ferry(pullArgs);
    expect(first.code, first.stderr).toBe(0);
    let removed = 0;
    let busy = 0;
    const rounds = 4;
    for (let round = 0; round < rounds; round++) {
      // Half the names go each round: their own blobs become garbage that the pull needs again.
      const victims = refs.filter((_, i) => i % 2 === round % 2);
      await storeRm(store, victims);
      let pulling = true;
      const pull = ferry(pullArgs).finally(() => {
        pulling = false;
      });
      const gcLoop = (async () => {
        for (let i = 0; pulling || i === 0; i++) {
          const gc = await ferry(['store', 'gc', '--store', store, '--json']);
          if (gc.code === 0) removed += (JSON.parse(gc.stdout.trim().split('\n').at(-1)!) as { blobs: unknown[] }).blobs.length;
          else {
            expect(gc.stderr, gc.stderr).toMatch(/in use by pid \d+ \(ferry pull/);
            busy++;
          }
        }
      })();
      const [p] = await Promise.all([pull, gcLoop]);
      expect(p.code, p.stderr).toBe(0);
      // Every name whole after every round.
      const graph = await analyzeStore(await OciLayout.open(store));
      expect(graph.entries.map((e) => e.name).sort()).toEqual([...refs].sort());
      for (const e of graph.entries) expect(e.missing, e.name).toEqual([]);
    }
    expect(removed, 'gc removed blobs in some round').toBeGreaterThan(0);
    expect(busy, 'a running pull turned gc away at least once').toBeGreaterThan(0);
    const verify = await ferry(['store', 'verify', '--store', store]);
    expect(verify.code, verify.stdout).toBe(0);
    expect(await readdir(path.join(store, '.ferry-leases'))).toEqual([]);
  }, 300_000);
});
