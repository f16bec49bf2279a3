/**
 * The `zstd` CLI the writer compresses with (streaming, output capped). Restoring zstd members
 * is zstd/restore.ts's, which needs no CLI. A bundle's head (ferry-bundle.json and its
 * signature) has one reader, verify's Checker, which inspect, verify, load and serve share.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { zstdCliAvailable } from '../zstd/restore.js';
import type { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError } from '../util/errors.js';

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
