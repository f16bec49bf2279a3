import { mkdtemp, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { sha256 } from '../../../src/oci/digest.js';
import type { Descriptor } from '../../../src/oci/manifest.js';

/** Every atomic write of index.json, with the number of entries it held. */
const writes = vi.hoisted(() => [] as number[]);
const syncs = vi.hoisted(() => ({ n: 0 }));

vi.mock('../../../src/util/fsutil.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../../src/util/fsutil.js')>();
  return {
    ...orig,
    writeFileAtomic: async (file: string, data: string | Uint8Array, opts?: Parameters<typeof orig.writeFileAtomic>[2]) => {
      if (file.endsWith('index.json') && typeof data === 'string')
        writes.push((JSON.parse(data) as { manifests: unknown[] }).manifests.length);
      return orig.writeFileAtomic(file, data, opts);
    },
    fsyncDir: async (dir: string) => {
      syncs.n++;
      return orig.fsyncDir(dir);
    },
  };
});

const { OciLayout, mergeIndexEntries, REF_NAME } = await import('../../../src/transports/oci/layout.js');

const MT = 'application/vnd.oci.image.manifest.v1+json';
const named = (name: string, digest: string): Descriptor => ({ mediaType: MT, digest, size: 2, annotations: { [REF_NAME]: name } });
const unnamed = (digest: string): Descriptor => ({ mediaType: MT, digest, size: 2 });
const d = (n: number): string => sha256(Buffer.from(`blob ${n}`));

/** The reference semantics: putIndexEntries as it was, one entry after another over the array. */
function sequential(current: Descriptor[], entries: Descriptor[]): Descriptor[] {
  let next = current;
  for (const e of entries) {
    const name = e.annotations?.[REF_NAME];
    const same = (x: Descriptor): boolean =>
      name !== undefined ? x.annotations?.[REF_NAME] === name : x.digest === e.digest && x.annotations?.[REF_NAME] === undefined;
    const at = next.findIndex(same);
    next = next.filter((x) => !same(x));
    next.splice(at === -1 ? next.length : at, 0, e);
  }
  return next;
}

describe('mergeIndexEntries', () => {
  it('matches one-after-another replacement: places kept, duplicates removed, new names appended, later wins', () => {
    const current = [named('a', d(1)), unnamed(d(2)), named('b', d(3)), named('a', d(4)), named('c', d(5))];
    const entries = [named('b', d(9)), named('z', d(10)), unnamed(d(2)), named('a', d(11)), named('z', d(12)), unnamed(d(13))];
    const { next, changed } = mergeIndexEntries(current, entries);
    expect(next).toEqual(sequential(current, entries));
    expect(next.map((x) => x.annotations?.[REF_NAME] ?? x.digest)).toEqual(['a', d(2), 'b', 'c', 'z', d(13)]);
    expect(next[0]!.digest).toBe(d(11));
    expect(next[4]!.digest).toBe(d(12));
    // b changed, first z overridden by the later z (which is new), the unnamed d(2) was there already,
    // a replaced both of its entries, d(13) is new.
    expect(changed).toEqual([true, false, false, true, true, true]);
  });

  it('says nothing changed for entries already present exactly', () => {
    const current = [named('a', d(1)), named('b', d(2))];
    const { next, changed } = mergeIndexEntries(current, [named('b', d(2)), named('a', d(1))]);
    expect(next).toEqual(current);
    expect(changed).toEqual([false, false]);
  });

  it('agrees with the sequential semantics on random batches', () => {
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const gen = (): Descriptor => (rnd(4) === 0 ? unnamed(d(rnd(6))) : named(`n${rnd(8)}`, d(rnd(6))));
    for (let round = 0; round < 300; round++) {
      const current = Array.from({ length: rnd(10) }, gen);
      const entries = Array.from({ length: rnd(10) }, gen);
      const want = sequential(current, entries);
      const { next, changed } = mergeIndexEntries(current, entries);
      expect(next).toEqual(want);
      expect(changed.some((c) => c)).toBe(JSON.stringify(want) !== JSON.stringify(current));
    }
  });
});

describe('queueIndexEntry (group commit)', () => {
  it('writes entries queued together in one batch, and entries queued during a write in the next', async () => {
    const dir = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-group-')), 'store');
    const store = await OciLayout.open(dir, { create: true });
    writes.length = 0;
    syncs.n = 0;
    const first = Array.from({ length: 200 }, (_, i) => store.queueIndexEntry(named(`example.com/img${i}:1`, d(i))));
    expect(await Promise.all(first)).toEqual(first.map(() => true));
    expect(writes).toEqual([200]);
    expect(syncs.n).toBeLessThanOrEqual(2); // the blobs dir once, the parent dir of index.json once

    // Queued while a batch is being written: a second batch, not one write per entry.
    writes.length = 0;
    const a = store.queueIndexEntry(named('example.com/late0:1', d(1000)));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const rest = Array.from({ length: 50 }, (_, i) => store.queueIndexEntry(named(`example.com/late${i + 1}:1`, d(1001 + i))));
    await Promise.all([a, ...rest]);
    expect(writes.length).toBeLessThanOrEqual(2);
    expect(writes.at(-1)).toBe(251);

    const doc = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: Descriptor[] };
    expect(doc.manifests.map((m) => m.annotations?.[REF_NAME])).toEqual([
      ...first.map((_, i) => `example.com/img${i}:1`),
      ...Array.from({ length: 51 }, (_, i) => `example.com/late${i}:1`),
    ]);
    // No lock files or temps left behind.
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
  });

  it('does not rewrite index.json when every queued entry is already there, and reports each entry', async () => {
    const dir = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-group-')), 'store');
    const store = await OciLayout.open(dir, { create: true });
    await Promise.all([store.queueIndexEntry(named('x:1', d(1))), store.queueIndexEntry(named('y:1', d(2)))]);
    writes.length = 0;
    syncs.n = 0;
    const again = await Promise.all([store.queueIndexEntry(named('x:1', d(1))), store.queueIndexEntry(named('y:1', d(3)))]);
    expect(again).toEqual([false, true]);
    expect(writes).toEqual([2]);
    writes.length = 0;
    syncs.n = 0;
    expect(await Promise.all([store.queueIndexEntry(named('x:1', d(1))), store.queueIndexEntry(named('y:1', d(3)))])).toEqual([
      false,
      false,
    ]);
    expect(writes).toEqual([]);
    expect(syncs.n).toBe(0);
  });

  it('rejects every entry of a batch that cannot be written, and the next batch still commits', async () => {
    const dir = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-group-')), 'store');
    const store = await OciLayout.open(dir, { create: true });
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(dir, 'index.json'), '{ not json');
    const failed = await Promise.allSettled([store.queueIndexEntry(named('a:1', d(1))), store.queueIndexEntry(named('b:1', d(2)))]);
    expect(failed.map((f) => f.status)).toEqual(['rejected', 'rejected']);
    expect((failed[0] as PromiseRejectedResult).reason).toMatchObject({ code: 'LAYOUT_INVALID' });
    await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [] }));
    expect(await store.queueIndexEntry(named('a:1', d(1)))).toBe(true);
  });
});

describe('readIndex cache', () => {
  it('answers resolve for every name of a large index, and sees another writer replacing or rewriting index.json', async () => {
    const { utimes, rename, writeFile } = await import('node:fs/promises');
    const dir = path.join(await mkdtemp(path.join(tmpdir(), 'ferry-index-cache-')), 'store');
    const store = await OciLayout.open(dir, { create: true });
    const doc = (tag: string) => ({
      schemaVersion: 2,
      manifests: Array.from({ length: 500 }, (_, i) => named(`example.com/img${i}:${tag}`, d(i))),
    });
    const old = new Date(Date.now() - 60_000);
    const index = path.join(dir, 'index.json');
    await writeFile(index, JSON.stringify(doc('1')));
    await utimes(index, old, old); // old enough to be kept
    for (let i = 0; i < 500; i++) expect((await store.resolve(`example.com/img${i}:1`)).digest).toBe(d(i));
    // A caller changing what it got back does not change what the next caller gets.
    (await store.readIndex()).manifests.length = 0;
    expect((await store.readIndex()).manifests).toHaveLength(500);

    // Replaced by rename (a new inode), even with the old mtime.
    await writeFile(`${index}.new`, JSON.stringify(doc('2')));
    await utimes(`${index}.new`, old, old);
    await rename(`${index}.new`, index);
    expect((await store.resolve('example.com/img7:2')).digest).toBe(d(7));
    await expect(store.resolve('example.com/img7:1')).rejects.toMatchObject({ code: 'NOT_FOUND' });

    // Rewritten in place, same size: a new mtime tells.
    await writeFile(index, JSON.stringify(doc('3')));
    expect((await store.resolve('example.com/img9:3')).digest).toBe(d(9));
  });
});
