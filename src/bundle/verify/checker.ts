/**
 * The bundle checker: one state machine with no I/O of its own, fed by two drivers (stream.ts,
 * file.ts) through an action union. For each tar entry it decides what the driver does
 * (skip, stop, buffer a small member, hash a member), enforces the tar-safety and member-order
 * rules, checks the signature as soon as the head is read, and records each member's result;
 * `finish` then runs the cross-member checks (missing members, index.json, SHA256SUMS, the
 * image graphs in graph.ts).
 */
import { createHash } from 'node:crypto';
import { parseManifest, type Descriptor, type ManifestDocument } from '../../oci/manifest.js';
import { isManifestType } from '../../oci/mediatypes.js';
import { parseReference } from '../../ref/reference.js';
import { openTarEntry, type TarEntry } from '../../tar/reader.js';
import { parseIndexJson, parseLayoutHeader, REF_NAME } from '../../transports/oci/layout.js';
import { errorMessage, FerryError } from '../../util/errors.js';
import { LIMITS, MEMBER, parseBundleManifest, RAW_BLOB_RE, ZSTD_BLOB_RE, type BundleManifest, type BundleMember } from '../format.js';
import { declaredSizeProblem } from '../limits-check.js';
import { loadPublicKey, verifyManifestSignature, type LoadedKey } from '../sign.js';
import { checksumsFile, OCI_LAYOUT_BYTES } from '../writer.js';
import { checkImages, type GraphView } from './graph.js';
import { readCapped, type Hashed } from './hash.js';
import {
  MAX_KEPT_MANIFEST_BYTES,
  MAX_PROBLEMS,
  type ManifestReader,
  type Problem,
  type VerifyOptions,
  type VerifyResult,
} from './problems.js';

/** What the checker asks its driver to do with an entry. */
export type Action =
  | { kind: 'skip' }
  | { kind: 'stop' }
  | { kind: 'buffer'; cap: number }
  | { kind: 'hash'; member: BundleMember; keep: boolean };

interface CheckerOptions {
  key: LoadedKey | undefined;
  requireSignature: boolean;
  /** Stream reads: keep raw blob members that may be manifests (the graph is walked at the end). */
  keepCandidates: boolean;
}

/** The state machine both drivers feed. */
export class Checker implements GraphView {
  readonly problems: Problem[] = [];
  manifest: BundleManifest | undefined;
  manifestBytes: Buffer | undefined;
  signatureBytes: Buffer | undefined;
  signature: VerifyResult['signature'] = 'none';
  /** Set when the bundle cannot be trusted at all (signature): nothing more is read. */
  stopped = false;
  private headDone = false;
  private manifestFailed = false;
  private readonly seen = new Set<string>();
  private readonly byPath = new Map<string, { m: BundleMember; pos: number }>();
  /** Blob members (valid blob path, digest matching it) by content digest; a raw copy wins. */
  readonly blobByDigest = new Map<string, BundleMember>();
  private readonly verified = new Set<string>();
  /** Members whose stored bytes (and restored content) are intact, or deferred to the caller. */
  readonly goodMembers = new Set<string>();
  /** Stream reads: raw blob members kept for the graph walk, by path. */
  private readonly kept = new Map<string, Buffer>();
  private keptBytes = 0;
  private keptOverflow = false;
  private readonly wantManifest = new Set<string>();
  private indexBytes: Buffer | undefined;
  private sumsBytes: Buffer | undefined;
  private lastPos = -1;
  entries = 0;

  constructor(private readonly opts: CheckerOptions) {}

  problem(p: Problem): void {
    if (this.problems.length < MAX_PROBLEMS) this.problems.push(p);
  }

  /** Decide what to do with an entry; tar-level safety checks happen here. */
  entry(e: TarEntry): Action {
    if (this.stopped) return { kind: 'stop' };
    this.entries++;
    const member = e.rawName;
    if (e.type !== 'file') {
      const what =
        e.type === 'symlink' || e.type === 'hardlink'
          ? `a ${e.type} to ${JSON.stringify(e.linkname ?? '')}`
          : `a ${e.type === 'other' ? 'special file' : e.type}`;
      this.problem({
        code: 'TAR_NOT_REGULAR',
        member,
        message: `member ${JSON.stringify(member)} is ${what}; a bundle holds regular files only`,
      });
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
        this.problem({
          code: 'JSON_TOO_LARGE',
          member,
          message: `ferry-bundle.json is ${e.size} bytes, over the ${LIMITS.maxJsonBytes}-byte limit; not parsed`,
        });
        return { kind: 'skip' };
      }
      return { kind: 'buffer', cap: LIMITS.maxJsonBytes };
    }
    if (member === MEMBER.signature) {
      if (e.size > LIMITS.maxSignatureBytes) {
        this.problem({
          code: 'SIGNATURE_INVALID',
          member,
          message: `signature is ${e.size} bytes, over the ${LIMITS.maxSignatureBytes}-byte limit`,
        });
        return { kind: 'skip' };
      }
      return { kind: 'buffer', cap: LIMITS.maxSignatureBytes };
    }
    // The head (oci-layout, ferry-bundle.json, its signature) is over: with a key, nothing
    // else is read unless the signature verifies.
    if (!this.headDone) {
      this.headDone = true;
      if (!this.checkSignature()) {
        this.stopped = true;
        return { kind: 'stop' };
      }
    }
    if (!this.manifest) {
      if (!this.manifestFailed) {
        this.manifestFailed = true;
        this.problem({
          code: 'MANIFEST_MISSING',
          member: MEMBER.manifest,
          message: `ferry-bundle.json does not come before ${JSON.stringify(member)} (not a ferry bundle, or damaged)`,
        });
      }
      return { kind: 'skip' };
    }
    return this.expect(member, e);
  }

  /**
   * The signature, as soon as the head is read. False when reading on would be pointless: a key
   * was given (or a signature required) and the signature is missing or does not verify.
   */
  private checkSignature(): boolean {
    const { key, requireSignature } = this.opts;
    this.signature = this.signatureBytes ? 'present' : 'none';
    if (key) {
      if (!this.signatureBytes) {
        this.problem({
          code: 'SIGNATURE_MISSING',
          member: MEMBER.signature,
          message: 'a key was given but the bundle is not signed; nothing else was checked',
        });
        return false;
      }
      if (!this.manifestBytes) {
        this.signature = 'invalid';
        this.problem({
          code: 'SIGNATURE_INVALID',
          member: MEMBER.signature,
          message: 'ferry-bundle.json could not be read, so the signature cannot be checked; nothing else was checked',
        });
        return false;
      }
      if (!verifyManifestSignature(this.manifestBytes, this.signatureBytes, key)) {
        this.signature = 'invalid';
        this.problem({
          code: 'SIGNATURE_INVALID',
          member: MEMBER.signature,
          message: `the signature does not verify with the given ${key.algorithm} key; nothing else was checked`,
        });
        return false;
      }
      this.signature = 'valid';
      return true;
    }
    if (requireSignature) {
      if (!this.signatureBytes) {
        this.problem({
          code: 'SIGNATURE_MISSING',
          member: MEMBER.signature,
          message: 'a signature is required but the bundle is not signed; nothing else was checked',
        });
        return false;
      }
      this.problem({
        code: 'SIGNATURE_UNVERIFIED',
        member: MEMBER.signature,
        message: 'a signature is required but no key was given to check it',
      });
    }
    return true;
  }

  private expect(member: string, e: TarEntry): Action {
    const hit = this.byPath.get(member);
    if (!hit) {
      this.problem({ code: 'UNEXPECTED_MEMBER', member, message: `member ${JSON.stringify(member)} is not listed in ferry-bundle.json` });
      return { kind: 'skip' };
    }
    const m = hit.m;
    if (hit.pos < this.lastPos) {
      this.problem({
        code: 'MEMBER_ORDER',
        member,
        message: `member ${JSON.stringify(member)} is out of the order ferry-bundle.json lists`,
      });
    }
    this.lastPos = Math.max(this.lastPos, hit.pos);
    if (e.size !== m.size) {
      this.problem({
        code: 'SIZE_MISMATCH',
        member,
        ...(m.digest ? { digest: m.digest } : {}),
        message: `member ${JSON.stringify(member)} is ${e.size} bytes, ferry-bundle.json says ${m.size}`,
      });
      this.verified.add(member); // seen (not missing), but not good
      return { kind: 'skip' };
    }
    if (member === MEMBER.index || member === MEMBER.checksums) {
      if (e.size > LIMITS.maxJsonBytes) {
        this.problem({
          code: 'JSON_TOO_LARGE',
          member,
          message: `${member} is ${e.size} bytes, over the ${LIMITS.maxJsonBytes}-byte limit; not parsed`,
        });
        this.verified.add(member);
        return { kind: 'skip' };
      }
    }
    const small = member === MEMBER.index || member === MEMBER.checksums || member === MEMBER.layoutHeader;
    // A stream is read once: keep every raw blob that may be a manifest (kept only if it is one).
    const candidate = this.opts.keepCandidates && m.storage === 'raw' && RAW_BLOB_RE.test(member) && m.size <= LIMITS.maxManifestBytes;
    return { kind: 'hash', member: m, keep: small || candidate };
  }

  /** A buffered member (manifest, signature, oci-layout before the manifest is known). */
  buffered(e: TarEntry, bytes: Buffer): void {
    const member = e.rawName;
    if (member === MEMBER.signature) {
      this.signatureBytes = bytes;
      return;
    }
    if (member === MEMBER.layoutHeader) {
      this.checkLayoutHeader(bytes);
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
      if (!m)
        this.problem({ code: 'UNEXPECTED_MEMBER', member: MEMBER.layoutHeader, message: 'oci-layout is not listed in ferry-bundle.json' });
      else
        this.hashed(m.m, {
          sha256: createHash('sha256').update(this.pendingLayout).digest('hex'),
          bytes: this.pendingLayout.length,
          kept: this.pendingLayout,
        });
    }
  }
  private pendingLayout: Buffer | undefined;

  /** oci-layout as every reader of an OCI layout reads it (load refuses what this refuses). */
  private checkLayoutHeader(bytes: Buffer): void {
    if (bytes.equals(OCI_LAYOUT_BYTES)) return;
    try {
      parseLayoutHeader(bytes, 'oci-layout');
    } catch (err) {
      this.problem({ code: 'OCI_LAYOUT_INVALID', member: MEMBER.layoutHeader, message: errorMessage(err) });
    }
  }

  private indexMembers(man: BundleManifest): void {
    man.members.forEach((m, pos) => {
      const where = { member: m.path, ...(m.digest ? { digest: m.digest } : {}) };
      if (this.byPath.has(m.path)) {
        this.problem({ code: 'MANIFEST_INVALID', ...where, message: `ferry-bundle.json lists member ${JSON.stringify(m.path)} twice` });
        return;
      }
      if (m.path === MEMBER.manifest || m.path === MEMBER.signature || unsafeName(m.path)) {
        this.problem({
          code: 'MANIFEST_INVALID',
          ...where,
          message: `ferry-bundle.json lists a member it may not: ${JSON.stringify(m.path)}`,
        });
        return;
      }
      const raw = RAW_BLOB_RE.exec(m.path);
      const z = ZSTD_BLOB_RE.exec(m.path);
      if (raw) {
        if (m.storage !== 'raw' || m.digest !== `sha256:${raw[1]}` || m.sha256 !== raw[1] || m.uncompressedSize !== undefined) {
          this.problem({
            code: 'MANIFEST_INVALID',
            ...where,
            message: `raw blob member ${m.path} must have storage raw and the digest and sha256 its name says`,
          });
        } else if (this.blobByDigest.get(m.digest)?.storage !== 'raw') {
          this.blobByDigest.set(m.digest, m);
        }
      } else if (z) {
        if (m.storage !== 'zstd' || m.digest !== `sha256:${z[1]}` || m.uncompressedSize === undefined) {
          this.problem({
            code: 'MANIFEST_INVALID',
            ...where,
            message: `zstd member ${m.path} must have storage zstd, digest sha256:${z[1]} and an uncompressedSize`,
          });
        } else if (declaredSizeProblem(m) !== undefined) {
          this.problem({ code: 'MANIFEST_INVALID', ...where, message: declaredSizeProblem(m)! });
        } else if (!this.blobByDigest.has(m.digest)) {
          this.blobByDigest.set(m.digest, m);
        }
      } else if (![MEMBER.layoutHeader, MEMBER.index, MEMBER.checksums].includes(m.path as never)) {
        this.problem({
          code: 'MANIFEST_INVALID',
          ...where,
          message: `ferry-bundle.json lists an unknown member kind ${JSON.stringify(m.path)}`,
        });
      } else if (m.storage !== 'raw' || m.digest !== undefined || m.uncompressedSize !== undefined || m.mediaType !== undefined) {
        // Only blob members carry a digest: one on index.json would count as a blob that is not there.
        this.problem({
          code: 'MANIFEST_INVALID',
          ...where,
          message: `member ${m.path} is not a blob: it must have storage raw and no digest, uncompressedSize or mediaType`,
        });
      }
      this.byPath.set(m.path, { m, pos });
    });
    // What every reader of the layout needs: load and serve refuse an archive without index.json.
    for (const required of [MEMBER.layoutHeader, MEMBER.index]) {
      if (!this.byPath.has(required)) {
        this.problem({
          code: 'MANIFEST_INVALID',
          member: required,
          message: `ferry-bundle.json does not list ${required}, which a bundle must hold`,
        });
      }
    }
    for (const i of man.images) {
      this.wantManifest.add(i.digest);
      // load names each image by its ref: one that is not a reference is not a name.
      const bad = referenceProblem(i.ref);
      if (bad) {
        this.problem({
          code: 'REFERENCE_INVALID',
          member: MEMBER.manifest,
          image: i.ref.slice(0, 300),
          digest: i.digest,
          message: `ferry-bundle.json lists an image whose ref ${JSON.stringify(i.ref.slice(0, 300))} is not an image reference: ${bad}`,
        });
      }
    }
    const stored = man.members.reduce((n, m) => n + m.size, 0);
    if (man.totals.storedBytes !== stored || man.totals.images !== man.images.length) {
      this.problem({
        code: 'MANIFEST_INVALID',
        member: MEMBER.manifest,
        message: 'ferry-bundle.json totals disagree with its images and members',
      });
    }
  }

  /** A blob member whose content the caller checks later (deferBlobContent). */
  deferred(m: BundleMember): void {
    this.verified.add(m.path);
    this.goodMembers.add(m.path);
  }

  /** A member that could not be read or restored at all. */
  failed(m: BundleMember, code: string, message: string): void {
    this.verified.add(m.path);
    this.problem({ code, member: m.path, ...(m.digest ? { digest: m.digest } : {}), message: `member ${m.path}: ${message}` });
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
      this.problem({
        code: 'CHECKSUM_MISMATCH',
        ...where,
        message: `member ${member}: sha256 ${h.sha256} differs from ${m.sha256} in ferry-bundle.json`,
      });
      return;
    }
    if (m.storage === 'zstd' && m.digest) {
      const r = h.restored;
      if (!r) throw new Error(`member ${member}: a zstd member was hashed without being restored`);
      if ('error' in r) {
        this.problem({ code: r.code, ...where, message: `member ${member}: ${r.error}` });
        return;
      }
      if (r.bytes !== m.uncompressedSize) {
        this.problem({
          code: 'SIZE_MISMATCH',
          ...where,
          message: `member ${member} restores to ${r.bytes} bytes, not the declared ${m.uncompressedSize}`,
        });
        return;
      }
      if (`sha256:${r.sha256}` !== m.digest) {
        this.problem({ code: 'DIGEST_MISMATCH', ...where, message: `member ${member} restores to sha256:${r.sha256}, not ${m.digest}` });
        return;
      }
    }
    this.goodMembers.add(member);
    if (!h.kept) return;
    if (member === MEMBER.index) this.indexBytes = h.kept;
    else if (member === MEMBER.layoutHeader) {
      if (h.kept !== this.pendingLayout) this.checkLayoutHeader(h.kept);
    } else if (member === MEMBER.checksums) this.sumsBytes = h.kept;
    else if (m.digest && m.storage === 'raw' && RAW_BLOB_RE.test(member)) this.keepCandidate(m, h.kept);
  }

  /** Stream reads: keep a raw blob if it is (or may be) a manifest, within the memory cap. */
  private keepCandidate(m: BundleMember, bytes: Buffer): void {
    const digest = m.digest!;
    let doc: ManifestDocument | undefined;
    try {
      doc = parseManifest(bytes, isManifestType(m.mediaType) ? m.mediaType : undefined, `manifest ${digest}`);
    } catch {
      // Not a manifest (a config, a small layer), unless something says it should be one: then
      // it is kept so the graph walk reports it with its image.
      if (!this.wantManifest.has(digest) && !isManifestType(m.mediaType)) return;
    }
    if (this.keptBytes + bytes.length > MAX_KEPT_MANIFEST_BYTES) {
      if (!this.keptOverflow) {
        this.keptOverflow = true;
        this.problem({
          code: 'MANIFESTS_TOO_LARGE',
          member: m.path,
          digest,
          message: `the bundle's manifests take more than ${MAX_KEPT_MANIFEST_BYTES} bytes; images whose manifests are beyond that are not checked`,
        });
      }
      return;
    }
    this.keptBytes += bytes.length;
    this.kept.set(m.path, bytes);
    if (doc?.kind === 'index') for (const c of doc.manifests) if (isManifestType(c.mediaType)) this.wantManifest.add(c.digest);
  }

  /** Stream reads: the manifests kept while reading. */
  readonly keptReader: ManifestReader = (m) => Promise.resolve(this.kept.get(m.path));

  /** After the last entry (or a tar error): cross-member checks. */
  async finish(read: ManifestReader): Promise<VerifyResult['signature']> {
    if (!this.headDone) {
      // The bundle ends with its head (or is empty): the signature is checked now.
      this.headDone = true;
      if (!this.checkSignature()) this.stopped = true;
    }
    if (this.stopped) return this.signature;
    const man = this.manifest;
    if (!man) {
      if (!this.manifestFailed)
        this.problem({ code: 'MANIFEST_MISSING', member: MEMBER.manifest, message: 'the bundle has no ferry-bundle.json' });
    } else {
      for (const m of man.members) {
        if (!this.verified.has(m.path)) {
          this.problem({
            code: 'MEMBER_MISSING',
            member: m.path,
            ...(m.digest ? { digest: m.digest } : {}),
            message: `member ${m.path} listed in ferry-bundle.json is not in the bundle`,
          });
        }
      }
      this.checkIndex(man);
      this.checkSums(man);
      await checkImages(man, read, this);
    }
    return this.signature;
  }

  /**
   * index.json, read as load and serve read it (parseIndexJson: every entry a descriptor), must
   * name every image at the digest and size ferry-bundle.json gives it.
   */
  private checkIndex(man: BundleManifest): void {
    if (!this.indexBytes) return; // missing or damaged: already reported
    let entries: Descriptor[];
    try {
      entries = parseIndexJson(this.indexBytes, 'index.json').manifests ?? [];
    } catch (err) {
      this.problem({ code: 'INDEX_INVALID', member: MEMBER.index, message: errorMessage(err) });
      return;
    }
    const byRef = new Map<string, Descriptor[]>();
    for (const e of entries) {
      const ref = e.annotations?.[REF_NAME];
      if (ref === undefined) continue;
      const list = byRef.get(ref);
      if (list) list.push(e);
      else byRef.set(ref, [e]);
    }
    for (const img of man.images) {
      const hit = byRef.get(img.ref)?.find((e) => e.digest === img.digest);
      if (!hit) {
        this.problem({
          code: 'INDEX_MISMATCH',
          member: MEMBER.index,
          image: img.ref,
          digest: img.digest,
          message: `index.json has no entry naming ${img.ref} at ${img.digest}`,
        });
      } else if (hit.size !== img.size) {
        this.problem({
          code: 'INDEX_MISMATCH',
          member: MEMBER.index,
          image: img.ref,
          digest: img.digest,
          message: `index.json names ${img.ref} at ${img.digest} with size ${hit.size}; ferry-bundle.json says ${img.size}`,
        });
      }
    }
  }

  private checkSums(man: BundleManifest): void {
    if (!this.sumsBytes) return;
    const want = checksumsFile(man.members.filter((m) => m.path !== MEMBER.checksums));
    if (!this.sumsBytes.equals(want)) {
      this.problem({
        code: 'CHECKSUMS_MISMATCH',
        member: MEMBER.checksums,
        message: 'SHA256SUMS does not list exactly the members and hashes ferry-bundle.json does',
      });
    }
  }

  /** For file reads: a member's bytes again, checked against its listed sha256. */
  reread(file: string, entries: ReadonlyMap<string, TarEntry>): ManifestReader {
    return async (m) => {
      const e = entries.get(m.path);
      if (!e) return undefined;
      let bytes: Buffer;
      try {
        bytes = await readCapped(openTarEntry(file, e), LIMITS.maxManifestBytes);
      } catch (err) {
        this.goodMembers.delete(m.path);
        this.failed(m, 'TAR_INVALID', `cannot be read: ${errorMessage(err)}`);
        return undefined;
      }
      const sha = createHash('sha256').update(bytes).digest('hex');
      if (bytes.length !== m.size || sha !== m.sha256) {
        this.goodMembers.delete(m.path);
        this.problem({
          code: 'CHECKSUM_MISMATCH',
          member: m.path,
          ...(m.digest ? { digest: m.digest } : {}),
          message: `member ${m.path}: sha256 ${sha} differs from ${m.sha256} in ferry-bundle.json`,
        });
        return undefined;
      }
      return bytes;
    };
  }
}

/** Why a ref is not a full image reference (Docker's grammar), or undefined. */
function referenceProblem(ref: string): string | undefined {
  try {
    parseReference(ref);
    return undefined;
  } catch (err) {
    return errorMessage(err);
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

/** Reading options for bundles: strict pax, nothing but padding after the end-of-archive marker. */
export const BUNDLE_TAR_OPTIONS = { maxEntries: LIMITS.maxMembers + 2, strict: true } as const;

export async function newChecker(opts: VerifyOptions, keepCandidates: boolean): Promise<Checker> {
  const key = opts.key !== undefined ? await loadPublicKey(opts.key) : undefined;
  return new Checker({ key, requireSignature: !!opts.requireSignature, keepCandidates });
}

/** Run the cross-member checks and report. */
export async function report(c: Checker, read: ManifestReader): Promise<VerifyResult> {
  const signature = await c.finish(read);
  return {
    ok: c.problems.length === 0,
    problems: c.problems,
    manifest: c.manifest,
    ...(c.manifest && c.manifestBytes ? { manifestDigest: `sha256:${createHash('sha256').update(c.manifestBytes).digest('hex')}` } : {}),
    signature,
    entries: c.entries,
  };
}
