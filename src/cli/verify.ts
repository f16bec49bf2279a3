/**
 * `ferry verify FILE`: exit 0 when the bundle is intact (and signed, when asked), 3 when not.
 * zstd members are restored in-process when no zstd command is on PATH: nothing is left unchecked.
 */
import type { BundleManifest } from '../bundle/format.js';
import { safeField } from './terminal.js';
import { writeOut } from './terminal.js';
import { STDIN_PATH, isStdin } from '../util/fsutil.js';
import type { Argv } from 'yargs';
import { verifyBundle } from '../bundle/verify.js';
import { UsageError } from '../util/errors.js';
import { refuseDockerSave } from '../transports/table.js';
import { formatBytes } from './format.js';
import { jsonLine } from './progress.js';
import { requireBundleFile } from './options.js';

export interface VerifyArgs {
  file: string;
  key?: string;
  requireSignature?: boolean;
  json?: boolean;
  /** Tests: no output. */
  quiet?: boolean;
}

export function verifyCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<VerifyArgs>(
    'verify <file>',
    'Check a bundle: tar safety, every member hash, every blob digest, image completeness, signature',
    (cmd) =>
      cmd
        .positional('file', { type: 'string', demandOption: true, describe: 'bundle file (- or a FIFO: read as a stream)' })
        .option('key', { type: 'string', describe: 'public key (PEM, ECDSA P-256 or Ed25519) the signature must verify with' })
        .option('require-signature', { type: 'boolean', describe: 'an unsigned bundle is a failure' })
        .option('json', { type: 'boolean', describe: 'machine-readable result on stdout' })
        .example('$0 verify images.ferry --key pub.pem --require-signature', 'check content and signature') as unknown as Argv<VerifyArgs>,
    async (args) => {
      process.exitCode = await runVerify(args);
    },
  );
}

export async function runVerify(args: VerifyArgs): Promise<number> {
  if (args.requireSignature && args.key === undefined) {
    throw new UsageError('--require-signature needs --key to check the signature with');
  }
  if (!isStdin(args.file))
    await requireBundleFile(args.file, `ferry verify checks bundle files; ferry inspect oci:${args.file} lists an OCI layout`);
  if (!isStdin(args.file)) await refuseDockerSave(args.file, 'verify');
  const file = isStdin(args.file) ? STDIN_PATH : args.file;
  const label = isStdin(args.file) ? '-' : args.file;
  const r = await verifyBundle(file, {
    ...(args.key !== undefined ? { key: args.key } : {}),
    ...(args.requireSignature ? { requireSignature: true } : {}),
  });
  if (!args.quiet) {
    if (args.json) {
      jsonLine({
        type: 'verify',
        file: label,
        ok: r.ok,
        signature: r.signature,
        problems: r.problems,
        totals: r.manifest?.totals,
        images: r.manifest?.images.map((i) => ({ ref: i.ref, digest: i.digest })),
        ...(r.manifest?.base ? { base: r.manifest.base } : {}),
        ...(r.manifest?.volume ? { volume: r.manifest.volume } : {}),
      });
    } else {
      // The verdict and its problems are the result (stdout: `ferry verify b.ferry > report.txt`);
      // hints about this machine are diagnostics (stderr).
      for (const p of r.problems) writeOut(`problem: ${p.code}: ${p.message}\n`);
      if (r.ok) {
        const t = r.manifest!.totals;
        writeOut(
          `${label}: OK: ${t.images} images, ${t.blobs} blobs (${formatBytes(t.uniqueBytes)}), ` +
            `signature ${r.signature === 'valid' ? 'valid' : r.signature === 'present' ? 'present (not checked: no --key)' : 'none'}\n`,
        );
        const base = r.manifest!.base;
        if (base) {
          // A differential bundle passes on its own; what it expects at the destination is listed.
          const bytes = base.blobs.reduce((n, b) => n + b.size, 0);
          writeOut(`${describeBase(base)}; expects at the destination ${base.blobs.length} blobs (${formatBytes(bytes)}):\n`);
          for (const b of base.blobs) writeOut(`  ${b.digest}  ${formatBytes(b.size)}\n`);
        }
        const away = r.manifest!.volume?.spanBlobs ?? [];
        if (away.length > 0) {
          // A volume of a span passes on what it carries; the rest of its image is in the other volumes.
          const v = r.manifest!.volume!;
          writeOut(`volume ${v.number} of a span of set ${v.setId}; expects from the other volumes ${away.length} layers:\n`);
          for (const b of away) writeOut(`  ${b.digest}  ${formatBytes(b.size)}  in volume ${b.volume}\n`);
        }
      } else {
        writeOut(`${label}: FAILED: ${r.problems.length} problem${r.problems.length === 1 ? '' : 's'}\n`);
      }
    }
  }
  return verifyExitCode(r.problems);
}

/** "differential against inventory sha256:… of docker://reg/site (confirmed by the far side)". */
export function describeBase(base: NonNullable<BundleManifest['base']>): string {
  const of = base.location ? ` of ${safeField(base.location)}` : '';
  const how = base.confirmed
    ? 'confirmed by the far side'
    : 'assumed: the sender built it on a previous bundle, not on what the far side reported';
  return `differential against ${base.kind} ${base.digest}${of} (${how})`;
}

/** Every problem verify reports is about the bundle: exit 3 (integrity). */
export function verifyExitCode(problems: ReadonlyArray<{ code: string }>): number {
  return problems.length === 0 ? 0 : 3;
}
