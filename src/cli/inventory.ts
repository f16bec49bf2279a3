/** `ferry inventory LOCATION -o FILE`: flags → options → inventory(); the summary or a JSON report line. */
import type { Argv } from 'yargs';
import { inventory, parseInventoryLocation } from '../commands/inventory.js';
import { DEFAULT_CONCURRENCY } from '../commands/registry-access.js';
import { UsageError } from '../util/errors.js';
import { isStdin } from '../util/fsutil.js';
import { formatBytes, formatDuration } from './format.js';
import { interruptible } from './interrupt.js';
import { ctrCommand } from './load.js';
import { checkConcurrency, registryAccess, registryFlags, type RegistryFlags } from './options.js';
import { jsonLine } from './progress.js';
import { writeOut } from './terminal.js';

interface InventoryArgs extends RegistryFlags {
  location: string;
  output: string;
  'sign-key'?: string;
  concurrency: number;
  ctr?: string;
  json?: boolean;
}

export function inventoryCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<InventoryArgs>(
    'inventory <location>',
    'Write what a destination holds (names, digests, blobs) to a file, for a bundle that carries only what is missing',
    (cmd) =>
      registryFlags(
        cmd
          .positional('location', {
            type: 'string',
            demandOption: true,
            describe: 'oci:DIR | docker://HOST[:PORT][/PREFIX] | docker-daemon[:SOCKET] | containerd[:SOCKET][?namespace=NS]',
          })
          .option('output', { alias: 'o', type: 'string', demandOption: true, describe: 'the inventory file to write (JSON)' })
          .option('sign-key', { type: 'string', describe: 'private key (PEM) to sign the inventory with (writes FILE.sig)' })
          .option('concurrency', {
            type: 'number',
            default: DEFAULT_CONCURRENCY,
            describe: 'requests at once (registry HEADs, file stats)',
          })
          .option('ctr', { type: 'string', describe: 'containerd client command (default ctr; e.g. "k3s ctr")' })
          .option('json', { type: 'boolean', describe: 'a JSON report line on stdout' })
          .example('$0 inventory docker://registry.local:5000/mirror -o site-a.inventory.json', 'what the far-side registry holds')
          .example('$0 inventory containerd --sign-key site-a.pem -o site-a.json', 'containerd (namespace k8s.io), signed'),
      ) as unknown as Argv<InventoryArgs>,
    async (args) => {
      process.exitCode = await runInventory(args);
    },
  );
}

async function runInventory(args: InventoryArgs): Promise<number> {
  const concurrency = checkConcurrency(args.concurrency);
  if (isStdin(args.output)) throw new UsageError('-o takes a file to write, not -', { hint: 'with --json the report line names the file' });
  const kind = parseInventoryLocation(args.location).kind;
  if (args.ctr !== undefined && kind !== 'containerd')
    throw new UsageError(`--ctr is for a containerd location; ${args.location} is not one`);
  const access = await registryAccess(args);
  const ctr = args.ctr === undefined ? undefined : ctrCommand(args.ctr);
  const report = await interruptible((signal) =>
    inventory({
      location: args.location,
      output: args.output,
      ...(args['sign-key'] !== undefined ? { signKey: args['sign-key'] } : {}),
      concurrency,
      ...(ctr ? { ctr } : {}),
      ...access,
      signal,
    }),
  );
  if (args.json) {
    jsonLine({ type: 'report', ...report });
  } else {
    writeOut(
      `Inventory of ${report.location}: ${report.images} images, ${report.blobs} blobs → ${report.output} ` +
        `(${formatBytes(report.bytes)}, ${report.digest})${report.signature ? `, signed (${report.signature})` : ''} ` +
        `in ${formatDuration(report.durationMs)}\n`,
    );
    for (const n of report.notes) writeOut(`  note: ${n}\n`);
  }
  return 0;
}
