/**
 * Reading members' bytes for the checker: hashing a member's stored bytes in one pass (and
 * restoring a zstd member (zstd/restore.ts) in the same pass, capped at its declared size), and
 * reading a small member whole under a cap.
 */
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { PassThrough, type Readable } from 'node:stream';
import { errorMessage } from '../../util/errors.js';
import { maxRestoredSize } from '../limits-check.js';
import { restoreZstd } from '../../zstd/restore.js';
import type { BundleMember } from '../format.js';

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

/**
 * Hash a member's stored bytes from `body`; keep them if asked; restore zstd members.
 *
 * One pass over `body`: every chunk is hashed, and (zstd members) fed to the restore while it
 * goes on. When the restore stops early (not one valid frame, more output than declared),
 * hashing goes on to the member's end, so the stored hash and the restore result are both
 * reported.
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
  if (m.storage !== 'zstd') {
    for await (const c of body as AsyncIterable<Buffer>) take(c);
    return done();
  }
  const what = `member ${m.path}`;
  const compressed = new PassThrough({ highWaterMark: 1024 * 1024 });
  const rh = createHash('sha256');
  let rbytes = 0;
  let failure: unknown;
  const restoring = (async () => {
    try {
      // Never more than the stored size makes plausible (limits-check.ts), whatever is declared.
      const expectedSize = Math.min(m.uncompressedSize ?? 0, maxRestoredSize(m.size));
      for await (const c of restoreZstd({ expectedSize, what })(compressed)) {
        rh.update(c);
        rbytes += c.length;
      }
    } catch (err) {
      failure = err;
      compressed.destroy();
    }
  })();
  try {
    for await (const c of body as AsyncIterable<Buffer>) {
      take(c);
      if (failure === undefined && !compressed.destroyed && !compressed.write(c)) {
        await Promise.race([once(compressed, 'drain').catch(() => {}), restoring]);
      }
    }
  } catch (err) {
    compressed.destroy();
    await restoring;
    throw err;
  }
  compressed.end();
  await restoring;
  if (failure === undefined) return done({ sha256: rh.digest('hex'), bytes: rbytes });
  const code = (failure as { code?: unknown }).code;
  // Ending short is a size mismatch the checker words itself.
  if (code === 'ZSTD_SHORT') return done({ sha256: rh.digest('hex'), bytes: rbytes });
  const message = errorMessage(failure);
  return done({
    code: typeof code === 'string' ? code : 'ZSTD_INVALID',
    error: message.startsWith(`${what}: `) ? message.slice(what.length + 2) : message,
  });
}
