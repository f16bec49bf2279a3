/**
 * Run as a child process by the store race tests (node --import tsx store-child.ts MODE …):
 * each child waits for a common start time, then races its siblings.
 *   lock DIR START HOLD_MS   take the layout lock once, check nobody else is inside, bump a counter
 *   create DIR START NAME    open DIR with create:true and add an index.json entry named NAME
 */
import { appendFile, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256 } from '../../../src/oci/digest.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { withLayoutLock } from '../../../src/transports/oci/lock.js';

const [mode, dir, startText, arg] = process.argv.slice(2);
const start = Number(startText);
while (Date.now() < start) {
  // Spin, so all children leave this loop within the same millisecond or so.
}

if (mode === 'lock') {
  const hold = Number(arg);
  await withLayoutLock(
    dir!,
    async () => {
      const inside = path.join(dir!, 'inside');
      try {
        await (await open(inside, 'wx')).close();
      } catch {
        await appendFile(path.join(dir!, 'overlaps'), `${process.pid}\n`);
      }
      const n = Number(await readFile(path.join(dir!, 'counter'), 'utf8').catch(() => '0'));
      await sleep(hold);
      await writeFile(path.join(dir!, 'counter'), String(n + 1));
      await rm(inside, { force: true });
    },
    20_000,
  );
} else if (mode === 'create') {
  const store = await OciLayout.open(dir!, { create: true });
  const bytes = Buffer.from(arg!);
  await store.putIndexEntries([
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: sha256(bytes),
      size: bytes.length,
      annotations: { 'org.opencontainers.image.ref.name': arg! },
    },
  ]);
} else {
  throw new Error(`unknown mode ${mode}`);
}
