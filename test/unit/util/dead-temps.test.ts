import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { sha256 } from '../../../src/oci/digest.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { removeDeadTemps } from '../../../src/util/fsutil.js';

/** A pid that certainly belonged to a process that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid!;
}

describe('temp files left by killed runs', () => {
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

  it('ferry bundle clears its own killed predecessor\'s temp files before writing', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-temps-'));
    const store = await OciLayout.open(path.join(dir, 'store'), { create: true });
    const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
    const manifest = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length }, layers: [] }),
    );
    await store.putBytes(config);
    const digest = await store.putBytes(manifest);
    await store.putIndexEntries([{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'example.com/a:1' } }]);
    const dead = deadPid();
    const leftovers = [`.out.ferry.${dead}.0badf00d.tmp`, `.out.ferry.0123456789ab.zst.${dead}.0badf00d.tmp`];
    for (const n of leftovers) await writeFile(path.join(dir, n), 'partial');
    await writeBundle({ store, output: path.join(dir, 'out.ferry'), compression: 'none' });
    const after = await readdir(dir);
    for (const n of leftovers) expect(after).not.toContain(n);
    expect(after).toContain('out.ferry');
  });
});
