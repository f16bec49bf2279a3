/**
 * `ferry load` and `ferry mirror` as a user runs them (the built dist/bin/ferry.mjs, the package's bin): exit codes
 * and messages for usage errors, bundles that fail verification or a signature check, daemons
 * that are not running; the --json report and --mapping file; a bundle read from stdin; and
 * mirror between two registries. (SIGKILL + rerun per destination: cli-kill.test.ts.)
 */
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { load } from '../../../src/commands/load.js';
import { parseReference } from '../../../src/ref/reference.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { signedCorpusBundle } from './fixtures.js';
import { CLI, bundleManifest, ferry, jsonLines, registryManifestDigest, registryTags, reportOf, tarMembers } from './helpers-cli.js';

let corpus: CorpusManifest;
let work: string;
let bundle: string;
let pubKey: string;
let otherPub: string;
/** Full reference → digest, as ferry-bundle.json lists them. */
let bundleImages: Map<string, string>;

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  work = createTempDir('load-cli');
  ({ corpus, bundle, pubKey, otherPub } = await signedCorpusBundle(work, 'ec-p256'));
  const m = await bundleManifest(bundle);
  bundleImages = new Map(m.images.map((i) => [parseReference(i.ref).toString(), i.digest]));
  expect(bundleImages.size).toBe(new Set(corpus.images.map((i) => i.ref)).size);
}, 120_000);
afterAll(cleanupHarness);

/** Distinct corpus repositories (ferry-test/base, ...). */
function repos(): string[] {
  return [...new Set(corpus.images.map((i) => i.repo))];
}

/** A copy of the bundle with `edit` applied to its bytes (and the member table). */
async function damagedCopy(label: string, edit: (tar: Buffer, members: ReturnType<typeof tarMembers>) => void): Promise<string> {
  const out = path.join(createTempDir(label), 'damaged.ferry');
  const tar = await readFile(bundle);
  edit(tar, tarMembers(tar));
  await writeFile(out, tar);
  return out;
}

describe('ferry load: usage errors exit 2 and touch nothing', () => {
  it.each([
    ['an oci: destination with a reference', (d: string) => `oci:${d}:myref`, /an oci: destination is a directory/],
    ['an empty oci: destination', () => 'oci:', /oci: needs a directory/],
    ['an unknown scheme', () => 'ftp://host/x', /invalid destination "ftp:\/\/host\/x"/],
    ['a transport load cannot write', (d: string) => `docker-archive:${d}/x.tar`, /cannot write to docker-archive:/],
    ['a tcp address as a docker socket', () => 'docker-daemon:tcp://127.0.0.1:2375', /expected a unix socket path/],
    ['a bad containerd namespace', () => 'containerd?namespace=bad%20ns', /invalid containerd namespace/],
    ['an unknown containerd parameter', () => 'containerd?snapshotter=native', /unknown parameter "snapshotter"/],
  ])('%s', async (_label, to, message) => {
    const dir = path.join(createTempDir('usage'), 'dest');
    const r = await ferry(['load', bundle, '--to', to(dir)]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/^ferry: error: /m);
    expect(existsSync(dir)).toBe(false);
  });

  it('a missing bundle file, a directory, no --to, --concurrency 0, --json error line', async () => {
    const dir = createTempDir('usage2');
    const dest = path.join(dir, 'dest');
    const missing = await ferry(['load', path.join(dir, 'nope.ferry'), '--to', `oci:${dest}`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`${path.join(dir, 'nope.ferry')}: no such bundle file`);
    expect(missing.stderr).toMatch(/ferry: hint: give a bundle written by ferry bundle/);

    const isDir = await ferry(['load', dir, '--to', `oci:${dest}`]);
    expect(isDir.code).toBe(2);
    expect(isDir.stderr).toContain(`hint: for an OCI layout use oci:${dir}`);

    const noTo = await ferry(['load', bundle]);
    expect(noTo.code).toBe(2);
    expect(noTo.stderr).toMatch(/Missing required argument: to/);

    for (const c of ['0', '-1', '1.5', '65']) {
      const r = await ferry(['load', bundle, '--to', `oci:${dest}`, '--concurrency', c]);
      expect(r.code, `--concurrency ${c}`).toBe(2);
      expect(r.stderr).toMatch(/--concurrency must be an integer from 1 to 64/);
    }
    for (const c of ['0', '1.5', '5000']) {
      const r = await ferry(['load', bundle, '--to', `oci:${dest}`, '--chunk-size', c]);
      expect(r.code, `--chunk-size ${c}`).toBe(2);
      expect(r.stderr).toMatch(/--chunk-size must be a whole number of MiB from 1 to 4096/);
    }

    const json = await ferry(['load', bundle, '--to', `oci:${dest}:x`, '--json']);
    expect(json.code).toBe(2);
    expect(jsonLines(json.stdout)).toEqual([expect.objectContaining({ type: 'error', code: 'USAGE' })]);

    // --key on an oci: source, and --password-stdin with the bundle on stdin.
    const keyOci = await ferry(['load', `oci:${path.join(work, 'store')}`, '--key', pubKey, '--to', `oci:${dest}`]);
    expect(keyOci.code).toBe(2);
    expect(keyOci.stderr).toMatch(/--key and --require-signature check bundles/);
    expect(existsSync(dest)).toBe(false);
  });
});

describe('ferry load: daemons that are not running exit 1 with DAEMON_UNAVAILABLE and a hint', () => {
  it.each([
    ['docker-daemon', 'docker-daemon:/nonexistent.sock', /dockerd running/],
    ['containerd', 'containerd:/nonexistent.sock?namespace=test', /containerd:\/path\/to\/containerd\.sock/],
  ])('%s', async (_label, to, hint) => {
    const r = await ferry(['load', bundle, '--to', to]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/^ferry: error: .*\/nonexistent\.sock/m);
    expect(r.stderr).toMatch(/^ferry: hint: /m);
    expect(r.stderr).toMatch(hint);
    const json = await ferry(['load', bundle, '--to', to, '--json']);
    expect(json.code).toBe(1);
    const err = jsonLines(json.stdout).at(-1)!;
    expect(err).toMatchObject({ type: 'error', code: 'DAEMON_UNAVAILABLE' });
    expect(err.message).toContain('/nonexistent.sock');
    expect(err.hint).toMatch(hint);
  });
});

describe('ferry load into a registry: reports, mapping, refusals', () => {
  let reg: RunningRegistry;
  beforeAll(async () => {
    reg = await startRegistry();
  });

  it('--json report and --mapping FILE name every image with the bundle digests, served by the registry', async () => {
    const dir = createTempDir('mapping');
    const mappingFile = path.join(dir, 'mapping.json');
    const r = await ferry(['load', bundle, '--key', pubKey, '--to', `docker://${reg.host}/m`, '--json', '--mapping', mappingFile]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const lines = jsonLines(r.stdout);
    expect(lines.slice(0, -1).every((l) => l.type === 'event')).toBe(true);
    const report = reportOf(r);
    expect(report).toMatchObject({ source: `bundle:${bundle}`, destination: `docker://${reg.host}/m`, signature: 'valid', failures: [] });
    expect(report.blobs.fetched).toBeGreaterThan(0);
    expect(report.blobs.failed).toBe(0);

    const mapping = JSON.parse(await readFile(mappingFile, 'utf8')) as Record<string, { destination: string; digest: string }>;
    expect(mapping).toEqual(report.mapping);
    expect(Object.keys(mapping).sort()).toEqual([...bundleImages.keys()].sort());
    for (const [name, digest] of bundleImages) {
      const ref = parseReference(name);
      expect(mapping[name], name).toEqual({ destination: `${reg.host}/m/${ref.path}:${ref.tag}`, digest });
      expect(await registryManifestDigest(reg.url, `m/${ref.path}`, ref.tag!), name).toBe(digest);
    }

    // Again: everything is there; plain output says so.
    const again = await ferry(['load', bundle, '--to', `docker://${reg.host}/m`]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(
      new RegExp(
        `Loaded ${bundleImages.size} of ${bundleImages.size} images into docker://${reg.host.replace(/\./g, '\\.')}/m \\(${bundleImages.size} already there\\): 0 blobs sent`,
      ),
    );
  });

  it('a bundle with a flipped byte inside a layer blob: exit 3, names the blob, no tag anywhere', async () => {
    const layer = corpus.largestLayer;
    const bad = await damagedCopy('flip-layer', (tar, members) => {
      const m = members.find((x) => x.name === `blobs/sha256/${layer.digest.slice('sha256:'.length)}`);
      if (!m) throw new Error(`no member for ${layer.digest}`);
      const at = m.offset + Math.floor(m.size / 2);
      tar[at] = tar[at]! ^ 0xff;
    });
    const mappingFile = path.join(createTempDir('flip-mapping'), 'mapping.json');
    const r = await ferry(['load', bad, '--to', `docker://${reg.host}/bad`, '--json', '--mapping', mappingFile]);
    expect(r.code, r.stderr).toBe(3);
    const report = reportOf(r);
    expect(report.mapping).toEqual({});
    expect(JSON.parse(await readFile(mappingFile, 'utf8'))).toEqual({});
    expect(report.images.every((i) => i.status === 'failed')).toBe(true);
    expect(report.failures.length).toBe(bundleImages.size);
    expect(report.blobs.failed).toBe(1);
    // The image that holds the blob fails with the digest mismatch; the others were not named because of it.
    const medium = report.images.find((i) => i.name === 'docker.io/ferry-test/medium:1')!;
    expect(medium.errorCode).toBe('DIGEST_MISMATCH');
    expect(medium.error).toContain(layer.digest);
    for (const i of report.images) expect(i.error, i.name).toContain(layer.digest);

    const plain = await ferry(['load', bad, '--to', `docker://${reg.host}/bad`]);
    expect(plain.code).toBe(3);
    expect(plain.stderr).toContain(layer.digest);
    expect(plain.stdout).toMatch(/Loaded 0 of \d+ images/);
    for (const repo of repos()) {
      const tags = await registryTags(reg.url, `bad/${repo}`);
      expect(tags === undefined || tags.length === 0, `bad/${repo}: ${JSON.stringify(tags)}`).toBe(true);
    }

    // Into an OCI layout: the same refusal, and index.json names nothing.
    const dest = path.join(createTempDir('flip-oci'), 'store');
    const oci = await ferry(['load', bad, '--to', `oci:${dest}`]);
    expect(oci.code, oci.stderr).toBe(3);
    expect(oci.stderr).toContain(layer.digest);
    const entries = existsSync(path.join(dest, 'index.json')) ? (await (await OciLayout.open(dest)).readIndex()).manifests : [];
    expect(entries).toEqual([]);
  });

  it('--key: another key, a changed manifest, a changed signature: exit 3, nothing loaded', async () => {
    const wrongKey = await ferry(['load', bundle, '--key', otherPub, '--to', `docker://${reg.host}/k1`]);
    expect(wrongKey.code, wrongKey.stderr).toBe(3);
    expect(wrongKey.stderr).toMatch(/failed verification/);
    expect(wrongKey.stderr).toMatch(/signature/i);
    expect(wrongKey.stderr).toMatch(/ferry: hint: nothing was loaded/);

    // One digit of "created" changed: still a valid manifest, but not the signed bytes.
    const manifestEdited = await damagedCopy('flip-manifest', (tar, members) => {
      const m = members.find((x) => x.name === 'ferry-bundle.json')!;
      const text = tar.subarray(m.offset, m.offset + m.size).toString('utf8');
      const at = text.indexOf('"created": "') + '"created": "'.length + 3; // last digit of the year
      expect(at).toBeGreaterThan(20);
      const digit = tar[m.offset + at]!;
      tar[m.offset + at] = digit === 0x39 ? 0x38 : digit + 1;
    });
    const edited = await ferry(['load', manifestEdited, '--key', pubKey, '--to', `docker://${reg.host}/k2`, '--json']);
    expect(edited.code, edited.stderr).toBe(3);
    expect(jsonLines(edited.stdout).at(-1)).toMatchObject({ type: 'error', code: 'BUNDLE_INVALID' });

    const sigEdited = await damagedCopy('flip-sig', (tar, members) => {
      const m = members.find((x) => x.name === 'ferry-bundle.json.sig')!;
      tar[m.offset + m.size - 1] = tar[m.offset + m.size - 1]! ^ 0x01;
    });
    const badSig = await ferry(['load', sigEdited, '--key', pubKey, '--to', `docker://${reg.host}/k3`]);
    expect(badSig.code, badSig.stderr).toBe(3);
    expect(badSig.stderr).toMatch(/failed verification/);

    // An unsigned bundle with --require-signature.
    const unsigned = path.join(createTempDir('unsigned'), 'unsigned.ferry');
    await writeBundle({
      store: await OciLayout.open(path.join(work, 'store')),
      refs: ['ferry-test/base:1'],
      output: unsigned,
      compression: 'none',
    });
    // Without --key, --require-signature is a usage error (as for ferry verify).
    const noKey = await ferry(['load', unsigned, '--require-signature', '--to', `docker://${reg.host}/k4`, '--json']);
    expect(noKey.code, noKey.stderr).toBe(2);
    const required = await ferry(['load', unsigned, '--key', pubKey, '--require-signature', '--to', `docker://${reg.host}/k4`, '--json']);
    expect(required.code, required.stderr).toBe(3);
    expect(jsonLines(required.stdout).at(-1)).toMatchObject({ type: 'error', code: 'BUNDLE_INVALID' });
    expect(String(jsonLines(required.stdout).at(-1)!.message)).toMatch(/sign/i);
    const unsignedOk = await ferry(['load', unsigned, '--to', `docker://${reg.host}/k5`, '--json']);
    expect(unsignedOk.code, unsignedOk.stderr).toBe(0);
    expect(reportOf(unsignedOk).signature).toBe('none');
    expect(await registryTags(reg.url, 'k4/ferry-test/base')).toBeUndefined();

    for (const prefix of ['k1', 'k2', 'k3']) {
      for (const repo of repos()) expect(await registryTags(reg.url, `${prefix}/${repo}`), `${prefix}/${repo}`).toBeUndefined();
    }
  });
});

describe('ferry load from stdin', () => {
  /** Load the bundle from the file and from stdin (`stdinSource`), compare the results. */
  async function fileVersusStdin(stdinSource: string): Promise<void> {
    const dir = createTempDir('stdin');
    const spool = path.join(dir, 'spool');
    await mkdir(spool);
    const fromFile = path.join(dir, 'from-file');
    const fromStdin = path.join(dir, 'from-stdin');
    const a = await ferry(['load', bundle, '--to', `oci:${fromFile}`, '--json']);
    expect(a.code, a.stderr).toBe(0);
    const b = await ferry(['load', stdinSource, '--key', pubKey, '--to', `oci:${fromStdin}`, '--json'], {
      input: await readFile(bundle),
      env: { FERRY_TMPDIR: spool },
    });
    expect(b.code, b.stderr).toBe(0);
    const ra = reportOf(a);
    const rb = reportOf(b);
    expect(rb.source).toBe('bundle:(stdin)');
    expect(rb.signature).toBe('valid');
    expect(rb.failures).toEqual([]);
    const digests = (r: typeof ra): Record<string, string> => Object.fromEntries(Object.entries(r.mapping).map(([k, v]) => [k, v.digest]));
    expect(digests(rb)).toEqual(digests(ra));
    expect(digests(rb)).toEqual(Object.fromEntries(bundleImages));
    expect(rb.blobs).toEqual(ra.blobs);
    // The same index.json entries (names and digests) and the same blobs.
    const entries = async (d: string): Promise<string[]> =>
      (await (await OciLayout.open(d)).readIndex()).manifests
        .map((m) => `${m.annotations?.['org.opencontainers.image.ref.name']} ${m.digest}`)
        .sort();
    expect(await entries(fromStdin)).toEqual(await entries(fromFile));
    expect((await readdir(path.join(fromStdin, 'blobs', 'sha256'))).sort()).toEqual(
      (await readdir(path.join(fromFile, 'blobs', 'sha256'))).sort(),
    );
    // The spooled copy of stdin is gone.
    expect(await readdir(spool)).toEqual([]);
  }

  // yargs parses a lone `-` as an empty flag; main.ts hands it over as /dev/stdin.
  it('cat bundle | ferry load - --to oci:DIR gives the same layout as loading the file', async () => {
    await fileVersusStdin('-');
  });

  it('cat bundle | ferry load bundle:- --to oci:DIR gives the same layout as loading the file', async () => {
    await fileVersusStdin('bundle:-');
  });

  it('`ferry load -` with --password-stdin is refused as ambiguous (exit 2)', async () => {
    const dir = createTempDir('stdin-pw');
    const r = await ferry(['load', '-', '--username', 'u', '--password-stdin', '--to', `oci:${path.join(dir, 'out')}`], {
      input: 'secret\n',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--password-stdin cannot be used when the bundle is read from stdin/);
  });

  it('`ferry load bundle:-` with --password-stdin is refused as ambiguous (exit 2)', async () => {
    const dir = createTempDir('stdin-pw2');
    const r = await ferry(['load', 'bundle:-', '--username', 'u', '--password-stdin', '--to', `oci:${path.join(dir, 'out')}`], {
      input: 'secret\n',
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--password-stdin cannot be used when the bundle is read from stdin/);
  });

  it('a bundle on stdin signed by another key is refused like the file (exit 3); an empty stdin fails', async () => {
    const dir = createTempDir('stdin-bad');
    const r = await ferry(['load', 'bundle:-', '--key', otherPub, '--to', `oci:${path.join(dir, 'out')}`], {
      input: await readFile(bundle),
    });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/failed verification/);
    // Messages name stdin, not the spool file (which is gone by then).
    expect(r.stderr).toMatch(/ferry verify -/);
    expect(r.stderr).not.toMatch(/ferry-stdin-/);
    expect(existsSync(path.join(dir, 'out', 'index.json'))).toBe(false);
    const empty = await ferry(['load', 'bundle:-', '--to', `oci:${path.join(dir, 'out2')}`], { input: '' });
    expect(empty.code, empty.stderr).not.toBe(0);
    expect(empty.stderr).toMatch(/^ferry: error: /m);
  });
});

describe('ferry mirror (CLI)', () => {
  let src: RunningRegistry;
  let dst: RunningRegistry;
  beforeAll(async () => {
    [src, dst] = await Promise.all([startRegistry(), startRegistry()]);
    const seeded = await load({ source: bundle, to: `docker://${src.host}` });
    expect(seeded.failures).toEqual([]);
  });

  it('mirrors two images with their digests; --json report; a second run sends no blob', async () => {
    const picks = ['ferry-test/base:1', 'ferry-test/multi:oci'];
    const refs = picks.map((p) => `${src.host}/${p}`);
    const mappingFile = path.join(createTempDir('mirror'), 'map.json');
    const r = await ferry(['mirror', ...refs, '--to', `docker://${dst.host}/mm`, '--json', '--mapping', mappingFile]);
    expect(r.code, r.stderr).toBe(0);
    const report = reportOf(r);
    expect(report.failures).toEqual([]);
    expect(report.source).toBe('2 references');
    expect(report.destination).toBe(`docker://${dst.host}/mm`);
    expect(report.blobs.fetched).toBeGreaterThan(0);
    for (const [i, p] of picks.entries()) {
      const digest = bundleImages.get(`docker.io/${p}`)!;
      expect(report.mapping[refs[i]!]).toEqual({ destination: `${dst.host}/mm/${p}`, digest });
      const [repo, tag] = p.split(':') as [string, string];
      expect(await registryManifestDigest(dst.url, `mm/${repo}`, tag)).toBe(digest);
    }
    expect(JSON.parse(await readFile(mappingFile, 'utf8'))).toEqual(report.mapping);

    const second = await ferry(['mirror', ...refs, '--to', `docker://${dst.host}/mm`, '--json']);
    expect(second.code, second.stderr).toBe(0);
    const r2 = reportOf(second);
    expect(r2.blobs.fetched).toBe(0);
    expect(r2.blobs.bytesFetched).toBe(0);
    expect(r2.images.map((i) => [i.status, i.skipped])).toEqual([
      ['done', true],
      ['done', true],
    ]);
  });

  it('an option for another kind of destination is refused, not ignored', async () => {
    const dir = createTempDir('wrong-dest-opts');
    const to = `oci:${path.join(dir, 'dest')}`;
    for (const [flags, says] of [
      [['--scoped'], '--scoped is for a registry destination'],
      [['--chunk-size', '8'], '--chunk-size is for a registry destination'],
      [['--ctr', 'ctr'], '--ctr is for a containerd destination'],
      [['--snapshotter', 'native'], '--snapshotter is for a containerd destination'],
      [['--no-unpack'], '--no-unpack is for a containerd destination'],
    ] as const) {
      const r = await ferry(['load', bundle, '--to', to, ...flags]);
      expect(r.code, `${flags.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain(says);
    }
    expect(existsSync(path.join(dir, 'dest'))).toBe(false);
  });

  it('- as an output (load --mapping -, bundle -o -): a usage error before anything runs', async () => {
    const dir = createTempDir('dash-out');
    const m = await ferry(['load', bundle, '--to', `oci:${path.join(dir, 'dest')}`, '--mapping', '-']);
    expect(m.code, m.stderr).toBe(2);
    expect(m.stderr).toContain('--mapping takes a file to write, not -');
    expect(existsSync(path.join(dir, 'dest'))).toBe(false);
    const o = await ferry(['bundle', '--from-store', '--store', path.join(work, 'store'), '-o', '-']);
    expect(o.code, o.stderr).toBe(2);
    expect(o.stderr).toContain('-o takes a file to write, not -');
  });

  it('usage errors exit 2: --to oci:, nothing to mirror, a non-registry source', async () => {
    const dir = createTempDir('mirror-usage');
    const toOci = await ferry(['mirror', `${src.host}/ferry-test/base:1`, '--to', `oci:${path.join(dir, 'x')}`]);
    expect(toOci.code, toOci.stderr).toBe(2);
    expect(toOci.stderr).toMatch(/ferry mirror writes to a registry/);
    expect(toOci.stderr).toMatch(/ferry: hint: /);
    expect(existsSync(path.join(dir, 'x'))).toBe(false);
    const nothing = await ferry(['mirror', '--to', `docker://${dst.host}/mm`]);
    expect(nothing.code).toBe(2);
    expect(nothing.stderr).toMatch(/nothing to mirror/);
    const fromOci = await ferry(['mirror', `oci:${path.join(work, 'store')}`, '--to', `docker://${dst.host}/mm`]);
    expect(fromOci.code).toBe(2);
    expect(fromOci.stderr).toMatch(/ferry mirror reads from registries/);
    const zero = await ferry(['mirror', `${src.host}/ferry-test/base:1`, '--to', `docker://${dst.host}/mm`, '--concurrency', '0']);
    expect(zero.code).toBe(2);
  });

  it('a missing source image: exit 1 with the registry error, the other image still mirrored', async () => {
    const r = await ferry([
      'mirror',
      `${src.host}/ferry-test/base:nope`,
      `${src.host}/ferry-test/app:1.0`,
      '--to',
      `docker://${dst.host}/m2`,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(1);
    const report = reportOf(r);
    expect(report.failures.map((f) => f.name)).toEqual([`${src.host}/ferry-test/base:nope`]);
    expect(JSON.stringify(report.failures)).toContain('MANIFEST_UNKNOWN');
    expect(await registryManifestDigest(dst.url, 'm2/ferry-test/app', '1.0')).toBe(bundleImages.get('docker.io/ferry-test/app:1.0'));
  });
});
