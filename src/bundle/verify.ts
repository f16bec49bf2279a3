/**
 * `verifyBundle`: check a ferry bundle (format v1) end to end without trusting any of it, and
 * report every problem found, each naming its culprit (member, digest, image).
 *
 * One checker, two drivers: a sequential pass over a stream (works on a pipe; hashing on the
 * main thread), and for a regular file a header-only index followed by hashing every member on
 * a worker pool that reads member ranges by offset. zstd members are restored through `zstd -d`
 * with output capped at their declared uncompressedSize.
 *
 * The pieces (src/bundle/verify/): `checker.ts` the state machine, `graph.ts` the image-graph
 * check, `hash.ts` member hashing and zstd restores, `stream.ts` and `file.ts` the two drivers,
 * `problems.ts` what is reported. This module is the entry point callers import.
 */
export { unsafeName } from './verify/checker.js';
export { verifyBundle } from './verify/file.js';
export { MAX_KEPT_MANIFEST_BYTES, type Problem, type VerifyOptions, type VerifyResult } from './verify/problems.js';
export { verifyBundleStream } from './verify/stream.js';
