import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readdir, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { sha256 } from '../../../src/oci/digest.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { localHostId, removeDeadTemps, tempNameFor } from '../../../src/util/fsutil.js';

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

/** A live writer (not this process) until the tests end. */
const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 600000)'], { stdio: 'ignore' });
afterAll(() => {
  sleeper.kill();
});

describe('temp files left by killed runs', () => {
  it('tempNameFor names the writer: host id and pid', () => {
    const name = path.basename(tempNameFor('/some/dir/out.ferry'));
    expect(localHostId()).toMatch(/^[a-f0-9]{8}$/);
    expect(name).toMatch(new RegExp(`^\\.out\\.ferry\\.${localHostId()}-${process.pid}\\.[a-f0-9]{8}\\.tmp$`));
    expect(path.dirname(tempNameFor('/some/dir/out.ferry'))).toBe('/some/dir');
  });

  it('removeDeadTemps judges a pid only on its own host and pid namespace, and anything by age', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-temps-'));
    const here = localHostId();
    const elsewhere = here === 'ffffffff' ? 'eeeeeeee' : 'ffffffff';
    const dead = deadPid();
    const live = sleeper.pid!;
    const hourAgo = new Date(Date.now() - 61 * 60 * 1000);
    const files: Array<{ name: string; old?: boolean; removed: boolean }> = [
      { name: `.out.ferry.${here}-${dead}.0badf00d.tmp`, removed: true }, // killed here
      { name: `.out.ferry.${here}-${live}.0badf00d.tmp`, removed: false }, // live writer here
      { name: `.out.ferry.${here}-${process.pid}.0badf00d.tmp`, removed: false }, // this process
      { name: `.out.ferry.${elsewhere}-${dead}.0badf00d.tmp`, removed: false }, // another container/host: pid means nothing here
      { name: `.out.ferry.${elsewhere}-${dead}.0badf00e.tmp`, old: true, removed: true }, // …but abandoned for an hour
      { name: `.out.ferry.${here}-${live}.0badf00e.tmp`, old: true, removed: true }, // untouched for an hour
      { name: `.out.ferry.${dead}.0badf00d.tmp`, removed: true }, // earlier versions' name, writer killed
      { name: `.out.ferry.${live}.0badf00d.tmp`, removed: false }, // earlier versions' name, writer alive
      { name: `.out.ferry.${live}.0badf00e.tmp`, old: true, removed: true }, // earlier versions' name, abandoned
      { name: `.other.${here}-${dead}.0badf00d.tmp`, removed: false }, // another target
      { name: `.other.${elsewhere}-${dead}.0badf00d.tmp`, old: true, removed: false }, // another target
      { name: 'out.ferry', old: true, removed: false }, // not a temp file
    ];
    for (const f of files) {
      await writeFile(path.join(dir, f.name), 'x');
      if (f.old) await utimes(path.join(dir, f.name), hourAgo, hourAgo);
    }
    expect(await removeDeadTemps(dir, (base) => base === 'out.ferry')).toBe(files.filter((f) => f.removed).length);
    expect((await readdir(dir)).sort()).toEqual(
      files
        .filter((f) => !f.removed)
        .map((f) => f.name)
        .sort(),
    );
  });

  it('removeDeadTemps removes only matching temps whose writer is gone', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-temps-'));
    const dead = deadPid();
    const names = [
      `.out.ferry.${dead}.abcd1234.tmp`, // dead writer, matching: removed
      `.out.ferry.${process.pid}.abcd1234.tmp`, // live writer: kept
      `.other.ferry.${dead}.abcd1234.tmp`, // another target: kept
      'out.ferry', // not a temp file: kept
    ];
    for (const n of names) await writeFile(path.join(dir, n), 'x');
    expect(await removeDeadTemps(dir, (base) => base === 'out.ferry')).toBe(1);
    expect((await readdir(dir)).sort()).toEqual(names.slice(1).sort());
  });

  it("ferry bundle clears its own killed predecessor's temp files before writing", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-temps-'));
    const store = await OciLayout.open(path.join(dir, 'store'), { create: true });
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [],
      }),
    );
    await store.putBytes(config);
    const digest = await store.putBytes(manifest);
    await store.putIndexEntries([
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest,
        size: manifest.length,
        annotations: { 'org.opencontainers.image.ref.name': 'example.com/a:1' },
      },
    ]);
    const dead = deadPid();
    const leftovers = [
      `.out.ferry.${dead}.0badf00d.tmp`,
      `.out.ferry.0123456789ab.zst.${dead}.0badf00d.tmp`,
      path.basename(tempNameFor(path.join(dir, 'out.ferry'))).replace(`-${process.pid}.`, `-${dead}.`),
      path.basename(tempNameFor(path.join(dir, 'out.ferry.0123456789ab.zst'))).replace(`-${process.pid}.`, `-${dead}.`),
    ];
    for (const n of leftovers) await writeFile(path.join(dir, n), 'partial');
    await writeBundle({ store, output: path.join(dir, 'out.ferry'), compression: 'none' });
    const after = await readdir(dir);
    for (const n of leftovers) expect(after).not.toContain(n);
    expect(after).toContain('out.ferry');
  });
});
