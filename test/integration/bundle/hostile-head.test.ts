/**
 * Issue 11, "readers disagree" and "inspect of a truncated bundle": the bundle head has one
 * reader (verify's Checker) that inspect, verify, load and serve share. A duplicated signature
 * or ferry-bundle.json is refused by all of them (exit 3, nothing named), whichever copy is
 * the good one; inspect says what it did not check, and exits 3 on a bundle it cannot index.
 */
import { truncate, writeFile, copyFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MEMBER } from '../../../src/bundle/format.js';
import { inspect } from '../../../src/bundle/inspect.js';
import { verifyBundle } from '../../../src/bundle/verify.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { runInspect } from '../../../src/cli/inspect.js';
import { load } from '../../../src/commands/load.js';
import { openServed, parseServedLocation } from '../../../src/transports/table.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { makeStore, readMembers, tarOf, type Member, exitOf, namedIn } from './craft.js';

let work: string;
let bundle: string;
let key: { key: string; pub: string };
let n = 0;

beforeAll(async () => {
  work = createTempDir('hostile-head');
  const st = makeStore(path.join(work, 'store'), 16 * 1024);
  key = makeKeyPair(work, 'key', 'ed25519');
  bundle = path.join(work, 'b.ferry');
  await writeBundle({ store: await OciLayout.open(st.dir), output: bundle, compression: 'auto', signKey: key.key });
});
afterAll(cleanupHarness);

async function craft(edit: (ms: Member[]) => Member[]): Promise<string> {
  const file = path.join(work, `crafted-${n++}.ferry`);
  await writeFile(file, tarOf(edit(await readMembers(bundle))));
  return file;
}

/** runInspect's exit code, its errors as the CLI boundary maps them, stdout and stderr captured. */
async function inspectExit(source: string, k?: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((s) => ((out += String(s)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((err += String(s)), true));
  try {
    return { code: await runInspect({ source, ...(k ? { key: k } : {}) }), out, err };
  } catch (error) {
    return { code: exitOf(error), out, err: `${err}${(error as Error).message}` };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

/** Every reader refuses `file` with a key: verify, inspect --key, load --key (nothing named), serve. */
async function everyReaderRefuses(file: string): Promise<void> {
  expect((await verifyBundle(file, { key: key.pub })).ok).toBe(false);
  expect((await inspectExit(file, key.pub)).code).toBe(3);
  expect((await inspectExit(file)).code).toBe(3);
  const out = path.join(work, `out-${n++}`);
  const loaded = await load({ source: file, to: `oci:${out}`, key: key.pub }).then(
    () => 0,
    (err: unknown) => exitOf(err),
  );
  expect(loaded).toBe(3);
  expect(namedIn(out)).toBe(0);
  const served = await openServed(parseServedLocation(`bundle:${file}`)).then(
    async (c) => {
      await c.close();
      return 0;
    },
    (err: unknown) => exitOf(err),
  );
  expect(served).toBe(3);
}

describe('one reading of the bundle head', () => {
  it('the reference bundle: inspect --key says valid, exit 0, and names what it did not check', async () => {
    const r = await inspectExit(bundle, key.pub);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/signature: valid/);
    expect(r.out).toMatch(/not checked: blob content/);
    const plain = await inspectExit(bundle);
    expect(plain.code).toBe(0);
    expect(plain.out).toMatch(/signature: present \(not checked\)/);
    expect((await inspect(bundle)).notChecked).toContain('the signature: no --key given');
  });

  it('a duplicated signature, the good copy last: refused by verify, inspect, load and serve', async () => {
    await everyReaderRefuses(
      await craft((ms) => {
        const sig = ms.find((m) => m.name === MEMBER.signature)!;
        const bad = Buffer.from(sig.data);
        bad[0]! ^= 0xff;
        ms.splice(ms.indexOf(sig), 0, { name: MEMBER.signature, data: bad });
        return ms;
      }),
    );
  });

  it('a duplicated ferry-bundle.json, the signed copy last: refused by verify, inspect, load and serve', async () => {
    await everyReaderRefuses(
      await craft((ms) => {
        const man = ms.find((m) => m.name === MEMBER.manifest)!;
        const forged = Buffer.from(man.data.toString('utf8').replace('"example.com/app:docker"', '"example.com/evil:docker"'));
        ms.splice(ms.indexOf(man), 0, { name: MEMBER.manifest, data: forged });
        return ms;
      }),
    );
  });

  it('a duplicated ferry-bundle.json at the end: refused too', async () => {
    await everyReaderRefuses(
      await craft((ms) => {
        const man = ms.find((m) => m.name === MEMBER.manifest)!;
        return [...ms, { name: MEMBER.manifest, data: man.data }];
      }),
    );
  });
});

describe('inspect of a damaged bundle', () => {
  it('truncated in a blob: exit 3, naming the damage', async () => {
    const file = path.join(work, 'truncated.ferry');
    await copyFile(bundle, file);
    await truncate(file, Math.floor((await stat(file)).size * 0.6));
    const r = await inspectExit(file);
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/TAR_INVALID|TAR_TRUNCATED|MEMBER_MISSING/);
    expect(r.out).not.toMatch(/signature: present$/m);
  });

  it('truncated inside its head: exit 3, cannot be inspected', async () => {
    const file = path.join(work, 'head.ferry');
    await copyFile(bundle, file);
    await truncate(file, 700);
    const r = await inspectExit(file);
    expect(r.code).toBe(3);
    expect(r.out).toBe('');
  });
});
