/**
 * Reading members' bytes for the checker: hashing a member's stored bytes in one pass (and
 * restoring a zstd member through `zstd -d` in the same pass, capped at its declared size), and
 * reading a small member whole under a cap.
 */
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import type { Readable, Writable } from 'node:stream';
import type { BundleMember } from '../format.js';
import { spawnZstd, zstdAvailable } from '../reader.js';

/** What hashing one member found. */
export interface Hashed {
  sha256: string;
  bytes: number;
  kept?: Buffer;
  /** zstd members: restored content. */
  restored?: { sha256: string; bytes: number } | { error: string; code: string };
}

export async function readCapped(body: Readable, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > cap) throw new Error(`over the ${cap}-byte limit`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Resolves once `stdin` can take more, or zstd is gone (its stdin closed or errored, or it exited). */
function writable(stdin: Writable, child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stdin.off('drain', done);
      stdin.off('close', done);
      stdin.off('error', done);
      child.off('exit', done);
      resolve();
    };
    stdin.once('drain', done);
    stdin.once('close', done);
    stdin.once('error', done);
    child.once('exit', done);
  });
}

/**
 * Hash a member's stored bytes from `body`; keep them if asked; restore zstd members.
 *
 * One pass over `body`: every chunk is hashed, and (zstd members) written to `zstd -d` while
 * zstd is alive. When zstd stops early (a damaged frame, more output than declared), hashing
 * goes on to the member's end, so the stored hash and the restore result are both reported.
 * Only a failure of `body` itself (a truncated tar) rejects.
 */
export async function hashStream(body: Readable, m: BundleMember, keep: boolean): Promise<Hashed> {
  const h = createHash('sha256');
  let bytes = 0;
  const kept: Buffer[] = [];
  const take = (c: Buffer): void => {
    h.update(c);
    bytes += c.length;
    if (keep) kept.push(c);
  };
  const done = (restored?: Hashed['restored']): Hashed => ({
    sha256: h.digest('hex'),
    bytes,
    ...(keep ? { kept: Buffer.concat(kept) } : {}),
    ...(restored ? { restored } : {}),
  });
  if (m.storage !== 'zstd' || !zstdAvailable()) {
    for await (const c of body as AsyncIterable<Buffer>) take(c);
    return done();
  }
  const cap = m.uncompressedSize ?? 0;
  const { child, stderr, exited } = spawnZstd(['-d', '-q', '-c', '--no-progress', '-']);
  let alive = true;
  const status = exited.then(
    (r) => r,
    (err: unknown) => ({ code: -1 as number | null, signal: null as NodeJS.Signals | null, err }),
  );
  void status.then(() => (alive = false));
  child.stdin.on('error', () => (alive = false)); // EPIPE once zstd stops reading
  const rh = createHash('sha256');
  let rbytes = 0;
  let oversize = false;
  const drained = (async () => {
    try {
      for await (const c of child.stdout as AsyncIterable<Buffer>) {
        rbytes += c.length;
        if (rbytes > cap) {
          oversize = true;
          alive = false;
          child.kill('SIGKILL');
          break;
        }
        rh.update(c);
      }
    } catch {
      // zstd killed or gone: its exit status says why.
    }
  })();
  try {
    for await (const c of body as AsyncIterable<Buffer>) {
      take(c);
      if (alive && !child.stdin.destroyed && !child.stdin.write(c)) await writable(child.stdin, child);
    }
  } catch (err) {
    child.kill('SIGKILL');
    await drained;
    await status;
    throw err;
  }
  if (alive && !child.stdin.destroyed) child.stdin.end();
  await drained;
  const { code, signal } = await status;
  if (oversize) return done({ code: 'ZSTD_OVERSIZE', error: `restores to more than the declared ${cap} bytes` });
  if (code !== 0) {
    const why = stderr().trim();
    return done({
      code: 'ZSTD_INVALID',
      error: `zstd -d failed (${signal ?? `exit ${code}`})${why ? `: ${why}` : ''}: not a valid zstd frame`,
    });
  }
  return done({ sha256: rh.digest('hex'), bytes: rbytes });
}
