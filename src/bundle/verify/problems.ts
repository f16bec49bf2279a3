/**
 * What verifying a bundle reports: each problem names its culprit (member, digest, image) and
 * has a stable code; the result says whether the bundle is good and what its signature was.
 * Also the options both drivers take, and the limits on what a verify keeps in memory.
 */
import { errorMessage } from '../../util/errors.js';
import type { BundleManifest, BundleMember } from '../format.js';

export interface Problem {
  code: string;
  member?: string;
  digest?: string;
  image?: string;
  message: string;
}

export interface VerifyOptions {
  /** PEM public key (ECDSA P-256 or Ed25519) to check the signature with. */
  key?: string;
  /** An absent signature is a problem. */
  requireSignature?: boolean;
  /** Hash on a worker pool when the input is a regular file (default true). */
  parallel?: boolean;
  /**
   * Check everything except the content of blobs that are not manifests: tar safety, the
   * bundle manifest, signature, index.json, SHA256SUMS, every manifest, image completeness.
   * `ferry load` does this first and then checks each blob's digest while it streams, so a
   * bundle is read once. Regular files only.
   */
  deferBlobContent?: boolean;
}

export interface VerifyResult {
  ok: boolean;
  problems: Problem[];
  manifest: BundleManifest | undefined;
  /** sha256 of ferry-bundle.json's bytes (what a differential bundle built on this one records as its base). */
  manifestDigest?: string;
  signature: 'none' | 'present' | 'valid' | 'invalid';
  /** Members read (tar entries seen). */
  entries: number;
}

/** Problems recorded at most (a damaged bundle can have one per member). */
export const MAX_PROBLEMS = 10_000;
/** Manifests kept in memory for the image-graph check (stream reads), all together. */
export const MAX_KEPT_MANIFEST_BYTES = 64 * 1024 * 1024;

/** Reads a raw blob member's bytes for the image-graph check (undefined: not available). */
export type ManifestReader = (m: BundleMember) => Promise<Buffer | undefined>;

/** A tar-level failure of the whole bundle (damage, or data after the end-of-archive marker) as a problem. */
export function tarProblem(err: unknown): Problem {
  if ((err as { code?: string }).code === 'TRAILING_DATA') {
    return {
      code: 'TRAILING_DATA',
      message: `the bundle has data after its end-of-archive marker (tar -x would extract it too): ${errorMessage(err)}`,
    };
  }
  return { code: 'TAR_INVALID', message: `the bundle is not a complete tar archive: ${errorMessage(err)}` };
}
