/** `ferry copy SRC DST`: flags → options → copy(); drawing, mapping file, exit status (shared with load). */
import type { Argv } from 'yargs';
import { copy } from '../commands/copy.js';
import { interruptible } from './interrupt.js';
import { type CommonArgs, checkEngineNaming, chunkSizeOf, commonFlags, ctrCommand, engineNamingFlags, finish, view } from './load.js';
import { parseDestination } from '../transports/table.js';
import { PLATFORM_OPTION, checkConcurrency, platformsOf, registryAccess, registryFlags } from './options.js';
import { jsonLine } from './progress.js';

interface CopyArgs extends CommonArgs {
  src: string;
  dst: string;
  all?: boolean;
  platform?: string[];
  'dry-run'?: boolean;
  ctr?: string;
}

export function copyCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<CopyArgs>(
    'copy <src> <dst>',
    'Copy an image (or --all images) from any readable location to any writable one',
    (cmd) =>
      registryFlags(
        commonFlags(
          engineNamingFlags(cmd)
            .positional('src', {
              type: 'string',
              demandOption: true,
              describe: 'docker://REF, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] or bundle:FILE[:REF]',
            })
            .positional('dst', {
              type: 'string',
              demandOption: true,
              describe:
                'docker://HOST/REPO[:TAG] (--all: docker://HOST[/PREFIX]), oci:DIR[:REF], docker-daemon[:SOCKET], containerd[:SOCKET]',
            })
            .option('all', { type: 'boolean', describe: 'every image the source holds; the destination is then a place' })
            .option('platform', PLATFORM_OPTION)
            .option('dry-run', { type: 'boolean', describe: 'print the plan (JSON) and write nothing' })
            .option('ctr', { type: 'string', describe: 'containerd client command (default ctr; e.g. "k3s ctr")' })
            .example('$0 copy docker://ghcr.io/org/app:1 oci:./store', 'one image into a layout')
            .example('$0 copy --all bundle:images.ferry docker://registry.local:5000/mirror', 'a whole bundle into a registry'),
        ),
      ) as unknown as Argv<CopyArgs>,
    async (args) => {
      process.exitCode = await runCopy(args);
    },
  );
}

async function runCopy(args: CopyArgs): Promise<number> {
  const concurrency = checkConcurrency(args.concurrency);
  checkEngineNaming({ ...args, to: args.dst }, parseDestination(args.dst, { image: !args.all }).kind);
  const chunkSize = chunkSizeOf(args['chunk-size']);
  const access = await registryAccess(args);
  const ctr = args.ctr === undefined ? undefined : ctrCommand(args.ctr);
  const { mode, view: v } = await view(args);
  const report = await interruptible(
    (signal) =>
      copy({
        source: args.src,
        destination: args.dst,
        ...(args.all ? { all: true } : {}),
        ...(args['dry-run'] ? { dryRun: true } : {}),
        ...(args.scoped ? { scoped: true } : {}),
        ...(args.prefix !== undefined ? { prefix: args.prefix } : {}),
        ...(args.platform?.length ? { platforms: platformsOf(args.platform)! } : {}),
        ...(chunkSize ? { chunkSize } : {}),
        ...(ctr ? { ctr } : {}),
        concurrency,
        ...access,
        signal,
        onEvent: (e) => v.onEvent(e),
      }),
    () => v.finish(),
  );
  if (report.plan) {
    const { plan } = report;
    jsonLine({
      type: 'plan',
      source: report.source,
      destination: report.destination,
      images: plan.images.map((i) => ({ name: i.name, digest: i.root.digest, platforms: i.platforms, totalBytes: i.totalBytes })),
      blobs: plan.blobs.map((b) => ({ digest: b.desc.digest, size: b.desc.size })),
      failures: report.failures,
    });
    return report.failures.length === 0 ? 0 : 1;
  }
  return finish(report, args, mode, 'Copied');
}
