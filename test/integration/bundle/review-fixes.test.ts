import { spawn } from 'node:child_process';
/**
 * Crafted bundles from a review of verify/load: each one made verify crash, pass a bundle it
 * must refuse, or do far more work than needed; and the CLI's exit codes around them.
 */
import { mkdirSync, createReadStream, existsSync, readdirSync } from 'node:fs';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MEMBER, zstdBlobPath } from '../../../src/bundle/format.js';
import { verifyBundle, verifyBundleStream, type VerifyResult } from '../../../src/bundle/verify.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { runVerify } from '../../../src/cli/verify.js';
import { runInspect } from '../../../src/cli/inspect.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { CLI, ferry } from '../../helpers/cli.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import {
  makeStore,
  manOf,
  paxHeader,
  readMembers,
  replaceData,
  setMan,
  sha,
  tarOf,
  zstdCompress,
  type Member,
  type Store,
} from './craft.js';

let work: string;
let st: Store;
let store: OciLayout;
let key: { key: string; pub: string };
let other: { key: string; pub: string };
/** Signed with `key`, auto compression: the raw-tar layer is a zstd member of ~300 KiB. */
let bundle: string;
let n = 0;

beforeAll(async () => {
  work = createTempDir('review');
  st = makeStore(path.join(work, 'store'));
  store = await OciLayout.open(st.dir);
  key = makeKeyPair(work, 'key', 'ed25519');
  other = makeKeyPair(work, 'other', 'ed25519');
  bundle = path.join(work, 'b.ferry');
  await writeBundle({ store, output: bundle, compression: 'auto', signKey: key.key });
});
afterAll(cleanupHarness);

async function craft(edit: (ms: Member[]) => Member[] | void, trailer?: Buffer): Promise<string> {
  const ms = await readMembers(bundle);
  const out = edit(ms) ?? ms;
  const file = path.join(work, `crafted-${n++}.ferry`);
  await writeFile(file, tarOf(out, trailer));
  return file;
}

const codes = (r: VerifyResult): string[] => r.problems.map((p) => p.code);

/** verify on the file, on a stream, and the CLI's exit code. */
async function verifyAll(file: string, opts: { key?: string } = {}): Promise<{ file: VerifyResult; stream: VerifyResult; exit: number }> {
  const f = await verifyBundle(file, opts);
  const s = await verifyBundleStream(createReadStream(file), opts);
  const exit = await runVerify({ file, ...(opts.key ? { key: opts.key } : {}), json: true, quiet: true });
  return { file: f, stream: s, exit };
}

const zstdPath = (): string => zstdBlobPath(st.rawLayer.digest.slice(7));

describe('the reference bundle', () => {
  it('verifies clean, has a zstd member over 64 KiB, and a manifest that is signed', async () => {
    const r = await verifyAll(bundle, { key: key.pub });
    expect(r.file.problems).toEqual([]);
    expect(r.stream.problems).toEqual([]);
    expect(r.exit).toBe(0);
    const z = manOf(await readMembers(bundle)).members.find((m) => m.storage === 'zstd')!;
    expect(z.path).toBe(zstdPath());
    expect(z.size).toBeGreaterThan(128 * 1024);
  });
});

describe('damaged zstd members are reported, not a crash (bug 1)', () => {
  it('a zstd member with its magic byte flipped: ZSTD_NOT_ZSTD on file and pipe, exit 3', async () => {
    const f = await craft((ms) => {
      const man = manOf(ms);
      const data = Buffer.from(ms.find((m) => m.name === zstdPath())!.data);
      data[0] = data[0]! ^ 0xff;
      replaceData(ms, man, zstdPath(), data);
      return setMan(ms, man);
    });
    const r = await verifyAll(f);
    for (const v of [r.file, r.stream]) {
      expect(codes(v)).toEqual(['ZSTD_NOT_ZSTD']);
      expect(v.problems[0]).toMatchObject({ member: zstdPath(), digest: st.rawLayer.digest });
    }
    expect(r.exit).toBe(3);
  });

  it('uncompressedSize below the real size: ZSTD_OVERSIZE, and later members are still checked', async () => {
    const f = await craft((ms) => {
      const man = manOf(ms);
      man.members.find((m) => m.path === zstdPath())!.uncompressedSize = 1000;
      // The zstd member moved to the front of the blobs; a damaged member after it must still be found.
      const zi = man.members.findIndex((m) => m.path === zstdPath());
      const [zm] = man.members.splice(zi, 1);
      man.members.splice(3, 0, zm!);
      const ti = ms.findIndex((m) => m.name === zstdPath());
      const [tm] = ms.splice(ti, 1);
      ms.splice(ms.findIndex((m) => m.name === MEMBER.checksums) + 1, 0, tm!);
      const last = man.members.at(-1)!;
      expect(last.path).not.toBe(zstdPath());
      const m = ms.find((x) => x.name === last.path)!;
      m.data = Buffer.from(m.data);
      m.data[10] = m.data[10]! ^ 1;
      return setMan(ms, man);
    });
    const r = await verifyAll(f);
    for (const v of [r.file, r.stream]) {
      expect(v.problems.find((p) => p.code === 'ZSTD_OVERSIZE')?.member).toBe(zstdPath());
      expect(codes(v)).toContain('CHECKSUM_MISMATCH');
      expect(codes(v)).not.toContain('TAR_INVALID');
      expect(codes(v)).not.toContain('MEMBER_MISSING');
    }
    expect(r.exit).toBe(3);
  });
});

describe('an image missing a layer never verifies (bug 3)', () => {
  /** The bundle without its zstd layer member (an unsigned third-party edit). */
  function dropLayer(ms: Member[]): { ms: Member[]; man: ReturnType<typeof manOf> } {
    const man = manOf(ms);
    man.members = man.members.filter((m) => m.path !== zstdPath());
    return { ms: ms.filter((m) => m.name !== zstdPath()), man };
  }

  it('a child manifest listed before its index, its mediaType dropped', async () => {
    const f = await craft((all) => {
      const { ms, man } = dropLayer(all);
      const child = `blobs/sha256/${st.amd.digest.slice(7)}`;
      const index = `blobs/sha256/${st.idx.digest.slice(7)}`;
      const swap = <T>(arr: T[], a: number, b: number): void => {
        [arr[a], arr[b]] = [arr[b]!, arr[a]!];
      };
      swap(
        ms,
        ms.findIndex((m) => m.name === child),
        ms.findIndex((m) => m.name === index),
      );
      const a = man.members.findIndex((m) => m.path === child);
      const b = man.members.findIndex((m) => m.path === index);
      swap(man.members, a, b);
      delete man.members.find((m) => m.path === child)!.mediaType;
      return setMan(ms, man);
    });
    const r = await verifyAll(f);
    for (const v of [r.file, r.stream]) {
      expect(v.problems.filter((p) => p.code === 'BLOB_MISSING').map((p) => p.digest)).toContain(st.rawLayer.digest);
      expect(v.problems.find((p) => p.code === 'BLOB_MISSING')?.image).toBe('example.com/app:v1');
    }
    expect(r.exit).toBe(3);
  });

  it('the missing layer digest claimed by the index.json member', async () => {
    const f = await craft((all) => {
      const { ms, man } = dropLayer(all);
      man.members.find((m) => m.path === MEMBER.index)!.digest = st.rawLayer.digest;
      return setMan(ms, man);
    });
    const r = await verifyAll(f);
    for (const v of [r.file, r.stream]) {
      expect(v.problems.find((p) => p.code === 'MANIFEST_INVALID')?.member).toBe(MEMBER.index);
      expect(v.problems.filter((p) => p.code === 'BLOB_MISSING').map((p) => p.digest)).toContain(st.rawLayer.digest);
    }
    expect(r.exit).toBe(3);
  });

  it('a root manifest stored as a zstd member is a problem, not skipped', async () => {
    const f = await craft((all) => {
      const { ms, man } = dropLayer(all);
      const rawPath = `blobs/sha256/${st.dock.digest.slice(7)}`;
      const i = man.members.findIndex((m) => m.path === rawPath);
      const content = ms.find((m) => m.name === rawPath)!.data;
      const comp = zstdCompress(content);
      const zp = zstdBlobPath(st.dock.digest.slice(7));
      man.members[i] = {
        path: zp,
        size: comp.length,
        sha256: sha(comp),
        storage: 'zstd',
        digest: st.dock.digest,
        uncompressedSize: content.length,
      };
      const mi = ms.findIndex((m) => m.name === rawPath);
      ms[mi] = { name: zp, data: comp };
      return setMan(ms, man);
    });
    const r = await verifyAll(f);
    for (const v of [r.file, r.stream]) {
      expect(v.problems.find((p) => p.code === 'MANIFEST_COMPRESSED')).toMatchObject({
        image: 'example.com/app:docker',
        digest: st.dock.digest,
      });
    }
    expect(r.exit).toBe(3);
  });
});

describe('data after the end-of-archive marker (bug 4)', () => {
  it('a second tar appended to a signed bundle: TRAILING_DATA with --key, file and pipe', async () => {
    const second = tarOf([
      { name: MEMBER.manifest, data: Buffer.from('{"evil":true}') },
      { name: 'etc/passwd', data: Buffer.from('x') },
    ]);
    const f = path.join(work, 'trailing.ferry');
    await writeFile(f, Buffer.concat([await readFile(bundle), second]));
    const r = await verifyAll(f, { key: key.pub });
    expect(codes(r.file)).toEqual(['TRAILING_DATA']);
    expect(codes(r.stream)).toEqual(['TRAILING_DATA']);
    expect(r.exit).toBe(3);
  });

  it('zero padding after the marker is fine', async () => {
    const f = path.join(work, 'padded.ferry');
    await writeFile(f, await readFile(bundle));
    await appendFile(f, Buffer.alloc(10240));
    const r = await verifyAll(f, { key: key.pub });
    expect(r.file.problems).toEqual([]);
    expect(r.stream.problems).toEqual([]);
  });

  it('a pax record other than path/linkpath/size, or a global header, is TAR_INVALID naming it', async () => {
    for (const [rec, flag, want] of [
      [['GNU.sparse.major', '1'], 'x', /GNU\.sparse\.major/],
      [['comment', 'hi'], 'g', /global pax header/],
    ] as const) {
      const f = await craft((ms) => {
        const i = ms.findIndex((m) => m.name === MEMBER.index);
        const m = ms[i]!;
        ms[i] = { name: m.name, data: m.data, raw: Buffer.concat([paxHeader([[rec[0], rec[1]]], flag), tarOf([m]).subarray(0, -1024)]) };
      });
      const r = await verifyAll(f, { key: key.pub });
      for (const v of [r.file, r.stream]) {
        const p = v.problems.find((x) => x.code === 'TAR_INVALID');
        expect(p?.message).toMatch(want);
      }
      expect(r.exit).toBe(3);
    }
  });
});

describe('the signature is checked first (bug 5)', () => {
  it('a bundle signed with another key: SIGNATURE_INVALID alone, before any blob is read', async () => {
    const f = await craft((ms) => {
      const man = manOf(ms);
      // A member that would be expensive (and wrong) to check: it must not be looked at.
      const data = Buffer.from(ms.find((m) => m.name === zstdPath())!.data);
      data[0] = data[0]! ^ 0xff;
      replaceData(ms, man, zstdPath(), data);
      return setMan(ms, man, other.key);
    });
    const r = await verifyAll(f, { key: key.pub });
    for (const v of [r.file, r.stream]) {
      expect(codes(v)).toEqual(['SIGNATURE_INVALID']);
      expect(v.signature).toBe('invalid');
      // oci-layout, ferry-bundle.json, the signature, and the member that stopped it.
      expect(v.entries).toBeLessThanOrEqual(4);
    }
    expect(r.exit).toBe(3);
    // Without the key it is read in full, and the damage found.
    expect(codes(await verifyBundle(f))).toContain('ZSTD_NOT_ZSTD');
  });

  it('an unsigned bundle with --key stops at once with SIGNATURE_MISSING', async () => {
    const f = await craft((ms) => setMan(ms, manOf(ms)));
    const v = await verifyBundle(f, { key: key.pub });
    expect(codes(v)).toEqual(['SIGNATURE_MISSING']);
    expect(v.entries).toBeLessThanOrEqual(3);
  });
});

describe('exit codes (bug 8)', () => {
  it('inspect --key with the wrong key exits 3, with the right key 0', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await runInspect({ source: bundle, key: other.pub })).toBe(3);
      expect(await runInspect({ source: bundle, key: key.pub })).toBe(0);
      expect(await runInspect({ source: bundle, key: other.pub, json: true })).toBe(3);
      expect(await runInspect({ source: bundle })).toBe(0);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });

  it('load --require-signature without --key is a usage error (exit 2), nothing loaded', async () => {
    const dest = path.join(work, 'dest-require');
    const r = await ferry(['load', bundle, '--require-signature', '--to', `oci:${dest}`]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--require-signature needs --key/);
    expect(existsSync(dest)).toBe(false);
  });
});

describe('without zstd on PATH: the far side needs nothing but ferry', () => {
  let emptyPath: string;
  beforeAll(() => {
    emptyPath = path.join(work, 'empty-path');
    mkdirSync(emptyPath);
  });

  it('verify checks zstd members in-process: exit 0, every member restored and hashed', async () => {
    const r = await ferry(['verify', bundle, '--json'], { env: { PATH: emptyPath } });
    expect(r.code, r.stderr).toBe(0);
    const line = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { ok: boolean; problems: unknown[] };
    expect(line).toMatchObject({ ok: true, problems: [] });
    const man = manOf(await readMembers(bundle));
    expect(man.members.some((m) => m.storage === 'zstd')).toBe(true);
  });

  it('verify still finds a damaged zstd member without the zstd command (exit 3)', async () => {
    const bad = await craft((ms) => {
      const man = manOf(ms);
      const z = man.members.find((m) => m.storage === 'zstd')!;
      const data = Buffer.from(ms.find((m) => m.name === z.path)!.data);
      const at = data.length >> 1;
      data[at] = data[at]! ^ 0xff;
      replaceData(ms, man, z.path, data);
      return setMan(ms, man, key.key);
    });
    const r = await ferry(['verify', bad, '--json'], { env: { PATH: emptyPath } });
    expect(r.code, r.stderr).toBe(3);
  });

  it('load of a bundle with a zstd member restores it in-process: every digest arrives', async () => {
    const dest = path.join(work, 'dest-nozstd');
    const r = await ferry(['load', bundle, '--to', `oci:${dest}`], { env: { PATH: emptyPath } });
    expect(r.code, r.stderr).toBe(0);
    const raw = await readFile(path.join(dest, 'blobs', 'sha256', st.rawLayer.digest.slice(7)));
    expect(`sha256:${sha(raw)}`).toBe(st.rawLayer.digest);
    expect(raw.length).toBe(st.rawLayer.size);
  });

  it('serve answers a zstd-stored blob with its exact bytes', async () => {
    const child = spawn(process.execPath, [CLI, 'serve', bundle, '--listen', '127.0.0.1:0'], {
      env: { ...process.env, PATH: emptyPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    try {
      const deadline = Date.now() + 30_000;
      while (!/Serving (http:\/\/\S+)[\s\S]*\n {2}\S+:\S+ {2}sha256:/.test(stdout) && Date.now() < deadline && child.exitCode === null) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const url = /Serving (http:\/\/\S+)/.exec(stdout)?.[1];
      expect(url, `no URL printed\nstdout: ${stdout}\nstderr: ${stderr}`).toBeDefined();
      expect(stderr).not.toMatch(/zstd/i);
      const repo = /\n {2}(\S+):\S+ {2}sha256:/.exec(stdout)![1]!;
      const res = await fetch(`${url}/v2/${repo}/blobs/${st.rawLayer.digest}`);
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(`sha256:${sha(body)}`).toBe(st.rawLayer.digest);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('the bundle writer checks the bytes it writes (bug 6)', () => {
  it('a store read that differs from the store file fails the bundle: no file is written', async () => {
    // The file on disk is intact; the read the writer copies from is not (a file changed
    // between two reads, a flaky disk): only hashing what is written can tell.
    const victim = st.gzLayer.digest;
    const liar = Object.create(store) as OciLayout;
    liar.openBlob = async (digest: string, what: string) => {
      const src = await store.openBlob(digest, what);
      if (digest !== victim) return src;
      const { Transform } = await import('node:stream');
      let first = true;
      return src.pipe(
        new Transform({
          transform(chunk: Buffer, _e, cb) {
            const c = Buffer.from(chunk);
            if (first) c[0] = c[0]! ^ 1;
            first = false;
            cb(null, c);
          },
        }),
      );
    };
    const out = path.join(work, 'liar', 'x.ferry');
    mkdirSync(path.dirname(out));
    await expect(writeBundle({ store: liar, output: out, compression: 'none' })).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    expect(readdirSync(path.dirname(out))).toEqual([]);
  });
});
