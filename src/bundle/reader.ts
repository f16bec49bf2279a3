/**
 * The reading side of bundles: the bundle head (manifest and signature, from the first members
 * only), and the `zstd` CLI the writer compresses with (streaming, output capped). Restoring
 * zstd members is zstd/restore.ts's, which needs no CLI.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { zstdCliAvailable } from '../zstd/restore.js';
import { createReadStream } from 'node:fs';
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError, IntegrityError } from '../util/errors.js';
import { iterateTar } from '../tar/reader.js';
import { LIMITS, MEMBER, parseBundleManifest, type BundleManifest } from './format.js';

/** True when a working `zstd` CLI is on PATH (the writer compresses with it). */
export const zstdAvailable = zstdCliAvailable;

export class ZstdError extends FerryError {}

/**
 * Run `zstd args` with `input` on stdin and stdout going to `output`. Rejects if zstd fails,
 * if either side fails, or (with outputCap) once stdout would exceed outputCap bytes: then
 * zstd is killed and the error has code ZSTD_OVERSIZE.
 */
export interface ZstdProcess {
  child: ChildProcessWithoutNullStreams;
  /** The first 4 KiB of what zstd wrote to stderr. */
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Start `zstd args` with piped stdio, keeping the start of its stderr for error messages. */
export function spawnZstd(args: string[]): ZstdProcess {
  const child = spawn('zstd', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  return { child, stderr: () => stderr, exited };
}

export async function runZstd(
  args: string[],
  input: Readable,
  output: Writable,
  opts: { outputCap?: number; transforms?: Transform[] } = {},
): Promise<void> {
  const { child, stderr: zstdStderr, exited } = spawnZstd(args);
  let seen = 0;
  const cap = opts.outputCap;
  const counted = async function* (src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of src) {
      seen += chunk.length;
      if (cap !== undefined && seen > cap) {
        throw new ZstdError('ZSTD_OVERSIZE', `zstd frame restores to more than the declared ${cap} bytes`);
      }
      yield chunk;
    }
  };
  // EPIPE on stdin when zstd stops early (bad frame, killed) is reported through its exit status.
  child.stdin.on('error', () => {});
  const feed = pipeline(input, child.stdin).catch((err: unknown) => err as Error);
  const drain = (pipeline as (...s: unknown[]) => Promise<void>)(child.stdout, counted, ...(opts.transforms ?? []), output).catch(
    (err: unknown) => err as Error,
  );
  const drainErr = await drain;
  if (drainErr) child.kill('SIGKILL');
  const feedErr = await feed;
  const { code, signal } = await exited.catch((err: unknown) => ({ code: -1, signal: null, err }));
  if (drainErr) throw drainErr;
  if (code !== 0) {
    const stderr = zstdStderr();
    throw new ZstdError('ZSTD_FAILED', `zstd ${args.join(' ')} failed (${signal ?? `exit ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`);
  }
  if (feedErr) throw feedErr;
}

async function readCapped(body: AsyncIterable<Buffer>, cap: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.length;
    if (n > cap) throw new IntegrityError('JSON_TOO_LARGE', `${what} is over the ${cap}-byte limit`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** The bundle manifest (schema-checked, not content-verified) and signature bytes, reading only the head of the tar. */
export async function readBundleHead(
  file: string,
): Promise<{ manifest: BundleManifest; manifestBytes: Buffer; signature: Buffer | undefined }> {
  let manifestBytes: Buffer | undefined;
  let signature: Buffer | undefined;
  let n = 0;
  for await (const { entry, body } of iterateTar(createReadStream(file))) {
    n++;
    if (entry.rawName === MEMBER.manifest && entry.type === 'file') {
      manifestBytes = await readCapped(body as AsyncIterable<Buffer>, LIMITS.maxJsonBytes, `${file}: ferry-bundle.json`);
    } else if (entry.rawName === MEMBER.signature && entry.type === 'file') {
      signature = await readCapped(body as AsyncIterable<Buffer>, LIMITS.maxSignatureBytes, `${file}: signature`);
    } else if (entry.rawName !== MEMBER.layoutHeader || n > 3) {
      break; // the manifest and signature come right after oci-layout
    }
  }
  if (!manifestBytes) {
    throw new IntegrityError('MANIFEST_MISSING', `${file} is not a ferry bundle (no ferry-bundle.json after oci-layout)`);
  }
  return { manifest: parseBundleManifest(manifestBytes, file), manifestBytes, signature };
}
