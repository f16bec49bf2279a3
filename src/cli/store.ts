/** `ferry store <subcommand>`: flags → the cores in commands/store.ts → tables, JSON and exit status. */
import type { Argv } from 'yargs';
import {
  gcStore,
  openStore,
  storeDf,
  storeDir,
  storeHistory,
  storeInspect,
  storeLs,
  storeRm,
  storeTag,
  verifyOk,
  verifyStore,
  type StoreTotals,
} from '../commands/store.js';
import { DEFAULT_STORE } from '../commands/pull.js';
import { UsageError } from '../util/errors.js';
import { formatBytes, shortDigest } from './format.js';
import { PLATFORM_OPTION, platformsOf } from './options.js';
import { jsonLine } from './progress.js';
import { writeErr, writeOut } from './terminal.js';

interface StoreArgs {
  store?: string;
  json?: boolean;
}
interface LsArgs extends StoreArgs {
  pattern?: string;
  digests?: boolean;
  'no-trunc'?: boolean;
  quiet?: boolean;
}
interface RefArgs extends StoreArgs {
  ref: string;
  platform?: string[];
  'no-trunc'?: boolean;
}
interface TagArgs extends StoreArgs {
  src: string;
  name: string;
  force?: boolean;
}
interface RmArgs extends StoreArgs {
  refs: string[];
}
interface GcArgs extends StoreArgs {
  'dry-run'?: boolean;
  wait: number;
}

/** Columns padded to their widest cell; the last is not padded. */
function table(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  const lines = rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd(),
  );
  return `${lines.join('\n')}\n`;
}

const addedText = (iso: string | undefined): string => (iso ? iso.replace('T', ' ').slice(0, 16) : '-');

function totalsLine(t: StoreTotals): string {
  return (
    `${t.images} image${t.images === 1 ? '' : 's'}, ${t.blobs} blobs, ${formatBytes(t.bytes)}; ` +
    `reclaimable ${formatBytes(t.reclaimable + t.tempBytes)} (${t.reclaimableBlobs} blobs no name reaches` +
    `${t.temps ? `, ${t.temps} temp files of dead writers` : ''}: ferry store gc)\n`
  );
}

const storeOption = { type: 'string', describe: `the store (default $FERRY_STORE or ${DEFAULT_STORE})` } as const;

export function storeCommand<T>(y: Argv<T>): Argv<T> {
  return y.command(
    'store',
    'Manage the store: list, inspect, tag, remove names, collect garbage, size and verify it',
    (cmd) =>
      cmd
        .option('store', storeOption)
        .option('json', { type: 'boolean', describe: 'machine-readable result on stdout' })
        .command<LsArgs>(
          'ls [pattern]',
          'List the named images: digest, platforms, layers, size, bytes unique to each, when added',
          (c) =>
            c
              .positional('pattern', {
                type: 'string',
                describe:
                  'only names matching this glob: * is any run of characters (/ and : too), ? one; tried on the full and the short name',
              })
              .option('digests', { type: 'boolean', describe: 'show full digests' })
              .option('no-trunc', { type: 'boolean', describe: 'do not shorten digests or platform lists' })
              .option('quiet', { alias: 'q', type: 'boolean', describe: 'names only' })
              .example('$0 store ls', 'every image in ./ferry-store')
              .example("$0 store ls 'nginx:*' --store /media/usb/store", 'every nginx tag') as unknown as Argv<LsArgs>,
          async (args) => {
            process.exitCode = await runLs(args);
          },
        )
        .command<RefArgs>(
          'inspect <ref>',
          'Show an image: manifest, config (env, entrypoint, cmd, labels, created, platform), per platform of an index',
          (c) =>
            c.positional('ref', { type: 'string', demandOption: true, describe: 'name or manifest digest' }) as unknown as Argv<RefArgs>,
          async (args) => {
            const r = await storeInspect(storeDir(args.store), args.ref);
            writeOut(`${JSON.stringify(r, null, 2)}\n`);
          },
        )
        .command<RefArgs>(
          'history <ref>',
          "Show the steps that built an image (its config's history) with each layer's size, newest first",
          (c) =>
            c
              .positional('ref', { type: 'string', demandOption: true, describe: 'name or manifest digest' })
              .option('platform', PLATFORM_OPTION)
              .option('no-trunc', { type: 'boolean', describe: 'do not shorten CREATED BY' }) as unknown as Argv<RefArgs>,
          async (args) => {
            const r = await storeHistory(storeDir(args.store), args.ref, platformsOf(args.platform) ?? []);
            if (args.json) {
              jsonLine({ type: 'store-history', ...r });
              return;
            }
            for (const [i, img] of r.images.entries()) {
              if (r.images.length > 1) writeOut(`${i > 0 ? '\n' : ''}${img.platform ?? img.digest}:\n`);
              const rows = [['CREATED', 'CREATED BY', 'SIZE', 'COMMENT']];
              for (const h of img.rows) {
                const by = h.createdBy.replace(/\s+/g, ' ');
                rows.push([
                  addedText(h.created),
                  args['no-trunc'] || by.length <= 60 ? by : `${by.slice(0, 59)}…`,
                  h.size === undefined ? '?' : formatBytes(h.size),
                  h.comment ?? '',
                ]);
              }
              writeOut(table(rows));
            }
          },
        )
        .command<TagArgs>(
          'tag <src> <name>',
          'Give a stored image another name (normalised as pull names images)',
          (c) =>
            c
              .positional('src', { type: 'string', demandOption: true, describe: 'name or manifest digest of a stored image' })
              .positional('name', { type: 'string', demandOption: true, describe: 'the new name' })
              .option('force', { type: 'boolean', describe: 'move the name if it names another image' }) as unknown as Argv<TagArgs>,
          async (args) => {
            const r = await storeTag(storeDir(args.store), args.src, args.name, { force: !!args.force });
            if (args.json) jsonLine({ type: 'store-tag', ...r });
            else if (!r.changed) writeOut(`${r.name} already names ${r.digest}\n`);
            else writeOut(`Tagged ${r.digest} as ${r.name}${r.replaced ? ` (it named ${r.replaced})` : ''}\n`);
          },
        )
        .command<RmArgs>(
          'rm <refs..>',
          'Remove names (never blobs: ferry store gc frees what no name reaches). REF: name, digest or glob (* and ?)',
          (c) =>
            c.positional('refs', {
              type: 'string',
              array: true,
              demandOption: true,
              describe: 'names, digests or patterns',
            }) as unknown as Argv<RmArgs>,
          async (args) => {
            const r = await storeRm(storeDir(args.store), args.refs);
            if (args.json) jsonLine({ type: 'store-rm', ...r });
            else {
              for (const x of r.removed) writeOut(`Removed ${x.name ?? '<none>'} (${x.digest})\n`);
              writeErr('blobs are kept until ferry store gc\n');
            }
          },
        )
        .command<GcArgs>(
          'gc',
          'Remove blobs no name reaches and temp files of dead writers; report the bytes freed',
          (c) =>
            c.option('dry-run', { type: 'boolean', describe: 'list what would be removed; remove nothing' }).option('wait', {
              type: 'number',
              default: 0,
              describe: 'seconds to wait for running pulls, loads and copies into the store (default: fail at once)',
            }) as unknown as Argv<GcArgs>,
          async (args) => {
            if (!Number.isFinite(args.wait) || args.wait < 0) throw new UsageError('--wait takes a number of seconds');
            const r = await gcStore(await openStore(storeDir(args.store)), { dryRun: !!args['dry-run'], waitMs: args.wait * 1000 });
            if (args.json) {
              jsonLine({ type: 'store-gc', ...r });
              return;
            }
            if (r.dryRun) {
              for (const b of r.blobs) writeOut(`would remove ${b.digest} (${formatBytes(b.size)})\n`);
              for (const t of r.temps) writeOut(`would remove ${t.file} (${formatBytes(t.size)})\n`);
            }
            writeOut(
              `${r.dryRun ? 'Would remove' : 'Removed'} ${r.blobs.length} blobs and ${r.temps.length} temp files: ` +
                `${formatBytes(r.bytesFreed)} ${r.dryRun ? 'to free' : 'freed'}; ${r.kept} blobs kept\n`,
            );
          },
        )
        .command<StoreArgs>(
          'df',
          'Show the store: names, blobs, bytes, and what gc can reclaim',
          (c) => c,
          async (args) => {
            const r = await storeDf(storeDir(args.store));
            if (args.json) {
              jsonLine({ type: 'store-df', ...r });
              return;
            }
            const t = r.totals;
            writeOut(
              table([
                ['TYPE', 'TOTAL', 'SIZE', 'RECLAIMABLE'],
                ['Images', String(t.images), '-', '-'],
                ['Blobs', String(t.blobs), formatBytes(t.bytes), `${formatBytes(t.reclaimable)} (${t.reclaimableBlobs} blobs)`],
                ['Temp files', String(t.temps), formatBytes(t.tempBytes), formatBytes(t.tempBytes)],
              ]),
            );
          },
        )
        .command<StoreArgs>(
          'verify',
          'Rehash every blob; exit 3 listing damaged blobs (and the names reaching them) and names whose blobs are missing',
          (c) => c,
          async (args) => {
            const r = await verifyStore(await openStore(storeDir(args.store)));
            const ok = verifyOk(r);
            if (args.json) jsonLine({ type: 'store-verify', ok, ...r });
            else {
              for (const d of r.damaged)
                writeOut(`damaged: ${d.digest}: ${d.problem}${d.names.length ? `; reached by ${d.names.join(', ')}` : ''}\n`);
              for (const m of r.missing) writeOut(`missing: ${m.name}: ${m.digests.join(', ')}\n`);
              for (const u of r.unreadable) writeOut(`unreadable: ${u.name}: ${u.digest}: ${u.message}\n`);
              writeOut(
                ok
                  ? `OK: ${r.blobs} blobs (${formatBytes(r.bytes)}) verified\n`
                  : `FAILED: ${r.damaged.length} damaged blobs, ${r.missing.length} names with missing blobs, ${r.unreadable.length} unreadable manifests\n`,
              );
            }
            process.exitCode = ok ? 0 : 3;
          },
        )
        .demandCommand(1, 'name a store subcommand: ls, inspect, history, tag, rm, gc, df, verify'),
    () => {},
  );
}

async function runLs(args: LsArgs): Promise<number> {
  const r = await storeLs(storeDir(args.store), args.pattern);
  if (args.json) {
    jsonLine({ type: 'store-ls', ...r });
    return 0;
  }
  if (args.quiet) {
    for (const i of r.images) writeOut(`${i.name ?? i.digest}\n`);
    return 0;
  }
  const full = !!args['no-trunc'];
  const rows = [['NAME', 'DIGEST', 'PLATFORMS', 'LAYERS', 'SIZE', 'UNIQUE', 'ADDED']];
  for (const i of r.images) {
    const platforms =
      full || i.platforms.length <= 2 ? i.platforms.join(',') : `${i.platforms.slice(0, 2).join(',')} +${i.platforms.length - 2}`;
    rows.push([
      i.name ?? '<none>',
      full || args.digests ? i.digest : shortDigest(i.digest),
      platforms || '-',
      String(i.layers),
      formatBytes(i.size) + (i.missing ? ` (${i.missing} missing)` : ''),
      formatBytes(i.unique),
      addedText(i.added),
    ]);
  }
  writeOut(table(rows));
  writeOut(totalsLine(r.totals));
  return 0;
}
