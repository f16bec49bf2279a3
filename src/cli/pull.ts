/** `ferry pull`: flags → PullOptions → pull(); drawing and exit status. */
import { writeErr, writeOut } from './terminal.js';
import type { Argv } from 'yargs';
import { formatFailures } from './failures.js';
import { DEFAULT_STORE, pull } from '../commands/pull.js';
import { DEFAULT_CONCURRENCY } from '../commands/registry-access.js';
import { onlyIntegrityFailures } from '../commands/report.js';
import { UsageError } from '../util/errors.js';
import { isStdin } from '../util/fsutil.js';
import { formatBytes, formatDuration, formatRate } from './format.js';
import {
  IMAGE_LIST_OPTION,
  PLATFORM_OPTION,
  SHARD_OPTION,
  shardOf,
  checkConcurrency,
  collectRefs,
  platformsOf,
  imageSetFlags,
  registryAccess,
  registryFlags,
  type ImageSetFlags,
  type RegistryFlags,
} from './options.js';
import { resolveImageSet } from '../commands/image-set.js';
import { imageSetInput, stoppedMessage, writeFailuresFile } from './image-set.js';
import { interruptible } from './interrupt.js';
import { createView, jsonLine, outputMode } from './progress.js';

interface PullArgs extends RegistryFlags, ImageSetFlags {
  refs?: string[];
  file?: string[];
  store?: string;
  platform?: string[];
  concurrency: number;
  json?: boolean;
  shard?: string;
}

export function pullCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<PullArgs>(
    'pull [refs..]',
    'Pull images from registries (or oci:, oci-archive:, docker-archive: sources) into an OCI image-layout store',
    (cmd) =>
      registryFlags(
        imageSetFlags(cmd)
          .positional('refs', {
            type: 'string',
            array: true,
            describe: 'image references (nginx, ghcr.io/org/app:1.2, docker://…, oci:DIR:REF)',
          })
          .option('file', IMAGE_LIST_OPTION)
          .option('store', { type: 'string', describe: `OCI layout to pull into (default $FERRY_STORE or ${DEFAULT_STORE})` })
          .option('platform', PLATFORM_OPTION)
          .option('shard', SHARD_OPTION)
          .option('concurrency', { type: 'number', default: DEFAULT_CONCURRENCY, describe: 'blobs transferred at once' })
          .option('json', { type: 'boolean', describe: 'machine-readable events and final report on stdout' })
          .example('$0 pull nginx:1.27 ghcr.io/org/app:2.1', 'pull two images into ./ferry-store')
          .example('$0 pull -p profiles/site-a.yaml', 'every image a profile selects (tag filters applied)')
          .example('$0 pull --lock site-a.lock.json', 'exactly the digests a plan pinned')
          .example('$0 pull -f images.txt --platform linux/amd64 --store /media/usb/store', 'one platform from a list'),
      ) as unknown as Argv<PullArgs>,
    async (args) => {
      process.exitCode = await runPull(args);
    },
  );
}

async function runPull(args: PullArgs): Promise<number> {
  const refs = await collectRefs(args.refs, args.file);
  const input = imageSetInput(args, refs, platformsOf(args.platform));
  if (refs.length === 0 && input.profiles.length === 0 && input.lock === undefined)
    throw new UsageError('nothing to pull: give image references, -f LIST, -p PROFILE or --lock LOCK');
  const concurrency = checkConcurrency(args.concurrency);
  const shard = shardOf(args.shard);
  const platforms = input.platforms ?? [];
  const access = await registryAccess(args, (args.file ?? []).some(isStdin));
  const store = args.store ?? process.env.FERRY_STORE ?? DEFAULT_STORE;
  const mode = outputMode(!!args.json);
  const set = await resolveImageSet(input, { ...access, concurrency });
  const view = await createView(mode);
  const report = await interruptible(
    (signal) =>
      pull({
        refs,
        ...(set.images ? { images: set.images } : {}),
        setFailures: set.failures,
        // A profile or lock run is all or nothing unless --keep-going; a plain list keeps going.
        allOrNothing: set.images !== undefined && !args['keep-going'],
        store,
        platforms,
        concurrency,
        ...access,
        signal,
        onEvent: (e) => view.onEvent(e),
        ...(shard ? { shard } : {}),
      }),
    () => view.finish(),
  );
  const failuresFile =
    args['keep-going'] && report.failures.length > 0 ? await writeFailuresFile(store, 'pull', report.failures, set.origin) : undefined;
  const done = report.images.filter((i) => i.status === 'done');
  if (mode === 'json') {
    jsonLine({ type: 'report', ...report, ...(failuresFile ? { failuresFile } : {}) });
  } else {
    const b = report.blobs;
    for (const i of done) {
      if (i.originalDigest) {
        writeErr(
          `note: ${i.name} stored as ${i.digest} (index rewritten for ${i.platforms.join(', ')}); the published index is ${i.originalDigest}\n`,
        );
      }
    }
    // Each cause once, naming every image it affects, with what to do about it.
    for (const line of formatFailures(report.failures)) writeErr(line);
    if (failuresFile) writeErr(`failures listed in ${failuresFile}\n`);
    if (report.stopped) {
      writeErr(`${stoppedMessage(report.failures.length, 'pulled')}\n`);
      return 1;
    }
    // The outcome is the result (stdout); failures and notes are diagnostics (stderr).
    writeOut(
      `Pulled ${done.length} of ${done.length + report.failures.length} images into ${report.store}: ` +
        `${b.fetched} blobs fetched (${formatBytes(b.bytesFetched)}), ${b.skipped} already present (${formatBytes(b.bytesSkipped)})` +
        `${b.failed ? `, ${b.failed} failed` : ''} in ${formatDuration(report.durationMs)} (${formatRate(b.bytesFetched, report.durationMs)})\n`,
    );
  }
  if (report.failures.length === 0) return 0;
  return onlyIntegrityFailures(report.failures) ? 3 : 1;
}
