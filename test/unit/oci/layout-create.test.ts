import { mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { raceChildren } from './children.js';

/** Runs once, inside the next readdir of a store being created: another process finishing its creation. */
const hook = vi.hoisted(() => ({ dir: '', run: undefined as undefined | (() => Promise<void>) }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs/promises')>();
  const readdir = (async (...args: Parameters<typeof orig.readdir>) => {
    if (hook.run && String(args[0]) === hook.dir) {
      const run = hook.run;
      hook.run = undefined;
      await run();
    }
    return orig.readdir(...args);
  }) as typeof orig.readdir;
  return { ...orig, default: { ...orig, readdir }, readdir };
});

const { OciLayout } = await import('../../../src/transports/oci/layout.js');

const tempDir = (): Promise<string> => mkdtemp(path.join(tmpdir(), 'ferry-create-'));
const entry = (name: string) => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${'a'.repeat(64)}`,
  size: 2,
  annotations: { 'org.opencontainers.image.ref.name': name },
});
const names = async (dir: string): Promise<string[]> =>
  (
    JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ annotations: Record<string, string> }> }
  ).manifests
    .map((m) => m.annotations['org.opencontainers.image.ref.name']!)
    .sort();

describe('creating a store', () => {
  it('creates a missing directory as an empty layout, and refuses an unrelated non-empty one', async () => {
    const dir = path.join(await tempDir(), 'a', 'store');
    await OciLayout.open(dir, { create: true });
    expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    expect(JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8'))).toMatchObject({ schemaVersion: 2, manifests: [] });

    const other = await tempDir();
    await writeFile(path.join(other, 'notes.txt'), 'mine');
    await expect(OciLayout.open(other, { create: true })).rejects.toMatchObject({
      code: 'LAYOUT_NOT_FOUND',
      message: expect.stringContaining('not empty'),
    });
    expect(await readdir(other)).toEqual(['notes.txt']);
  });

  it('keeps the index.json of a directory holding only one', async () => {
    const dir = await tempDir();
    const index = JSON.stringify({ schemaVersion: 2, manifests: [entry('example.com/kept:1')] });
    await writeFile(path.join(dir, 'index.json'), index);
    await OciLayout.open(dir, { create: true });
    expect(await readFile(path.join(dir, 'index.json'), 'utf8')).toBe(index);
  });

  it('opens, and does not overwrite, a layout another process completes while this one checks the directory', async () => {
    const dir = await tempDir();
    const index = `${JSON.stringify({ schemaVersion: 2, manifests: [entry('example.com/theirs:1')] })}\n`;
    // Between this process's look for oci-layout and its listing of the directory, the
    // other process writes the whole layout (its first pull already named an image).
    hook.dir = dir;
    hook.run = async () => {
      await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
      await writeFile(path.join(dir, 'index.json'), index);
      await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    };
    const store = await OciLayout.open(dir, { create: true });
    expect(hook.run).toBeUndefined();
    expect(await readFile(path.join(dir, 'index.json'), 'utf8')).toBe(index);
    await store.putIndexEntries([entry('example.com/mine:1')]);
    expect(await names(dir)).toEqual(['example.com/mine:1', 'example.com/theirs:1']);
  });

  it('first pulls racing into one new directory all succeed and all their names are kept', async () => {
    for (let round = 0; round < 2; round++) {
      const dir = path.join(await tempDir(), 'store');
      const refs = Array.from({ length: 6 }, (_, i) => `example.com/image${i}:${round}`);
      const results = await raceChildren('create', dir, refs);
      for (const r of results) expect(r, r.stderr).toMatchObject({ code: 0 });
      expect(await names(dir)).toEqual(refs.sort());
      expect((await readdir(dir)).sort()).toEqual(['blobs', 'index.json', 'oci-layout']);
    }
  });
});
