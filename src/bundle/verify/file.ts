/**
 * The file driver: verify a bundle that is a regular file. Its headers are indexed first
 * (one 512-byte read per member); then small members are read whole, zstd members restored
 * one at a time, and every other member hashed on a worker pool that reads member ranges by
 * offset. A damaged tar, or input that is not a regular file, goes to the stream driver, which
 * reports everything up to the damage.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { indexTarFile, openTarEntry, type TarEntry } from '../../tar/reader.js';
import { errorMessage, FerryError } from '../../util/errors.js';
import { HashPool } from '../hash-worker.js';
import { BUNDLE_TAR_OPTIONS, newChecker, report } from './checker.js';
import { hashStream, readCapped } from './hash.js';
import type { VerifyOptions, VerifyResult } from './problems.js';
import { verifyBundleStream } from './stream.js';

/**
 * Verify a bundle file. A regular file is indexed by its headers and its members hashed on
 * every core; anything else (a FIFO, /dev/stdin) is read as a stream.
 */
export async function verifyBundle(file: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const st = await stat(file);
  if (opts.deferBlobContent && !st.isFile()) throw new FerryError('NOT_A_FILE', `${file} is not a regular file`);
  if (!st.isFile() || opts.parallel === false) {
    return verifyBundleStream(createReadStream(file, { highWaterMark: 1024 * 1024 }), opts);
  }
  const c = await newChecker(opts, false);
  let entries: TarEntry[];
  try {
    entries = await indexTarFile(file, BUNDLE_TAR_OPTIONS);
  } catch {
    // A damaged tar (or data after it): the sequential reader reports everything up to the
    // damage, then the damage.
    return verifyBundleStream(createReadStream(file, { highWaterMark: 1024 * 1024 }), opts);
  }
  const byName = new Map<string, TarEntry>();
  // Workers are started only when some member is hashed off the main thread.
  let pool: HashPool | undefined;
  try {
    const jobs: Array<Promise<void>> = [];
    let zstdChain: Promise<void> = Promise.resolve();
    for (const e of entries) {
      const a = c.entry(e);
      if (a.kind === 'stop') break;
      if (a.kind === 'buffer') {
        try {
          c.buffered(e, await readCapped(openTarEntry(file, e), a.cap));
        } catch (err) {
          c.problem({ code: 'JSON_TOO_LARGE', member: e.rawName, message: `${e.rawName}: ${errorMessage(err)}` });
        }
      } else if (a.kind === 'hash') {
        const m = a.member;
        byName.set(m.path, e);
        if (opts.deferBlobContent && m.digest !== undefined) {
          // Blobs: the caller checks content while streaming; manifests are read and checked
          // by the image-graph walk at the end.
          c.deferred(m);
        } else if (m.storage === 'zstd') {
          // One zstd -d at a time (it is multi-threaded itself); the pool hashes meanwhile. A
          // member that cannot be read is reported, never allowed to stop the others.
          zstdChain = zstdChain.then(async () => {
            try {
              c.hashed(m, await hashStream(openTarEntry(file, e), m, false));
            } catch (err) {
              c.failed(m, 'TAR_INVALID', `cannot be read: ${errorMessage(err)}`);
            }
          });
        } else if (a.keep) {
          c.hashed(m, await hashStream(openTarEntry(file, e), m, true));
        } else {
          pool ??= new HashPool();
          jobs.push(
            pool.hashRange(file, e.dataOffset, e.size).then(
              (h) => c.hashed(m, h),
              (err: unknown) => c.failed(m, 'TAR_INVALID', `cannot be read: ${errorMessage(err)}`),
            ),
          );
        }
      }
    }
    jobs.push(zstdChain);
    await Promise.all(jobs);
  } finally {
    await pool?.close();
  }
  return report(c, c.reread(file, byName));
}
