/**
 * Bounds on what `ferry serve` spends per request, shared by all requests: a counting semaphore
 * (concurrent zstd restores) and a pool of send buffers (raw blob bodies). Pure bookkeeping, no
 * I/O.
 */

/** A counting semaphore whose waiters give up after a while. */
export class Semaphore {
  private active = 0;
  private readonly waiters: Array<{ grant: () => void }> = [];

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError(`semaphore size must be a positive integer, not ${max}`);
  }

  /** Slots in use. */
  get inUse(): number {
    return this.active;
  }

  /** Requests waiting for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * A slot, as a release function (idempotent), once one is free; undefined when none became
   * free within `waitMs` (0: do not wait).
   */
  acquire(waitMs: number): Promise<(() => void) | undefined> {
    if (this.active < this.max) {
      this.active++;
      return Promise.resolve(this.releaser());
    }
    if (waitMs <= 0) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(this.releaser());
        },
      };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i !== -1) this.waiters.splice(i, 1);
        resolve(undefined);
      }, waitMs);
      timer.unref?.();
      this.waiters.push(waiter);
    });
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.waiters.shift();
      // The slot passes straight to the next waiter: active stays the same.
      if (next) next.grant();
      else this.active--;
    };
  }
}

/**
 * Send buffers for blob bodies: pairs of `size`-byte buffers, at most `maxPairs` of them in
 * existence, reused from transfer to transfer. A transfer that finds none free gets
 * undefined and uses small buffers of its own, so memory stays bounded whatever the number of
 * connections, while a lone large transfer always runs at full speed.
 */
export class SendBufferPool {
  private readonly free: Array<[Buffer, Buffer]> = [];
  private created = 0;

  constructor(
    readonly maxPairs: number,
    readonly size: number,
  ) {}

  /** Pairs handed out or idle in the pool. */
  get allocated(): number {
    return this.created;
  }

  take(): [Buffer, Buffer] | undefined {
    const pair = this.free.pop();
    if (pair) return pair;
    if (this.created >= this.maxPairs) return undefined;
    this.created++;
    return [Buffer.allocUnsafe(this.size), Buffer.allocUnsafe(this.size)];
  }

  /** Return a pair no write is using any longer. */
  give(pair: [Buffer, Buffer]): void {
    this.free.push(pair);
  }

  /** Forget a pair that may still be referenced by a dead socket's pending write: it is left to the GC. */
  discard(): void {
    this.created--;
  }
}
