/**
 * The bundle, verify and inspect commands through yargs, as main.ts wires them: flags, exit
 * codes (0 ok, 2 usage, 3 integrity) and --json output.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import yargs from 'yargs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { smallCorpus } from '../corpus-registry.js';
import { bundleCommand } from '../../../src/cli/bundle.js';
import { reportError } from '../../../src/cli/errors.js';
import { inspectCommand } from '../../../src/cli/inspect.js';
import { verifyCommand } from '../../../src/cli/verify.js';
import { UsageError } from '../../../src/util/errors.js';
import { indexTarFile } from '../../../src/tar/reader.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';

let corpus: CorpusManifest;
let corpusDir: string;
let work: string;

beforeAll(async () => {
  work = createTempDir('bundle-cli');
  ({ dir: corpusDir, corpus } = await smallCorpus());
});
afterAll(cleanupHarness);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function ferry(argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((stdout += String(c)), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((stderr += String(c)), true));
  const saved = process.exitCode;
  try {
    let cli = yargs(argv)
      .scriptName('ferry')
      .strict()
      .demandCommand(1)
      .exitProcess(false)
      .fail((msg, err) => {
        if (err) throw err;
        throw new UsageError(msg);
      });
    cli = bundleCommand(cli);
    cli = verifyCommand(cli);
    cli = inspectCommand(cli);
    process.exitCode = 0;
    let code: number;
    try {
      await cli.parseAsync();
      code = typeof process.exitCode === 'number' ? process.exitCode : 0;
    } catch (err) {
      code = reportError(err, argv.includes('--json'));
    }
    return { code, stdout, stderr };
  } finally {
    o.mockRestore();
    e.mockRestore();
    process.exitCode = saved;
  }
}

describe('ferry bundle / verify / inspect', () => {
  it('bundles oci: sources into a store, then verifies and inspects the file', async () => {
    const store = path.join(work, 'store');
    const out = path.join(work, 'a.ferry');
    const key = path.join(work, 'k.pem');
    const pub = path.join(work, 'k.pub');
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]);
    execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', pub]);
    const r = await ferry([
      'bundle',
      `oci:${corpusDir}:ferry-test/app:1.0`,
      `oci:${corpusDir}:ferry-test/raw:1`,
      '-o',
      out,
      '--store',
      store,
      '--sign-key',
      key,
      '--json',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      type: string;
      images: Array<{ ref: string }>;
      totals: { images: number };
    };
    expect(report.type).toBe('report');
    expect(report.images.map((i) => i.ref).sort()).toEqual(['ferry-test/app:1.0', 'ferry-test/raw:1']);

    const v = await ferry(['verify', out, '--key', pub, '--require-signature', '--json']);
    expect(v.code).toBe(0);
    expect(JSON.parse(v.stdout)).toMatchObject({ ok: true, signature: 'valid', problems: [] });

    const i = await ferry(['inspect', out, '--json']);
    expect(i.code).toBe(0);
    const doc = JSON.parse(i.stdout) as { images: Array<{ ref: string; platforms: string[] }>; signature: string };
    expect(doc.signature).toBe('present');
    expect(doc.images.find((x) => x.ref === 'ferry-test/app:1.0')?.platforms).toEqual(['linux/amd64']);
    const plain = await ferry(['inspect', out]);
    expect(plain.stdout).toMatch(/ferry-test\/raw:1/);

    // --from-store bundles everything in the store (the two images pulled above).
    const all = path.join(work, 'all.ferry');
    const s = await ferry(['bundle', '--from-store', '--store', store, '-o', all, '--compression', 'none']);
    expect(s.code).toBe(0);
    expect(s.stdout).toMatch(/Wrote .*all\.ferry: 2 images/);
    const ok = await ferry(['verify', all]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/: OK: /);
  });

  it('exit 3 for a damaged bundle, naming the problem', async () => {
    const store = path.join(work, 'store2');
    const out = path.join(work, 'b.ferry');
    expect((await ferry(['bundle', `oci:${corpusDir}:ferry-test/base:1`, '-o', out, '--store', store])).code).toBe(0);
    const bytes = await readFile(out);
    const last = (await indexTarFile(out)).at(-1)!;
    const at = last.dataOffset + Math.floor(last.size / 2); // inside the last blob's data
    bytes[at] = bytes[at]! ^ 0xff;
    const bad = path.join(work, 'bad.ferry');
    await writeFile(bad, bytes);
    const r = await ferry(['verify', bad]);
    expect(r.code).toBe(3);
    // The verdict is the result: on stdout, so `ferry verify b.ferry > report.txt` keeps it.
    expect(r.stdout).toContain(`problem: CHECKSUM_MISMATCH: member ${last.rawName}`);
    expect(r.stdout).toMatch(/FAILED/);
    expect(r.stderr).not.toMatch(/FAILED/);
  });

  it('usage errors exit 2', async () => {
    expect((await ferry(['bundle', '-o', path.join(work, 'x.ferry')])).code).toBe(2);
    expect((await ferry(['verify', path.join(work, 'x.ferry'), '--require-signature'])).code).toBe(2);
    expect((await ferry(['bundle', 'x', '-o', path.join(work, 'y.ferry'), '--compression', 'gzip'])).code).toBe(2);
    const nokey = await ferry(['verify', path.join(work, 'a.ferry'), '--key', path.join(work, 'nope.pem')]);
    expect(nokey.code).toBe(2);
    expect(corpus.images.length).toBeGreaterThan(0);
  });

  it('a source whose content does not match its digests: exit 3 (integrity), as pull says, and no bundle', async () => {
    const copy = path.join(work, 'damaged-layout');
    await cp(corpusDir, copy, { recursive: true });
    const index = JSON.parse(await readFile(path.join(copy, 'index.json'), 'utf8')) as {
      manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
    };
    const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === 'ferry-test/app:1.0')!;
    const manifest = JSON.parse(await readFile(path.join(copy, 'blobs', 'sha256', entry.digest.slice(7)), 'utf8')) as {
      layers: Array<{ digest: string }>;
    };
    const layer = path.join(copy, 'blobs', 'sha256', manifest.layers[0]!.digest.slice(7));
    const bytes = await readFile(layer);
    bytes[bytes.length >> 1] = bytes[bytes.length >> 1]! ^ 0xff;
    await writeFile(layer, bytes);
    const out = path.join(work, 'damaged.ferry');
    const r = await ferry(['bundle', `oci:${copy}:ferry-test/app:1.0`, '-o', out, '--store', path.join(work, 'damaged-store')]);
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/digest mismatch/);
    expect(existsSync(out)).toBe(false);
  });

  it('a missing bundle file or a directory: a usage error naming it (exit 2), not a raw ENOENT', async () => {
    const missing = path.join(work, 'no-such.ferry');
    for (const cmd of ['verify', 'inspect']) {
      const r = await ferry([cmd, missing]);
      expect(r.code, `${cmd}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(`${missing}: no such bundle file`);
      expect(r.stderr).not.toContain('ENOENT');
      const d = await ferry([cmd, work]);
      expect(d.code).toBe(2);
      expect(d.stderr).toContain(`${work} is a directory`);
    }
  });
});
