/** `ferry plan`: flags → plan(); the plan as a table (or JSON), and the lock file with -o. */
import type { Argv } from 'yargs';
import { DEFAULT_STORE } from '../commands/pull.js';
import { plan, type PlanReport } from '../commands/plan.js';
import { DEFAULT_CONCURRENCY } from '../commands/registry-access.js';
import { UsageError } from '../util/errors.js';
import { readBase } from '../bundle/base.js';
import { isStdin } from '../util/fsutil.js';
import { formatFailures } from './failures.js';
import { formatBytes } from './format.js';
import { imageSetInput } from './image-set.js';
import { interruptible } from './interrupt.js';
import {
  IMAGE_LIST_OPTION,
  PLATFORM_OPTION,
  SHARD_OPTION,
  shardOf,
  checkConcurrency,
  collectRefs,
  imageSetFlags,
  platformsOf,
  registryAccess,
  registryFlags,
  type ImageSetFlags,
  type RegistryFlags,
} from './options.js';
import { jsonLine } from './progress.js';
import { writeErr, writeOut } from './terminal.js';

interface PlanArgs extends RegistryFlags, ImageSetFlags {
  refs?: string[];
  file?: string[];
  store?: string;
  platform?: string[];
  output?: string;
  base?: string;
  baseKey?: string;
  concurrency: number;
  json?: boolean;
  shard?: string;
}

export function planCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<PlanArgs>(
    'plan [refs..]',
    'Resolve what would be carried (tag lists and manifests, no blobs), compare it with the store, and optionally write a lock file',
    (cmd) =>
      registryFlags(
        imageSetFlags(cmd)
          .positional('refs', { type: 'string', array: true, describe: 'image references (as pull takes them)' })
          .option('file', IMAGE_LIST_OPTION)
          .option('store', { type: 'string', describe: `store to compare with, read only (default $FERRY_STORE or ${DEFAULT_STORE})` })
          .option('platform', PLATFORM_OPTION)
          .option('output', { alias: 'o', type: 'string', describe: 'write a lock file: every selected image pinned to its digest' })
          .option('base', {
            type: 'string',
            describe: 'also say what a differential bundle against this base would carry (an inventory, or a previous bundle)',
          })
          .option('base-key', { type: 'string', describe: 'public key the inventory given with --base must be signed with' })
          .option('concurrency', { type: 'number', default: DEFAULT_CONCURRENCY, describe: 'manifests resolved at once' })
          .option('shard', SHARD_OPTION)
          .option('json', { type: 'boolean', describe: 'the plan as one JSON document on stdout' })
          .example('$0 plan -p profiles/site-a.yaml', 'what a profile selects, and what is new since the store')
          .example('$0 plan -p profiles/site-a.yaml -o site-a.lock.json', 'pin it: bundle --lock site-a.lock.json carries exactly this'),
      ) as unknown as Argv<PlanArgs>,
    async (args) => {
      process.exitCode = await runPlan(args);
    },
  );
}

async function runPlan(args: PlanArgs): Promise<number> {
  const refs = await collectRefs(args.refs, args.file);
  const input = imageSetInput(args, refs, platformsOf(args.platform));
  if (refs.length === 0 && input.profiles.length === 0 && input.lock === undefined)
    throw new UsageError('nothing to plan: give -p PROFILE, --lock LOCK, image references or -f LIST');
  if (args.output !== undefined && isStdin(args.output)) throw new UsageError('-o takes a lock file to write, not -');
  const concurrency = checkConcurrency(args.concurrency);
  const shard = shardOf(args.shard);
  if (shard && args.output !== undefined) throw new UsageError('-o writes the lock of the whole plan; leave out --shard');
  const access = await registryAccess(args, (args.file ?? []).some(isStdin));
  const store = args.store ?? process.env.FERRY_STORE ?? DEFAULT_STORE;
  if (args.baseKey !== undefined && args.base === undefined) throw new UsageError('--base-key checks the inventory given with --base');
  const base = args.base !== undefined ? await readBase(args.base, args.baseKey !== undefined ? { key: args.baseKey } : {}) : undefined;
  const report = await interruptible((signal) =>
    plan({
      input,
      store,
      ...(base ? { base } : {}),
      ...(args.output !== undefined ? { lockFile: args.output } : {}),
      ...(args['keep-going'] ? { keepGoing: true } : {}),
      concurrency,
      ...access,
      signal,
      ...(shard ? { shard } : {}),
    }),
  );
  if (args.json) jsonLine({ type: 'report', ...report });
  else printPlan(report, args.output);
  return report.failures.length > 0 ? 1 : 0;
}

function printPlan(r: PlanReport, lockFile: string | undefined): void {
  const from = r.origin?.names.length ? ` of ${r.origin.names.join(', ')}` : '';
  const part = r.shard ? ` (shard ${r.shard.index} of ${r.shard.count})` : '';
  writeOut(`Plan${from}${part}, compared with ${r.store}:\n`);
  for (const i of r.images) {
    const platforms = i.platforms.length ? `  ${i.platforms.join(', ')}` : '';
    const fresh = i.newBytes === 0 ? 'all present' : `${formatBytes(i.newBytes)} new`;
    const far = i.baseNewBytes !== undefined ? `; ${formatBytes(i.baseNewBytes)} beyond the base` : '';
    writeOut(`  ${i.name}  ${i.digest}${platforms}  ${formatBytes(i.size)} (${fresh}${far})\n`);
  }
  const t = r.totals;
  writeOut(
    `${t.images} image${t.images === 1 ? '' : 's'}, ${t.blobs} unique blobs and manifests, ${formatBytes(t.bytes)}; ` +
      `new: ${t.newBlobs} (${formatBytes(t.newBytes)})` +
      `${t.baseNewBytes !== undefined ? `; a differential bundle against the base carries ${formatBytes(t.baseNewBytes)}` : ''}\n`,
  );
  for (const line of formatFailures(r.failures)) writeErr(line);
  if (r.lock) writeOut(`Lock written to ${r.lock.file} (${r.lock.digest})\n`);
  else if (lockFile !== undefined && r.failures.length > 0) {
    writeErr(
      `no lock written: ${r.failures.length} entr${r.failures.length === 1 ? 'y' : 'ies'} failed (--keep-going writes a lock of the rest)\n`,
    );
  }
}
