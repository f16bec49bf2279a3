/**
 * A worker_threads pool that hashes byte ranges of a file: each worker opens the file itself
 * and reads its range by offset, so hashing a seekable bundle uses every core and the main
 * thread never touches the bytes. The worker is plain JavaScript evaluated from a string, so
 * it runs the same under node, tsx and vitest (no loader needed for a .ts worker file).
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const fs = require('node:fs');
const buf = Buffer.allocUnsafe(1024 * 1024);
parentPort.on('message', (job) => {
  let fd;
  try {
    fd = fs.openSync(job.file, 'r');
    const h = createHash('sha256');
    let pos = job.offset, left = job.size, read = 0;
    while (left > 0) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, left), pos);
      if (n === 0) break;
      h.update(n === buf.length ? buf : buf.subarray(0, n));
      pos += n; left -= n; read += n;
    }
    parentPort.postMessage({ id: job.id, sha256: h.digest('hex'), bytes: read });
  } catch (err) {
    parentPort.postMessage({ id: job.id, error: String(err && err.message || err) });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
});
`;

export interface HashResult {
  sha256: string;
  /** Bytes actually read (less than asked when the file is shorter). */
  bytes: number;
}

interface Job {
  id: number;
  file: string;
  offset: number;
  size: number;
  resolve: (r: HashResult) => void;
  reject: (e: Error) => void;
}

export class HashPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: Job[] = [];
  private readonly running = new Map<Worker, Job>();
  private nextId = 0;
  private closed = false;

  constructor(size = Math.max(1, Math.min(availableParallelism(), 16))) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true });
      w.unref();
      w.on('message', (msg: { id: number; sha256?: string; bytes?: number; error?: string }) => {
        const job = this.running.get(w);
        this.running.delete(w);
        if (job) {
          if (msg.error !== undefined) job.reject(new Error(`hashing ${job.file} at ${job.offset}: ${msg.error}`));
          else job.resolve({ sha256: msg.sha256!, bytes: msg.bytes! });
        }
        this.idle.push(w);
        this.pump();
      });
      w.on('error', (err) => {
        const job = this.running.get(w);
        this.running.delete(w);
        job?.reject(err);
      });
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** sha256 of `size` bytes of `file` starting at `offset`. */
  hashRange(file: string, offset: number, size: number): Promise<HashResult> {
    if (this.closed) return Promise.reject(new Error('hash pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, file, offset, size, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop()!;
      const job = this.queue.shift()!;
      this.running.set(w, job);
      w.postMessage({ id: job.id, file: job.file, offset: job.offset, size: job.size });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const j of this.queue.splice(0)) j.reject(new Error('hash pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
