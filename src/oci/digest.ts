/**
 * Content digests: parsing, computing, and a streaming verifier. Only sha256 is produced;
 * sha512 is recognised so that foreign content can be named in errors, but not verified.
 */
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { DigestMismatchError, FerryError, SizeMismatchError } from '../util/errors.js';

export type Digest = `sha256:${string}`;

const SHA256_RE = /^sha256:[a-f0-9]{64}$/;
/** The OCI digest grammar (algorithm ":" encoded), used to recognise but not accept other algorithms. */
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;

export function isDigest(s: string): s is Digest {
  return SHA256_RE.test(s);
}

export class InvalidDigestError extends FerryError {
  constructor(readonly input: string) {
    super(
      'DIGEST_INVALID',
      ANY_DIGEST_RE.test(input) && !input.startsWith('sha256:')
        ? `unsupported digest algorithm in ${JSON.stringify(input)} (only sha256 is supported)`
        : `invalid digest ${JSON.stringify(input)} (want sha256: followed by 64 lower-case hex digits)`,
    );
  }
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw new InvalidDigestError(s);
  return s;
}

export function hex(d: Digest): string {
  return d.slice('sha256:'.length);
}

export function sha256(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Throws DigestMismatchError / SizeMismatchError unless `data` is exactly the described content. */
export function verifyBytes(data: Uint8Array, expected: { digest: string; size?: number }, what: string): void {
  if (expected.size !== undefined && data.byteLength !== expected.size) {
    throw new SizeMismatchError(expected.size, data.byteLength, what);
  }
  const actual = sha256(data);
  if (actual !== expected.digest) throw new DigestMismatchError(expected.digest, actual, what);
}

export interface VerifierOptions {
  digest: string;
  /** Declared size; -1 or undefined means unknown (then only the digest is checked). */
  size?: number;
  what: string;
  /** Called with the running byte count, at most every 256 KiB and at the end. */
  onProgress?: (bytes: number) => void;
  /**
   * Pass chunks on one behind and release the last only once size and digest matched, so a
   * receiver that is not itself checking (an engine's load stream, an upload) never gets a
   * complete copy of bad content.
   */
  holdLast?: boolean;
}

/**
 * A pass-through Transform that hashes what flows through it and fails the pipeline in
 * its flush when size or digest disagree, so `pipeline()` rejects and the caller never
 * commits (renames) what the sink wrote. It fails early once more bytes than declared arrive.
 */
export class DigestVerifier extends Transform {
  private readonly hash: Hash;
  private bytes: number;
  private reported = 0;
  private held: Buffer | undefined;
  private readonly expected: VerifierOptions;

  constructor(options: VerifierOptions) {
    super();
    this.expected = options;
    this.hash = createHash('sha256');
    this.bytes = 0;
  }

  get bytesSeen(): number {
    return this.bytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    const size = this.expected.size;
    if (size !== undefined && size >= 0 && this.bytes > size) {
      cb(new SizeMismatchError(size, this.bytes, `${this.expected.what} (more bytes than declared)`));
      return;
    }
    this.hash.update(chunk);
    if (this.expected.onProgress && this.bytes - this.reported >= 256 * 1024) {
      this.reported = this.bytes;
      this.expected.onProgress(this.bytes);
    }
    if (this.expected.holdLast) {
      const previous = this.held;
      this.held = chunk;
      cb(null, previous);
      return;
    }
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.expected.onProgress?.(this.bytes);
    const size = this.expected.size;
    if (size !== undefined && size >= 0 && this.bytes !== size) {
      cb(new SizeMismatchError(size, this.bytes, this.expected.what));
      return;
    }
    const actual: Digest = `sha256:${this.hash.digest('hex')}`;
    if (actual !== this.expected.digest) {
      cb(new DigestMismatchError(this.expected.digest, actual, this.expected.what));
      return;
    }
    cb(null, this.held);
  }
}
