/** `ferry bundle`: pull what is named into the store, then write one bundle file of it. */
import { writeErr, writeOut } from './terminal.js';
import type { Argv } from 'yargs';
import { formatFailures } from './failures.js';
import { DEFAULT_STORE, pull } from '../commands/pull.js';
import { onlyIntegrityFailures } from '../commands/report.js';
import { writeBundle, type BundleCompression, type BundleEvent, type BundleReport } from '../bundle/writer.js';
import { OciLayout } from '../transports/oci/layout.js';
import { AbortedError, FerryError, IntegrityError, UsageError, pathError } from '../util/errors.js';
import { isStdin } from '../util/fsutil.js';
import { formatBytes } from './format.js';
import { IMAGE_LIST_OPTION, collectRefs, platformsOf, registryAccess, registryFlags, type RegistryFlags } from './options.js';
import { createView, jsonLine, outputMode } from './progress.js';
import { interruptible } from './interrupt.js';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import type { PlatformSpec } from '../oci/platform.js';
import { tempNameFor } from '../util/fsutil.js';

export interface BundleArgs extends RegistryFlags {
  sources?: string[];
  file?: string[];
  output: string;
  store?: string;
  fromStore?: boolean;
  platform?: string[];
  signKey?: string;
  compression: BundleCompression;
  json?: boolean;
  /** Tests: no output. */
  quiet?: boolean;
}

export function bundleCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<BundleArgs>(
    'bundle [sources..]',
    'Pull images into the store and write them, each blob once, into one verifiable bundle file',
    (cmd) =>
      registryFlags(
        cmd
          .positional('sources', { type: 'string', array: true, describe: 'image references (nginx:1.27, docker://…, oci:DIR[:REF])' })
          .option('file', IMAGE_LIST_OPTION)
          .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'bundle file to write' })
          .option('store', { type: 'string', describe: `OCI layout store (default $FERRY_STORE or ${DEFAULT_STORE})` })
          .option('from-store', { type: 'boolean', describe: 'bundle every image in the store' })
          .option('platform', {
            type: 'string',
            array: true,
            nargs: 1,
            describe: 'only this platform for images pulled now, OS/ARCH[/VARIANT]; repeatable',
          })
          .option('sign-key', { type: 'string', describe: 'sign with this private key (PEM, ECDSA P-256 or Ed25519)' })
          .option('compression', {
            choices: ['auto', 'zstd', 'none'] as const,
            default: 'auto' as const,
            describe: 'zstd-compress uncompressed layers inside the bundle (none: a plain oci-archive)',
          })
          .option('json', { type: 'boolean', describe: 'machine-readable events and final report on stdout' })
          .example('$0 bundle nginx:1.27 redis:7 -o images.ferry --sign-key key.pem', 'two images, signed')
          .example('$0 bundle --from-store --store /srv/store -o all.ferry', 'everything already in a store'),
      ) as unknown as Argv<BundleArgs>,
    async (args) => {
      process.exitCode = await runBundle(args);
    },
  );
}

export async function runBundle(args: BundleArgs): Promise<number> {
  if (isStdin(args.output)) {
    throw new UsageError('-o takes a file to write, not -: a bundle is written to a temp file and renamed into place once complete', {
      hint: 'write it to a file, then stream that (cat FILE | ssh … ferry load - …)',
    });
  }
  const refs = await collectRefs(args.sources, args.file);
  if (refs.length === 0 && !args.fromStore) {
    throw new UsageError('nothing to bundle: give image references, -f LIST, or --from-store');
  }
  const platforms = platformsOf(args.platform) ?? [];
  if (platforms.length > 0 && refs.length === 0)
    throw new UsageError('--platform applies to images pulled now; it cannot filter --from-store');
  const storeDir = args.store ?? process.env.FERRY_STORE ?? DEFAULT_STORE;
  // Before pulling anything: an output nobody may write is said now, about its path.
  await checkWritable(args.output);
  const access = refs.length > 0 ? await registryAccess(args, (args.file ?? []).some(isStdin)) : undefined;
  // Ctrl-C stops as pull does: exit 130, the store keeps only verified blobs, the temp bundle
  // and its zstd spools are removed (writeBundle's own cleanup, reached because the run ends).
  return interruptible((signal) =>
    bundleRun(args, refs, platforms, storeDir, access, signal).catch((err: unknown) => {
      if (!signal.aborted) throw err;
      throw new AbortedError(`interrupted: no bundle written (${path.resolve(args.output)} untouched; the store keeps what was pulled)`);
    }),
  );
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
  args: BundleArgs,
  refs: string[],
  platforms: PlatformSpec[],
  storeDir: string,
  access: Awaited<ReturnType<typeof registryAccess>> | undefined,
  signal: AbortSignal,
): Promise<number> {
  const out = (line: string): void => {
    if (!args.quiet && !args.json) writeErr(`${line}\n`);
  };
  let names: string[] | undefined;
  if (refs.length > 0 && access) {
    // The pull phase draws what pull draws (bars on a terminal, lines at intervals otherwise).
    const view = args.quiet || args.json ? undefined : await createView(outputMode(false));
    let r: Awaited<ReturnType<typeof pull>>;
    try {
      r = await pull({ refs, store: storeDir, platforms, ...access, signal, ...(view ? { onEvent: (e) => view.onEvent(e) } : {}) });
    } finally {
      await view?.finish();
    }
    signal.throwIfAborted();
    if (r.failures.length > 0) {
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
  }
  const store = await OciLayout.open(storeDir);
  const onEvent = (e: BundleEvent): void => {
    if (args.quiet) return;
    if (args.json) jsonLine({ type: 'event', ...e });
    else if (e.kind === 'warning') writeErr(`warning: ${e.message}\n`);
    else if (e.kind === 'compress') out(`compressed ${e.digest.slice(0, 19)}: ${formatBytes(e.size)} → ${formatBytes(e.storedSize)}`);
  };
  const report: BundleReport = await writeBundle({
    store,
    ...(args.fromStore ? {} : { refs: names! }),
    output: args.output,
    compression: args.compression,
    signal,
    ...(args.signKey !== undefined ? { signKey: args.signKey } : {}),
    onEvent,
  });
  if (!args.quiet) {
    if (args.json) jsonLine({ type: 'report', ...report });
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
    }
  }
  return 0;
}
