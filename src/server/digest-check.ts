/**
 * `ferry serve` never sends a body that does not match its digest: every blob body is hashed as
 * it is sent, and its last bytes are held back until the whole blob (not only the range asked
 * for) has been hashed. On a mismatch the response is cut before those last bytes (the client
 * sees a truncated body, however it checks), the server logs it, and the blob is answered 500
 * from then on (`BlobChecks`).
 *
 * A range of a blob not yet seen whole is served from a read of the whole blob (the bytes before
 * and after the range are hashed, not sent); once a blob has been hashed whole and matched, its
 * ranges are served directly (a bundle is read through the descriptor opened at start-up, a
 * layout's blob file is read as verified content) while full reads keep being hashed.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { DigestMismatchError, SizeMismatchError } from '../util/errors.js';

export type BlobState = 'verified' | 'bad';

/** What the server learnt about blobs while sending them. Bounded: at most one entry per blob served. */
export class BlobChecks {
  private readonly state = new Map<Digest, BlobState>();
  get(digest: Digest): BlobState | undefined {
    return this.state.get(digest);
  }
  verified(digest: Digest): void {
    if (this.state.get(digest) !== 'bad') this.state.set(digest, 'verified');
  }
  bad(digest: Digest): void {
    this.state.set(digest, 'bad');
  }
}

/** A running sha256 of a blob's bytes, checked against its digest and size at the end. */
export class BlobHasher {
  private readonly hash: Hash = createHash('sha256');
  bytes = 0;
  constructor(
    readonly digest: Digest,
    readonly size: number,
  ) {}

  update(chunk: Uint8Array): void {
    this.bytes += chunk.length;
    this.hash.update(chunk);
  }

  /** Throws DigestMismatchError / SizeMismatchError when the bytes seen are not the blob. */
  check(): void {
    if (this.bytes !== this.size) {
      throw new SizeMismatchError(this.size, this.bytes, `blob ${this.digest}`);
    }
    const got = `sha256:${this.hash.digest('hex')}`;
    if (got !== this.digest) throw new DigestMismatchError(this.digest, got, `blob ${this.digest}`);
  }
}

/**
 * Over a stream of a whole blob: hashes everything, passes on only bytes [from, to), and holds
 * the last piece it would pass until the end, where it is pushed only if the blob matched;
 * otherwise the stream fails without it.
 */
export class DigestGate extends Transform {
  private pos = 0;
  private held: Buffer | undefined;
  private readonly hasher: BlobHasher;

  constructor(
    digest: Digest,
    size: number,
    private readonly from: number,
    private readonly to: number,
    private readonly onResult: (ok: boolean, err?: Error) => void,
  ) {
    super();
    this.hasher = new BlobHasher(digest, size);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hasher.update(chunk);
    const start = this.pos;
    this.pos += chunk.length;
    const a = Math.max(this.from, start) - start;
    const b = Math.min(this.to, this.pos) - start;
    if (b > a) {
      if (this.held) this.push(this.held);
      this.held = a === 0 && b === chunk.length ? chunk : chunk.subarray(a, b);
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.hasher.check();
    } catch (err) {
      this.onResult(false, err as Error);
      cb(err as Error);
      return;
    }
    this.onResult(true);
    if (this.held) this.push(this.held);
    cb();
  }
}
