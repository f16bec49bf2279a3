/**
 * `verifyBundle`: check a ferry bundle (format v1) end to end without trusting any of it, and
 * report every problem found, each naming its culprit (member, digest, image).
 *
 * One checker, two drivers: a sequential pass over a stream (works on a pipe; hashing on the
 * main thread), and for a regular file a header-only index followed by hashing every member on
 * a worker pool that reads member ranges by offset. zstd members are restored through `zstd -d`
 * with output capped at their declared uncompressedSize.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, Writable } from 'node:stream';
import { isDigest } from '../oci/digest.js';
import { parseManifest, requiredBlobs } from '../oci/manifest.js';
import { isManifestType } from '../oci/mediatypes.js';
import { REF_NAME } from '../transports/oci/layout.js';
import { FerryError, errorMessage } from '../util/errors.js';
import { indexTarFile, iterateTar, openTarEntry, type TarEntry } from '../util/tar-reader.js';
import {
  parseBundleManifest,
  LIMITS,
  MEMBER,
  RAW_BLOB_RE,
  ZSTD_BLOB_RE,
  type BundleManifest,
  type BundleMember,
} from './format.js';
import { HashPool } from './hash-worker.js';
import { loadPublicKey, verifyManifestSignature, type LoadedKey } from './sign.js';
import { checksumsFile, OCI_LAYOUT_BYTES } from './writer.js';
import { runZstd, zstdAvailable } from './reader.js';

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
  signature: 'none' | 'present' | 'valid' | 'invalid';
  /** Members read (tar entries seen). */
  entries: number;
}

const MAX_PROBLEMS = 10_000;

type Action =
  | { kind: 'skip' }
  | { kind: 'buffer'; cap: number }
  | { kind: 'hash'; member: BundleMember; keep: boolean };

interface Hashed {
  sha256: string;
  bytes: number;
  kept?: Buffer;
  /** zstd members: restored content. */
  restored?: { sha256: string; bytes: number } | { error: string; code: string };
}

/** The state machine both drivers feed. */
class Checker {
  readonly problems: Problem[] = [];
  manifest: BundleManifest | undefined;
  manifestBytes: Buffer | undefined;
  signatureBytes: Buffer | undefined;
  private manifestFailed = false;
  private readonly seen = new Set<string>();
  private readonly byPath = new Map<string, { m: BundleMember; pos: number }>();
  private readonly verified = new Set<string>();
  /** Content digests present and intact. */
  private readonly goodDigests = new Set<string>();
  private readonly manifestsByDigest = new Map<string, Buffer>();
  private readonly wantManifest = new Set<string>();
  private indexBytes: Buffer | undefined;
  private sumsBytes: Buffer | undefined;
  private lastPos = -1;
  entries = 0;

  problem(p: Problem): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(p);
  }

  /** Decide what to do with an entry; tar-level safety checks happen here. */
  entry(e: TarEntry): Action {
    this.entries++;
    const member = e.rawName;
    if (e.type !== 'file') {
      const what = e.type === 'symlink' || e.type === 'hardlink' ? `a ${e.type} to ${JSON.stringify(e.linkname ?? '')}` : `a ${e.type === 'other' ? 'special file' : e.type}`;
      this.problem({ code: 'TAR_NOT_REGULAR', member, message: `member ${JSON.stringify(member)} is ${what}; a bundle holds regular files only` });
      return { kind: 'skip' };
    }
    const unsafe = unsafeName(e.rawName);
    if (unsafe) {
      this.problem({ code: 'TAR_UNSAFE_NAME', member, message: `member ${JSON.stringify(member)}: ${unsafe}` });
      return { kind: 'skip' };
    }
    if (this.seen.has(member)) {
      this.problem({ code: 'DUPLICATE_MEMBER', member, message: `member ${JSON.stringify(member)} appears more than once` });
      return { kind: 'skip' };
    }
    this.seen.add(member);
    if (member === MEMBER.layoutHeader) {
      if (this.entries !== 1) this.problem({ code: 'MEMBER_ORDER', member, message: 'oci-layout is not the first member' });
      if (this.manifest) return this.expect(member, e);
      return { kind: 'buffer', cap: 4096 };
    }
    if (member === MEMBER.manifest) {
      if (e.size > LIMITS.maxJsonBytes) {
        this.manifestFailed = true;
        this.problem({ code: 'JSON_TOO_LARGE', member, message: `ferry-bundle.json is ${e.size} bytes, over the ${LIMITS.maxJsonBytes}-byte limit; not parsed` });
        return { kind: 'skip' };
      }
      return { kind: 'buffer', cap: LIMITS.maxJsonBytes };
    }
    if (member === MEMBER.signature) {
      if (e.size > LIMITS.maxSignatureBytes) {
        this.problem({ code: 'SIGNATURE_INVALID', member, message: `signature is ${e.size} bytes, over the ${LIMITS.maxSignatureBytes}-byte limit` });
        return { kind: 'skip' };
      }
      return { kind: 'buffer', cap: LIMITS.maxSignatureBytes };
    }
    if (!this.manifest) {
      if (!this.manifestFailed) {
        this.manifestFailed = true;
        this.problem({ code: 'MANIFEST_MISSING', member: MEMBER.manifest, message: `ferry-bundle.json does not come before ${JSON.stringify(member)} (not a ferry bundle, or damaged)` });
      }
      return { kind: 'skip' };
    }
    return this.expect(member, e);
  }

  private expect(member: string, e: TarEntry): Action {
    const hit = this.byPath.get(member);
    if (!hit) {
      this.problem({ code: 'UNEXPECTED_MEMBER', member, message: `member ${JSON.stringify(member)} is not listed in ferry-bundle.json` });
      return { kind: 'skip' };
    }
    const m = hit.m;
    if (hit.pos < this.lastPos) {
      this.problem({ code: 'MEMBER_ORDER', member, message: `member ${JSON.stringify(member)} is out of the order ferry-bundle.json lists` });
    }
    this.lastPos = Math.max(this.lastPos, hit.pos);
    if (e.size !== m.size) {
      this.problem({ code: 'SIZE_MISMATCH', member, ...(m.digest ? { digest: m.digest } : {}), message: `member ${JSON.stringify(member)} is ${e.size} bytes, ferry-bundle.json says ${m.size}` });
      this.verified.add(member); // seen (not missing), but not good
      return { kind: 'skip' };
    }
    if (member === MEMBER.index || member === MEMBER.checksums) {
      if (e.size > LIMITS.maxJsonBytes) {
        this.problem({ code: 'JSON_TOO_LARGE', member, message: `${member} is ${e.size} bytes, over the ${LIMITS.maxJsonBytes}-byte limit; not parsed` });
        this.verified.add(member);
        return { kind: 'skip' };
      }
    }
    const small = member === MEMBER.index || member === MEMBER.checksums || member === MEMBER.layoutHeader;
    const isManifest = m.storage === 'raw' && m.digest !== undefined && (this.wantManifest.has(m.digest) || isManifestType(m.mediaType));
    if (isManifest && m.size > LIMITS.maxManifestBytes) {
      this.problem({ code: 'JSON_TOO_LARGE', member, digest: m.digest!, message: `manifest ${m.digest} is ${m.size} bytes, over the ${LIMITS.maxManifestBytes}-byte limit` });
      return { kind: 'hash', member: m, keep: false };
    }
    return { kind: 'hash', member: m, keep: small || isManifest };
  }

  /** A buffered member (manifest, signature, oci-layout before the manifest is known). */
  buffered(e: TarEntry, bytes: Buffer): void {
    const member = e.rawName;
    if (member === MEMBER.signature) {
      this.signatureBytes = bytes;
      return;
    }
    if (member === MEMBER.layoutHeader) {
      if (!bytes.equals(OCI_LAYOUT_BYTES)) {
        try {
          const v = JSON.parse(bytes.toString('utf8')) as { imageLayoutVersion?: unknown };
          if (typeof v.imageLayoutVersion !== 'string') throw new Error('no imageLayoutVersion');
        } catch (err) {
          this.problem({ code: 'OCI_LAYOUT_INVALID', member, message: `oci-layout is not a valid layout header: ${errorMessage(err)}` });
        }
      }
      this.pendingLayout = bytes;
      return;
    }
    // ferry-bundle.json
    this.manifestBytes = bytes;
    let manifest: BundleManifest;
    try {
      manifest = parseBundleManifest(bytes, 'ferry-bundle.json');
    } catch (err) {
      this.manifestFailed = true;
      const code = err instanceof FerryError ? err.code : 'MANIFEST_INVALID';
      this.problem({ code, member, message: errorMessage(err).replace(/^ferry-bundle\.json: /, '') });
      return;
    }
    this.manifest = manifest;
    this.indexMembers(manifest);
    if (this.pendingLayout) {
      // oci-layout came first: check it against its listing now.
      const m = this.byPath.get(MEMBER.layoutHeader);
      if (!m) this.problem({ code: 'UNEXPECTED_MEMBER', member: MEMBER.layoutHeader, message: 'oci-layout is not listed in ferry-bundle.json' });
      else this.hashed(m.m, { sha256: createHash('sha256').update(this.pendingLayout).digest('hex'), bytes: this.pendingLayout.length, kept: this.pendingLayout });
    }
  }
  private pendingLayout: Buffer | undefined;

  private indexMembers(man: BundleManifest): void {
    man.members.forEach((m, pos) => {
      const where = { member: m.path, ...(m.digest ? { digest: m.digest } : {}) };
      if (this.byPath.has(m.path)) {
        this.problem({ code: 'MANIFEST_INVALID', ...where, message: `ferry-bundle.json lists member ${JSON.stringify(m.path)} twice` });
        return;
      }
      if (m.path === MEMBER.manifest || m.path === MEMBER.signature || unsafeName(m.path)) {
        this.problem({ code: 'MANIFEST_INVALID', ...where, message: `ferry-bundle.json lists a member it may not: ${JSON.stringify(m.path)}` });
        return;
      }
      const raw = RAW_BLOB_RE.exec(m.path);
      const z = ZSTD_BLOB_RE.exec(m.path);
      if (raw) {
        if (m.storage !== 'raw' || m.digest !== `sha256:${raw[1]}` || m.sha256 !== raw[1]) {
          this.problem({ code: 'MANIFEST_INVALID', ...where, message: `raw blob member ${m.path} must have storage raw and the digest and sha256 its name says` });
        }
      } else if (z) {
        if (m.storage !== 'zstd' || m.digest !== `sha256:${z[1]}` || m.uncompressedSize === undefined) {
          this.problem({ code: 'MANIFEST_INVALID', ...where, message: `zstd member ${m.path} must have storage zstd, digest sha256:${z[1]} and an uncompressedSize` });
        } else if (m.uncompressedSize > LIMITS.maxRestoredBytes) {
          this.problem({ code: 'MANIFEST_INVALID', ...where, message: `zstd member ${m.path} declares ${m.uncompressedSize} bytes, over the restore limit` });
        }
      } else if (![MEMBER.layoutHeader, MEMBER.index, MEMBER.checksums].includes(m.path as never)) {
        this.problem({ code: 'MANIFEST_INVALID', ...where, message: `ferry-bundle.json lists an unknown member kind ${JSON.stringify(m.path)}` });
      }
      this.byPath.set(m.path, { m, pos });
    });
    for (const i of man.images) this.wantManifest.add(i.digest);
    const stored = man.members.reduce((n, m) => n + m.size, 0);
    if (man.totals.storedBytes !== stored || man.totals.images !== man.images.length) {
      this.problem({ code: 'MANIFEST_INVALID', member: MEMBER.manifest, message: 'ferry-bundle.json totals disagree with its images and members' });
    }
  }

  /** A blob member whose content the caller checks later (deferBlobContent). */
  deferred(m: BundleMember): void {
    this.verified.add(m.path);
    if (m.digest) this.goodDigests.add(m.digest);
  }

  /** A member's stored bytes were hashed (and for zstd members, restored). */
  hashed(m: BundleMember, h: Hashed): void {
    const member = m.path;
    this.verified.add(member);
    const where = { member, ...(m.digest ? { digest: m.digest } : {}) };
    if (h.bytes !== m.size) {
      this.problem({ code: 'TAR_TRUNCATED', ...where, message: `member ${member}: read ${h.bytes} of ${m.size} bytes` });
      return;
    }
    if (h.sha256 !== m.sha256) {
      this.problem({ code: 'CHECKSUM_MISMATCH', ...where, message: `member ${member}: sha256 ${h.sha256} differs from ${m.sha256} in ferry-bundle.json` });
      return;
    }
    if (m.storage === 'zstd' && m.digest) {
      const r = h.restored;
      if (!r) {
        this.problem({ code: 'ZSTD_UNAVAILABLE', ...where, message: `member ${member}: the zstd command is not available to restore it; content not checked` });
        return;
      }
      if ('error' in r) {
        this.problem({ code: r.code, ...where, message: `member ${member}: ${r.error}` });
        return;
      }
      if (r.bytes !== m.uncompressedSize) {
        this.problem({ code: 'SIZE_MISMATCH', ...where, message: `member ${member} restores to ${r.bytes} bytes, not the declared ${m.uncompressedSize}` });
        return;
      }
      if (`sha256:${r.sha256}` !== m.digest) {
        this.problem({ code: 'DIGEST_MISMATCH', ...where, message: `member ${member} restores to sha256:${r.sha256}, not ${m.digest}` });
        return;
      }
    }
    if (m.digest) this.goodDigests.add(m.digest);
    if (!h.kept) return;
    if (member === MEMBER.index) this.indexBytes = h.kept;
    else if (member === MEMBER.checksums) this.sumsBytes = h.kept;
    else if (m.digest && m.storage === 'raw') {
      this.manifestsByDigest.set(m.digest, h.kept);
      // Children of an index are manifests too; they come after it (writer order), so keep them.
      try {
        const doc = parseManifest(h.kept, m.mediaType, `manifest ${m.digest}`);
        if (doc.kind === 'index') for (const c of doc.manifests) if (isManifestType(c.mediaType)) this.wantManifest.add(c.digest);
      } catch {
        // Reported (with the image) in finish().
      }
    }
  }

  /** After the last entry (or a tar error): cross-member checks. */
  finish(key: LoadedKey | undefined, requireSignature: boolean): VerifyResult['signature'] {
    const man = this.manifest;
    if (!man) {
      if (!this.manifestFailed) this.problem({ code: 'MANIFEST_MISSING', member: MEMBER.manifest, message: 'the bundle has no ferry-bundle.json' });
    } else {
      for (const m of man.members) {
        if (!this.verified.has(m.path)) {
          this.problem({ code: 'MEMBER_MISSING', member: m.path, ...(m.digest ? { digest: m.digest } : {}), message: `member ${m.path} listed in ferry-bundle.json is not in the bundle` });
        }
      }
      this.checkIndex(man);
      this.checkSums(man);
      this.checkImages(man);
    }
    // Signature.
    let sig: VerifyResult['signature'] = this.signatureBytes ? 'present' : 'none';
    if (key) {
      if (!this.signatureBytes) {
        this.problem({ code: 'SIGNATURE_MISSING', member: MEMBER.signature, message: 'a key was given but the bundle is not signed' });
      } else if (this.manifestBytes && verifyManifestSignature(this.manifestBytes, this.signatureBytes, key)) {
        sig = 'valid';
      } else {
        sig = 'invalid';
        this.problem({ code: 'SIGNATURE_INVALID', member: MEMBER.signature, message: `the signature does not verify with the given ${key.algorithm} key` });
      }
    } else if (requireSignature) {
      if (!this.signatureBytes) this.problem({ code: 'SIGNATURE_MISSING', member: MEMBER.signature, message: 'a signature is required but the bundle is not signed' });
      else this.problem({ code: 'SIGNATURE_UNVERIFIED', member: MEMBER.signature, message: 'a signature is required but no key was given to check it' });
    }
    return sig;
  }

  private checkIndex(man: BundleManifest): void {
    if (!this.indexBytes) return; // missing or damaged: already reported
    let entries: Array<{ digest?: unknown; annotations?: Record<string, unknown> }>;
    try {
      const doc = JSON.parse(this.indexBytes.toString('utf8')) as { manifests?: unknown };
      if (!Array.isArray(doc.manifests)) throw new Error('no manifests array');
      entries = doc.manifests as typeof entries;
    } catch (err) {
      this.problem({ code: 'INDEX_INVALID', member: MEMBER.index, message: `index.json: ${errorMessage(err)}` });
      return;
    }
    for (const img of man.images) {
      if (!entries.some((e) => e.digest === img.digest && e.annotations?.[REF_NAME] === img.ref)) {
        this.problem({ code: 'INDEX_MISMATCH', member: MEMBER.index, image: img.ref, digest: img.digest, message: `index.json has no entry naming ${img.ref} at ${img.digest}` });
      }
    }
  }

  private checkSums(man: BundleManifest): void {
    if (!this.sumsBytes) return;
    const want = checksumsFile(man.members.filter((m) => m.path !== MEMBER.checksums));
    if (!this.sumsBytes.equals(want)) {
      this.problem({ code: 'CHECKSUMS_MISMATCH', member: MEMBER.checksums, message: 'SHA256SUMS does not list exactly the members and hashes ferry-bundle.json does' });
    }
  }

  private checkImages(man: BundleManifest): void {
    const present = new Set(man.members.map((m) => m.digest).filter((d): d is string => !!d));
    for (const img of man.images) {
      const missing = (digest: string, what: string): void => {
        if (!present.has(digest)) {
          this.problem({ code: 'BLOB_MISSING', image: img.ref, digest, message: `image ${img.ref}: ${what} ${digest} is not in the bundle` });
        }
      };
      const visited = new Set<string>();
      const walk = (digest: string, mediaType: string | undefined, depth: number): void => {
        if (visited.has(digest) || depth > 8) return;
        visited.add(digest);
        missing(digest, depth === 0 ? 'root manifest' : 'manifest');
        const bytes = this.manifestsByDigest.get(digest);
        if (!bytes) return; // absent or damaged: reported against its member
        let doc;
        try {
          doc = parseManifest(bytes, mediaType, `image ${img.ref}: manifest ${digest}`);
        } catch (err) {
          this.problem({ code: 'IMAGE_INVALID', image: img.ref, digest, message: errorMessage(err) });
          return;
        }
        if (doc.kind === 'index') {
          for (const c of doc.manifests) {
            if (isManifestType(c.mediaType)) walk(c.digest, c.mediaType, depth + 1);
            else missing(c.digest, `index child (${c.mediaType})`);
          }
        } else {
          for (const b of requiredBlobs(doc)) {
            if (!isDigest(b.digest)) {
              this.problem({ code: 'IMAGE_INVALID', image: img.ref, digest, message: `image ${img.ref}: manifest ${digest} names unsupported digest ${b.digest}` });
              continue;
            }
            missing(b.digest, b === doc.config ? 'config' : 'layer');
          }
          // A missing `subject` is not an error: referrers travel without what they refer to.
        }
      };
      walk(img.digest, img.mediaType, 0);
    }
  }
}

/** Why a member name is unsafe, or undefined. */
export function unsafeName(name: string): string | undefined {
  if (name === '') return 'empty name';
  if (name.length > LIMITS.maxNameLength) return `name longer than ${LIMITS.maxNameLength} bytes`;
  if (name.includes('\0')) return 'NUL in name';
  if (name.startsWith('/')) return 'absolute path';
  if (name.includes('\\')) return 'backslash in name';
  for (const part of name.split('/')) {
    if (part === '..') return 'path escapes the bundle ("..")';
    if (part === '' || part === '.') return 'empty or "." path component';
  }
  return undefined;
}

async function readCapped(body: Readable, cap: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > cap) throw new Error(`over the ${cap}-byte limit`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

/** Hash a member's stored bytes from `body`; keep them if asked; restore zstd members. */
async function hashStream(body: Readable, m: BundleMember, keep: boolean): Promise<Hashed> {
  const h = createHash('sha256');
  let bytes = 0;
  const kept: Buffer[] = [];
  const tap = async function* (src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const c of src) {
      h.update(c);
      bytes += c.length;
      if (keep) kept.push(c);
      yield c;
    }
  };
  let restored: Hashed['restored'];
  if (m.storage === 'zstd' && zstdAvailable()) {
    const rh = createHash('sha256');
    let rbytes = 0;
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        rh.update(chunk);
        rbytes += chunk.length;
        cb();
      },
    });
    try {
      await runZstd(['-d', '-q', '-c', '--no-progress', '-'], Readable.from(tap(body)), sink, { outputCap: m.uncompressedSize ?? 0 });
      restored = { sha256: rh.digest('hex'), bytes: rbytes };
    } catch (err) {
      const code = (err as { code?: string }).code;
      restored = { error: errorMessage(err), code: code === 'ZSTD_OVERSIZE' ? 'ZSTD_OVERSIZE' : code === 'TAR_INVALID' ? 'TAR_INVALID' : 'ZSTD_INVALID' };
      if (code === 'TAR_INVALID') throw err;
      // Drain what zstd did not read, so the stored hash still covers the member.
      for await (const _ of tap(body)) void _;
    }
  } else {
    for await (const _ of tap(body)) void _;
  }
  return { sha256: h.digest('hex'), bytes, ...(keep ? { kept: Buffer.concat(kept) } : {}), ...(restored ? { restored } : {}) };
}

async function loadKey(opts: VerifyOptions): Promise<LoadedKey | undefined> {
  return opts.key !== undefined ? loadPublicKey(opts.key) : undefined;
}

/** Verify a bundle read sequentially from a stream (a pipe, stdin, a socket). */
export async function verifyBundleStream(source: Readable, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const key = await loadKey(opts);
  const c = new Checker();
  try {
    for await (const { entry, body } of iterateTar(source, { maxEntries: LIMITS.maxMembers + 2 })) {
      const a = c.entry(entry);
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
    c.problem({ code: 'TAR_INVALID', message: `the bundle is not a complete tar archive: ${errorMessage(err)}` });
  }
  return result(c, key, opts);
}

function result(c: Checker, key: LoadedKey | undefined, opts: VerifyOptions): VerifyResult {
  const signature = c.finish(key, !!opts.requireSignature);
  return { ok: c.problems.length === 0, problems: c.problems, manifest: c.manifest, signature, entries: c.entries };
}

/**
 * Verify a bundle file. A regular file is indexed by its headers and its members hashed on
 * every core; anything else (a FIFO, /dev/stdin) is read as a stream.
 */
export async function verifyBundle(file: string, opts: VerifyOptions = {}): Promise<VerifyResult> {
  const st = await stat(file);
  if (opts.deferBlobContent && !st.isFile()) throw new FerryError('NOT_A_FILE', `${file} is not a regular file`);
  if (!st.isFile() || opts.parallel === false) {
    return verifyBundleStream(createReadStream(file, { highWaterMark: 1024 * 1024 }), opts);
  }
  const key = await loadKey(opts);
  const c = new Checker();
  let entries: TarEntry[];
  try {
    entries = await indexTarFile(file, { maxEntries: LIMITS.maxMembers + 2 });
  } catch {
    // A damaged tar: the sequential reader reports everything up to the damage, then the damage.
    return verifyBundleStream(createReadStream(file, { highWaterMark: 1024 * 1024 }), opts);
  }
  // Workers are started only when some member is hashed off the main thread.
  let pool: HashPool | undefined;
  try {
    const jobs: Array<Promise<void>> = [];
    let zstdChain: Promise<void> = Promise.resolve();
    for (const e of entries) {
      const a = c.entry(e);
      if (a.kind === 'buffer') {
        // Must finish before the next entry: the manifest decides what later members are.
        await Promise.all(jobs.splice(0));
        try {
          c.buffered(e, await readCapped(openTarEntry(file, e), a.cap));
        } catch (err) {
          c.problem({ code: 'JSON_TOO_LARGE', member: e.rawName, message: `${e.rawName}: ${errorMessage(err)}` });
        }
      } else if (a.kind === 'hash') {
        const m = a.member;
        if (opts.deferBlobContent && !a.keep) {
          c.deferred(m);
        } else if (a.keep || m.storage === 'zstd') {
          // Manifests are kept in order (an index before its children); zstd goes through zstd -d.
          if (a.keep) await Promise.all(jobs.splice(0));
          if (a.keep) {
            c.hashed(m, await hashStream(openTarEntry(file, e), m, true));
          } else {
            // One zstd -d at a time (it is multi-threaded itself); the pool hashes meanwhile.
            zstdChain = zstdChain.then(async () => c.hashed(m, await hashStream(openTarEntry(file, e), m, false)));
            jobs.push(zstdChain);
          }
        } else {
          pool ??= new HashPool();
          jobs.push(pool.hashRange(file, e.dataOffset, e.size).then((h) => c.hashed(m, h)));
        }
      }
    }
    await Promise.all(jobs);
  } finally {
    await pool?.close();
  }
  return result(c, key, opts);
}
