/**
 * Writing to a registry: blob existence checks, cross-repository mounts, blob uploads and
 * manifest puts, following the OCI distribution spec and coping with what distribution 2.8
 * really does (../shared/fixtures/distribution-registry-2.8.2-transcripts):
 *
 * - Upload `Location`s are used as given (absolute or relative, with their `_state` query);
 *   `digest=` is appended to them, never rebuilt.
 * - A monolithic `POST ?digest=` is not relied on (2.8 answers 202 and keeps nothing): small
 *   blobs go up as POST (open a session) + one PUT carrying the bytes.
 * - Large blobs go up in PATCH chunks. The registry does not reject an out-of-order PATCH (it
 *   accepts it and corrupts the session), so every chunk starts exactly where the registry
 *   says the session ends, asked with GET on the session after any failure.
 * - A mount that the registry cannot do falls back to the upload session it opened (202); a
 *   mount request that fails outright (401, a refused token, any other error) falls back to a
 *   plain upload session, as crane and regclient do.
 * - After a failure, the session's status (GET) says where it ends and where to go next: its
 *   `Location` is used for the next request, as the spec requires.
 * - A blob that starts over after a failure (and a final PUT whose answer was lost) is first
 *   looked for with HEAD: the registry may have committed it already.
 * - The retry budget (attempts, time) counts failures without progress: every chunk the
 *   registry acknowledges, or holds when asked after a failure, starts it afresh.
 * - 429 and 503 answers to requests carrying blob bytes keep their Retry-After.
 *
 * Every byte sent is hashed on the way; a blob whose bytes do not match its digest is never
 * committed (its session is cancelled), and the registry's own check at the final PUT is the
 * second guard.
 */
import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestVerifier, type Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import {
  DigestMismatchError,
  FerryError,
  RegistryError,
  SizeMismatchError,
  errorMessage,
  type RegistryErrorDetail,
} from '../../util/errors.js';
import { drain } from './http.js';
import { header, readCapped, type RegistryClient, type RegistryResponse } from './client.js';
import { redactUrl } from './redact.js';
import { backoffDelay, isRetryableNetworkError, parseRetryAfter, wait } from './retry.js';
import { MANIFEST_ACCEPT } from '../../oci/mediatypes.js';

/** Blobs up to this size go up in one PUT; larger ones in PATCH chunks of this size. */
export const DEFAULT_CHUNK_SIZE = 64 * 1024 * 1024;

export function pushScope(repo: string): string {
  return `repository:${repo}:pull,push`;
}

/** Opens the blob's bytes from `start` (a source that cannot seek reads and drops the prefix). */
export type BlobOpener = (start: number) => Readable;

export interface UploadOptions {
  what: string;
  signal?: AbortSignal;
  chunkSize?: number;
  /** A repository of the same registry known to hold the blob: try a cross-repository mount. */
  mountFrom?: string;
  onProgress?: (bytes: number) => void;
  /** A retryable failure; `attempt` counts the retries since the last progress (1 = first). */
  onRetry?: (reason: string, attempt: number, delayMs: number) => void;
}

export type UploadOutcome = 'uploaded' | 'mounted';

/** HEAD a blob: its size when the repository has it, undefined when not. */
export async function blobSize(
  client: RegistryClient,
  repo: string,
  digest: string,
  what: string,
  signal?: AbortSignal,
): Promise<number | undefined> {
  const res = await client.send({
    method: 'HEAD',
    path: `/v2/${repo}/blobs/${digest}`,
    scope: pushScope(repo),
    expect: [200, 404],
    what,
    // A HEAD on a blob may redirect to storage; the size is in the final answer.
    followRedirects: true,
    ...(signal ? { signal } : {}),
  });
  await drain(res.body);
  if (res.status === 404) return undefined;
  const len = Number(header(res.headers, 'content-length'));
  return Number.isFinite(len) ? len : -1;
}

/** Resolve an upload Location against the URL that returned it. */
function sessionUrl(res: RegistryResponse, what: string): string {
  const loc = header(res.headers, 'location');
  if (!loc) {
    throw new RegistryError(
      'REGISTRY_PROTOCOL',
      `${what}: the registry opened an upload without a Location`,
      'POST',
      res.url,
      res.status,
      [],
    );
  }
  return new URL(loc, res.url).toString();
}

/** Append a query parameter to a URL as a string, leaving what is there byte for byte. */
function withParam(url: string, name: string, value: string): string {
  const hashAt = url.indexOf('#');
  const base = hashAt === -1 ? url : url.slice(0, hashAt);
  return `${base}${base.includes('?') ? '&' : '?'}${name}=${encodeURIComponent(value)}`;
}

/**
 * Open an upload session, or mount the blob from `from` (201: done, nothing to send). A
 * registry that cannot mount opens a session instead (202), which is then used.
 */
async function openSession(
  client: RegistryClient,
  repo: string,
  digest: string,
  from: string | undefined,
  what: string,
  signal?: AbortSignal,
): Promise<{ mounted: true } | { mounted: false; url: string }> {
  const query = from ? `?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}` : '';
  const res = await client.send({
    method: 'POST',
    path: `/v2/${repo}/blobs/uploads/${query}`,
    // Mounting reads the other repository too: the token must cover both.
    scope: from ? `${pushScope(repo)} repository:${from}:pull` : pushScope(repo),
    headers: { 'content-length': '0' },
    body: '',
    expect: from ? [201, 202] : [202],
    what,
    ...(signal ? { signal } : {}),
  });
  await drain(res.body);
  if (res.status === 201) return { mounted: true };
  return { mounted: false, url: sessionUrl(res, what) };
}

/**
 * Where the registry says an upload session ends (exclusive), from GET on the session, and the
 * URL to continue it at: the Location of that answer when it has one (resolved against the
 * request, `_state` kept as given), the URL asked otherwise.
 */
async function sessionStatus(
  client: RegistryClient,
  repo: string,
  url: string,
  what: string,
  signal?: AbortSignal,
): Promise<{ offset: number; url: string }> {
  const res = await client.send({
    method: 'GET',
    path: url,
    scope: pushScope(repo),
    expect: [204, 200],
    what,
    ...(signal ? { signal } : {}),
  });
  await drain(res.body);
  const loc = header(res.headers, 'location');
  return { offset: rangeEnd(header(res.headers, 'range')), url: loc ? new URL(loc, res.url).toString() : url };
}

/** The registry already holds the blob in `repo`, with the right size (a failed HEAD: not known to). */
async function holdsBlob(client: RegistryClient, repo: string, desc: Descriptor, what: string, signal?: AbortSignal): Promise<boolean> {
  try {
    return (await blobSize(client, repo, desc.digest, what, signal)) === desc.size;
  } catch (err) {
    if (signal?.aborted) throw err;
    return false;
  }
}

/** Retry-After of a 429/503 answer to an upload request, by the error made from it. */
const retryAfterOf = new WeakMap<object, number>();

/** The Retry-After an error carries: ours, or a `retryAfterMs` the client put on it. */
function retryAfter(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const ours = retryAfterOf.get(err);
  if (ours !== undefined) return ours;
  const theirs = (err as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof theirs === 'number' && Number.isFinite(theirs) ? theirs : undefined;
}

/**
 * Statuses that requests carrying blob bytes take themselves, rather than the client's error
 * mapping, to keep their Retry-After (the client does not retry a body it cannot resend).
 */
const RETRY_LATER = [429, 503];

/** The error for a 429/503 answer to an upload request, remembering its Retry-After. */
async function retryLaterError(res: RegistryResponse, method: string, what: string): Promise<RegistryError> {
  const text = await readCapped(res.body, 64 * 1024).catch(() => '');
  let errors: RegistryErrorDetail[] = [];
  try {
    const parsed = JSON.parse(text) as { errors?: unknown };
    if (Array.isArray(parsed.errors)) {
      errors = parsed.errors
        .filter((e): e is { code: string; message?: unknown; detail?: unknown } => typeof (e as { code?: unknown })?.code === 'string')
        .map((e) => ({ code: e.code, ...(typeof e.message === 'string' && e.message ? { message: e.message } : {}), detail: e.detail }));
    }
  } catch {
    // Plain-text error bodies happen.
  }
  const first = errors[0];
  const detail = first
    ? `${first.code}${first.message ? `: ${first.message}` : ''}`
    : text.trim().slice(0, 200) || (res.status === 429 ? 'Too Many Requests' : 'Service Unavailable');
  const safeUrl = redactUrl(res.url);
  const err = new RegistryError(
    first?.code ?? (res.status === 429 ? 'TOOMANYREQUESTS' : 'REGISTRY_UNAVAILABLE'),
    `${what}: ${method} ${safeUrl}: HTTP ${res.status}: ${detail}`,
    method,
    safeUrl,
    res.status,
    errors,
    {
      retryable: true,
      hint:
        res.status === 429
          ? 'the registry is rate-limiting; wait and rerun, or log in for a higher limit'
          : 'the registry is failing; rerun later',
    },
  );
  const ms = parseRetryAfter(res.headers['retry-after']);
  if (ms !== undefined) retryAfterOf.set(err, ms);
  return err;
}

/**
 * `Range: 0-N` (distribution writes it without "bytes=") → N+1; absent → 0. Note that
 * distribution also answers `0-0` for an empty session (it never says `0--1`), so `0-0` may
 * mean 0 bytes or 1: callers treat 1 as unknown.
 */
export function rangeEnd(range: string | undefined): number {
  if (!range) return 0;
  const m = /^(?:bytes=)?0-(\d+)$/.exec(range.trim());
  if (!m) return 0;
  return Number(m[1]) + 1;
}

async function cancelSession(client: RegistryClient, repo: string, url: string, what: string): Promise<void> {
  try {
    const res = await client.send({ method: 'DELETE', path: url, scope: pushScope(repo), expect: [204, 200, 202, 404], what });
    await drain(res.body);
  } catch {
    // Best effort: an abandoned session expires on its own.
  }
}

/**
 * Bytes [from, to) of a source stream, hashed into `hash` as they pass. Reads from `it`, an
 * iterator over the source that later chunks continue from (the remainder is kept in `carry`).
 */
class SourceCursor {
  private carry: Buffer | undefined;
  private readonly it: AsyncIterator<Buffer>;
  private ended = false;
  position: number;

  constructor(
    private readonly stream: Readable,
    start: number,
  ) {
    this.it = (stream as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    this.position = start;
  }

  /** The next `n` bytes as a stream (fewer only if the source ends: the caller's size check catches it). */
  take(n: number, tap: (b: Buffer) => void): Readable {
    const self = this;
    async function* gen(): AsyncGenerator<Buffer> {
      let left = n;
      while (left > 0) {
        let chunk = self.carry;
        self.carry = undefined;
        if (!chunk) {
          if (self.ended) return;
          const r = await self.it.next();
          if (r.done) {
            self.ended = true;
            return;
          }
          chunk = r.value;
        }
        if (chunk.length > left) {
          self.carry = chunk.subarray(left);
          chunk = chunk.subarray(0, left);
        }
        left -= chunk.length;
        self.position += chunk.length;
        tap(chunk);
        yield chunk;
      }
    }
    return Readable.from(gen(), { objectMode: false });
  }

  /** Feed `n` bytes to `tap` without sending them (catching up with a registry's offset). */
  async skip(n: number, tap: (b: Buffer) => void): Promise<void> {
    for await (const _ of this.take(n, tap)) void _;
  }

  close(): void {
    this.stream.destroy();
  }
}

interface Checkpoint {
  offset: number;
  hash: Hash;
}

function finalDigest(hash: Hash): Digest {
  return `sha256:${hash.copy().digest('hex')}`;
}

/**
 * Upload one blob into `repo` unless a mount does it: verifies the bytes against the
 * descriptor as they go, resumes chunked uploads after broken connections, and only commits
 * (final PUT with the digest) content whose hash matched.
 */
export async function uploadBlob(
  client: RegistryClient,
  repo: string,
  desc: Descriptor,
  open: BlobOpener,
  opts: UploadOptions,
): Promise<UploadOutcome> {
  const chunkSize = Math.max(1024 * 1024, opts.chunkSize ?? DEFAULT_CHUNK_SIZE);
  const policy = client.policy;
  // The retry budget covers failures without progress: attempts since the last progress, and
  // time since the first failure after it. A long blob over a link that breaks now and then
  // keeps going as long as each try moves it forward. Progress is bytes the registry holds
  // beyond any point reached before, so a blob that keeps starting over still runs out.
  let attempt = 0;
  let failingSince: number | undefined;
  let furthest = 0;
  const reached = (offset: number): void => {
    if (offset <= furthest) return;
    furthest = offset;
    attempt = 0;
    failingSince = undefined;
  };
  let mountFrom = opts.mountFrom;
  // The last point both sides agree on: the registry has [0, offset) and hash covers it.
  let checkpoint: Checkpoint = { offset: 0, hash: createHash('sha256') };
  let session: string | undefined;
  // Starting the blob over after a failure: the registry may hold it already (a final PUT that
  // committed and whose answer was lost, another pusher).
  let startingOver = false;
  for (;;) {
    let cursor: SourceCursor | undefined;
    // The request in flight is the one that commits the blob (its answer may be lost).
    let committing = false;
    try {
      if (session === undefined) {
        if (startingOver) {
          startingOver = false;
          if (await holdsBlob(client, repo, desc, opts.what, opts.signal)) return 'uploaded';
        }
        let s: Awaited<ReturnType<typeof openSession>> | undefined;
        if (mountFrom) {
          try {
            s = await openSession(client, repo, desc.digest, mountFrom, opts.what, opts.signal);
          } catch (err) {
            if (opts.signal?.aborted) throw err;
            // The mount request itself failed (401, a token refused for the other repository,
            // any other error): upload normally instead, with this repository's scope alone.
            mountFrom = undefined;
          }
        }
        s ??= await openSession(client, repo, desc.digest, undefined, opts.what, opts.signal);
        if (s.mounted) return 'mounted';
        session = s.url;
        checkpoint = { offset: 0, hash: createHash('sha256') };
      }
      if (desc.size <= chunkSize) {
        cursor = new SourceCursor(open(0), 0);
        // The last chunk goes out only once size and digest matched: bad content never reaches
        // the registry complete, so it cannot be committed.
        const checked = new DigestVerifier({
          digest: desc.digest,
          size: desc.size,
          what: opts.what,
          holdLast: true,
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
        });
        pipeline(
          cursor.take(desc.size, () => {}),
          checked,
        ).catch(() => {}); // fails the request body
        committing = true;
        const res = await client.send({
          method: 'PUT',
          path: withParam(session, 'digest', desc.digest),
          scope: pushScope(repo),
          headers: { 'content-type': 'application/octet-stream' },
          body: checked,
          contentLength: desc.size,
          expect: [201, 204, ...RETRY_LATER],
          what: opts.what,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        if (RETRY_LATER.includes(res.status)) throw await retryLaterError(res, 'PUT', opts.what);
        await drain(res.body);
        return 'uploaded';
      }
      // Chunked: continue from the registry's own idea of where the session ends.
      cursor = new SourceCursor(open(checkpoint.offset), checkpoint.offset);
      const hash = checkpoint.hash.copy();
      let offset = checkpoint.offset;
      while (offset < desc.size) {
        const end = Math.min(offset + chunkSize, desc.size);
        const body = cursor.take(end - offset, (b) => hash.update(b));
        const res = await client.send({
          method: 'PATCH',
          path: session,
          scope: pushScope(repo),
          headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${end - 1}` },
          body: sizeChecked(body, end - offset, desc, opts.what),
          contentLength: end - offset,
          expect: [202, 204, ...RETRY_LATER],
          what: opts.what,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        if (RETRY_LATER.includes(res.status)) throw await retryLaterError(res, 'PATCH', opts.what);
        await drain(res.body);
        session = sessionUrl(res, opts.what);
        const acknowledged = rangeEnd(header(res.headers, 'range'));
        if (acknowledged !== 0 && acknowledged !== end) {
          throw new RegistryError(
            'REGISTRY_PROTOCOL',
            `${opts.what}: the registry acknowledged bytes 0-${acknowledged - 1} after a chunk ending at ${end - 1}`,
            'PATCH',
            session,
            res.status,
            [],
            { retryable: true },
          );
        }
        offset = end;
        checkpoint = { offset, hash: hash.copy() };
        reached(offset);
        opts.onProgress?.(offset);
      }
      const actual = finalDigest(hash);
      if (actual !== desc.digest) {
        await cancelSession(client, repo, session, opts.what);
        throw new DigestMismatchError(desc.digest, actual, opts.what);
      }
      committing = true;
      const res = await client.send({
        method: 'PUT',
        path: withParam(session, 'digest', desc.digest),
        scope: pushScope(repo),
        headers: { 'content-length': '0' },
        body: '',
        expect: [201, 204],
        what: opts.what,
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      await drain(res.body);
      return 'uploaded';
    } catch (err) {
      cursor?.close();
      if (opts.signal?.aborted) throw err;
      if (err instanceof DigestMismatchError || err instanceof SizeMismatchError) {
        if (session) await cancelSession(client, repo, session, opts.what);
        throw err;
      }
      // The request that commits the blob failed: the registry may have committed it and only
      // its answer was lost. (The client resends a final PUT without a body on a broken
      // connection, and the registry, whose session is gone with the commit, answers 404.)
      if (committing && !isRetryable(err) && (await holdsBlob(client, repo, desc, opts.what, opts.signal))) return 'uploaded';
      if (!isRetryable(err)) throw err;
      failingSince ??= Date.now();
      // Time counts from the first failure after progress: that first failure always has its try.
      const spent = (): boolean => attempt + 1 >= policy.maxAttempts || (attempt > 0 && Date.now() - failingSince! >= policy.maxElapsedMs);
      const chunked = session !== undefined && desc.size > chunkSize;
      // The session's status, when asked already in this round (undefined: asking failed).
      let status: { offset: number; url: string } | undefined | null = null;
      if (spent() && chunked) {
        // Out of budget as far as we know, but the registry may have taken the chunk whose answer
        // was lost: what it holds beyond any point reached before is progress.
        status = await sessionStatus(client, repo, session!, opts.what, opts.signal).catch(() => undefined);
        if (status && status.offset > 1 && status.offset > furthest && status.offset <= desc.size) {
          attempt = 0;
          failingSince = Date.now();
        }
      }
      if (spent()) throw err;
      const delayMs = backoffDelay(policy, attempt++, retryAfter(err));
      opts.onRetry?.(errorMessage(err), attempt, delayMs);
      await wait(delayMs, opts.signal);
      if (committing && (await holdsBlob(client, repo, desc, opts.what, opts.signal))) return 'uploaded';
      if (session !== undefined && chunked) {
        // Where does the session stand? Resume there, at the Location the status gives, or
        // start a new one. -1: the session is gone or broken (distribution answers 404
        // BLOB_UPLOAD_INVALID once an out-of-order PATCH corrupted it). 1 is "0-0": empty, or
        // one byte; start over.
        if (status === null) status = await sessionStatus(client, repo, session, opts.what, opts.signal).catch(() => undefined);
        let at = status?.offset ?? -1;
        if (status) session = status.url;
        if (at === 1) at = -1;
        if (at === checkpoint.offset) continue;
        if (at > checkpoint.offset && at <= desc.size) {
          // The registry kept part of the broken chunk: hash those bytes without resending.
          const catchUp = new SourceCursor(open(checkpoint.offset), checkpoint.offset);
          const hash = checkpoint.hash.copy();
          try {
            await catchUp.skip(at - checkpoint.offset, (b) => hash.update(b));
          } finally {
            catchUp.close();
          }
          checkpoint = { offset: at, hash };
          reached(at);
          opts.onProgress?.(at);
          continue;
        }
        await cancelSession(client, repo, session, opts.what);
      } else if (session !== undefined) {
        await cancelSession(client, repo, session, opts.what);
      }
      session = undefined;
      // Just looked for it after a lost commit: no need to ask again before the new session.
      startingOver = !committing;
    }
  }
}

function isRetryable(err: unknown): boolean {
  if (err instanceof FerryError) return err.retryable;
  return isRetryableNetworkError(err);
}

/** Fail a chunk body that ends short (the source ended before the declared size). */
function sizeChecked(body: Readable, want: number, desc: Descriptor, what: string): Readable {
  async function* gen(): AsyncGenerator<Buffer> {
    let n = 0;
    for await (const c of body as AsyncIterable<Buffer>) {
      n += (c as Buffer).length;
      yield c as Buffer;
    }
    if (n !== want) throw new SizeMismatchError(desc.size, n, `${what} (source ended early)`);
  }
  return Readable.from(gen(), { objectMode: false });
}

/** HEAD a manifest: the digest the registry holds under `reference`, undefined when none. */
export async function manifestDigest(
  client: RegistryClient,
  repo: string,
  reference: string,
  what: string,
  signal?: AbortSignal,
): Promise<string | undefined> {
  const res = await client.send({
    method: 'HEAD',
    path: `/v2/${repo}/manifests/${reference}`,
    scope: pushScope(repo),
    headers: { accept: MANIFEST_ACCEPT.join(', ') },
    expect: [200, 404],
    what,
    ...(signal ? { signal } : {}),
  });
  await drain(res.body);
  if (res.status === 404) return undefined;
  return header(res.headers, 'docker-content-digest') ?? '';
}

/**
 * PUT a manifest's exact bytes under a tag or its digest. The registry's Docker-Content-Digest
 * must be the digest of those bytes.
 */
export async function putManifest(
  client: RegistryClient,
  repo: string,
  reference: string,
  m: { bytes: Buffer; mediaType: string; digest: Digest },
  what: string,
  signal?: AbortSignal,
): Promise<void> {
  const res = await client.send({
    method: 'PUT',
    path: `/v2/${repo}/manifests/${reference}`,
    scope: pushScope(repo),
    headers: { 'content-type': m.mediaType },
    body: m.bytes,
    expect: [201, 200, 202, 204],
    what,
    ...(signal ? { signal } : {}),
  });
  await drain(res.body);
  const got = header(res.headers, 'docker-content-digest');
  if (got?.startsWith('sha256:') && got !== m.digest) {
    throw new RegistryError(
      'DIGEST_CHANGED',
      `${what}: the registry stored the manifest as ${got}, not ${m.digest}`,
      'PUT',
      `/v2/${repo}/manifests/${reference}`,
      res.status,
      [],
      { hint: 'the registry rewrote the manifest; digests would not survive this registry' },
    );
  }
}
