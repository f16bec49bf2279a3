/** `ferry bundle`: pull what is named into the store, then write one bundle file of it. */
import { writeErr, writeOut } from './terminal.js';
import type { Argv } from 'yargs';
import { formatFailures } from './failures.js';
import type { Failure } from '../commands/report.js';
import { DEFAULT_STORE, pull } from '../commands/pull.js';
import { onlyIntegrityFailures } from '../commands/report.js';
import {
  NothingToCarryError,
  writeBundle,
  type BundleCompression,
  type BundleEvent,
  type BundleReport,
  type WriteBundleOptions,
} from '../bundle/writer.js';
import { OciLayout } from '../transports/oci/layout.js';
import { AbortedError, FerryError, IntegrityError, UsageError, pathError } from '../util/errors.js';
import { isStdin } from '../util/fsutil.js';
import { formatBytes } from './format.js';
import {
  IMAGE_LIST_OPTION,
  SHARD_OPTION,
  collectRefs,
  shardOf,
  imageSetFlags,
  platformsOf,
  registryAccess,
  registryFlags,
  type ImageSetFlags,
  type RegistryFlags,
} from './options.js';
import { isImageSetRun, resolveImageSet, type ImageSetOrigin, type ResolvedImageSet } from '../commands/image-set.js';
import { imageSetInput, stoppedMessage, writeFailuresFile } from './image-set.js';
import { mkdir } from 'node:fs/promises';
import { readBase, type BundleBase } from '../bundle/base.js';
import { createView, jsonLine, outputMode } from './progress.js';
import { interruptible } from './interrupt.js';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { PlatformSpec } from '../oci/platform.js';
import { tempNameFor } from '../util/fsutil.js';
import { parseVolumeSize } from '../bundle/volumes.js';
import { writeVolumeSet, type VolumeSetReport } from '../bundle/volume-writer.js';
import { spanRange } from '../bundle/volume-files.js';

export interface BundleArgs extends RegistryFlags, ImageSetFlags {
  sources?: string[];
  file?: string[];
  /** Default with -p or --lock: bundles/<profile-name>-<UTC date>.ferry. */
  output?: string;
  store?: string;
  fromStore?: boolean;
  platform?: string[];
  signKey?: string;
  compression: BundleCompression;
  json?: boolean;
  base?: string;
  baseKey?: string;
  shard?: string;
  /** Tests: no output. */
  quiet?: boolean;
  volumeSize?: string;
  allowSpanning?: boolean;
}

export function bundleCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<BundleArgs>(
    'bundle [sources..]',
    'Pull images into the store and write them, each blob once, into one verifiable bundle file',
    (cmd) =>
      registryFlags(
        imageSetFlags(cmd)
          .positional('sources', { type: 'string', array: true, describe: 'image references (nginx:1.27, docker://…, oci:DIR[:REF])' })
          .option('file', IMAGE_LIST_OPTION)
          .option('output', {
            alias: 'o',
            type: 'string',
            describe: 'bundle file to write (with -p or --lock, default bundles/<profile-name>-<UTC date>.ferry)',
          })
          .option('store', { type: 'string', describe: `OCI layout store (default $FERRY_STORE or ${DEFAULT_STORE})` })
          .option('from-store', { type: 'boolean', describe: 'bundle every image in the store' })
          .option('platform', {
            type: 'string',
            array: true,
            nargs: 1,
            describe: 'only this platform for images pulled now, OS/ARCH[/VARIANT]; repeatable',
          })
          .option('shard', SHARD_OPTION)
          .option('sign-key', { type: 'string', describe: 'sign with this private key (PEM, ECDSA P-256 or Ed25519)' })
          .option('compression', {
            choices: ['auto', 'zstd', 'none'] as const,
            default: 'auto' as const,
            describe: 'zstd-compress uncompressed layers inside the bundle (none: a plain oci-archive)',
          })
          .option('base', {
            type: 'string',
            describe:
              'differential: leave out the layers this base holds (an inventory from ferry inventory, or a previous bundle or its ferry inspect --json)',
          })
          .option('base-key', { type: 'string', describe: 'public key the inventory given with --base must be signed with' })
          .option('json', { type: 'boolean', describe: 'machine-readable events and final report on stdout' })
          .option('volume-size', {
            type: 'string',
            describe:
              'split into volumes NAME.001.ferry, NAME.002.ferry, … each at most SIZE and each a complete bundle (whole images; ' +
              'K/M/G/T = 10^3/10^6/10^9/10^12, KiB/MiB/GiB/TiB = 2^10…2^40; e.g. 4.7G, 25GB, 512MiB)',
          })
          .option('allow-spanning', {
            type: 'boolean',
            describe:
              'let an image larger than --volume-size spread its layers over consecutive volumes (a span); each still verifies alone, ' +
              'but the span loads only together (ferry load NAME.*.ferry)',
          })
          .example('$0 bundle -p profiles/site-a.yaml --sign-key key.pem', 'a profile, into bundles/site-a-<date>.ferry, signed')
          .example('$0 bundle --lock site-a.lock.json -o site-a.ferry', 'exactly what a plan pinned')
          .example('$0 bundle nginx:1.27 redis:7 -o images.ferry --sign-key key.pem', 'two images, signed')
          .example('$0 bundle --from-store --store /srv/store -o all.ferry', 'everything already in a store')
          .example('$0 bundle --lock site-a.lock.json -o dvd.ferry --volume-size 4.7G', 'DVD-sized volumes dvd.001.ferry, dvd.002.ferry, …')
          .example('$0 bundle --lock site-a.lock.json --base site-a.inventory.json -o update.ferry', 'only what the far side lacks'),
      ) as unknown as Argv<BundleArgs>,
    async (args) => {
      process.exitCode = await runBundle(args);
    },
  );
}

export async function runBundle(args: BundleArgs): Promise<number> {
  const refs = await collectRefs(args.sources, args.file);
  const input = imageSetInput(args, refs, platformsOf(args.platform));
  if (args.output === undefined) {
    if (!isImageSetRun(input)) throw new UsageError('-o BUNDLE is required (it has a default only with -p PROFILE or --lock LOCK)');
  } else if (isStdin(args.output)) {
    throw new UsageError('-o takes a file to write, not -: a bundle is written to a temp file and renamed into place once complete', {
      hint: 'write it to a file, then stream that (cat FILE | ssh … ferry load - …)',
    });
  }
  const setRun = isImageSetRun(input);
  const volumeSize = args.volumeSize !== undefined ? parseVolumeSize(args.volumeSize) : undefined;
  if (args.allowSpanning && volumeSize === undefined) {
    throw new UsageError('--allow-spanning lets an image span volumes; it needs --volume-size SIZE');
  }
  if (refs.length === 0 && !args.fromStore && !setRun) {
    throw new UsageError('nothing to bundle: give image references, -f LIST, -p PROFILE, --lock LOCK or --from-store');
  }
  // Parsed up front (a malformed --shard is a usage error before anything is contacted).
  shardOf(args.shard);
  if (args.fromStore && args.shard !== undefined) throw new UsageError('--shard splits images pulled now; it cannot split --from-store');
  if (args.fromStore && (refs.length > 0 || setRun)) {
    throw new UsageError('--from-store bundles every image of the store; it cannot be combined with references, -f, -p or --lock');
  }
  const platforms = input.platforms ?? [];
  if (platforms.length > 0 && refs.length === 0 && !setRun)
    throw new UsageError('--platform applies to images pulled now; it cannot filter --from-store');
  const storeDir = args.store ?? process.env.FERRY_STORE ?? DEFAULT_STORE;
  const access = refs.length > 0 || setRun ? await registryAccess(args, (args.file ?? []).some(isStdin)) : undefined;
  // Profiles and locks are read (and tag lists fetched) before the output is chosen: its
  // default name is the profiles'.
  const set: ResolvedImageSet = access ? await resolveImageSet(input, access) : { failures: [] };
  if (args.baseKey !== undefined && args.base === undefined) throw new UsageError('--base-key checks the inventory given with --base');
  // The base is read before anything is pulled: a bad one is said now.
  const base = args.base !== undefined ? await readBase(args.base, args.baseKey !== undefined ? { key: args.baseKey } : {}) : undefined;
  const output = args.output ?? (await defaultOutput(set.origin));
  // Before pulling anything: an output nobody may write is said now, about its path.
  await checkWritable(output);
  // Ctrl-C stops as pull does: exit 130, the store keeps only verified blobs, the temp bundle
  // and its zstd spools are removed (writeBundle's own cleanup, reached because the run ends).
  return interruptible((signal) =>
    bundleRun({ ...args, output }, refs, set, base, platforms, storeDir, access, signal, volumeSize).catch((err: unknown) => {
      if (!signal.aborted) throw err;
      throw new AbortedError(`interrupted: no bundle written (${path.resolve(output)} untouched; the store keeps what was pulled)`);
    }),
  );
}

/** bundles/<profile-names>-<UTC date>.ferry, the folder made when missing. */
async function defaultOutput(origin: ImageSetOrigin | undefined): Promise<string> {
  const names = origin?.names.length ? origin.names : ['images'];
  const date = new Date().toISOString().slice(0, 10).replaceAll('-', '');
  await mkdir('bundles', { recursive: true });
  return path.join('bundles', `${names.join('+')}-${date}.ferry`);
}

/** The output's directory takes a new file: a temp file beside the output is made and removed. */
async function checkWritable(output: string): Promise<void> {
  const target = path.resolve(output);
  const probe = tempNameFor(target);
  try {
    const fh = await open(probe, 'wx', 0o644);
    await fh.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new UsageError(`-o ${target}: ${path.dirname(target)} is not a directory that exists`, {
        hint: 'create the directory first, or choose another path',
      });
    }
    throw pathError(err, target, 'creating the bundle');
  }
  await rm(probe, { force: true });
}

async function bundleRun(
  args: BundleArgs & { output: string },
  refs: string[],
  set: ResolvedImageSet,
  base: BundleBase | undefined,
  platforms: PlatformSpec[],
  storeDir: string,
  access: Awaited<ReturnType<typeof registryAccess>> | undefined,
  signal: AbortSignal,
  volumeSize?: number,
): Promise<number> {
  const out = (line: string): void => {
    if (!args.quiet && !args.json) writeErr(`${line}\n`);
  };
  let names: string[] | undefined;
  let failures: Failure[] = [];
  if ((refs.length > 0 || set.images || set.failures.length > 0) && access) {
    // The pull phase draws what pull draws (bars on a terminal, lines at intervals otherwise).
    const view = args.quiet || args.json ? undefined : await createView(outputMode(false));
    let r: Awaited<ReturnType<typeof pull>>;
    try {
      r = await pull({
        refs,
        ...(set.images ? { images: set.images } : {}),
        setFailures: set.failures,
        // A bundle is all or nothing (profiles, locks and lists alike) unless --keep-going: then
        // it holds what could be pulled, and the failures are listed beside it.
        allOrNothing: !args['keep-going'],
        store: storeDir,
        platforms,
        ...access,
        signal,
        // The bundle holds the names pull completed: this shard's images only.
        ...(args.shard !== undefined ? { shard: shardOf(args.shard)! } : {}),
        ...(view ? { onEvent: (e) => view.onEvent(e) } : {}),
      });
    } finally {
      await view?.finish();
    }
    signal.throwIfAborted();
    if (r.stopped) {
      for (const line of formatFailures(r.failures)) writeErr(line);
      throw new FerryError('PULL_FAILED', `${stoppedMessage(r.failures.length, 'pulled')}; no bundle written`);
    }
    if (r.failures.length > 0 && args['keep-going']) {
      failures = r.failures;
    } else if (r.failures.length > 0) {
      for (const line of formatFailures(r.failures)) writeErr(line);
      const integrity = onlyIntegrityFailures(r.failures);
      const message = `${r.failures.length} image${r.failures.length === 1 ? '' : 's'} could not be pulled; no bundle written`;
      // Content that did not match its digests is an integrity failure (exit 3), as for pull.
      if (integrity)
        throw new IntegrityError('PULL_FAILED', message, { hint: 'the source served content that does not match its digests' });
      throw new FerryError('PULL_FAILED', message);
    }
    names = r.images.filter((i) => i.status === 'done').map((i) => i.name);
    out(`Pulled ${names.length} image${names.length === 1 ? '' : 's'} into ${r.store}`);
    if (names.length === 0 && args.shard !== undefined && failures.length === 0) {
      // More shards than groups of images: this shard is legitimately empty. It is not a
      // failure (a Kubernetes pod for it must not fail the Job); there is just nothing to write.
      writeErr(`shard ${args.shard} holds no images of this plan; no bundle written\n`);
      return 0;
    }
    if (names.length === 0) {
      for (const line of formatFailures(failures)) writeErr(line);
      throw new FerryError('PULL_FAILED', 'no image could be pulled; no bundle written');
    }
  }
  const store = await OciLayout.open(storeDir);
  const onEvent = (e: BundleEvent): void => {
    if (args.quiet) return;
    if (args.json) jsonLine({ type: 'event', ...e });
    else if (e.kind === 'warning') writeErr(`warning: ${e.message}\n`);
    else if (e.kind === 'compress') out(`compressed ${e.digest.slice(0, 19)}: ${formatBytes(e.size)} → ${formatBytes(e.storedSize)}`);
  };
  const writeOptions: WriteBundleOptions = {
    store,
    ...(args.fromStore ? {} : { refs: names! }),
    output: args.output,
    compression: args.compression,
    signal,
    ...(args.signKey !== undefined ? { signKey: args.signKey } : {}),
    ...(base ? { base } : {}),
    ...(set.origin
      ? {
          imageSet: {
            profiles: set.origin.profiles.map((p) => ({ name: p.name, digest: p.digest })),
            ...(set.origin.lock ? { lock: { digest: set.origin.lock.digest } } : {}),
          },
        }
      : {}),
    onEvent,
  };
  if (volumeSize !== undefined) {
    let vs: VolumeSetReport;
    try {
      vs = await writeVolumeSet({ ...writeOptions, volumeSize, ...(args.allowSpanning ? { allowSpanning: true } : {}) });
    } catch (err) {
      // Differential volumes with nothing to carry: the far side is up to date. Said, exit 0.
      if (!(err instanceof NothingToCarryError)) throw err;
      if (args.json) jsonLine({ type: 'report', output: null, nothingToCarry: true, message: err.message });
      else if (!args.quiet) writeOut(`${err.message}\n`);
      return 0;
    }
    const failuresFile = failures.length > 0 ? await writeFailuresFile(args.output, 'bundle', failures, set.origin) : undefined;
    if (!args.quiet) {
      if (args.json) jsonLine({ type: 'report', ...vs, failures, ...(failuresFile ? { failuresFile } : {}) });
      else {
        for (const v of vs.volumes) {
          writeOut(
            `Wrote ${v.output} (volume ${v.number} of ${vs.volumes.length}): ${v.totals.images} images, ${formatBytes(v.fileSize)}` +
              `${v.signature ? `; signature ${v.signature}` : ''}\n`,
          );
        }
        writeOut(
          `Volume set ${vs.setId}: ${vs.volumes.length} volumes of at most ${formatBytes(vs.volumeSize)}; ` +
            `${formatBytes(vs.uniqueBytes)} unique, ${vs.duplicatedBytes} bytes carried more than once\n`,
        );
        for (const sp of vs.spans) {
          writeOut(`  image ${sp.ref} spans volumes ${spanRange(sp.volumes)}: load them together\n`);
        }
        if (vs.removedStale.length > 0) {
          writeOut(
            `Removed ${vs.removedStale.length} stale volume${vs.removedStale.length === 1 ? '' : 's'} of an earlier run (numbered above ${vs.volumes.length}): ` +
              `${vs.removedStale.map((f) => path.basename(f)).join(', ')}\n`,
          );
        }
        if (vs.base) {
          writeOut(
            `  each volume differential against ${vs.base.record.kind} ${vs.base.record.digest}${vs.base.record.confirmed ? '' : ' (assumed, not confirmed by the far side)'}: ` +
              `${vs.base.blobs} layers (${formatBytes(vs.base.bytes)}) left out, relied on at the destination` +
              `${vs.base.unchanged.length ? `; ${vs.base.unchanged.length} unchanged images not carried` : ''}\n`,
          );
        }
      }
    }
    if (failuresFile)
      writeErr(`${failures.length} image${failures.length === 1 ? '' : 's'} not carried (--keep-going); listed in ${failuresFile}\n`);
    return failures.length > 0 ? 1 : 0;
  }
  let report: BundleReport;
  try {
    report = await writeBundle(writeOptions);
  } catch (err) {
    // A differential bundle with nothing to carry: the far side is up to date. Said, exit 0.
    if (!(err instanceof NothingToCarryError)) throw err;
    if (args.json) jsonLine({ type: 'report', output: null, nothingToCarry: true, message: err.message });
    else if (!args.quiet) writeOut(`${err.message}\n`);
    return 0;
  }
  const failuresFile = failures.length > 0 ? await writeFailuresFile(args.output, 'bundle', failures, set.origin) : undefined;
  if (!args.quiet) {
    if (args.json) jsonLine({ type: 'report', ...report, failures, ...(failuresFile ? { failuresFile } : {}) });
    else {
      const t = report.totals;
      // The result (what the bundle holds) on stdout; progress above went to stderr.
      const result = (line: string): void => writeOut(`${line}\n`);
      for (const i of report.images)
        result(`  ${i.ref}  ${i.digest}  ${formatBytes(i.totalSize)}${i.platforms.length ? `  ${i.platforms.join(', ')}` : ''}`);
      result(
        `Wrote ${report.output}: ${t.images} images, ${t.blobs} unique blobs; ${formatBytes(t.referencedBytes)} referenced, ` +
          `${formatBytes(t.uniqueBytes)} unique, ${formatBytes(t.storedBytes)} stored${report.signature ? `; signature ${report.signature}` : ''}`,
      );
      if (report.base) {
        result(
          `  differential against ${report.base.record.kind} ${report.base.record.digest}${report.base.record.confirmed ? '' : ' (assumed, not confirmed by the far side)'}: ` +
            `${report.base.blobs} layers (${formatBytes(report.base.bytes)}) left out, relied on at the destination` +
            `${report.base.unchanged.length ? `; ${report.base.unchanged.length} unchanged images not carried` : ''}`,
        );
      }
      if (failuresFile) {
        for (const line of formatFailures(failures)) writeErr(line);
        writeErr(`${failures.length} image${failures.length === 1 ? '' : 's'} not carried (--keep-going); listed in ${failuresFile}\n`);
      }
    }
  }
  return failures.length > 0 ? 1 : 0;
}
