/**
 * How writeBundle commits FILE and FILE.sig: a stale FILE.sig never sits beside a new FILE (it
 * is gone before the rename), and the directory is fsynced after the rename.
 */
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeEach, describe, expect, it, vi } from 'vitest';

const events: string[] = [];
let watched = '';

vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs/promises')>();
  const rename: typeof orig.rename = async (from, to) => {
    if (String(to) === watched) events.push(`rename sig=${existsSync(`${watched}.sig`) ? 'present' : 'absent'}`);
    return orig.rename(from, to);
  };
  return { ...orig, rename, default: { ...orig, rename } };
});
vi.mock('../../../src/util/fsutil.js', async (importOriginal) => {
  const orig = await importOriginal<typeof import('../../../src/util/fsutil.js')>();
  return {
    ...orig,
    fsyncDir: async (dir: string) => {
      if (watched && dir === path.dirname(watched)) events.push('fsyncDir');
      return orig.fsyncDir(dir);
    },
  };
});

const { writeBundle } = await import('../../../src/bundle/writer.js');
const { OciLayout } = await import('../../../src/transports/oci/layout.js');
const { makeStore } = await import('../../integration/bundle/craft.js');
const { makeKeyPair } = await import('../../helpers/keys.js');
const { cleanupHarness, createTempDir } = await import('../../harness/temp.js');

afterAll(cleanupHarness);
beforeEach(() => {
  events.length = 0;
});

describe('writeBundle commit order', () => {
  it('removes a stale FILE.sig before renaming the new bundle into place, then fsyncs the directory', async () => {
    const work = createTempDir('writer-commit');
    const store = await OciLayout.open(makeStore(path.join(work, 'store'), 1000).dir);
    const { key } = makeKeyPair(work, 'k', 'ed25519');
    const out = path.join(work, 'out', 'b.ferry');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(path.dirname(out));
    await writeBundle({ store, output: out, compression: 'none', signKey: key });
    expect(existsSync(`${out}.sig`)).toBe(true);

    watched = out;
    await writeBundle({ store, output: out, compression: 'none' });
    expect(events.filter((e) => e.startsWith('rename'))).toEqual(['rename sig=absent']);
    expect(events.slice(events.indexOf('rename sig=absent'))).toContain('fsyncDir');
    expect(existsSync(`${out}.sig`)).toBe(false);

    // Signed over signed: the new FILE.sig arrives after the rename, and matches the bundle.
    await writeFile(`${out}.sig`, 'stale');
    events.length = 0;
    await writeBundle({ store, output: out, compression: 'none', signKey: key });
    expect(events.filter((e) => e.startsWith('rename'))).toEqual(['rename sig=absent']);
    expect(events[events.indexOf('rename sig=absent') + 1]).toBe('fsyncDir');
    expect((await readFile(`${out}.sig`)).toString()).not.toBe('stale');
  });
});
