/** `ferry inspect FILE|oci:DIR`: what a bundle or store holds, from its manifest. */
import { describeBase } from './verify.js';
import { safeField, writeErr, writeOut } from './terminal.js';
import type { Argv } from 'yargs';
import { inspect } from '../bundle/inspect.js';
import { formatBytes } from './format.js';
import { jsonLine } from './progress.js';
import { requireBundleFile } from './options.js';
import { isStdin } from '../util/fsutil.js';
import { spanRange } from '../bundle/volume-files.js';

export interface InspectArgs {
  source: string;
  key?: string;
  json?: boolean;
}

export function inspectCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<InspectArgs>(
    'inspect <source>',
    'Show the images, platforms and sizes in a bundle (or an oci:DIR store); does not verify content',
    (cmd) =>
      cmd
        .positional('source', { type: 'string', demandOption: true, describe: 'bundle file or oci:DIR' })
        .option('key', { type: 'string', describe: 'public key (PEM) to check the signature with' })
        .option('json', { type: 'boolean', describe: 'machine-readable output on stdout' }) as unknown as Argv<InspectArgs>,
    async (args) => {
      process.exitCode = await runInspect(args);
    },
  );
}

export async function runInspect(args: InspectArgs): Promise<number> {
  if (!args.source.startsWith('oci:') && !isStdin(args.source)) await requireBundleFile(args.source);
  const r = await inspect(args.source, args.key !== undefined ? { key: args.key } : {});
  // With --key, a signature that is not valid (wrong key, forged, absent) is an integrity
  // failure; so is any problem in what was read (verify and load would refuse the bundle).
  const badSignature = args.key !== undefined && r.kind === 'bundle' && r.signature !== 'valid';
  const code = badSignature || r.problems.length > 0 ? 3 : 0;
  if (args.json) {
    jsonLine({ type: 'inspect', ...r });
    return code;
  }
  const lines: string[] = [];
  lines.push(
    `${r.source}: ${r.kind === 'bundle' ? `ferry bundle format ${r.format}, written by ${safeField(`${r.tool.name} ${r.tool.version}`)} at ${safeField(r.created ?? '')}` : 'OCI image layout'}`,
  );
  if (r.base) {
    const bytes = r.base.blobs.reduce((n, b) => n + b.size, 0);
    lines.push(`${describeBase(r.base)}; relies on the destination holding ${r.base.blobs.length} blobs (${formatBytes(bytes)})`);
  }
  if (r.volume) {
    const v = r.volume;
    lines.push(`volume ${v.number} of ${v.count} of set ${v.setId}`);
    // The other volumes' images: what is still needed, volume by volume, for the whole set.
    for (const other of v.images) {
      if (other.volume === v.number) continue;
      lines.push(`  volume ${other.volume} holds: ${other.refs.map((ref) => safeField(ref)).join(', ') || '-'}`);
    }
    for (const sp of v.spans ?? []) lines.push(`image ${safeField(sp.ref)} spans volumes ${spanRange(sp.volumes)}: load them together`);
    const away = v.spanBlobs ?? [];
    if (away.length > 0) {
      const from = [...new Set(away.map((b) => b.volume))].sort((a, b) => a - b);
      const bytes = away.reduce((n, b) => n + b.size, 0);
      lines.push(
        `this volume needs ${away.length} layers (${formatBytes(bytes)}) from volume${from.length === 1 ? '' : 's'} ${from.join(', ')}`,
      );
    }
  }
  if (r.imageSet) {
    const profiles = r.imageSet.profiles.map((p) => `${safeField(p.name)} (${p.digest.slice(0, 19)})`).join(', ');
    lines.push(`planned from: ${profiles || 'a lock file'}${r.imageSet.lock ? `; lock ${r.imageSet.lock.digest}` : ''}`);
  }
  // Names and platforms come from the bundle: one line each, whatever they hold.
  const refs = r.images.map((i) => safeField(i.ref));
  const w = refs.reduce((m, ref) => Math.max(m, ref.length), 5);
  lines.push(`${'IMAGE'.padEnd(w)}  ${'DIGEST'.padEnd(19)}  ${'SIZE'.padStart(10)}  PLATFORMS`);
  for (const [n, i] of r.images.entries()) {
    lines.push(
      `${refs[n]!.padEnd(w)}  ${i.digest.slice(0, 19)}  ${formatBytes(i.totalSize).padStart(10)}  ${safeField(i.platforms.join(', ')) || '-'}`,
    );
  }
  lines.push(
    `${r.images.length} images, ${r.blobs} unique blobs: ${formatBytes(r.referencedBytes)} referenced, ${formatBytes(r.uniqueBytes)} unique, ` +
      `${formatBytes(r.storedBytes)} stored; signature: ${r.signature}${r.signature === 'present' ? ' (not checked)' : ''}`,
  );
  if (r.kind === 'bundle') {
    lines.push(r.notChecked.length > 0 ? `not checked: ${r.notChecked.join('; ')}` : 'checked: everything (read as a stream)');
  }
  writeOut(`${lines.join('\n')}\n`);
  for (const w of r.warnings ?? []) writeErr(`warning: ${safeField(w)}\n`);
  if (badSignature)
    writeErr(`${safeField(r.source)}: signature ${r.signature === 'none' ? 'missing' : 'invalid'} for key ${safeField(args.key ?? '')}\n`);
  if (r.problems.length > 0) {
    const shown = r.problems.slice(0, 10).map((p) => `  ${p.code}: ${safeField(p.message)}\n`);
    writeErr(
      `${safeField(r.source)}: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}; verify and load refuse this bundle:\n${shown.join('')}` +
        `${r.problems.length > 10 ? '  …\n' : ''}`,
    );
  }
  return code;
}
