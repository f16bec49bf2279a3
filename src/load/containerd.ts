/**
 * The `containerd` destination of `ferry load`: images go into containerd's content and
 * image stores through its own client, `ctr images import` (also `k3s ctr`), fed an OCI
 * image-layout tar that is built while the blobs stream — no temp files, flat memory.
 *
 * Order of work (see containerd-ctr.ts for how containerd reads the archive):
 *  1. `ctr --version` (is the client there?) and `ctr version` (does containerd answer?);
 *  2. `ctr images ls`: images whose name already points at the planned root are skipped;
 *  3. one `ctr images import --all-platforms -` whose stdin is `oci-layout`, every blob
 *     (each verified by a DigestVerifier on the way through), every manifest, and index.json
 *     last. If anything fails before the archive is complete, ctr is SIGKILLed *before* its
 *     stdin is closed, so it never sees an end of input and names nothing. Images containerd
 *     cannot unpack on this host (artifacts, indexes without a host platform) go in a second
 *     run with --no-unpack, since ctr would fail after naming them (see unpackBlocker);
 *  4. `ctr images ls` again: every imported name must point at its planned digest.
 *
 * Reports name images `containerd:<name>`; the namespace (default k8s.io, where Kubernetes
 * looks) is part of every error message. Blobs stream one after another into the archive, so
 * `concurrency` does not apply. Every blob of an image being imported is sent, even one
 * containerd already holds: the archive importer cannot be told to expect it elsewhere.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { verifyBytes } from '../oci/digest.js';
import { parseManifest, type Descriptor } from '../oci/manifest.js';
import { failedResult, resultBase } from '../copy/execute.js';
import type { CopyPlan, PlannedBlob, PlannedImage } from '../copy/plan.js';
import type { ImageSource } from '../transports/types.js';
import { AbortedError, DaemonUnavailableError, FerryError, type FerryErrorOptions } from '../util/errors.js';
import { TarWriter } from '../util/tar.js';
import {
  OCI_LAYOUT_FILE,
  blobEntryName,
  buildImportIndex,
  destinationName,
  hostPlatform,
  importArgv,
  listArgv,
  parseImageList,
  resolveTarget,
  summariseCtrStderr,
  unpackBlocker,
  versionArgv,
  type CtrImageRow,
  type CtrTarget,
  type ImportFlags,
} from './containerd-ctr.js';
import { addVerifiedBlob } from './archive-blob.js';
import type { DestinationOptions, DestinationReport, LoadBlobStats, LoadedImage } from './types.js';

export interface ContainerdOptions extends DestinationOptions {
  /** containerd socket; default from CONTAINERD_ADDRESS else /run/containerd/containerd.sock */
  address?: string;
  /** default 'k8s.io' (the namespace Kubernetes uses) */
  namespace?: string;
  /** the ctr client command, argv form: default ['ctr']; e.g. ['k3s','ctr'] */
  ctr?: string[];
  /** unpack into this snapshotter after import (ctr's default behaviour); undefined = containerd's default */
  snapshotter?: string;
  /** false = --no-unpack (content and image records only) */
  unpack?: boolean;
}

/** The ctr client could not be started (not installed, not on PATH, not executable). */
export class CtrNotFoundError extends FerryError {
  constructor(message: string, options?: FerryErrorOptions) {
    super('CTR_NOT_FOUND', message, options);
  }
}


/** ctr ran and failed (exit status non-zero), or containerd's result is not what was asked. */
export class CtrFailedError extends FerryError {
  constructor(code: string, message: string, options?: FerryErrorOptions) {
    super(code, message, options);
  }
}

/** Cap on the stdout/stderr kept from a ctr run (the newest bytes). */
const MAX_OUTPUT_BYTES = 256 * 1024;
/** A ctr command other than the import should never take this long. */
const SHORT_COMMAND_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Running ctr

interface CtrRun {
  child: ChildProcess;
  /** Resolves once the process has exited and its output is drained; never rejects. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; spawnError?: Error }>;
  /** SIGKILL, unless it has already exited. */
  kill(): void;
  /** Resolves once the process has exited (not waiting for output). */
  exited: Promise<void>;
}

/** Keeps the newest `max` bytes of a stream. */
function tailCollector(stream: Readable | null, max: number): () => string {
  const chunks: Buffer[] = [];
  let bytes = 0;
  stream?.on('data', (c: Buffer) => {
    chunks.push(c);
    bytes += c.length;
    while (bytes > max && chunks.length > 1) bytes -= chunks.shift()!.length;
  });
  return () => Buffer.concat(chunks).toString('utf8');
}

function startCtr(argv: readonly string[], stdin: 'pipe' | 'ignore'): CtrRun {
  const [command, ...args] = argv as [string, ...string[]];
  const child = spawn(command, args, { stdio: [stdin, 'pipe', 'pipe'] });
  const stdout = tailCollector(child.stdout, MAX_OUTPUT_BYTES);
  const stderr = tailCollector(child.stderr, MAX_OUTPUT_BYTES);
  // A broken pipe (ctr exited without reading everything) shows in its exit status instead.
  child.stdin?.on('error', () => {});
  let exitedResolve!: () => void;
  const exited = new Promise<void>((r) => (exitedResolve = r));
  child.once('exit', () => exitedResolve());
  const done = new Promise<Awaited<CtrRun['done']>>((resolve) => {
    child.once('error', (err) => {
      exitedResolve();
      resolve({ code: null, signal: null, stdout: stdout(), stderr: stderr(), spawnError: err });
    });
    child.once('close', (code, signal) => resolve({ code, signal, stdout: stdout(), stderr: stderr() }));
  });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
  };
  return { child, done, kill, exited };
}

function notFound(argv: readonly string[], err: Error): CtrNotFoundError {
  return new CtrNotFoundError(`cannot run the containerd client ${JSON.stringify(argv[0])}: ${err.message}`, {
    cause: err,
    hint: 'install ctr (Debian/Ubuntu package "containerd") or name the client with the ctr option, e.g. ["k3s", "ctr"] or ["/usr/local/bin/ctr"]',
  });
}

/** Runs a short ctr command to completion; spawn failures become CtrNotFoundError. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('loading into containerd was aborted');
}

async function runCtr(argv: readonly string[], signal: AbortSignal | undefined): Promise<{ code: number | null; stdout: string; stderr: string }> {
  throwIfAborted(signal);
  const run = startCtr(argv, 'ignore');
  const onAbort = (): void => run.kill();
  signal?.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(run.kill, SHORT_COMMAND_TIMEOUT_MS);
  try {
    const r = await run.done;
    if (r.spawnError) throw notFound(argv, r.spawnError);
    throwIfAborted(signal);
    return r;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

function unavailable(t: CtrTarget, detail: string): DaemonUnavailableError {
  return new DaemonUnavailableError(`containerd is not answering at ${t.address}: ${detail}`, {
    hint:
      'is containerd running, and may this user open its socket? Give the socket as containerd:/path/to/containerd.sock ' +
      '(or set CONTAINERD_ADDRESS); k3s uses /run/k3s/containerd/containerd.sock',
  });
}

/** The client exists and containerd answers, or a CTR_NOT_FOUND / DAEMON_UNAVAILABLE error. */
async function checkContainerd(t: CtrTarget, signal: AbortSignal | undefined): Promise<void> {
  // `ctr --version` only prints the client's version: it tells "no client" from "no daemon".
  const client = await runCtr([...t.ctr, '--version'], signal);
  if (client.code !== 0) {
    throw new CtrNotFoundError(`${t.ctr.join(' ')} --version failed: ${summariseCtrStderr(client.stderr) || `exit ${client.code}`}`, {
      hint: 'name a working containerd client with the ctr option, e.g. ["k3s", "ctr"]',
    });
  }
  // A socket path that does not exist fails now rather than after ctr's connect timeout.
  const socketPath = t.address.replace(/^unix:\/\//, '');
  if (socketPath.startsWith('/')) {
    const exists = await stat(socketPath).then(
      () => true,
      () => false,
    );
    if (!exists) throw unavailable(t, 'no such socket');
  }
  const r = await runCtr(versionArgv(t), signal);
  if (r.code !== 0) throw unavailable(t, summariseCtrStderr(r.stderr) || `ctr version exited with code ${r.code}`);
}

async function listImages(t: CtrTarget, signal: AbortSignal | undefined): Promise<Map<string, CtrImageRow>> {
  const r = await runCtr(listArgv(t), signal);
  if (r.code !== 0) {
    throw new CtrFailedError('CTR_FAILED', `ctr -n ${t.namespace} images ls failed: ${summariseCtrStderr(r.stderr) || `exit ${r.code}`}`);
  }
  return parseImageList(r.stdout);
}

// ---------------------------------------------------------------------------------------------
// The import

interface ImportGroup {
  images: PlannedImage[];
  flags: ImportFlags;
}

interface ImportContext {
  target: CtrTarget;
  sources: ImageSource[];
  blobsByDigest: Map<string, PlannedBlob>;
  signal: AbortSignal | undefined;
  emit: NonNullable<DestinationOptions['onEvent']>;
  stats: LoadBlobStats;
  /** Blobs counted as fetched already (a blob shared by two import runs is sent twice, counted once). */
  counted: Set<string>;
}

/**
 * One `ctr images import` run for `group`. Resolves with undefined when ctr accepted the whole
 * archive and exited 0, else with the error every image of the group gets. Throws only when
 * aborted (after ctr is dead).
 */
async function importGroup(group: ImportGroup, ctx: ImportContext): Promise<unknown> {
  const { stats } = ctx;
  // Blobs once each, in plan order; manifests once each, children before parents.
  const blobs: PlannedBlob[] = [];
  const manifests = new Map<string, { digest: string; bytes: Buffer }>();
  const seen = new Set<string>();
  for (const img of group.images) {
    for (const d of img.blobs) {
      if (seen.has(d.digest)) continue;
      seen.add(d.digest);
      blobs.push(ctx.blobsByDigest.get(d.digest) ?? { desc: d, sourceIndex: img.sourceIndex, images: [img.name] });
    }
    for (const m of img.manifests) if (!manifests.has(m.digest)) manifests.set(m.digest, m);
  }

  const argv = importArgv(ctx.target, group.flags);
  throwIfAborted(ctx.signal);
  const run = startCtr(argv, 'pipe');
  const stdin = run.child.stdin!;
  const tar = new TarWriter();
  // No pipeline(): it would close ctr's stdin when the tar fails, and ctr must die first.
  tar.output.pipe(stdin, { end: false });

  let failure: unknown;
  let archiveComplete = false;
  const fail = (err: unknown): void => {
    failure ??= err;
    run.kill();
    tar.abort(err);
    // Once finished, abort() is a no-op, yet queued bytes may wait for a reader that is gone.
    if (!tar.output.destroyed) tar.output.destroy(err instanceof Error ? err : new AbortedError(String(err)));
  };
  const onAbort = (): void => fail(new AbortedError('loading into containerd was aborted'));
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  // ctr exiting before the archive is complete: stop producing (writes would wait forever).
  void run.done.then((r) => {
    if (archiveComplete) return;
    if (r.spawnError) fail(notFound(argv, r.spawnError));
    else fail(ctrFailed(ctx.target, r, 'exited before reading the whole archive'));
  });

  try {
    await tar.addFile('oci-layout', OCI_LAYOUT_FILE);
    await tar.addDir('blobs');
    await tar.addDir('blobs/sha256');
    for (const b of blobs) await streamBlob(tar, b, ctx);
    for (const m of manifests.values()) {
      verifyBytes(m.bytes, { digest: m.digest }, `manifest ${m.digest}`);
      await tar.addFile(blobEntryName(m.digest), m.bytes);
    }
    const index = buildImportIndex(group.images.map((img) => ({ name: img.name, root: img.root })));
    await tar.addFile('index.json', index);
    await tar.finish();
    // pipe() has written every chunk to stdin once the tar output has ended (finished()
    // rejects instead if fail() destroyed it meanwhile).
    await finished(tar.output);
    if (failure === undefined) {
      archiveComplete = true;
      stdin.end();
    }
  } catch (err) {
    fail(err);
  }
  // The abort listener stays until ctr is gone: unpacking after the archive can take a while.
  void run.done.then(() => ctx.signal?.removeEventListener('abort', onAbort));
  if (failure !== undefined) {
    // Only now, with ctr dead, may its stdin close: it never saw an end of input.
    await run.exited;
    tar.output.unpipe(stdin);
    stdin.destroy();
    await run.done;
    // Aborted: whatever error the abort surfaced as (a source may reject first), stop here.
    throwIfAborted(ctx.signal);
    return failure;
  }
  const r = await run.done;
  throwIfAborted(ctx.signal);
  if (r.spawnError) return notFound(argv, r.spawnError);
  if (r.code !== 0) {
    const unpackTrouble = group.flags.unpack && /unpack|snapshot|mount/i.test(r.stderr);
    const hint = unpackTrouble
      ? 'unpacking failed: choose another snapshotter (snapshotter option) or import without unpacking (unpack: false)'
      : undefined;
    return ctrFailed(ctx.target, r, 'failed', hint);
  }
  for (const b of blobs) {
    if (ctx.counted.has(b.desc.digest)) continue;
    ctx.counted.add(b.desc.digest);
    stats.fetched++;
    stats.bytesFetched += b.desc.size;
  }
  return undefined;
}

function ctrFailed(
  t: CtrTarget,
  r: { code: number | null; signal: NodeJS.Signals | null; stderr: string },
  what: string,
  hint?: string,
): CtrFailedError {
  const status = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  const detail = summariseCtrStderr(r.stderr);
  return new CtrFailedError('CTR_IMPORT_FAILED', `ctr -n ${t.namespace} images import ${what} (${status})${detail ? `: ${detail}` : ''}`, hint ? { hint } : {});
}

/** One blob into the archive, through a DigestVerifier; the tar entry fails with its error. */
async function streamBlob(tar: TarWriter, b: PlannedBlob, ctx: ImportContext): Promise<void> {
  const { emit } = ctx;
  const desc: Descriptor = b.desc;
  const source = ctx.sources[b.sourceIndex];
  if (!source) throw new FerryError('PLAN_INVALID', `blob ${desc.digest}: the plan names source #${b.sourceIndex}, which was not given`);
  // With conflicting declared sizes (b.sizeConflict) the archive still needs one size up
  // front: the first image's. If that one lies, the size check fails the import.
  try {
    await addVerifiedBlob(tar, blobEntryName(desc.digest), source, desc, { emit, signal: ctx.signal });
  } catch (err) {
    ctx.stats.failed++;
    throw err;
  }
}

/** The config media type of a single-manifest image (undefined for indexes). */
function configMediaType(img: PlannedImage): string | undefined {
  const root = img.manifests.find((m) => m.digest === img.root.digest);
  if (!root) return undefined;
  const doc = parseManifest(root.bytes, img.root.mediaType, `manifest ${img.root.digest} of ${img.name}`);
  return doc.kind === 'manifest' ? doc.config.mediaType : undefined;
}

// ---------------------------------------------------------------------------------------------
// The destination

export async function loadIntoContainerd(plan: CopyPlan, sources: ImageSource[], opts: ContainerdOptions): Promise<DestinationReport> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => {});
  const target = resolveTarget(opts);
  const stats: LoadBlobStats = { total: plan.blobs.length, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 };

  await checkContainerd(target, opts.signal);
  const before = await listImages(target, opts.signal);

  const results = new Map<PlannedImage, LoadedImage>();
  const base = (img: PlannedImage): LoadedImage => ({
    ...resultBase(img),
    status: 'done',
    destination: destinationName(img.name),
    destinationDigest: img.root.digest,
  });
  const failed = (img: PlannedImage, err: unknown): LoadedImage => {
    // One error may fail every image of an import run: compose the message, never mutate it.
    const r = failedResult({ ...resultBase(img), destination: destinationName(img.name) }, err, `loading ${img.name} into containerd (namespace ${target.namespace})`);
    emit({ kind: 'image', state: 'failed', image: img.name, error: r.error! });
    return r;
  };

  // 2. Skip what is already named at the planned digest.
  const toImport: PlannedImage[] = [];
  for (const img of plan.images) {
    if (before.get(img.name)?.digest === img.root.digest) {
      results.set(img, { ...base(img), skipped: true });
      emit({ kind: 'image', state: 'done', image: img.name, digest: img.root.digest });
    } else {
      toImport.push(img);
    }
  }
  const needed = new Set(toImport.flatMap((img) => img.blobs.map((b) => b.digest)));
  for (const b of plan.blobs) {
    if (needed.has(b.desc.digest)) continue;
    stats.skipped++;
    stats.bytesSkipped += b.desc.size;
    emit({ kind: 'blob', state: 'skipped', digest: b.desc.digest, bytes: b.desc.size, total: b.desc.size });
  }

  // 3. Import: unpackable images in one run, the rest (if unpacking) in a --no-unpack run.
  const unpack = opts.unpack !== false;
  const groups: ImportGroup[] = [];
  if (!unpack) {
    groups.push({ images: toImport, flags: { unpack: false } });
  } else {
    const host = hostPlatform();
    const unpackable: PlannedImage[] = [];
    const contentOnly: PlannedImage[] = [];
    for (const img of toImport) {
      let blocker: string | undefined;
      try {
        blocker = unpackBlocker({ root: img.root, platforms: img.platforms, configMediaType: configMediaType(img) }, host);
      } catch (err) {
        results.set(img, failed(img, err));
        continue;
      }
      if (blocker) {
        emit({ kind: 'warning', image: img.name, message: `${img.name} is imported without unpacking: ${blocker}` });
        contentOnly.push(img);
      } else {
        unpackable.push(img);
      }
    }
    groups.push({ images: unpackable, flags: { unpack: true, snapshotter: opts.snapshotter } });
    groups.push({ images: contentOnly, flags: { unpack: false } });
  }

  const ctx: ImportContext = {
    target,
    sources,
    blobsByDigest: new Map(plan.blobs.map((b) => [b.desc.digest, b])),
    signal: opts.signal,
    emit,
    stats,
    counted: new Set(),
  };
  const imported: PlannedImage[] = [];
  for (const group of groups) {
    if (group.images.length === 0) continue;
    const err = await importGroup(group, ctx);
    if (err === undefined) imported.push(...group.images);
    else for (const img of group.images) results.set(img, failed(img, err));
  }

  // 4. Confirm: every imported name at its planned digest.
  if (imported.length > 0) {
    const after = await listImages(target, opts.signal);
    for (const img of imported) {
      const row = after.get(img.name);
      if (row?.digest === img.root.digest) {
        results.set(img, base(img));
        emit({ kind: 'image', state: 'done', image: img.name, digest: img.root.digest });
      } else {
        const got = row ? `it points at ${row.digest}` : 'it is not listed';
        results.set(
          img,
          failed(img, new CtrFailedError('CONTAINERD_IMAGE_MISSING', `ctr images import succeeded but ${img.name} is not at ${img.root.digest}: ${got}`)),
        );
      }
    }
  }

  return { images: plan.images.map((img) => results.get(img)!), blobs: stats, durationMs: Date.now() - started };
}
