/** `ferry load` and `ferry mirror`: flags → options → load()/mirror(); drawing, mapping file, exit status. */
import { writeErr, writeOut } from './terminal.js';
import type { Argv } from 'yargs';
import { formatFailures } from './failures.js';
import { DEFAULT_CONCURRENCY } from '../commands/registry-access.js';
import { onlyIntegrityFailures } from '../commands/report.js';
import { splitCommandLine } from '../transports/containerd/ctr.js';
import { load, loadEach, type LoadOptions, type LoadReport } from '../commands/load.js';
import { mirror } from '../commands/mirror.js';
import { isImageSetRun, resolveImageSet } from '../commands/image-set.js';
import { imageSetInput, stoppedMessage } from './image-set.js';
import { UsageError } from '../util/errors.js';
import { parseLoadDestination } from '../transports/table.js';
import { isStdin, writeFileAtomic } from '../util/fsutil.js';
import { formatBytes, formatDuration, formatRate } from './format.js';
import { interruptible } from './interrupt.js';
import {
  IMAGE_LIST_OPTION,
  PLATFORM_OPTION,
  SHARD_OPTION,
  shardOf,
  checkConcurrency,
  platformsOf,
  collectRefs,
  imageSetFlags,
  registryAccess,
  registryFlags,
  type ImageSetFlags,
  type RegistryFlags,
} from './options.js';
import { SCREENFUL, createView, jsonLine, outputMode, type OutputMode, type ProgressView } from './progress.js';

export interface CommonArgs extends RegistryFlags {
  to: string;
  prefix?: string;
  'keep-names'?: boolean;
  'chunk-size'?: number;
  scoped?: boolean;
  concurrency: number;
  mapping?: string;
  json?: boolean;
}

interface LoadArgs extends CommonArgs {
  /** One source, or several bundle files (the volumes of a set). */
  sources: string[];
  platform?: string[];
  key?: string;
  'require-signature'?: boolean;
  ctr?: string;
  snapshotter?: string;
  unpack?: boolean;
}

interface MirrorArgs extends CommonArgs, ImageSetFlags {
  refs?: string[];
  file?: string[];
  platform?: string[];
  shard?: string;
}

export function commonFlags<T>(cmd: Argv<T>): Argv<T> {
  return cmd
    .option('scoped', {
      type: 'boolean',
      describe:
        'keep the source registry host as the first path component, a port after _ (127.0.0.1:5000/app → PREFIX/127.0.0.1_5000/app; registry destinations, and docker-daemon/containerd with --prefix)',
    })
    .option('concurrency', { type: 'number', default: DEFAULT_CONCURRENCY, describe: 'blobs transferred at once' })
    .option('chunk-size', {
      type: 'number',
      describe: 'registry uploads: blobs larger than this many MiB go up in PATCH requests of this size (default 64)',
    })
    .option('mapping', {
      type: 'string',
      describe: 'write the JSON mapping source reference → destination reference and digest to this file',
    })
    .option('json', { type: 'boolean', describe: 'machine-readable events and final report on stdout' });
}

export function loadCommand<T>(y: Argv<T>): Argv<T> {
  return y
    .command<LoadArgs>(
      'load <sources..>',
      'Load a bundle (or an OCI layout or archive) into an OCI layout, a registry, Docker Engine or containerd',
      (cmd) =>
        registryFlags(
          commonFlags(
            engineNamingFlags(cmd)
              .positional('sources', {
                type: 'string',
                array: true,
                demandOption: true,
                describe:
                  'a bundle, docker save tar (also gzipped) or OCI archive file (told apart by what it holds), several bundle files (the volumes of a set, loaded one by one), - for a bundle on stdin, oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF]',
              })
              .option('to', {
                type: 'string',
                demandOption: true,
                describe: 'oci:DIR | docker://HOST[:PORT][/PREFIX] | docker-daemon[:SOCKET] | containerd[:SOCKET][?namespace=NS]',
              })
              .option('platform', PLATFORM_OPTION)
              .option('key', { type: 'string', describe: 'public key (PEM) the bundle signature must verify with' })
              .option('require-signature', { type: 'boolean', describe: 'refuse a bundle that is not signed' })
              .option('ctr', { type: 'string', describe: 'containerd client command (default ctr; e.g. "k3s ctr")' })
              .option('snapshotter', { type: 'string', describe: "containerd snapshotter to unpack into (default: containerd's)" })
              .option('unpack', {
                type: 'boolean',
                describe:
                  'containerd: unpack into the snapshotter after import (default); --no-unpack imports content and names only (Kubernetes unpacks on container create)',
              })
              .example('$0 load images.ferry --to docker://registry.local:5000/mirror', 'push every image under mirror/')
              .example('$0 load images.ferry --key pub.pem --to containerd', 'import into containerd (namespace k8s.io)')
              .example('$0 load dvd.*.ferry --to oci:/srv/store', 'every volume of a set, in any order')
              .example('cat images.ferry | $0 load - --to docker-daemon', 'load into Docker Engine from a pipe'),
          ),
        ) as unknown as Argv<LoadArgs>,
      async (args) => {
        process.exitCode = await runLoad(args);
      },
    )
    .command<MirrorArgs>(
      'mirror [refs..]',
      'Copy images registry to registry, streaming, skipping what the destination has',
      (cmd) =>
        registryFlags(
          commonFlags(
            imageSetFlags(cmd)
              .positional('refs', {
                type: 'string',
                array: true,
                describe: 'image references (nginx:1.27, ghcr.io/org/app:1.2, docker://…)',
              })
              .option('file', IMAGE_LIST_OPTION)
              .option('to', { type: 'string', demandOption: true, describe: 'docker://HOST[:PORT][/PREFIX]' })
              .option('platform', PLATFORM_OPTION)
              .option('shard', SHARD_OPTION)
              .example('$0 mirror -f images.txt --to docker://registry.local:5000/mirror', 'keep a local registry in step')
              .example('$0 mirror -p profiles/site-a.yaml --to docker://registry.local:5000', 'what a profile selects'),
          ),
        ) as unknown as Argv<MirrorArgs>,
      async (args) => {
        process.exitCode = await runMirror(args);
      },
    );
}

export async function view(args: CommonArgs): Promise<{ mode: OutputMode; view: ProgressView }> {
  if (args.mapping !== undefined && isStdin(args.mapping)) {
    throw new UsageError('--mapping takes a file to write, not -', {
      hint: 'with --json the final report on stdout carries the mapping too',
    });
  }
  const mode = outputMode(!!args.json);
  return { mode, view: await createView(mode) };
}

export async function finish(report: LoadReport, args: CommonArgs, mode: OutputMode, verb: string): Promise<number> {
  if (args.mapping) await writeFileAtomic(args.mapping, `${JSON.stringify(report.mapping, null, 2)}\n`);
  const done = report.images.filter((i) => i.status === 'done');
  if (mode === 'json') {
    jsonLine({ type: 'report', ...report });
  } else {
    for (const line of formatFailures(report.failures)) writeErr(line);
    if (report.stopped) {
      writeErr(`${stoppedMessage(report.failures.length, 'mirrored')}\n`);
      return 1;
    }
    const b = report.blobs;
    const present = done.filter((i) => i.skipped).length;
    // The outcome and the mapping are the result (stdout); failures are diagnostics (stderr).
    writeOut(
      `${verb} ${done.length} of ${done.length + report.failures.length} images into ${report.destination}` +
        `${present ? ` (${present} already there)` : ''}: ${b.fetched} blobs sent (${formatBytes(b.bytesFetched)}), ` +
        `${b.skipped} already present${b.mounted ? `, ${b.mounted} mounted` : ''}${b.failed ? `, ${b.failed} failed` : ''} ` +
        `in ${formatDuration(report.durationMs)} (${formatRate(b.bytesFetched, report.durationMs)})\n`,
    );
    // The mapping line by line up to a screenful; beyond that it belongs in a file.
    if (done.length <= SCREENFUL) for (const i of done) writeOut(`  ${i.name} → ${i.destination} (${i.destinationDigest})\n`);
    else if (!args.mapping) writeOut(`  (the mapping of ${done.length} images: --mapping FILE, or --json)\n`);
  }
  if (report.failures.length === 0) return 0;
  return onlyIntegrityFailures(report.failures) ? 3 : 1;
}

/** --prefix and --keep-names: how images are named in Docker Engine and containerd (load, copy). */
export function engineNamingFlags<T>(cmd: Argv<T>): Argv<T> {
  return cmd
    .option('prefix', {
      type: 'string',
      describe:
        'docker-daemon/containerd: name images under HOST[:PORT][/PATH] (or a path), as a registry prefix does (docker.io/library/nginx:1.27 → PREFIX/library/nginx:1.27)',
    })
    .option('keep-names', {
      type: 'boolean',
      describe: 'docker-daemon/containerd: keep the source names (the default there)',
    });
}

/**
 * The naming flags against the destination kind, before anything is opened: --keep-names
 * excludes --prefix and --scoped, --prefix and --keep-names are for engines, and an engine
 * takes --scoped only under a --prefix (without one there is no place to scope under).
 */
export function checkEngineNaming(args: Pick<CommonArgs, 'prefix' | 'keep-names' | 'scoped' | 'to'>, kind: string): void {
  const engine = kind === 'docker-daemon' || kind === 'containerd';
  if (args['keep-names'] && (args.prefix !== undefined || args.scoped)) {
    throw new UsageError(
      `--keep-names keeps the source names; it cannot be combined with ${args.prefix !== undefined ? '--prefix' : '--scoped'}`,
    );
  }
  if (!engine && (args.prefix !== undefined || args['keep-names'])) {
    const flag = args.prefix !== undefined ? '--prefix' : '--keep-names';
    throw new UsageError(`${flag} is for docker-daemon and containerd destinations; ${args.to} is not one`, {
      ...(kind === 'registry' && args.prefix !== undefined
        ? { hint: 'a registry takes its prefix in the destination: docker://HOST/PREFIX' }
        : {}),
    });
  }
  if (engine && args.scoped && args.prefix === undefined) {
    throw new UsageError(`--scoped needs --prefix for ${kind}: without one the images keep their source names`, {
      hint: 'e.g. --prefix registry.local:5000/mirror --scoped',
    });
  }
}

/** --chunk-size in MiB → bytes; 1 MiB to 4 GiB. */
export function chunkSizeOf(mib: number | undefined): number | undefined {
  if (mib === undefined) return undefined;
  if (!Number.isInteger(mib) || mib < 1 || mib > 4096)
    throw new UsageError(`--chunk-size must be a whole number of MiB from 1 to 4096, got ${String(mib)}`);
  return mib * 1024 * 1024;
}

/** --ctr "k3s ctr" → argv, split with simple shell rules (quotes, backslash escapes). */
export function ctrCommand(value: string): string[] {
  let argv: string[];
  try {
    argv = splitCommandLine(value);
  } catch (err) {
    throw new UsageError(`--ctr: ${(err as Error).message}`, { hint: 'quote a path with spaces, e.g. --ctr "\'/opt/my bin/ctr\'"' });
  }
  if (argv.length === 0) throw new UsageError('--ctr needs a command');
  return argv;
}

async function runLoad(args: LoadArgs): Promise<number> {
  const concurrency = checkConcurrency(args.concurrency);
  const chunkSize = chunkSizeOf(args['chunk-size']);
  if (args['require-signature'] && args.key === undefined) {
    // As for ferry verify: a signature can only be required if there is a key to check it with.
    throw new UsageError('--require-signature needs --key to check the signature with');
  }
  // Options that only one kind of destination understands are refused elsewhere, not ignored.
  const destKind = parseLoadDestination(args.to).kind;
  const onlyFor = (flag: string, given: boolean, kind: string, what: string): void => {
    if (given && destKind !== kind) throw new UsageError(`${flag} is for ${what}; --to ${args.to} is not one`);
  };
  onlyFor('--no-unpack', args.unpack === false, 'containerd', 'a containerd destination');
  onlyFor('--ctr', args.ctr !== undefined, 'containerd', 'a containerd destination');
  onlyFor('--snapshotter', args.snapshotter !== undefined, 'containerd', 'a containerd destination');
  if (destKind !== 'docker-daemon' && destKind !== 'containerd')
    onlyFor('--scoped', !!args.scoped, 'registry', 'a registry destination (docker://HOST[/PREFIX])');
  checkEngineNaming(args, destKind);
  onlyFor('--chunk-size', args['chunk-size'] !== undefined, 'registry', 'a registry destination (docker://HOST[/PREFIX])');
  const sources = args.sources;
  if (sources.length > 1) {
    // Several sources are bundle files only: a pipe or a store is one source on its own.
    const single = sources.find((s) => isStdin(s.replace(/^bundle:/, '')) || /^(oci|oci-archive|docker-archive):/.test(s));
    if (single !== undefined) throw new UsageError(`${single} is a source on its own; several sources must all be bundle files`);
  }
  const fromStdin = sources.length === 1 && isStdin(sources[0]!.replace(/^bundle:/, ''));
  if (fromStdin && args['password-stdin']) throw new UsageError('--password-stdin cannot be used when the bundle is read from stdin');
  const access = await registryAccess(args, fromStdin);
  const ctr = args.ctr === undefined ? undefined : ctrCommand(args.ctr);
  const { mode, view: v } = await view(args);
  const common = (signal: AbortSignal): Omit<LoadOptions, 'source'> => ({
    to: args.to,
    ...(args.key !== undefined ? { key: args.key } : {}),
    ...(args['require-signature'] ? { requireSignature: true } : {}),
    ...(args.scoped ? { scoped: true } : {}),
    ...(args.prefix !== undefined ? { prefix: args.prefix } : {}),
    ...(args.platform?.length ? { platforms: platformsOf(args.platform)! } : {}),
    ...(ctr ? { ctr } : {}),
    ...(chunkSize ? { chunkSize } : {}),
    ...(args.snapshotter ? { snapshotter: args.snapshotter } : {}),
    ...(args.unpack === false ? { unpack: false } : {}),
    concurrency,
    ...access,
    signal,
    onEvent: (e) => v.onEvent(e),
  });
  if (sources.length === 1) {
    const report = await interruptible(
      (signal) => load({ ...common(signal), source: sources[0]! }),
      () => v.finish(),
    );
    return finish(report, args, mode, 'Loaded');
  }
  const { report, refused } = await interruptible(
    (signal) => loadEach(sources, common(signal)),
    () => v.finish(),
  );
  const code = await finish(report, args, mode, 'Loaded');
  if (refused.length === 0) return code;
  // A refused bundle (damaged, bad signature) is an integrity failure of that bundle: exit 3
  // when every failure is one, as for a single bundle.
  const integrity =
    refused.every((r) => r.error.exitCode === 3) &&
    report.failures.every((f) => refused.some((r) => r.source === f.name) || onlyIntegrityFailures([f]));
  return integrity ? 3 : Math.max(code, 1);
}

async function runMirror(args: MirrorArgs): Promise<number> {
  const concurrency = checkConcurrency(args.concurrency);
  const chunkSize = chunkSizeOf(args['chunk-size']);
  const shard = shardOf(args.shard);
  const refs = await collectRefs(args.refs, args.file);
  const input = imageSetInput(args, refs, platformsOf(args.platform));
  if (refs.length === 0 && !isImageSetRun(input))
    throw new UsageError('nothing to mirror: give image references, -f LIST, -p PROFILE or --lock LOCK');
  const access = await registryAccess(args, (args.file ?? []).some(isStdin));
  const set = await resolveImageSet(input, { ...access, concurrency });
  const { mode, view: v } = await view(args);
  const report = await interruptible(
    (signal) =>
      mirror({
        refs,
        ...(set.images ? { images: set.images } : {}),
        setFailures: set.failures,
        allOrNothing: set.images !== undefined && !args['keep-going'],
        to: args.to,
        ...(args.scoped ? { scoped: true } : {}),
        ...(args.platform?.length ? { platforms: platformsOf(args.platform)! } : {}),
        ...(chunkSize ? { chunkSize } : {}),
        concurrency,
        ...access,
        signal,
        onEvent: (e) => v.onEvent(e),
        ...(shard ? { shard } : {}),
      }),
    () => v.finish(),
  );
  return finish(report, args, mode, 'Mirrored');
}
