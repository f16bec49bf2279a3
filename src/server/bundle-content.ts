/**
 * ServedContent for a ferry bundle (or any plain OCI archive: a tar holding an OCI layout),
 * served in place. Opening indexes the tar by its headers only (no blob is read or hashed),
 * reads index.json and every reachable manifest from their offsets (size-capped, verified
 * against their digests), and builds the same repositories as layout-content: naming by
 * `org.opencontainers.image.ref.name` (else `io.containerd.image.name`), and per repository
 * only the manifests and blobs reachable from its own images plus the untagged artifacts that
 * refer to them.
 *
 * Blobs are served from their byte offsets in the tar: raw members (`blobs/sha256/<hex>`)
 * directly, with ranges; zstd members (`ferry/zstd/sha256/<hex>.zst`, bundles only) restored
 * on the fly through `zstd -d`, a range by skipping and limiting the restored stream (zstd is
 * stopped once the range is complete), never holding more than a chunk in memory.
 */
import { spawn } from 'node:child_process';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { BundleManifestSchema, LIMITS, MEMBER, ZSTD_BLOB_RE } from '../bundle/format.js';
import { ZstdError, zstdAvailable } from '../bundle/reader.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { isPlaceholderDescriptor, parseManifest, type Descriptor, type ManifestDocument } from '../oci/manifest.js';
import { CONTAINERD_NAME, MissingBlobError, REF_NAME } from '../transports/oci/layout.js';
import { OciArchive } from '../transports/oci-archive/source.js';
import { IntegrityError, UsageError, errorMessage } from '../util/errors.js';
import type { TarEntry } from '../util/tar-reader.js';
import {
  BlobGoneError,
  ServeConflictError,
  sortedNames,
  type ByteRange,
  type ReferrerDescriptor,
  type ServedBlob,
  type ServedContent,
  type ServedManifest,
  type TagTarget,
} from './content.js';
import { isRepositoryName, servedName, type ServedName } from './names.js';

export interface BundleContentOptions {
  /** Keep the registry host in repository names: `docker.io/library/nginx`. */
  scoped?: boolean;
  /** The repository for images whose ref.name is a bare tag (`v1`), and for unnamed images. */
  repository?: string;
}

const LOAD_CONCURRENCY = 16;

/** Where a blob's bytes are in the tar. */
export type BlobMember =
  | { storage: 'raw'; entry: TarEntry }
  | { storage: 'zstd'; entry: TarEntry; uncompressedSize: number };

interface ManifestNode {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  doc: ManifestDocument;
}

interface Repository {
  tags: Map<string, { target: TagTarget; label: string }>;
  manifests: Set<Digest>;
  blobs: Map<Digest, number>;
  referrers: Map<Digest, ReferrerDescriptor[]>;
}

interface NamedEntry {
  desc: Descriptor & { digest: Digest };
  name: ServedName;
  label: string;
}

/** Result of naming the index.json entries (pure: exported for tests). */
export interface IndexNaming {
  named: NamedEntry[];
  unnamed: Array<Descriptor & { digest: Digest }>;
  warnings: string[];
}

/**
 * Name every index.json entry as layout-content does: ref.name when it is a full reference,
 * the containerd name for bare tags and unnamed entries, `opts.repository` when given.
 */
export function nameIndexEntries(manifests: readonly Descriptor[], opts: BundleContentOptions, where: string): IndexNaming {
  const named: NamedEntry[] = [];
  const unnamed: Array<Descriptor & { digest: Digest }> = [];
  const warnings: string[] = [];
  const bareTags: string[] = [];
  for (const desc of manifests) {
    const refName = desc.annotations?.[REF_NAME];
    const label = refName || desc.digest;
    if (!isDigest(desc.digest)) {
      warnings.push(`skipping ${label}: unsupported digest ${JSON.stringify(desc.digest)}`);
      continue;
    }
    const entry = desc as Descriptor & { digest: Digest };
    const containerdName = desc.annotations?.[CONTAINERD_NAME];
    const fromContainerd = (): ServedName | undefined => {
      if (!containerdName) return undefined;
      const r = servedName(containerdName, opts);
      return r.kind === 'served' ? r.name : undefined;
    };
    if (!refName) {
      const name = opts.repository !== undefined ? { repository: opts.repository, tag: undefined } : fromContainerd();
      if (name) named.push({ desc: entry, name, label: containerdName || label });
      else unnamed.push(entry);
      continue;
    }
    const r = servedName(refName, opts);
    if (r.kind === 'served') {
      named.push({ desc: entry, name: r.name, label });
    } else if (r.kind === 'bare-tag') {
      const name = opts.repository !== undefined ? { repository: opts.repository, tag: r.tag } : fromContainerd();
      if (name) named.push({ desc: entry, name, label });
      else bareTags.push(refName);
    } else {
      warnings.push(`skipping ${refName}: ${r.reason}`);
    }
  }
  if (bareTags.length > 0) {
    const shown = bareTags.slice(0, 5).join(', ') + (bareTags.length > 5 ? ', …' : '');
    warnings.push(`${bareTags.length} image(s) named by a bare tag (${shown}) are not served: give them a repository with ${where}:REPO`);
  }
  return { named, unnamed, warnings };
}

/**
 * Where every blob of the archive is: raw members by digest, and zstd members that the bundle
 * manifest describes (digest and uncompressedSize). Pure: exported for tests.
 */
export function blobMembers(
  entries: readonly TarEntry[],
  zstdMembers: ReadonlyMap<string, { digest: Digest; uncompressedSize: number }>,
): Map<Digest, BlobMember> {
  const out = new Map<Digest, BlobMember>();
  // Later members replace earlier ones of the same name, as extraction would.
  const byName = new Map<string, TarEntry>();
  for (const e of entries) byName.set(e.name, e);
  for (const e of byName.values()) {
    if (e.type !== 'file') continue;
    const raw = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(e.name);
    if (raw) {
      out.set(`sha256:${raw[1]}` as Digest, { storage: 'raw', entry: e });
      continue;
    }
    const z = zstdMembers.get(e.name);
    if (z && ZSTD_BLOB_RE.test(e.name) && !out.has(z.digest)) {
      out.set(z.digest, { storage: 'zstd', entry: e, uncompressedSize: z.uncompressedSize });
    }
  }
  // A raw copy wins over a compressed one (cheaper, rangeable), whatever the member order.
  for (const e of byName.values()) {
    const raw = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(e.name);
    if (raw && e.type === 'file') out.set(`sha256:${raw[1]}` as Digest, { storage: 'raw', entry: e });
  }
  return out;
}

function limiter(max: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** The zstd members the bundle manifest lists, by member path; empty for a plain OCI archive. */
async function readZstdMembers(archive: OciArchive, label: string): Promise<Map<string, { digest: Digest; uncompressedSize: number }>> {
  const out = new Map<string, { digest: Digest; uncompressedSize: number }>();
  if (!archive.archive.has(MEMBER.manifest)) return out;
  const bytes = await archive.archive.readBytes(archive.archive.resolve(MEMBER.manifest), LIMITS.maxJsonBytes, MEMBER.manifest);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new IntegrityError('MANIFEST_INVALID', `${label}: ferry-bundle.json is not valid JSON: ${(err as Error).message}`);
  }
  const r = BundleManifestSchema.safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new IntegrityError('MANIFEST_INVALID', `${label}: ferry-bundle.json: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}`);
  }
  for (const m of r.data.members) {
    if (m.storage !== 'zstd' || !m.digest || m.uncompressedSize === undefined) continue;
    if (m.uncompressedSize > LIMITS.maxRestoredBytes) continue;
    out.set(m.path, { digest: m.digest as Digest, uncompressedSize: m.uncompressedSize });
  }
  return out;
}

/** Open a ferry bundle or OCI archive for serving. Throws only when the archive itself is unusable. */
export async function bundleContent(file: string, opts: BundleContentOptions = {}): Promise<ServedContent> {
  if (opts.repository !== undefined && !isRepositoryName(opts.repository)) {
    throw new UsageError(
      `invalid repository name ${JSON.stringify(opts.repository)}: lower-case letters and digits, separated by ".", "_", "__", "-" or "/"`,
    );
  }
  const abs = path.resolve(file);
  const archive = await OciArchive.open(abs);
  try {
    return await build(archive, abs, opts);
  } catch (err) {
    await archive.close();
    throw err;
  }
}

async function build(archive: OciArchive, file: string, opts: BundleContentOptions): Promise<ServedContent> {
  const isBundle = archive.archive.has(MEMBER.manifest);
  const description = `${isBundle ? 'bundle' : 'oci-archive'}:${file}`;
  const warnings: string[] = [];
  const warn = (m: string): void => {
    warnings.push(`${description}: ${m}`);
  };
  const zstdMembers = await readZstdMembers(archive, description);
  const blobs = blobMembers(archive.archive.entries, zstdMembers);
  const canRestore = zstdMembers.size === 0 || zstdAvailable();
  if (!canRestore) warn(`${zstdMembers.size} blob(s) are stored zstd-compressed and no zstd tool is on PATH: they are not served`);

  // 1. Names.
  const naming = nameIndexEntries(archive.listImages(), opts, description);
  for (const w of naming.warnings) warn(w);
  const { named, unnamed } = naming;

  // 2. Manifest graph (manifests are raw members: ferry never compresses them).
  const nodes = new Map<Digest, ManifestNode | null>();
  const visited = new Set<Digest>();
  const limit = limiter(LOAD_CONCURRENCY);
  const load = async (desc: Descriptor & { digest: Digest }, what: string, isRoot: boolean): Promise<ManifestNode | undefined> => {
    let bytes: Buffer;
    try {
      bytes = await limit(() => archive.readBlobBytes(desc, what, LIMITS.maxManifestBytes));
    } catch (err) {
      nodes.set(desc.digest, null);
      if (err instanceof MissingBlobError && !isRoot) return undefined;
      warn(`${errorMessage(err)}; not served`);
      return undefined;
    }
    let doc: ManifestDocument;
    try {
      doc = parseManifest(bytes, desc.mediaType, what);
    } catch (err) {
      nodes.set(desc.digest, null);
      warn(`${errorMessage(err)}; not served`);
      return undefined;
    }
    const node: ManifestNode = { digest: desc.digest, mediaType: doc.mediaType, bytes, doc };
    nodes.set(desc.digest, node);
    return node;
  };
  const loadTree = async (desc: Descriptor, what: string, isRoot: boolean): Promise<void> => {
    const digest = desc.digest;
    if (!isDigest(digest) || visited.has(digest)) return;
    visited.add(digest);
    const node = await load({ ...desc, digest }, what, isRoot);
    if (node?.doc.kind === 'index') {
      await Promise.all(node.doc.manifests.map((child) => loadTree(child, `${what} > ${child.digest}`, false)));
    }
  };
  const graph = (d: Digest): ManifestNode | undefined => nodes.get(d) ?? undefined;
  await Promise.all([
    ...named.map((e) => loadTree(e.desc, e.label, true)),
    ...unnamed.map((d) => loadTree(d, `untagged image ${d.digest}`, true)),
  ]);

  // 3. Repositories.
  const repos = new Map<string, Repository>();
  const repoFor = (name: string): Repository => {
    let r = repos.get(name);
    if (!r) {
      r = { tags: new Map(), manifests: new Set(), blobs: new Map(), referrers: new Map() };
      repos.set(name, r);
    }
    return r;
  };
  const addClosure = (repo: Repository, digest: Digest, reached: Digest[]): void => {
    const node = graph(digest);
    if (!node || repo.manifests.has(digest)) return;
    repo.manifests.add(digest);
    reached.push(digest);
    const doc = node.doc;
    if (doc.subject && isDigest(doc.subject.digest)) {
      const list = repo.referrers.get(doc.subject.digest) ?? [];
      list.push(referrerDescriptor(node));
      repo.referrers.set(doc.subject.digest, list);
    }
    if (doc.kind === 'index') {
      for (const child of doc.manifests) if (isDigest(child.digest)) addClosure(repo, child.digest, reached);
    } else {
      for (const b of [doc.config, ...doc.layers]) {
        if (!isPlaceholderDescriptor(b) && isDigest(b.digest)) repo.blobs.set(b.digest, b.size);
      }
    }
  };
  const reachedBy = new Map<Repository, Digest[]>();
  for (const e of named) {
    const node = graph(e.desc.digest);
    if (!node) continue;
    const repo = repoFor(e.name.repository);
    const tag = e.name.tag;
    if (tag !== undefined) {
      const prev = repo.tags.get(tag);
      if (prev && prev.target.digest !== node.digest) {
        if (prev.label === e.label) {
          warn(`${e.label} is listed more than once; serving the first (${prev.target.digest})`);
          continue;
        }
        throw new ServeConflictError(
          `${e.name.repository}:${tag} is ambiguous in ${description}: ${prev.label} is ${prev.target.digest} but ${e.label} is ${node.digest}`,
        );
      }
      if (!prev) repo.tags.set(tag, { target: { mediaType: node.mediaType, digest: node.digest, size: node.bytes.length }, label: e.label });
    }
    const reached = reachedBy.get(repo) ?? [];
    addClosure(repo, node.digest, reached);
    reachedBy.set(repo, reached);
  }

  // 4. Untagged artifacts join the repositories of what they refer to, transitively.
  const bySubject = new Map<Digest, Digest[]>();
  for (const d of unnamed) {
    const subject = graph(d.digest)?.doc.subject?.digest;
    if (!subject || !isDigest(subject)) continue;
    const list = bySubject.get(subject);
    if (list) list.push(d.digest);
    else bySubject.set(subject, [d.digest]);
  }
  const attached = new Set<Digest>();
  if (bySubject.size > 0) {
    for (const [repo, reached] of reachedBy) {
      const pending = [...reached];
      while (pending.length > 0) {
        const d = pending.pop()!;
        for (const referrer of bySubject.get(d) ?? []) {
          attached.add(referrer);
          addClosure(repo, referrer, pending);
        }
      }
    }
  }
  const orphans = unnamed.filter((d) => graph(d.digest) && !attached.has(d.digest)).length;
  if (orphans > 0) warn(`${orphans} unnamed image(s) in index.json belong to no served image and are not served`);

  const sortedTags = new Map<string, readonly string[]>([...repos].map(([name, r]) => [name, Object.freeze(sortedNames(r.tags.keys()))]));
  const repoNames = Object.freeze(sortedNames(repos.keys()));

  return {
    description,
    warnings,
    repositories: () => repoNames,
    tags: (repository) => sortedTags.get(repository),
    resolveTag: (repository, tag) => repos.get(repository)?.tags.get(tag)?.target,
    manifest: async (repository, digest): Promise<ServedManifest | undefined> => {
      if (!repos.get(repository)?.manifests.has(digest)) return undefined;
      const node = graph(digest);
      return node ? { digest, mediaType: node.mediaType, bytes: node.bytes } : undefined;
    },
    blob: async (repository, digest): Promise<ServedBlob | undefined> => {
      const repo = repos.get(repository);
      if (!repo) return undefined;
      const size = repo.blobs.get(digest) ?? (repo.manifests.has(digest) ? graph(digest)?.bytes.length : undefined);
      if (size === undefined) return undefined;
      const m = blobs.get(digest);
      if (!m) return undefined;
      if (m.storage === 'raw') {
        // A member that is not the size its descriptors declare is not served.
        if (m.entry.size !== size) return undefined;
        return { digest, size, open: async (range) => openRaw(archive, m.entry, digest, range) };
      }
      if (!canRestore || m.uncompressedSize !== size) return undefined;
      return { digest, size, open: async (range) => openZstd(archive, m.entry, digest, size, range) };
    },
    referrers: (repository, subject) => [...(repos.get(repository)?.referrers.get(subject) ?? [])],
    close: async () => {
      await archive.close();
    },
  };
}

function referrerDescriptor(node: ManifestNode): ReferrerDescriptor {
  const doc = node.doc;
  const artifactType = doc.artifactType || (doc.kind === 'manifest' ? doc.config.mediaType : undefined);
  return {
    mediaType: node.mediaType,
    digest: node.digest,
    size: node.bytes.length,
    ...(artifactType ? { artifactType } : {}),
    ...(Object.keys(doc.annotations).length > 0 ? { annotations: doc.annotations } : {}),
  };
}

function openRaw(archive: OciArchive, entry: TarEntry, digest: Digest, range: ByteRange | undefined): Readable {
  try {
    // ByteRange is inclusive; openTarEntry's end is exclusive.
    return archive.archive.open(entry, range ? { start: range.start, end: range.end + 1 } : undefined);
  } catch (err) {
    throw new BlobGoneError(digest, { cause: err });
  }
}

/**
 * The restored content of a zstd member (or a range of it), streamed through `zstd -d`: the
 * bytes before the range are read and dropped, and zstd is stopped once the range is complete.
 * A whole-blob read checks that the member restores to exactly `size` bytes.
 */
function openZstd(archive: OciArchive, entry: TarEntry, digest: Digest, size: number, range: ByteRange | undefined): Readable {
  if (!zstdAvailable()) throw new BlobGoneError(digest, { cause: new Error('zstd is not on PATH') });
  const start = range?.start ?? 0;
  const end = range ? range.end + 1 : size;
  async function* restore(): AsyncGenerator<Buffer> {
    const child = spawn('zstd', ['-d', '-c', '-q'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    exited.catch(() => {});
    // EPIPE when zstd is stopped early is expected; real failures show in its exit status.
    child.stdin.on('error', () => {});
    const input = archive.archive.open(entry);
    const feed = pipeline(input, child.stdin).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    let pos = 0;
    try {
      for await (const c of child.stdout as AsyncIterable<Buffer>) {
        const from = pos;
        pos += c.length;
        if (pos > size) throw new ZstdError('ZSTD_OVERSIZE', `${entry.name} restores to more than the declared ${size} bytes`);
        const a = Math.max(start, from) - from;
        const b = Math.min(end, pos) - from;
        if (b > a) yield a === 0 && b === c.length ? c : c.subarray(a, b);
        if (range && pos >= end) return;
      }
      const { code, signal } = await exited;
      if (code !== 0) throw new ZstdError('ZSTD_FAILED', `zstd -d failed on ${entry.name} (${signal ?? `exit ${code}`})${stderr ? `: ${stderr.trim()}` : ''}`);
      const feedErr = await feed;
      if (feedErr) throw feedErr;
      if (pos !== size) throw new ZstdError('ZSTD_SHORT', `${entry.name} restores to ${pos} bytes, not the declared ${size}`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      input.destroy();
    }
  }
  return Readable.from(restore(), { objectMode: false, highWaterMark: 1024 * 1024 });
}
