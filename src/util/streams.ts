/** Stream helpers shared by image sources. */
import { Readable } from 'node:stream';

/**
 * A stream over whatever `open` resolves to, opened on the first read. A failure to open (a
 * missing blob, an unreadable archive) is raised only once someone reads, so a caller that
 * awaits something before attaching its listeners never meets an unhandled 'error' event (a
 * PassThrough destroyed from a promise callback raced them and crashed the process).
 * Backpressure follows the consumer: the inner stream is paused whenever the buffer is full.
 */
export function lazyStream(open: () => Promise<Readable>, highWaterMark = 1024 * 1024): Readable {
  let inner: Readable | undefined;
  let started = false;
  return new Readable({
    highWaterMark,
    read() {
      if (inner) {
        inner.resume();
        return;
      }
      if (started) return;
      started = true;
      open().then(
        (s) => {
          if (this.destroyed) {
            s.destroy();
            return;
          }
          inner = s;
          s.on('data', (c: Buffer) => {
            if (!this.push(c)) s.pause();
          });
          s.on('end', () => this.push(null));
          s.on('error', (e) => this.destroy(e));
        },
        (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
      );
    },
    destroy(err, cb) {
      inner?.destroy();
      cb(err);
    },
  });
}

/**
 * A stream that fails with `err` when first read, not before: a caller that has not attached
 * its listeners yet (or never reads) sees no unhandled 'error' event. (lazyStream for a failure
 * known at once.)
 */
export function failingStream(err: Error): Readable {
  return new Readable({
    read() {
      this.destroy(err);
    },
  });
}
