/**
 * The `containerd` destination of `ferry load`: images go into containerd's content and
 * image stores through its own client, `ctr images import` (also `k3s ctr`), fed an OCI
 * image-layout tar that is built while the blobs stream — no temp files, flat memory.
 *
 * Order of work (see ctr.ts for how containerd reads the archive):
 *  1. `ctr --version` (is the client there?) and `ctr version` (does containerd answer?);
 *  2. `ctr images ls name=="…"` (only the planned names): images whose name already points at the
 *     planned root, and that `ctr images check` finds complete (and unpacked, where that is
 *     asked), are skipped; a name at another digest is re-pointed, with a warning;
 *  3. one `ctr images import --all-platforms -` whose stdin is `oci-layout`, every blob
 *     (each verified by a DigestVerifier on the way through), every manifest, and index.json
 *     last. If anything fails before the archive is complete, ctr is SIGKILLed *before* its
 *     stdin is closed, so it never sees an end of input and names nothing. Images containerd
 *     cannot unpack on this host (artifacts, indexes without a host platform) go in a second
 *     run with --no-unpack, since ctr would fail after naming them (see unpackBlocker). From a
 *     bundle (allOrNothing), the second run's own blobs are verified before the first run
 *     starts, and no run starts after an integrity failure (see loadIntoContainerd);
 *  4. `ctr images ls name=="…"` again: every imported name must point at its planned digest.
 *
 * Reports name images `containerd:<name>`; the namespace (default k8s.io, where Kubernetes
 * looks) is part of every error message. Blobs stream one after another into the archive, so
 * `concurrency` does not apply. Every blob of an image being imported is sent, even one
 * containerd already holds: the archive importer cannot be told to expect it elsewhere.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import { Writable, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { DigestVerifier, verifyBytes } from '../../oci/digest.js';
import { parseManifest, type Descriptor } from '../../oci/manifest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { failedResult, resultBase } from '../../copy/execute.js';
import type { CopyPlan, PlannedBlob, PlannedImage } from '../../copy/plan.js';
import type { ImageSource, PlanDestination } from '../types.js';
import {
  AbortedError,
  DaemonUnavailableError,
  FerryError,
  IntegrityError,
  NotLoadedError,
  errorMessage,
  type FerryErrorOptions,
} from '../../util/errors.js';
import { TarWriter } from '../../tar/writer.js';
import {
  OCI_LAYOUT_FILE,
  blobEntryName,
  buildImportIndex,
  checkArgv,
  describeAddress,
  destinationName,
  hostPlatform,
  importArgv,
  listArgv,
  parseImageCheck,
  parseImageList,
  resolveTarget,
  summariseCtrStderr,
  unpackBlocker,
  versionArgv,
  type CtrCheckRow,
  type CtrImageRow,
  type CtrTarget,
  type ImportFlags,
} from './ctr.js';
import { addVerifiedBlob } from '../archive-blob.js';
import type { DestinationOptions, DestinationReport, LoadBlobStats, LoadedImage } from '../../copy/report.js';

export interface ContainerdOptions extends DestinationOptions {
  /**
   * containerd socket; default from CONTAINERD_ADDRESS, else none is passed and the client
   * uses its own default (/run/containerd/containerd.sock for ctr, /run/k3s/… for `k3s ctr`)
   */
  address?: string;
  /** default 'k8s.io' (the namespace Kubernetes uses) */
  namespace?: string;
  /** the ctr client command, argv form: default ['ctr']; e.g. ['k3s','ctr'] */
  ctr?: string[];
  /** unpack into this snapshotter after import (ctr's default behaviour); undefined = containerd's default */
  snapshotter?: string;
  /** false = --no-unpack (content and image records only) */
  unpack?: boolean;
  /**
   * Name nothing if any blob fails its digest or size check (a bundle is one signed unit).
   * Default true. Either way no further import run starts after an integrity failure.
   */
  allOrNothing?: boolean;
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

/** Cap on the stderr (and the import's stdout) kept from a ctr run (the newest bytes). */
const MAX_OUTPUT_BYTES = 256 * 1024;
/**
 * Cap on the stdout of `images ls` / `images check`, read whole: a listing is parsed from its
 * first row, and one that does not fit is an error rather than a silently shortened list.
 */
const MAX_LISTING_BYTES = 64 * 1024 * 1024;
/** Names per `images ls` / `images check` run (each is one argv filter). */
const NAMES_PER_RUN = 100;
/** A ctr command other than the import should never take this long. */
const SHORT_COMMAND_TIMEOUT_MS = 60_000;

// ---------------------------------------------------------------------------------------------
// Running ctr

interface CtrRun {
  child: ChildProcess;
  /** Resolves once the process has exited and its output is drained; never rejects. */
  done: Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    spawnError?: Error;
    stdoutOverflow?: boolean;
  }>;
  /** SIGKILL, unless it has already exited. */
  kill(): void;
  /** Resolves once the process has exited (not waiting for output). */
  exited: Promise<void>;
}

/** Keeps the first `max` bytes of a stream; `overflow()` says whether more came. */
function headCollector(stream: Readable | null, max: number): { text: () => string; overflow: () => boolean } {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let over = false;
  stream?.on('data', (c: Buffer) => {
    if (bytes + c.length > max) {
      over = true;
      return;
    }
    chunks.push(c);
    bytes += c.length;
  });
  return { text: () => Buffer.concat(chunks).toString('utf8'), overflow: () => over };
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

function startCtr(argv: readonly string[], stdin: 'pipe' | 'ignore', wholeStdout = false): CtrRun {
  const [command, ...args] = argv as [string, ...string[]];
  const child = spawn(command, args, { stdio: [stdin, 'pipe', 'pipe'] });
  const head = wholeStdout ? headCollector(child.stdout, MAX_LISTING_BYTES) : undefined;
  const tail = wholeStdout ? undefined : tailCollector(child.stdout, MAX_OUTPUT_BYTES);
  const stdout = (): string => (head ? head.text() : tail!());
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
    child.once('close', (code, signal) =>
      resolve({ code, signal, stdout: stdout(), stderr: stderr(), ...(head?.overflow() ? { stdoutOverflow: true } : {}) }),
    );
  });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill('SIGKILL');
  };
  return { child, done, kill, exited };
}

function notFound(argv: readonly string[], err: Error): CtrNotFoundError {
  return new CtrNotFoundError(`cannot run the containerd client ${JSON.stringify(argv[0])}: ${err.message}`, {
    cause: err,
    hint: 'install ctr (Debian/Ubuntu package "containerd") or name the client with --ctr, e.g. --ctr "k3s ctr" or --ctr /usr/local/bin/ctr',
  });
}

/** Runs a short ctr command to completion; spawn failures become CtrNotFoundError. */
function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AbortedError('loading into containerd was aborted');
}

async function runCtr(
  argv: readonly string[],
  signal: AbortSignal | undefined,
  wholeStdout = false,
): Promise<{ code: number | null; stdout: string; stderr: string; stdoutOverflow?: boolean }> {
  throwIfAborted(signal);
  const run = startCtr(argv, 'ignore', wholeStdout);
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
  return new DaemonUnavailableError(`containerd is not answering at ${describeAddress(t)}: ${detail}`, {
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
      hint: 'name a working containerd client with --ctr, e.g. --ctr "k3s ctr"',
    });
  }
  // A socket path that does not exist fails now rather than after ctr's connect timeout. With
  // no address given the client picks its own default, which only it knows: no check here.
  const socketPath = t.address?.replace(/^unix:\/\//, '');
  if (socketPath?.startsWith('/')) {
    const exists = await stat(socketPath).then(
      () => true,
      () => false,
    );
    if (!exists) throw unavailable(t, 'no such socket');
  }
  const r = await runCtr(versionArgv(t), signal);
  if (r.code !== 0) throw unavailable(t, summariseCtrStderr(r.stderr) || `ctr version exited with code ${r.code}`);
}

function batches<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

/**
 * The rows of `names` in `ctr images ls`, filtered by name (a busy node's full listing can be
 * long), the whole output read: a row is never lost to an output cap.
 */
async function listImages(t: CtrTarget, names: readonly string[], signal: AbortSignal | undefined): Promise<Map<string, CtrImageRow>> {
  const rows = new Map<string, CtrImageRow>();
  for (const batch of batches([...new Set(names)], NAMES_PER_RUN)) {
    const r = await runCtr(listArgv(t, batch), signal, true);
    if (r.code !== 0) {
      throw new CtrFailedError('CTR_FAILED', `ctr -n ${t.namespace} images ls failed: ${summariseCtrStderr(r.stderr) || `exit ${r.code}`}`);
    }
    if (r.stdoutOverflow) {
      throw new CtrFailedError(
        'CTR_FAILED',
        `ctr -n ${t.namespace} images ls printed more than ${MAX_LISTING_BYTES} bytes for ${batch.length} names`,
      );
    }
    for (const [name, row] of parseImageList(r.stdout)) if (batch.includes(name)) rows.set(name, row);
  }
  return rows;
}

/**
 * `ctr images check` for `names`: complete, and unpacked into `snapshotter`? ctr exits 1 when
 * it cannot check some image (say, an index without a host platform) yet prints the others'
 * rows, so rows are read whatever the status; a missing row reads as "not complete".
 */
async function checkImages(
  t: CtrTarget,
  names: readonly string[],
  snapshotter: string | undefined,
  signal: AbortSignal | undefined,
): Promise<Map<string, CtrCheckRow>> {
  const rows = new Map<string, CtrCheckRow>();
  for (const batch of batches([...new Set(names)], NAMES_PER_RUN)) {
    const r = await runCtr(checkArgv(t, batch, snapshotter), signal, true);
    if (r.stdoutOverflow) continue;
    for (const [name, row] of parseImageCheck(r.stdout)) if (batch.includes(name)) rows.set(name, row);
  }
  return rows;
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
      ? 'unpacking failed: choose another snapshotter (--snapshotter) or load with --no-unpack (Kubernetes unpacks when it creates a container)'
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
  return new CtrFailedError(
    'CTR_IMPORT_FAILED',
    `ctr -n ${t.namespace} images import ${what} (${status})${detail ? `: ${detail}` : ''}`,
    hint ? { hint } : {},
  );
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

/**
 * Read one blob from its source through a DigestVerifier into nothing: the check, before any
 * import run, of the blobs a later run will send (allOrNothing). Emits a failed event only.
 */
async function preVerifyBlob(b: PlannedBlob, ctx: ImportContext): Promise<void> {
  const desc = b.desc;
  const source = ctx.sources[b.sourceIndex];
  if (!source) throw new FerryError('PLAN_INVALID', `blob ${desc.digest}: the plan names source #${b.sourceIndex}, which was not given`);
  const what = `blob ${desc.digest} from ${source.description}`;
  const verifier = new DigestVerifier({ digest: desc.digest, size: desc.size, what });
  const sink = new Writable({ write: (_c: Buffer, _e, cb) => cb() });
  try {
    await pipeline(source.openBlob(desc, { what, ...(ctx.signal ? { signal: ctx.signal } : {}) }), verifier, sink);
  } catch (err) {
    throwIfAborted(ctx.signal);
    ctx.stats.failed++;
    ctx.emit({ kind: 'blob', state: 'failed', digest: desc.digest, bytes: verifier.bytesSeen, total: desc.size, error: errorMessage(err) });
    throw err;
  }
}

function isIndex(img: PlannedImage): boolean {
  return img.root.mediaType === MediaType.OciIndex || img.root.mediaType === MediaType.DockerManifestList;
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

  const results = new Map<PlannedImage, LoadedImage>();
  const base = (img: PlannedImage): LoadedImage => ({
    ...resultBase(img),
    status: 'done',
    destination: destinationName(img.name),
    destinationDigest: img.root.digest,
  });
  const failed = (img: PlannedImage, err: unknown): LoadedImage => {
    // One error may fail every image of an import run: compose the message, never mutate it.
    const r = failedResult(
      { ...resultBase(img), destination: destinationName(img.name) },
      err,
      `loading ${img.name} into containerd (namespace ${target.namespace})`,
    );
    emit({ kind: 'image', state: 'failed', image: img.name, error: r.error! });
    return r;
  };

  // Which images containerd can unpack here (when unpacking, the others go in a --no-unpack run).
  const unpack = opts.unpack !== false;
  const host = hostPlatform();
  const blockers = new Map<PlannedImage, string | undefined>();
  for (const img of plan.images) {
    try {
      blockers.set(img, unpackBlocker({ root: img.root, platforms: img.platforms, configMediaType: configMediaType(img) }, host));
    } catch (err) {
      results.set(img, failed(img, err));
    }
  }
  const candidates = plan.images.filter((img) => !results.has(img));
  const before = await listImages(
    target,
    candidates.map((img) => img.name),
    opts.signal,
  );

  // 2. Skip what is already named at the planned digest and complete. A name alone is not
  // enough: ctr names every image of an import before it unpacks, so an unpack that failed
  // leaves names at the right digest with nothing unpacked. `ctr images check` sees only the
  // host platform: for an index without one it cannot answer ("unavailable"), and such an
  // image is only ever imported with --no-unpack, where ctr names it after its whole archive
  // is in the content store, so its name is trusted.
  const atDigest = candidates.filter((img) => before.get(img.name)?.digest === img.root.digest);
  const checkable = atDigest.filter((img) => !(isIndex(img) && blockers.get(img) !== undefined));
  const checked =
    checkable.length > 0
      ? await checkImages(
          target,
          checkable.map((img) => img.name),
          unpack ? opts.snapshotter : undefined,
          opts.signal,
        )
      : new Map<string, CtrCheckRow>();
  const toImport: PlannedImage[] = [];
  const checkableSet = new Set(checkable); // not a scan per image
  for (const img of candidates) {
    let present = before.get(img.name)?.digest === img.root.digest;
    if (present && checkableSet.has(img)) {
      const row = checked.get(img.name);
      const wantUnpacked = unpack && blockers.get(img) === undefined;
      present = row !== undefined && row.digest === img.root.digest && row.complete && (!wantUnpacked || row.unpacked);
      if (!present) {
        const why = !row?.complete ? 'its content is incomplete' : 'it is not unpacked';
        emit({ kind: 'warning', image: img.name, message: `${img.name} is named at ${img.root.digest} but ${why}: importing it again` });
      }
    }
    if (present) {
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
  const groups: ImportGroup[] = [];
  if (!unpack) {
    groups.push({ images: toImport, flags: { unpack: false } });
  } else {
    const unpackable: PlannedImage[] = [];
    const contentOnly: PlannedImage[] = [];
    for (const img of toImport) {
      const blocker = blockers.get(img);
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
  const runs = groups.filter((g) => g.images.length > 0);

  const ctx: ImportContext = {
    target,
    sources,
    blobsByDigest: new Map(plan.blobs.map((b) => [b.desc.digest, b])),
    signal: opts.signal,
    emit,
    stats,
    counted: new Set(),
  };

  // All or nothing across two runs: the first run names its images when it ends, before the
  // second run has sent a byte. So, from a bundle, every blob that only a later run sends is
  // read from the source and verified first (the simplest correct order: the source is a
  // bundle file read through one descriptor, so the second read gives the same bytes, and a
  // blob the first run also sends is verified by that run before it names anything). If one
  // fails, no run starts and no image is named.
  let integrityFailure: unknown;
  if ((opts.allOrNothing ?? true) && runs.length > 1) {
    const firstRun = new Set(runs[0]!.images.flatMap((img) => img.blobs.map((b) => b.digest)));
    const later = new Map<string, PlannedBlob>();
    for (const g of runs.slice(1)) {
      for (const img of g.images) {
        for (const d of img.blobs) {
          if (!firstRun.has(d.digest) && !later.has(d.digest))
            later.set(d.digest, ctx.blobsByDigest.get(d.digest) ?? { desc: d, sourceIndex: img.sourceIndex, images: [img.name] });
        }
      }
    }
    for (const b of later.values()) {
      try {
        await preVerifyBlob(b, ctx);
      } catch (err) {
        for (const g of runs) {
          for (const img of g.images) {
            const has = img.blobs.some((d) => d.digest === b.desc.digest);
            results.set(img, failed(img, has || !(err instanceof IntegrityError) ? err : new NotLoadedError(err)));
          }
        }
        integrityFailure = err;
        break;
      }
    }
  }

  const imported: PlannedImage[] = [];
  if (integrityFailure === undefined) {
    for (const group of runs) {
      // After a blob failed its check, no further run: nothing more of this source is named.
      if (integrityFailure !== undefined) {
        for (const img of group.images) results.set(img, failed(img, new NotLoadedError(integrityFailure)));
        continue;
      }
      const err = await importGroup(group, ctx);
      if (err === undefined) imported.push(...group.images);
      else {
        for (const img of group.images) results.set(img, failed(img, err));
        if (err instanceof IntegrityError) integrityFailure = err;
      }
    }
  }

  // 4. Confirm: every imported name at its planned digest.
  if (imported.length > 0) {
    const after = await listImages(
      target,
      imported.map((img) => img.name),
      opts.signal,
    );
    for (const img of imported) {
      const row = after.get(img.name);
      if (row?.digest === img.root.digest) {
        const old = before.get(img.name);
        if (old && old.digest !== img.root.digest) {
          // As docker load does, an import re-points an existing name; say so.
          emit({ kind: 'warning', image: img.name, message: `${img.name} was re-pointed from ${old.digest} to ${img.root.digest}` });
        }
        results.set(img, base(img));
        emit({ kind: 'image', state: 'done', image: img.name, digest: img.root.digest });
      } else {
        const got = row ? `it points at ${row.digest}` : 'it is not listed';
        results.set(
          img,
          failed(
            img,
            new CtrFailedError(
              'CONTAINERD_IMAGE_MISSING',
              `ctr images import succeeded but ${img.name} is not at ${img.root.digest}: ${got}`,
            ),
          ),
        );
      }
    }
  }

  return { images: plan.images.map((img) => results.get(img)!), blobs: stats, durationMs: Date.now() - started };
}

/** `containerd[:SOCKET][?namespace=NS]` as a destination (the images keep their names). */
export function openContainerdDestination(
  dest: { address: string | undefined; namespace: string },
  opts: Pick<ContainerdOptions, 'ctr' | 'snapshotter' | 'unpack'> = {},
): PlanDestination {
  return {
    description: `containerd${dest.address ? `:${dest.address}` : ''}?namespace=${dest.namespace}`,
    write: (plan, sources, w) =>
      loadIntoContainerd(plan, sources, {
        ...(w.concurrency !== undefined ? { concurrency: w.concurrency } : {}),
        ...(w.signal ? { signal: w.signal } : {}),
        ...(w.onEvent ? { onEvent: w.onEvent } : {}),
        namespace: dest.namespace,
        ...(dest.address ? { address: dest.address } : {}),
        ...(opts.ctr ? { ctr: opts.ctr } : {}),
        ...(opts.snapshotter ? { snapshotter: opts.snapshotter } : {}),
        ...(opts.unpack === false ? { unpack: false } : {}),
        allOrNothing: !!w.allOrNothing,
      }),
    close: async () => {},
  };
}
