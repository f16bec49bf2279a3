// The containerd destination against a fake `ctr` (a shell script): what it is asked to run,
// the archive it receives on stdin, and — the point of this file — that on a failed blob the
// fake is killed *before* its stdin reaches end-of-file, so a real ctr never names anything.
// The real thing is exercised in test/integration/load/containerd.test.ts.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { planCopy, type CopyPlan } from '../../../../src/copy/plan.js';
import type { CopyEvent, EventSink } from '../../../../src/copy/events.js';
import type { DestinationReport } from '../../../../src/copy/report.js';
import { loadInto } from '../../../helpers/destination.js';
import { ContainerdDestination, type ContainerdOptions } from '../../../../src/transports/containerd/destination.js';
import { sha256, type Digest } from '../../../../src/oci/digest.js';
import type { Descriptor } from '../../../../src/oci/manifest.js';
import { MediaType } from '../../../../src/oci/mediatypes.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes } from '../../../../src/transports/types.js';

/** An image held in memory; `lie` swaps a blob's bytes for others of the same size. */
class MemorySource implements ImageSource {
  readonly description: string;
  readonly manifest: Buffer;
  readonly digest: Digest;
  private readonly blobs = new Map<string, Buffer>();

  constructor(name: string, layerBytes: Buffer, configMediaType: string = MediaType.OciConfig) {
    this.description = `memory:${name}`;
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layerBytes)] } }),
    );
    const desc = (mediaType: string, b: Buffer): Descriptor => ({ mediaType, digest: sha256(b), size: b.length });
    this.blobs.set(sha256(config), config);
    this.blobs.set(sha256(layerBytes), layerBytes);
    this.manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: desc(configMediaType, config),
        layers: [desc(MediaType.OciLayer, layerBytes)],
      }),
    );
    this.digest = sha256(this.manifest);
  }

  lie(digest: string): void {
    const b = Buffer.from(this.blobs.get(digest)!);
    b[0] = b[0]! ^ 0xff;
    this.blobs.set(digest, b);
  }

  async getRootManifest(): Promise<ManifestBytes> {
    return { bytes: this.manifest, mediaType: MediaType.OciManifest, digest: this.digest };
  }
  async getManifest(): Promise<ManifestBytes> {
    throw new Error('no children');
  }
  openBlob(desc: Descriptor, _opts: BlobOpenOptions): Readable {
    const b = this.blobs.get(desc.digest)!;
    // Several chunks, so the archive is well under way when the digest check fails.
    const chunks: Buffer[] = [];
    for (let i = 0; i < b.length; i += 64 * 1024) chunks.push(b.subarray(i, i + 64 * 1024));
    return Readable.from(chunks);
  }
  async close(): Promise<void> {}
}

type LoadOptions = ContainerdOptions & { onEvent?: EventSink; signal?: AbortSignal; allOrNothing?: boolean };

/** The destination as `ferry load` drives it (all or nothing unless told). */
function loadIntoContainerd(plan: CopyPlan, sources: ImageSource[], o: LoadOptions): Promise<DestinationReport> {
  const { onEvent, signal, allOrNothing, ...options } = o;
  return loadInto(new ContainerdDestination(options), plan, sources, {
    ...(onEvent ? { onEvent } : {}),
    ...(signal ? { signal } : {}),
    ...(allOrNothing !== undefined ? { allOrNothing } : {}),
  });
}

let dir: string;
let ctr: string;

/**
 * The fake client: every call's argv is appended to calls.log; `--version`, `version` succeed;
 * `images ls` prints ls.txt (ignoring filters); `images check` prints check.txt; `images import`
 * records its argv (argv, and imports.log), copies stdin to stdin.tar, and only once it has
 * read to EOF writes saw-eof, then does what import-mode says (ok: publish after-ls.txt as
 * ls.txt; fail; unpackfail; early).
 */
function writeFakeCtr(): void {
  ctr = path.join(dir, 'ctr');
  writeFileSync(
    ctr,
    `#!/bin/sh
D=${JSON.stringify(dir)}
echo "$*" >> "$D/calls.log"
case "$*" in
  --version) echo "ctr fake"; exit 0 ;;
  *" version") exit 0 ;;
  *" images ls"*) cat "$D/ls.txt"; exit 0 ;;
  *" images check"*) cat "$D/check.txt" 2>/dev/null; exit 0 ;;
  *" images import "*)
    echo "$*" > "$D/argv"
    echo "$*" >> "$D/imports.log"
    mode=$(cat "$D/import-mode")
    if [ "$mode" = early ]; then echo 'ctr: unrecognized image format' >&2; exit 1; fi
    cat > "$D/stdin.tar"
    echo yes > "$D/saw-eof"
    if [ "$mode" = fail ]; then echo 'level=info msg=x' >&2; echo 'ctr: failed to extract layer: something broke' >&2; exit 1; fi
    if [ "$mode" = unpackfail ]; then echo 'ctr: failed to unpack image on snapshotter native: mount failed' >&2; exit 1; fi
    cp "$D/after-ls.txt" "$D/ls.txt"; exit 0 ;;
esac
echo "fake ctr: unexpected $*" >&2; exit 2
`,
  );
  chmodSync(ctr, 0o755);
}

const HEADER = 'REF TYPE DIGEST SIZE PLATFORMS LABELS';
const row = (name: string, digest: string): string => `${name} ${MediaType.OciManifest} ${digest} 1.0 KiB linux/amd64 -`;
const CHECK_HEADER = 'REF TYPE DIGEST STATUS SIZE UNPACKED';
const checkRow = (name: string, digest: string, status: string, unpacked: boolean): string =>
  `${name} ${MediaType.OciManifest} ${digest} ${status} 1.0 KiB/1.0 KiB ${unpacked}`;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'ferry-fake-ctr-'));
  writeFakeCtr();
  writeFileSync(path.join(dir, 'ls.txt'), `${HEADER}\n`);
  writeFileSync(path.join(dir, 'import-mode'), 'ok');
  writeFileSync(path.join(dir, 'sock'), ''); // the address must exist
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function twoImages(): Promise<{ plan: CopyPlan; sources: MemorySource[] }> {
  const sources = [new MemorySource('a', Buffer.alloc(300_000, 1)), new MemorySource('b', Buffer.alloc(200_000, 2))];
  const plan = await planCopy([
    { source: sources[0]!, name: 'docker.io/test/a:1' },
    { source: sources[1]!, name: 'docker.io/test/b:1' },
  ]);
  return { plan, sources };
}

const opts = () => ({ ctr: [ctr], address: path.join(dir, 'sock'), namespace: 'ns1', snapshotter: 'native' });

describe('the containerd destination with a fake ctr', () => {
  it('streams one OCI archive, index.json last, and confirms the names', async () => {
    const { plan, sources } = await twoImages();
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const report = await loadIntoContainerd(plan, sources, opts());
    expect(report.images.map((i) => [i.status, i.destination, i.destinationDigest])).toEqual(
      plan.images.map((i) => ['done', `containerd:${i.name}`, i.root.digest]),
    );
    expect(report.blobs).toMatchObject({ total: 4, fetched: 4, failed: 0, skipped: 0 });
    expect(readFileSync(path.join(dir, 'argv'), 'utf8').trim()).toBe(
      `--address ${path.join(dir, 'sock')} -n ns1 images import --all-platforms --snapshotter native -`,
    );
    const entries = execFileSync('tar', ['-tf', path.join(dir, 'stdin.tar')], { encoding: 'utf8' })
      .trim()
      .split('\n');
    expect(entries[0]).toBe('oci-layout');
    expect(entries[entries.length - 1]).toBe('index.json');
    const blobNames = new Set(
      [...plan.blobs.map((b) => b.desc.digest), ...plan.images.map((i) => i.root.digest)].map((d) => `blobs/sha256/${d.slice(7)}`),
    );
    expect(new Set(entries.filter((e) => e.startsWith('blobs/sha256/') && e.length > 'blobs/sha256/'.length))).toEqual(blobNames);
    const index = JSON.parse(execFileSync('tar', ['-xOf', path.join(dir, 'stdin.tar'), 'index.json'], { encoding: 'utf8' })) as {
      manifests: Array<{ digest: string; annotations: Record<string, string> }>;
    };
    expect(index.manifests.map((m) => [m.digest, m.annotations['io.containerd.image.name']])).toEqual(
      plan.images.map((i) => [i.root.digest, i.name]),
    );
  });

  it('a blob failing its digest check kills ctr before its input ends', async () => {
    // A layer larger than the tar writer's buffer and the pipe's, so ctr must read most of it.
    const sources = [new MemorySource('a', Buffer.alloc(4 * 1024 * 1024, 1)), new MemorySource('b', Buffer.alloc(200_000, 2))];
    const plan = await planCopy([
      { source: sources[0]!, name: 'docker.io/test/a:1' },
      { source: sources[1]!, name: 'docker.io/test/b:1' },
    ]);
    const layer = plan.images[0]!.blobs.reduce((x, y) => (y.size > x.size ? y : x));
    sources[0]!.lie(layer.digest);
    const report = await loadIntoContainerd(plan, sources, opts());
    expect(report.images.map((i) => [i.status, i.errorCode])).toEqual([
      ['failed', 'DIGEST_MISMATCH'],
      ['failed', 'DIGEST_MISMATCH'],
    ]);
    expect(report.images[1]!.error).toMatch(/^loading docker\.io\/test\/b:1 into containerd \(namespace ns1\): .*digest mismatch/);
    expect(report.blobs.failed).toBe(1);
    // The whole corrupt blob reached ctr, yet it never read an end of input.
    expect(statSync(path.join(dir, 'stdin.tar')).size).toBeGreaterThan(2 * 1024 * 1024);
    expect(existsSync(path.join(dir, 'saw-eof'))).toBe(false);
  });

  it('a broken run rejects every later put with its error, commit() names nothing, ctr never sees an end of input', async () => {
    const sources = [new MemorySource('a', Buffer.alloc(4 * 1024 * 1024, 1)), new MemorySource('b', Buffer.alloc(200_000, 2))];
    const plan = await planCopy([
      { source: sources[0]!, name: 'docker.io/test/a:1' },
      { source: sources[1]!, name: 'docker.io/test/b:1' },
    ]);
    const layer = plan.images[0]!.blobs.reduce((x, y) => (y.size > x.size ? y : x));
    sources[0]!.lie(layer.digest);
    const dest = new ContainerdDestination(opts());
    try {
      expect((await dest.prepare(plan, {})).map((p) => p.state)).toEqual(['copy', 'copy']);
      const put = (i: number, d: Descriptor) =>
        dest.putBlob(d, (start) => sources[i]!.openBlob(d, { what: d.digest, start }), { what: `blob ${d.digest}`, images: [i] });
      const first = await put(0, layer).catch((e: unknown) => e);
      expect(first).toMatchObject({ code: 'DIGEST_MISMATCH' });
      // The next blob is not even opened: the same error, at once.
      let opened = 0;
      const other = plan.images[1]!.blobs[0]!;
      const second = await dest
        .putBlob(
          other,
          (start) => {
            opened++;
            return sources[1]!.openBlob(other, { what: other.digest, start });
          },
          { what: `blob ${other.digest}`, images: [1] },
        )
        .catch((e: unknown) => e);
      expect(second).toBe(first);
      expect(opened).toBe(0);
      expect(await dest.commit()).toBeUndefined();
      expect(existsSync(path.join(dir, 'saw-eof'))).toBe(false);
    } finally {
      await dest.close();
    }
  });

  it('closed without commit(): ctr is killed before its input ends', async () => {
    const { plan, sources } = await twoImages();
    const dest = new ContainerdDestination(opts());
    await dest.prepare(plan, {});
    const d = plan.images[0]!.blobs[0]!;
    await dest.putBlob(d, (start) => sources[0]!.openBlob(d, { what: d.digest, start }), { what: `blob ${d.digest}`, images: [0] });
    await dest.setName({ index: 0, name: plan.images[0]!.name, root: plan.images[0]!.root });
    await dest.close();
    expect(existsSync(path.join(dir, 'saw-eof'))).toBe(false);
  });

  it('quotes the useful part of ctr stderr when the import fails', async () => {
    const { plan, sources } = await twoImages();
    writeFileSync(path.join(dir, 'import-mode'), 'fail');
    const report = await loadIntoContainerd(plan, sources, opts());
    for (const img of report.images) {
      expect(img.status).toBe('failed');
      expect(img.errorCode).toBe('CTR_IMPORT_FAILED');
      expect(img.error).toContain('(exit 1): ctr: failed to extract layer: something broke');
    }
  });

  it('ctr exiting without reading its input fails the images instead of hanging', async () => {
    const { plan, sources } = await twoImages();
    writeFileSync(path.join(dir, 'import-mode'), 'early');
    const report = await loadIntoContainerd(plan, sources, opts());
    for (const img of report.images) {
      expect(img.errorCode).toBe('CTR_IMPORT_FAILED');
      expect(img.error).toContain('ctr: unrecognized image format');
    }
  });

  it('an image not listed at its digest after the import is an error for that image', async () => {
    const { plan, sources } = await twoImages();
    const [a, b] = plan.images;
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, row(a!.name, a!.root.digest), row(b!.name, a!.root.digest)].join('\n'));
    const report = await loadIntoContainerd(plan, sources, opts());
    expect(report.images.map((i) => [i.status, i.errorCode])).toEqual([
      ['done', undefined],
      ['failed', 'CONTAINERD_IMAGE_MISSING'],
    ]);
    expect(report.images[1]!.error).toContain(`it points at ${a!.root.digest}`);
  });

  it('skips images already named at the planned digest without running an import', async () => {
    const { plan, sources } = await twoImages();
    writeFileSync(path.join(dir, 'ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    writeFileSync(
      path.join(dir, 'check.txt'),
      [CHECK_HEADER, ...plan.images.map((i) => checkRow(i.name, i.root.digest, 'complete (2/2)', true))].join('\n'),
    );
    const report = await loadIntoContainerd(plan, sources, opts());
    expect(report.images.map((i) => [i.status, i.skipped])).toEqual([
      ['done', true],
      ['done', true],
    ]);
    expect(report.blobs).toMatchObject({ fetched: 0, skipped: 4, bytesSkipped: plan.blobs.reduce((n, b) => n + b.desc.size, 0) });
    expect(existsSync(path.join(dir, 'argv'))).toBe(false);
  });

  it('a name at another digest is replaced, not skipped', async () => {
    const { plan, sources } = await twoImages();
    const [a, b] = plan.images;
    writeFileSync(path.join(dir, 'ls.txt'), [HEADER, row(a!.name, b!.root.digest)].join('\n'));
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const events: CopyEvent[] = [];
    const report = await loadIntoContainerd(plan, sources, { ...opts(), onEvent: (e) => events.push(e) });
    expect(report.images.map((i) => [i.status, i.skipped])).toEqual([
      ['done', undefined],
      ['done', undefined],
    ]);
    // ctr import re-points the name silently; ferry says so, naming the old digest.
    const warnings = events.filter((e) => e.kind === 'warning');
    expect(warnings).toEqual([
      { kind: 'warning', image: a!.name, message: `${a!.name} was re-pointed from ${b!.root.digest} to ${a!.root.digest}` },
    ]);
  });
});

describe('containerd address: the client default unless one is named', () => {
  let saved: string | undefined;
  beforeEach(() => {
    saved = process.env.CONTAINERD_ADDRESS;
    delete process.env.CONTAINERD_ADDRESS;
  });
  afterEach(() => {
    if (saved === undefined) delete process.env.CONTAINERD_ADDRESS;
    else process.env.CONTAINERD_ADDRESS = saved;
  });

  it('with no socket named, no --address is passed and no path is checked (k3s ctr has its own default)', async () => {
    const { plan, sources } = await twoImages();
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const report = await loadIntoContainerd(plan, sources, { ctr: [ctr], namespace: 'ns1', snapshotter: 'native' });
    expect(report.images.map((i) => i.status)).toEqual(['done', 'done']);
    const calls = readFileSync(path.join(dir, 'calls.log'), 'utf8').trim().split('\n');
    expect(calls.length).toBeGreaterThan(3);
    for (const c of calls) expect(c).not.toContain('--address');
    expect(calls[1]).toBe('--connect-timeout 5s version');
  });

  it('CONTAINERD_ADDRESS is passed on, and a missing socket there is named', async () => {
    const { plan, sources } = await twoImages();
    process.env.CONTAINERD_ADDRESS = path.join(dir, 'nope.sock');
    const err = await loadIntoContainerd(plan, sources, { ctr: [ctr], namespace: 'ns1' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
    expect((err as Error).message).toContain(path.join(dir, 'nope.sock'));
  });

  it('a daemon not answering at the default is reported with the default the client uses', async () => {
    const { plan, sources } = await twoImages();
    // k3s ctr whose `version` fails: the message names k3s' socket, not /run/containerd.
    const k3s = path.join(dir, 'k3s');
    writeFileSync(k3s, `#!/bin/sh\nshift\ncase "$*" in --version) exit 0 ;; esac\necho 'ctr: failed to dial' >&2; exit 1\n`);
    chmodSync(k3s, 0o755);
    const err = await loadIntoContainerd(plan, sources, { ctr: [k3s, 'ctr'] }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'DAEMON_UNAVAILABLE' });
    expect((err as Error).message).toContain('/run/k3s/containerd/containerd.sock');
  });
});

describe('listing and checking what is there', () => {
  it('reads the whole `images ls` output: planned rows before megabytes of others are not lost', async () => {
    const { plan, sources } = await twoImages();
    const filler = Array.from({ length: 40_000 }, (_, i) =>
      row(`docker.io/other/image-${i}:latest`, `sha256:${i.toString(16).padStart(64, '0')}`),
    );
    writeFileSync(path.join(dir, 'ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest)), ...filler].join('\n'));
    writeFileSync(
      path.join(dir, 'check.txt'),
      [CHECK_HEADER, ...plan.images.map((i) => checkRow(i.name, i.root.digest, 'complete (2/2)', true))].join('\n'),
    );
    const report = await loadIntoContainerd(plan, sources, opts());
    expect(report.images.map((i) => [i.status, i.skipped])).toEqual([
      ['done', true],
      ['done', true],
    ]);
    expect(existsSync(path.join(dir, 'imports.log'))).toBe(false);
    // Only the planned names are asked for.
    const ls = readFileSync(path.join(dir, 'calls.log'), 'utf8')
      .split('\n')
      .find((c) => c.includes(' images ls'))!;
    expect(ls.endsWith(`images ls name=="docker.io/test/a:1" name=="docker.io/test/b:1"`)).toBe(true);
  });

  it('a name at its digest that is not unpacked (an earlier unpack failed) is imported again', async () => {
    const { plan, sources } = await twoImages();
    const [a, b] = plan.images;
    writeFileSync(path.join(dir, 'ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    writeFileSync(
      path.join(dir, 'check.txt'),
      [
        CHECK_HEADER,
        checkRow(a!.name, a!.root.digest, 'complete (2/2)', false),
        checkRow(b!.name, b!.root.digest, 'complete (2/2)', true),
      ].join('\n'),
    );
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const events: CopyEvent[] = [];
    const report = await loadIntoContainerd(plan, sources, { ...opts(), onEvent: (e) => events.push(e) });
    expect(report.images.map((i) => [i.status, i.skipped])).toEqual([
      ['done', undefined],
      ['done', true],
    ]);
    expect(readFileSync(path.join(dir, 'imports.log'), 'utf8').trim().split('\n')).toHaveLength(1);
    const index = JSON.parse(execFileSync('tar', ['-xOf', path.join(dir, 'stdin.tar'), 'index.json'], { encoding: 'utf8' })) as {
      manifests: unknown[];
    };
    expect(index.manifests).toHaveLength(1);
    expect(events).toContainEqual(
      expect.objectContaining({ kind: 'warning', image: a!.name, message: expect.stringContaining('not unpacked') }),
    );
    const check = readFileSync(path.join(dir, 'calls.log'), 'utf8')
      .split('\n')
      .find((c) => c.includes(' images check'))!;
    expect(check).toContain('images check --snapshotter native name=="docker.io/test/a:1" name=="docker.io/test/b:1"');
  });

  it('an incomplete image is imported again; with unpack false, not being unpacked is fine', async () => {
    const { plan, sources } = await twoImages();
    const [a, b] = plan.images;
    writeFileSync(path.join(dir, 'ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    writeFileSync(
      path.join(dir, 'check.txt'),
      [
        CHECK_HEADER,
        checkRow(a!.name, a!.root.digest, 'incomplete (1/2)', false),
        checkRow(b!.name, b!.root.digest, 'complete (2/2)', false),
      ].join('\n'),
    );
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const report = await loadIntoContainerd(plan, sources, { ...opts(), unpack: false });
    expect(report.images.map((i) => [i.status, i.skipped])).toEqual([
      ['done', undefined],
      ['done', true],
    ]);
    expect(readFileSync(path.join(dir, 'argv'), 'utf8')).toContain('--no-unpack');
  });

  it('an unpack failure hints at --no-unpack', async () => {
    const { plan, sources } = await twoImages();
    writeFileSync(path.join(dir, 'import-mode'), 'unpackfail');
    const report = await loadIntoContainerd(plan, sources, opts());
    for (const img of report.images) {
      expect(img.errorCode).toBe('CTR_IMPORT_FAILED');
      expect(img.hint).toContain('--no-unpack');
    }
  });
});

describe('two import runs (an image that cannot be unpacked here) from one bundle', () => {
  /** An image and an artifact: the artifact goes in a second, --no-unpack run. */
  async function imageAndArtifact(): Promise<{ plan: CopyPlan; sources: MemorySource[] }> {
    const sources = [
      new MemorySource('a', Buffer.alloc(300_000, 1)),
      new MemorySource('art', Buffer.alloc(200_000, 3), 'application/vnd.example.config.v1+json'),
    ];
    const plan = await planCopy([
      { source: sources[0]!, name: 'docker.io/test/a:1' },
      { source: sources[1]!, name: 'docker.io/test/art:1' },
    ]);
    return { plan, sources };
  }

  it('a bad blob of the second run fails both images before the first run names anything', async () => {
    const { plan, sources } = await imageAndArtifact();
    const art = plan.images[1]!;
    sources[1]!.lie(art.blobs.reduce((x, y) => (y.size > x.size ? y : x)).digest);
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const report = await loadIntoContainerd(plan, sources, { ...opts(), allOrNothing: true });
    expect(report.images.map((i) => [i.name, i.status, i.errorCode])).toEqual([
      ['docker.io/test/a:1', 'failed', 'NOT_LOADED'],
      ['docker.io/test/art:1', 'failed', 'DIGEST_MISMATCH'],
    ]);
    expect(report.blobs.failed).toBe(1);
    // No import run was started at all.
    expect(existsSync(path.join(dir, 'imports.log'))).toBe(false);
  });

  it('without allOrNothing the first run goes ahead; either way no run starts after an integrity failure', async () => {
    const { plan, sources } = await imageAndArtifact();
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    // The first run's blob is bad: the second run must not start.
    sources[0]!.lie(plan.images[0]!.blobs.reduce((x, y) => (y.size > x.size ? y : x)).digest);
    const report = await loadIntoContainerd(plan, sources, { ...opts(), allOrNothing: false });
    expect(report.images.map((i) => [i.status, i.errorCode])).toEqual([
      ['failed', 'DIGEST_MISMATCH'],
      ['failed', 'NOT_LOADED'],
    ]);
    // (The first ctr may be killed before it even logs its argv.)
    const runs = existsSync(path.join(dir, 'imports.log')) ? readFileSync(path.join(dir, 'imports.log'), 'utf8').trim().split('\n') : [];
    expect(runs.length).toBeLessThanOrEqual(1);
    expect(runs.filter((r) => r.includes('--no-unpack'))).toEqual([]);
    expect(existsSync(path.join(dir, 'saw-eof'))).toBe(false);
  });

  it('blobs an image and an artifact share go in both runs, counted once', async () => {
    // The same layer (so the same config bytes): only the manifests differ.
    const sources = [
      new MemorySource('a', Buffer.alloc(300_000, 1)),
      new MemorySource('art', Buffer.alloc(300_000, 1), 'application/vnd.example.config.v1+json'),
    ];
    const plan = await planCopy([
      { source: sources[0]!, name: 'docker.io/test/a:1' },
      { source: sources[1]!, name: 'docker.io/test/art:1' },
    ]);
    expect(plan.blobs).toHaveLength(2);
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const report = await loadIntoContainerd(plan, sources, opts());
    expect(report.images.map((i) => i.status)).toEqual(['done', 'done']);
    expect(report.blobs).toMatchObject({ total: 2, fetched: 2, failed: 0, bytesFetched: plan.blobs.reduce((n, b) => n + b.desc.size, 0) });
    const runs = readFileSync(path.join(dir, 'imports.log'), 'utf8').trim().split('\n');
    expect(runs).toHaveLength(2);
    expect(runs[0]).toContain('--snapshotter native');
    expect(runs[1]).toContain('--no-unpack');
    // The second run's archive (the one left in stdin.tar) holds both blobs and names only the artifact.
    const entries = execFileSync('tar', ['-tf', path.join(dir, 'stdin.tar')], { encoding: 'utf8' })
      .trim()
      .split('\n');
    for (const b of plan.blobs) expect(entries).toContain(`blobs/sha256/${b.desc.digest.slice(7)}`);
    const index = JSON.parse(execFileSync('tar', ['-xOf', path.join(dir, 'stdin.tar'), 'index.json'], { encoding: 'utf8' })) as {
      manifests: Array<{ annotations: Record<string, string> }>;
    };
    expect(index.manifests.map((m) => m.annotations['io.containerd.image.name'])).toEqual(['docker.io/test/art:1']);
  });

  it('good content: two runs, unpacked first, then --no-unpack', async () => {
    const { plan, sources } = await imageAndArtifact();
    writeFileSync(path.join(dir, 'after-ls.txt'), [HEADER, ...plan.images.map((i) => row(i.name, i.root.digest))].join('\n'));
    const report = await loadIntoContainerd(plan, sources, { ...opts(), allOrNothing: true });
    expect(report.images.map((i) => i.status)).toEqual(['done', 'done']);
    const runs = readFileSync(path.join(dir, 'imports.log'), 'utf8').trim().split('\n');
    expect(runs).toHaveLength(2);
    expect(runs[0]).toContain('--snapshotter native');
    expect(runs[1]).toContain('--no-unpack');
  });
});
