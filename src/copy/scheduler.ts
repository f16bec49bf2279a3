/**
 * The one blob scheduler every copy runs (pull and `ferry load` into a layout, registry pushes):
 * each blob once, largest first so the long transfers start early, N at a time; per blob a
 * promise the images that need it wait on; a failure is counted, reported as an event, and
 * remembered when it is an integrity failure (a bundle then names nothing).
 */
import type { Descriptor } from '../oci/manifest.js';
import { IntegrityError, errorMessage } from '../util/errors.js';
import type { EventSink } from './events.js';

/** Run `fn` over `items`, at most `n` at a time (at least one). */
export async function eachLimit<T>(items: readonly T[], n: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(Math.max(1, n), items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** A promise settled from outside; rejections are observed by whoever awaits it later. */
export function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {});
  return { promise, resolve, reject };
}

export interface BlobSchedule {
  /** Settles once the blob is in place; rejects with why it is not. */
  done(digest: string): Promise<void>;
  /** Settles once every blob was tried; never rejects. */
  finished: Promise<void>;
  /** The first digest or size failure, if any. */
  integrityFailure(): unknown;
}

export function scheduleBlobs<T>(
  jobs: readonly T[],
  descOf: (job: T) => Descriptor,
  work: (job: T) => Promise<void>,
  opts: { concurrency?: number; signal?: AbortSignal; onEvent?: EventSink; stats: { failed: number } },
): BlobSchedule {
  const slots = new Map<string, Deferred>();
  for (const j of jobs) slots.set(descOf(j).digest, deferred());
  let integrityFailure: unknown;
  const queue = [...jobs].sort((a, b) => descOf(b).size - descOf(a).size);
  const finished = eachLimit(queue, opts.concurrency ?? 8, async (job) => {
    const desc = descOf(job);
    const slot = slots.get(desc.digest)!;
    if (opts.signal?.aborted) {
      slot.reject(opts.signal.reason);
      return;
    }
    try {
      await work(job);
      slot.resolve();
    } catch (err) {
      opts.stats.failed++;
      if (err instanceof IntegrityError) integrityFailure ??= err;
      opts.onEvent?.({ kind: 'blob', state: 'failed', digest: desc.digest, bytes: 0, total: desc.size, error: errorMessage(err) });
      slot.reject(err);
    }
  });
  return {
    done: (digest) => slots.get(digest)!.promise,
    finished,
    integrityFailure: () => integrityFailure,
  };
}
