/**
 * The stream driver: verify a bundle read once, in order, from a pipe, stdin or a socket.
 * Hashing runs on the main thread; raw blobs that may be manifests are kept (within a cap) for
 * the image-graph check at the end.
 */
import type { Readable } from 'node:stream';
import { iterateTar } from '../../tar/reader.js';
import { errorMessage } from '../../util/errors.js';
import { BUNDLE_TAR_OPTIONS, newChecker, report } from './checker.js';
import { hashStream, readCapped } from './hash.js';
import { tarProblem, type VerifyOptions, type VerifyResult } from './problems.js';

/** Verify a bundle read sequentially from a stream (a pipe, stdin, a socket). */
export async function verifyBundleStream(source: Readable, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const c = await newChecker(opts, true);
  try {
    for await (const { entry, body } of iterateTar(source, BUNDLE_TAR_OPTIONS)) {
      const a = c.entry(entry);
      if (a.kind === 'stop') break;
      if (a.kind === 'buffer') {
        try {
          c.buffered(entry, await readCapped(body, a.cap));
        } catch (err) {
          if ((err as { code?: string }).code === 'TAR_INVALID') throw err;
          c.problem({ code: 'JSON_TOO_LARGE', member: entry.rawName, message: `${entry.rawName}: ${errorMessage(err)}` });
        }
      } else if (a.kind === 'hash') {
        c.hashed(a.member, await hashStream(body, a.member, a.keep));
      }
    }
  } catch (err) {
    c.problem(tarProblem(err));
  }
  return report(c, c.keptReader);
}
