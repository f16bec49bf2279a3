/**
 * The `containerd` destination of `ferry load`: images go into containerd's content and
 * image stores through its own client, `ctr images import` (also `k3s ctr`), fed an OCI
 * image-layout tar that is built while the blobs stream — no temp files, flat memory. It is an
 * ordered stream driven by the one executor (copy/execute.ts):
 *
 *  1. prepare: `ctr --version` (is the client there?) and `ctr version` (does containerd
 *     answer?), both fatal for the whole run; `ctr images ls name=="…"` (only the planned
 *     names): images whose name already points at the planned root, and that `ctr images check`
 *     finds complete (and unpacked, where that is asked), are done; a name at another digest is
 *     re-pointed, with a warning. Images containerd cannot unpack on this host (artifacts,
 *     indexes without a host platform) go in run 1 with --no-unpack, since ctr would fail after
 *     naming them (see unpackBlocker); the others in run 0. From a bundle (allOrNothing) the
 *     executor verifies run 1's own blobs before run 0 starts.
 *  2. per run, one `ctr images import --all-platforms -`, started by the run's first putBlob,
 *     whose stdin is `oci-layout`, every blob (each verified on the way through), every
 *     manifest, and at commit() index.json last. If anything fails before the archive is
 *     complete, ctr is SIGKILLed *before* its stdin is closed, so it never sees an end of input
 *     and names nothing (see ctr.ts for how containerd reads the archive);
 *  3. commit(): ctr's exit, then `ctr images ls name=="…"` again: every imported name must
 *     point at its planned digest.
 *
 * Reports name images `containerd:<name>`; the namespace (default k8s.io, where Kubernetes
 * looks) is part of every error message (`into`). Blobs stream one after another into the
 * archive, so `concurrency` does not apply. Every blob of an image being imported is sent, even
 * one containerd already holds: the archive importer cannot be told to expect it elsewhere.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { verifyBytes, type Digest } from '../../oci/digest.js';
import { parseManifest, type Descriptor } from '../../oci/manifest.js';
import { MediaType } from '../../oci/mediatypes.js';
import type { EventSink } from '../../copy/events.js';
import type { CopyPlan, PlannedImage } from '../../copy/plan.js';
import type {
  BlobOpener,
  CommitResult,
  DestinationCapabilities,
  DestinationName,
  ImageDestination,
  ManifestBytes,
  PreparedImage,
  PutBlobOptions,
  PutBlobResult,
} from '../types.js';
import { AbortedError, DaemonUnavailableError, FerryError, type FerryErrorOptions } from '../../util/errors.js';
import { TarWriter } from '../../tar/writer.js';
import {
  OCI_LAYOUT_FILE,
  blobEntryName,
  buildImportIndex,
  checkArgv,
  contentListArgv,
  parseContentList,
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
import { putVerifiedMember } from '../archive-blob.js';
import { formatNamePrefix, prefixedTargets, type PrefixRenaming } from '../registry/names.js';

export interface ContainerdOptions {
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
  /** Names under a prefix (`--prefix`, `--scoped`), as in a registry; default: the source names. */
  naming?: PrefixRenaming;
}

/**
 * The containerd name of every plan image, in order: the source name, or its name under the
 * prefix (registryTargets' rule; a digest-only name stays `repo@sha256:…`, which containerd
 * keeps as a name). A collision is a UsageError for the whole run, before anything is imported.
 */
export function containerdNames(images: ReadonlyArray<{ name: string; root: { digest: Digest } }>, naming?: PrefixRenaming): string[] {
  if (!naming) return images.map((i) => i.name);
  return prefixedTargets(
    images.map((i) => ({ name: i.name, digest: i.root.digest })),
    naming.prefix,
    { scoped: naming.scoped, where: `containerd (--prefix ${formatNamePrefix(naming.prefix)})`, verb: 'loaded', action: 'load' },
  ).map((t) => t.destination);
}

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

export async function runCtr(
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
export async function checkContainerd(t: CtrTarget, signal: AbortSignal | undefined): Promise<void> {
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
// The import stream

const ABORTED = 'loading into containerd was aborted';

/**
 * One `ctr images import` run being fed its archive: `oci-layout` and the blob directories
 * first, then what putBlob and putManifest add, index.json at finish(). Any failure before the
 * archive is complete SIGKILLs ctr *before* its stdin is closed, so it never sees an end of
 * input and names nothing; `failure` is the first error, and every later write rejects with it.
 */
class ImportStream {
  /** The first error: once set, nothing more is written and ctr is (being) killed. */
  failure: unknown;
  private readonly argv: string[];
  private readonly proc: CtrRun;
  private readonly stdin: Writable;
  private readonly tar = new TarWriter();
  private readonly head: Promise<void>;
  private archiveComplete = false;

  constructor(
    private readonly target: CtrTarget,
    /** The executor's run (PreparedImage.run) this stream carries. */
    readonly run: number,
    readonly flags: ImportFlags,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.argv = importArgv(target, flags);
    this.proc = startCtr(this.argv, 'pipe');
    this.stdin = this.proc.child.stdin!;
    // No pipeline(): it would close ctr's stdin when the tar fails, and ctr must die first.
    this.tar.output.pipe(this.stdin, { end: false });
    const onAbort = (): void => this.fail(new AbortedError(ABORTED));
    signal?.addEventListener('abort', onAbort, { once: true });
    void this.proc.done.then((r) => {
      // The abort listener stays until ctr is gone: unpacking after the archive can take a while.
      signal?.removeEventListener('abort', onAbort);
      // ctr exiting before the archive is complete: stop producing (writes would wait forever).
      if (this.archiveComplete) return;
      if (r.spawnError) this.fail(notFound(this.argv, r.spawnError));
      else this.fail(ctrFailed(target, r, 'exited before reading the whole archive'));
    });
    this.head = (async () => {
      await this.tar.addFile('oci-layout', OCI_LAYOUT_FILE);
      await this.tar.addDir('blobs');
      await this.tar.addDir('blobs/sha256');
    })().catch((err: unknown) => this.fail(err));
  }

  fail(err: unknown): void {
    this.failure ??= err;
    this.proc.kill();
    this.tar.abort(err);
    // Once finished, abort() is a no-op, yet queued bytes may wait for a reader that is gone.
    if (!this.tar.output.destroyed) this.tar.output.destroy(err instanceof Error ? err : new AbortedError(String(err)));
  }

  /** Adds to the archive (callers go one after another); any failure breaks the stream. */
  async write<T>(step: (tar: TarWriter) => Promise<T>): Promise<T> {
    await this.head;
    if (this.failure !== undefined) throw this.failure;
    try {
      return await step(this.tar);
    } catch (err) {
      this.fail(err);
      throw this.failure;
    }
  }

  /** After a failure: once ctr is dead, and only then, its stdin may close (it never saw an end of input). */
  async cleanup(): Promise<void> {
    await this.proc.exited;
    this.tar.output.unpipe(this.stdin);
    this.stdin.destroy();
    await this.proc.done;
  }

  /**
   * index.json naming `names`, the end of the archive and of ctr's input, and ctr's exit:
   * undefined when ctr took the whole archive and exited 0, else the error. Throws only when
   * aborted (with ctr dead).
   */
  async finish(names: readonly DestinationName[]): Promise<unknown> {
    if (this.failure === undefined) {
      try {
        await this.write(async (tar) => {
          await tar.addFile('index.json', buildImportIndex(names.map((n) => ({ name: n.name, root: n.root }))));
          await tar.finish();
        });
        // pipe() has written every chunk to stdin once the tar output has ended (finished()
        // rejects instead if fail() destroyed it meanwhile).
        await finished(this.tar.output);
        if (this.failure === undefined) {
          this.archiveComplete = true;
          this.stdin.end();
        }
      } catch (err) {
        this.fail(err);
      }
    }
    if (this.failure !== undefined) {
      await this.cleanup();
      // Aborted: whatever error the abort surfaced as (a source may reject first), stop here.
      throwIfAborted(this.signal);
      return this.failure;
    }
    const r = await this.proc.done;
    throwIfAborted(this.signal);
    if (r.spawnError) return notFound(this.argv, r.spawnError);
    if (r.code !== 0) {
      const unpackTrouble = this.flags.unpack && /unpack|snapshot|mount/i.test(r.stderr);
      const hint = unpackTrouble
        ? 'unpacking failed: choose another snapshotter (--snapshotter) or load with --no-unpack (Kubernetes unpacks when it creates a container)'
        : undefined;
      return ctrFailed(this.target, r, 'failed', hint);
    }
    return undefined;
  }
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

/** Run 0 holds what containerd can unpack here (unpacked, when asked); run 1 the rest, content only. */
const UNPACKED_RUN = 0;
const CONTENT_ONLY_RUN = 1;

/**
 * containerd as an ordered stream: prepare() says which images are there already and which
 * import run each of the others goes in; each run is one `ctr images import`, started by its
 * first put, ended by commit(). Names take effect only when ctr has read the whole archive.
 */
export class ContainerdDestination implements ImageDestination {
  readonly capabilities: DestinationCapabilities = { parallelBlobs: false, mount: false, orderedStream: true, knowsBlobs: false };
  readonly description: string;
  readonly into: string;
  private readonly target: CtrTarget;
  private readonly unpack: boolean;
  private readonly snapshotter: string | undefined;
  private readonly naming: PrefixRenaming | undefined;
  /** The containerd name of each plan image (prepare()), and of each plan name (nameOf). */
  private targets: string[] = [];
  private targetByPlanName = new Map<string, string>();
  private emit: EventSink = () => {};
  private signal: AbortSignal | undefined;
  /** The import run of each image to import (plan index → run). */
  private readonly runOf = new Map<number, number>();
  /** Declared blob sizes (the plan's): a blob its images disagree about comes with size -1. */
  private readonly sizes = new Map<string, number>();
  /** What the planned names pointed at before anything was imported (re-pointed warnings). */
  private before = new Map<string, CtrImageRow>();
  /** The run being streamed, and the names recorded for its index.json. */
  private stream: ImportStream | undefined;
  private named: DestinationName[] = [];
  /** The last run committed: a blob shared by two runs names images of both. */
  private lastRun = -1;

  constructor(opts: ContainerdOptions = {}, description?: string) {
    this.target = resolveTarget(opts);
    this.unpack = opts.unpack !== false;
    this.snapshotter = opts.snapshotter;
    this.naming = opts.naming;
    this.description =
      description ?? `containerd${this.target.address ? `:${this.target.address}` : ''}?namespace=${this.target.namespace}`;
    this.into = `containerd (namespace ${this.target.namespace})`;
  }

  async prepare(plan: CopyPlan, ctx: { signal?: AbortSignal; onEvent?: EventSink }): Promise<PreparedImage[]> {
    const { signal } = ctx;
    // Names first: a collision stops the run before containerd is even asked.
    const targets = containerdNames(plan.images, this.naming);
    // A destination may be written to again: nothing of an earlier write carries over.
    await this.close();
    this.targets = targets;
    this.targetByPlanName = new Map(plan.images.map((img, i) => [img.name, targets[i]!]));
    this.runOf.clear();
    this.sizes.clear();
    this.lastRun = -1;
    this.signal = signal;
    this.emit = ctx.onEvent ?? (() => {});
    await checkContainerd(this.target, signal);
    for (const b of plan.blobs) this.sizes.set(b.desc.digest, b.desc.size);

    const prepared: Array<PreparedImage | undefined> = plan.images.map(() => undefined);
    const where = (i: number): { destination: string; destinationDigest: Digest } => ({
      destination: destinationName(targets[i]!),
      destinationDigest: plan.images[i]!.root.digest,
    });

    // Which images containerd can unpack here (when unpacking, the others go in a --no-unpack run).
    const host = hostPlatform();
    const blockers = new Map<number, string | undefined>();
    plan.images.forEach((img, i) => {
      try {
        blockers.set(i, unpackBlocker({ root: img.root, platforms: img.platforms, configMediaType: configMediaType(img) }, host));
      } catch (err) {
        prepared[i] = { state: 'failed', error: err };
      }
    });
    const candidates = plan.images.flatMap((_, i) => (prepared[i] ? [] : [i]));
    this.before = await listImages(
      this.target,
      candidates.map((i) => targets[i]!),
      signal,
    );

    // Done: what is already named at the planned digest and complete. A name alone is not
    // enough: ctr names every image of an import before it unpacks, so an unpack that failed
    // leaves names at the right digest with nothing unpacked. `ctr images check` sees only the
    // host platform: for an index without one it cannot answer ("unavailable"), and such an
    // image is only ever imported with --no-unpack, where ctr names it after its whole archive
    // is in the content store, so its name is trusted.
    const atDigest = candidates.filter((i) => this.before.get(targets[i]!)?.digest === plan.images[i]!.root.digest);
    const checkable = new Set(atDigest.filter((i) => !(isIndex(plan.images[i]!) && blockers.get(i) !== undefined)));
    const checked =
      checkable.size > 0
        ? await checkImages(
            this.target,
            [...checkable].map((i) => targets[i]!),
            this.unpack ? this.snapshotter : undefined,
            signal,
          )
        : new Map<string, CtrCheckRow>();
    const toImport: number[] = [];
    for (const i of candidates) {
      const img = plan.images[i]!;
      const target = targets[i]!;
      let present = this.before.get(target)?.digest === img.root.digest;
      if (present && checkable.has(i)) {
        const row = checked.get(target);
        const wantUnpacked = this.unpack && blockers.get(i) === undefined;
        present = row !== undefined && row.digest === img.root.digest && row.complete && (!wantUnpacked || row.unpacked);
        if (!present) {
          const why = !row?.complete ? 'its content is incomplete' : 'it is not unpacked';
          this.emit({
            kind: 'warning',
            image: img.name,
            message: `${target} is named at ${img.root.digest} but ${why}: importing it again`,
          });
        }
      }
      if (present) prepared[i] = { ...where(i), state: 'done' };
      else toImport.push(i);
    }

    // Import: unpackable images in run 0, the rest (if unpacking) in a --no-unpack run 1.
    for (const i of toImport) {
      const img = plan.images[i]!;
      const blocker = this.unpack ? blockers.get(i) : undefined;
      if (blocker) this.emit({ kind: 'warning', image: img.name, message: `${img.name} is imported without unpacking: ${blocker}` });
      const run = blocker ? CONTENT_ONLY_RUN : UNPACKED_RUN;
      this.runOf.set(i, run);
      prepared[i] = { ...where(i), state: 'copy', run };
    }
    return prepared.map((p) => p!);
  }

  /** A stream cannot tell: every blob of an image being imported is sent. */
  async hasBlob(): Promise<boolean> {
    return false;
  }

  async storedBlobSize(): Promise<number | undefined> {
    return undefined;
  }

  /** The content store's digests (one `ctr content ls -q`): containerd verified each on ingest. */
  async holding(digests: readonly string[], signal?: AbortSignal): Promise<ReadonlySet<string>> {
    const r = await runCtr(contentListArgv(this.target), signal, true);
    if (r.code !== 0 || r.stdoutOverflow) {
      throw new CtrFailedError(
        'CTR_FAILED',
        `ctr -n ${this.target.namespace} content ls failed: ${summariseCtrStderr(r.stderr) || (r.stdoutOverflow ? 'output too large' : `exit ${r.code}`)}`,
      );
    }
    const held = parseContentList(r.stdout);
    return new Set(digests.filter((d) => held.has(d)));
  }

  async putBlob(desc: Descriptor, open: BlobOpener, opts: PutBlobOptions): Promise<PutBlobResult> {
    // With conflicting declared sizes (size -1) the archive still needs one size up front: the
    // plan's (the first image's). If that one lies, the size check fails the import.
    const size = desc.size >= 0 ? desc.size : (this.sizes.get(desc.digest) ?? desc.size);
    const bytes = await this.send(opts.images, opts.signal, (tar) =>
      putVerifiedMember(tar, blobEntryName(desc.digest), { ...desc, size }, open, { what: opts.what, onProgress: opts.onProgress }),
    );
    return { bytes, sent: true };
  }

  async putManifest(m: ManifestBytes, ctx: { image: number; signal?: AbortSignal }): Promise<void> {
    await this.send([ctx.image], ctx.signal, async (tar) => {
      verifyBytes(m.bytes, { digest: m.digest }, `manifest ${m.digest}`);
      await tar.addFile(blobEntryName(m.digest), m.bytes);
    });
  }

  /** Recorded: the run's index.json, written at commit(), names it. An import (re)names: true. */
  async setName(image: DestinationName, signal?: AbortSignal): Promise<boolean> {
    const stream = this.streamFor([image.index], signal);
    if (stream.failure !== undefined) throw stream.failure;
    // The run's index.json names the image by its containerd name.
    this.named.push({ ...image, name: this.targets[image.index] ?? image.name });
    return true;
  }

  nameOf(image: Pick<DestinationName, 'name'>): string {
    return destinationName(this.targetByPlanName.get(image.name) ?? image.name);
  }

  /**
   * Ends the run's stream. Unbroken: index.json, the end of ctr's input, ctr's exit, and every
   * recorded name checked at its digest. Broken (a put failed and the executor fails the run):
   * ctr is awaited dead, nothing more is said.
   */
  async commit(signal?: AbortSignal): Promise<CommitResult | undefined> {
    const stream = this.stream;
    const named = this.named;
    this.stream = undefined;
    this.named = [];
    if (!stream) return undefined;
    this.lastRun = stream.run;
    const broken = stream.failure !== undefined;
    const err = await stream.finish(named);
    if (broken) return undefined;
    const failed = new Map<number, unknown>();
    if (err !== undefined) {
      for (const n of named) failed.set(n.index, err);
      return { failed };
    }
    const after = await listImages(
      this.target,
      named.map((n) => n.name),
      signal ?? this.signal,
    );
    for (const n of named) {
      const row = after.get(n.name);
      if (row?.digest === n.root.digest) {
        const old = this.before.get(n.name);
        if (old && old.digest !== n.root.digest) {
          // As docker load does, an import re-points an existing name; say so.
          this.emit({ kind: 'warning', image: n.name, message: `${n.name} was re-pointed from ${old.digest} to ${n.root.digest}` });
        }
      } else {
        const got = row ? `it points at ${row.digest}` : 'it is not listed';
        failed.set(
          n.index,
          new CtrFailedError('CONTAINERD_IMAGE_MISSING', `ctr images import succeeded but ${n.name} is not at ${n.root.digest}: ${got}`),
        );
      }
    }
    return { failed };
  }

  /** Without commit() nothing is named: a stream still open is killed before its input ends. */
  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    this.named = [];
    if (!stream) return;
    stream.fail(new AbortedError('the containerd destination was closed before its import was committed'));
    await stream.cleanup();
  }

  /**
   * The stream of the run being sent, started by its first call. `images` may name images of
   * several runs (a blob they share is sent in each): the run is the first not yet committed.
   */
  private streamFor(images: readonly number[], signal: AbortSignal | undefined): ImportStream {
    if (this.stream) return this.stream;
    throwIfAborted(signal ?? this.signal);
    const runs = images.map((i) => this.runOf.get(i)).filter((r): r is number => r !== undefined && r > this.lastRun);
    if (runs.length === 0) throw new FerryError('INTERNAL', `containerd: no import run left for images ${images.join(', ')}`);
    const run = Math.min(...runs);
    const flags: ImportFlags = this.unpack && run === UNPACKED_RUN ? { unpack: true, snapshotter: this.snapshotter } : { unpack: false };
    this.stream = new ImportStream(this.target, run, flags, signal ?? this.signal);
    return this.stream;
  }

  /** One step on the run's archive. Aborted: no commit() follows, so ctr is awaited dead here. */
  private async send<T>(images: readonly number[], signal: AbortSignal | undefined, step: (tar: TarWriter) => Promise<T>): Promise<T> {
    const stream = this.streamFor(images, signal);
    try {
      return await stream.write(step);
    } catch (err) {
      if ((signal ?? this.signal)?.aborted) {
        if (this.stream === stream) this.stream = undefined;
        await stream.cleanup();
        throw new AbortedError(ABORTED);
      }
      throw err;
    }
  }
}

/** `containerd[:SOCKET][?namespace=NS]` as a destination (the images keep their names). */
export function openContainerdDestination(
  dest: { address: string | undefined; namespace: string },
  opts: Pick<ContainerdOptions, 'ctr' | 'snapshotter' | 'unpack' | 'naming'> = {},
): ContainerdDestination {
  return new ContainerdDestination(
    {
      namespace: dest.namespace,
      ...(dest.address ? { address: dest.address } : {}),
      ...(opts.ctr ? { ctr: opts.ctr } : {}),
      ...(opts.snapshotter ? { snapshotter: opts.snapshotter } : {}),
      ...(opts.unpack === false ? { unpack: false } : {}),
      ...(opts.naming ? { naming: opts.naming } : {}),
    },
    `containerd${dest.address ? `:${dest.address}` : ''}?namespace=${dest.namespace}`,
  );
}
