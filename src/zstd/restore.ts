/**
 * The one way ferry restores a bundle's zstd member, wherever it reads one (verify, load,
 * serve). Whatever decodes, the input first passes FrameScanner (frame.ts): exactly one zstd
 * frame within the limits, nothing after it, so gzip, xz or lz4 posing as zstd is refused
 * instead of being decoded by a tool that detects formats by itself. Output is counted against
 * the size the bundle declares: the restore fails as soon as it would exceed it, and when it
 * ends short.
 *
 * The decoder: the `zstd` CLI when it is on PATH (about 4x faster than JavaScript on large
 * layers; see docs/benchmarks.md), else fzstd in-process (decode.ts), so the far side needs
 * nothing but ferry. FERRY_ZSTD=js or FERRY_ZSTD=cli chooses explicitly (tests, benchmarks).
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { zstdRestore } from './decode.js';
import { DEFAULT_MAX_WINDOW_BYTES, FrameScanner, ZstdFormatError } from './frame.js';

export interface RestoreOptions {
  /** The exact number of bytes the member must restore to. */
  expectedSize: number;
  /** For messages: "member ferry/zstd/sha256/….zst". */
  what: string;
}

let cliWorks: boolean | undefined;

/** True when a working `zstd` CLI is on PATH (checked once per process). */
export function zstdCliAvailable(): boolean {
  if (cliWorks === undefined) cliWorks = spawnSync('zstd', ['--version'], { stdio: 'ignore' }).status === 0;
  return cliWorks;
}

/** Which decoder a restore uses now. */
export function zstdEngine(env: NodeJS.ProcessEnv = process.env): 'cli' | 'js' {
  if (env.FERRY_ZSTD === 'js') return 'js';
  if (env.FERRY_ZSTD === 'cli') return 'cli';
  return zstdCliAvailable() ? 'cli' : 'js';
}

/** A pipeline stage: a zstd member in, its restored bytes out (checked as described above). */
export function restoreZstd(opts: RestoreOptions): (source: AsyncIterable<Uint8Array>) => AsyncGenerator<Buffer> {
  return zstdEngine() === 'js' ? zstdRestore(opts) : restoreWithCli(opts);
}

/** Through `zstd -d`, fed only what FrameScanner passed. */
function restoreWithCli(opts: RestoreOptions): (source: AsyncIterable<Uint8Array>) => AsyncGenerator<Buffer> {
  return async function* restore(source) {
    const scanner = new FrameScanner({ ...opts, maxWindowBytes: DEFAULT_MAX_WINDOW_BYTES });
    // --memory: zstd refuses a frame needing more memory than the window limit (the scanner already did).
    const memoryMiB = Math.ceil(DEFAULT_MAX_WINDOW_BYTES / (1024 * 1024)) + 1;
    const child = spawn('zstd', ['-d', '-c', '-q', '--no-progress', `--memory=${memoryMiB}MB`], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      child.once('error', (error) => resolve({ code: null, signal: null, error }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    // EPIPE when zstd stops reading early: its exit status, or the scanner, says why.
    child.stdin.on('error', () => {});
    let feedError: unknown;
    const feeding = (async () => {
      try {
        for await (const chunk of source) {
          for (const piece of scanner.feed(chunk)) {
            if (!child.stdin.write(piece.bytes)) await Promise.race([once(child.stdin, 'drain'), exited]);
            if (child.stdin.destroyed) return;
          }
        }
        scanner.end();
        child.stdin.end();
      } catch (err) {
        feedError = err;
        child.kill('SIGKILL');
      }
    })();
    let restored = 0;
    try {
      for await (const c of child.stdout as AsyncIterable<Buffer>) {
        restored += c.length;
        if (restored > opts.expectedSize) {
          throw new ZstdFormatError(
            'ZSTD_OVERSIZE',
            `${opts.what}: zstd frame restores to more than the declared ${opts.expectedSize} bytes`,
          );
        }
        yield c;
      }
      await feeding;
      if (feedError !== undefined) throw feedError;
      const r = await exited;
      if (r.error) throw new ZstdFormatError('ZSTD_INVALID', `${opts.what}: cannot run zstd (${r.error.message})`, { cause: r.error });
      if (r.code !== 0) {
        const why = stderr.trim();
        throw new ZstdFormatError(
          'ZSTD_INVALID',
          `${opts.what}: corrupt zstd data (zstd -d: ${r.signal ?? `exit ${r.code}`}${why ? `: ${why}` : ''})`,
        );
      }
      if (restored !== opts.expectedSize) {
        throw new ZstdFormatError(
          'ZSTD_SHORT',
          `${opts.what}: zstd frame restores to ${restored} bytes, the bundle declares ${opts.expectedSize}`,
        );
      }
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      child.stdin.destroy();
      await feeding;
    }
  };
}
