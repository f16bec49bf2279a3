/**
 * What layout-content and bundle-content share: naming the index.json entries, loading the
 * manifest graph below them (verified bytes come from the caller), and building the
 * repositories served from it. Each repository gets the set of manifests and blobs reachable
 * from its own images (index children, nested indexes, configs, layers) plus the untagged
 * artifacts that refer to them (`subject`), and nothing else: no repository can read a blob
 * of the store it does not use.
 *
 * The callers supply only what differs: where manifest and blob bytes come from.
 */
import { isDigest, type Digest } from '../oci/digest.js';
import { MAX_INDEX_DEPTH, isPlaceholderDescriptor, parseManifest, type Descriptor, type ManifestDocument } from '../oci/manifest.js';
import { CONTAINERD_NAME, MissingBlobError, REF_NAME } from '../transports/oci/layout.js';
import { UsageError, errorMessage } from '../util/errors.js';
import {
  ServeConflictError,
  sortedNames,
  type ReferrerDescriptor,
  type ServedBlob,
  type ServedContent,
  type ServedManifest,
  type TagTarget,
} from './content.js';
import { type ImageOrigin, isRepositoryName, type NameResult, originKey, servedName, type ServedName } from './names.js';

export interface ServedNamingOptions {
  /** Keep the registry host in repository names: `docker.io/library/nginx`. */
  scoped?: boolean;
  /** The repository for images whose ref.name is a bare tag (`v1`), and for unnamed images. */
  repository?: string;
}

/** Manifests read at once while opening a store. */
const LOAD_CONCURRENCY = 16;

interface ManifestNode {
  digest: Digest;
  mediaType: string;
  bytes: Buffer;
  doc: ManifestDocument;
}

interface Repository {
  origin: ImageOrigin | undefined;
  tags: Map<string, { target: TagTarget; label: string }>;
  manifests: Set<Digest>;
  /** Config and layer digests with their declared sizes. */
  blobs: Map<Digest, number>;
  referrers: Map<Digest, ReferrerDescriptor[]>;
}

export interface NamedEntry {
  desc: Descriptor & { digest: Digest };
  /** `name.repository` is the repository's key: originKey(origin) for an image with an origin. */
  name: ServedName;
  /** Where the image came from, when it is named by a full reference. */
  origin?: ImageOrigin;
  /** How the entry is named in index.json, for messages. */
  label: string;
}

/** Result of naming the index.json entries (pure: exported for tests). */
export interface IndexNaming {
  named: NamedEntry[];
  unnamed: Array<Descriptor & { digest: Digest }>;
  warnings: string[];
}

/** Throw a UsageError when `opts.repository` is given but is not a valid repository name. */
export function checkRepositoryOption(opts: ServedNamingOptions): void {
  if (opts.repository !== undefined && !isRepositoryName(opts.repository)) {
    throw new UsageError(
      `invalid repository name ${JSON.stringify(opts.repository)}: lower-case letters and digits, separated by ".", "_", "__", "-" or "/"`,
    );
  }
}

/**
 * Name every index.json entry: ref.name when it is a full reference, the containerd name for
 * bare tags and unnamed entries, `opts.repository` when given. `where` is the store as the
 * user names it (`oci:DIR`, `bundle:FILE`), for the bare-tag hint.
 */
export function nameIndexEntries(manifests: readonly Descriptor[], opts: ServedNamingOptions, where: string): IndexNaming {
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
    const fromContainerd = (entryLabel: string): NamedEntry | undefined => {
      if (!containerdName) return undefined;
      const r = servedName(containerdName, opts);
      return r.kind === 'served' ? byOrigin(entry, r, entryLabel) : undefined;
    };
    if (!refName) {
      const e =
        opts.repository !== undefined
          ? { desc: entry, name: { repository: opts.repository, tag: undefined }, label: containerdName || label }
          : fromContainerd(containerdName || label);
      if (e) named.push(e);
      else unnamed.push(entry);
      continue;
    }
    const r = servedName(refName, opts);
    if (r.kind === 'served') {
      named.push(byOrigin(entry, r, label));
    } else if (r.kind === 'bare-tag') {
      // Docker's `docker save` writes the bare tag as ref.name and the full name for containerd.
      const e =
        opts.repository !== undefined ? { desc: entry, name: { repository: opts.repository, tag: r.tag }, label } : fromContainerd(label);
      if (e) named.push(e);
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
 * An entry named by a full reference is keyed by its origin, whatever the naming: the server
 * answers for it at its unscoped and its scoped path (mirror-names.ts).
 */
function byOrigin(desc: Descriptor & { digest: Digest }, r: Extract<NameResult, { kind: 'served' }>, label: string): NamedEntry {
  return { desc, name: { repository: originKey(r.origin), tag: r.name.tag }, origin: r.origin, label };
}

/** Bounded parallelism for reads (a store may list thousands of manifests). */
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

/** The manifests of a store, loaded once each; missing ones are remembered as absent. */
class ManifestGraph {
  private readonly nodes = new Map<Digest, ManifestNode | null>();
  private readonly visited = new Set<Digest>();
  private readonly limit = limiter(LOAD_CONCURRENCY);

  constructor(
    private readonly read: ServedStore['readManifest'],
    private readonly warn: (message: string) => void,
  ) {}

  get(digest: Digest): ManifestNode | undefined {
    return this.nodes.get(digest) ?? undefined;
  }

  /**
   * Load a manifest and, for an index, everything below it, down to MAX_INDEX_DEPTH indexes
   * (deeper ones are not served, with a warning). `what` names it in warnings; a child is
   * named by its root and its own digest, so names stay short however deep the graph.
   */
  async loadTree(desc: Descriptor, what: string, isRoot: boolean, depth = 0, root = what): Promise<void> {
    const digest = desc.digest;
    if (!isDigest(digest) || this.visited.has(digest)) return;
    this.visited.add(digest);
    if (depth > MAX_INDEX_DEPTH) {
      this.nodes.set(digest, null);
      this.warn(`${root}: manifest ${digest} is nested more than ${MAX_INDEX_DEPTH} indexes deep; not served`);
      return;
    }
    const node = await this.load({ ...desc, digest }, what, isRoot);
    if (node?.doc.kind === 'index') {
      await Promise.all(node.doc.manifests.map((child) => this.loadTree(child, `${root} > ${child.digest}`, false, depth + 1, root)));
    }
  }

  private async load(desc: Descriptor & { digest: Digest }, what: string, isRoot: boolean): Promise<ManifestNode | undefined> {
    let bytes: Buffer;
    try {
      bytes = await this.limit(() => this.read(desc, what));
    } catch (err) {
      this.nodes.set(desc.digest, null);
      // A sparse store (one platform of an index copied) simply lacks some children.
      if (err instanceof MissingBlobError && !isRoot) return undefined;
      this.warn(`${errorMessage(err)}; not served`);
      return undefined;
    }
    let doc: ManifestDocument;
    try {
      doc = parseManifest(bytes, desc.mediaType, what);
    } catch (err) {
      this.nodes.set(desc.digest, null);
      this.warn(`${errorMessage(err)}; not served`);
      return undefined;
    }
    const node: ManifestNode = { digest: desc.digest, mediaType: doc.mediaType, bytes, doc };
    this.nodes.set(desc.digest, node);
    return node;
  }
}

/** Where a served store's bytes come from: all that differs between a layout and an archive. */
export interface ServedStore {
  /** How the store is named in messages and as ServedContent.description. */
  description: string;
  /** The store as the user names it (`oci:DIR`), for the bare-tag hint. */
  where: string;
  /** Appended to the warning about unnamed images that belong to no served image. */
  orphanHint?: string;
  /** The index.json descriptors. */
  manifests: readonly Descriptor[];
  /**
   * A manifest's bytes, verified against its digest and size-capped; a MissingBlobError when
   * the store lacks it. `what` names it in errors.
   */
  readManifest(desc: Descriptor & { digest: Digest }, what: string): Promise<Buffer>;
  /**
   * The blob `digest`, which the repository may serve and whose descriptors declare `size`;
   * undefined when the store cannot serve it at exactly that size.
   */
  openBlob(digest: Digest, size: number): Promise<ServedBlob | undefined>;
  close(): Promise<void>;
}

/**
 * Build the ServedContent of a store. `warnings` may already hold the store's own warnings;
 * the ones found here are appended, prefixed with the description. Throws ServeConflictError
 * when two different images claim the same tag.
 */
export async function buildServedContent(store: ServedStore, opts: ServedNamingOptions, warnings: string[]): Promise<ServedContent> {
  const { description } = store;
  const warn = (m: string): void => {
    warnings.push(`${description}: ${m}`);
  };

  // 1. Name every index.json entry.
  const naming = nameIndexEntries(store.manifests, opts, store.where);
  for (const w of naming.warnings) warn(w);
  const { named, unnamed } = naming;

  // 2. Load the manifest graph below every entry.
  const graph = new ManifestGraph((desc, what) => store.readManifest(desc, what), warn);
  await Promise.all([
    ...named.map((e) => graph.loadTree(e.desc, e.label, true)),
    ...unnamed.map((d) => graph.loadTree(d, `untagged image ${d.digest}`, true)),
  ]);

  // 3. Repositories: tags, and what each one can reach.
  const repos = new Map<string, Repository>();
  const repoFor = (name: string, origin: ImageOrigin | undefined): Repository => {
    let r = repos.get(name);
    if (!r) {
      r = { origin, tags: new Map(), manifests: new Set(), blobs: new Map(), referrers: new Map() };
      repos.set(name, r);
    }
    // A name given with the source may equal an origin's key: the repository is that origin's.
    r.origin ??= origin;
    return r;
  };
  /** Add a manifest and everything below it (iteratively); newly reached manifests go onto `reached`. */
  const addClosure = (repo: Repository, start: Digest, reached: Digest[]): void => {
    const todo: Digest[] = [start];
    while (todo.length > 0) {
      const digest = todo.pop()!;
      const node = graph.get(digest);
      if (!node || repo.manifests.has(digest)) continue;
      repo.manifests.add(digest);
      reached.push(digest);
      const doc = node.doc;
      if (doc.subject && isDigest(doc.subject.digest)) {
        const list = repo.referrers.get(doc.subject.digest) ?? [];
        list.push(referrerDescriptor(node));
        repo.referrers.set(doc.subject.digest, list);
      }
      if (doc.kind === 'index') {
        // Reversed onto the stack: children are reached in their order, as a recursive walk would.
        for (let i = doc.manifests.length - 1; i >= 0; i--) {
          const child = doc.manifests[i]!;
          if (isDigest(child.digest)) todo.push(child.digest);
        }
      } else {
        for (const b of [doc.config, ...doc.layers]) {
          if (!isPlaceholderDescriptor(b) && isDigest(b.digest)) repo.blobs.set(b.digest, b.size);
        }
      }
    }
  };

  const reachedBy = new Map<Repository, Digest[]>();
  for (const e of named) {
    const node = graph.get(e.desc.digest);
    if (!node) continue; // warned while loading
    const repo = repoFor(e.name.repository, e.origin);
    const tag = e.name.tag;
    if (tag !== undefined) {
      const prev = repo.tags.get(tag);
      if (prev && prev.target.digest !== node.digest) {
        // The same name listed twice: the first wins, as in containers/image.
        if (prev.label === e.label) {
          warn(`${e.label} is listed more than once; serving the first (${prev.target.digest})`);
          continue;
        }
        throw new ServeConflictError(
          `${e.name.repository}:${tag} is ambiguous in ${description}: ${prev.label} is ${prev.target.digest} but ${e.label} is ${node.digest}`,
        );
      }
      if (!prev)
        repo.tags.set(tag, { target: { mediaType: node.mediaType, digest: node.digest, size: node.bytes.length }, label: e.label });
    }
    const reached = reachedBy.get(repo) ?? [];
    addClosure(repo, node.digest, reached);
    reachedBy.set(repo, reached);
  }

  // 4. Untagged artifacts (signatures, SBOMs) join the repositories of what they refer to,
  //    transitively: a signature of an SBOM of an image joins too.
  const bySubject = new Map<Digest, Digest[]>();
  for (const d of unnamed) {
    const subject = graph.get(d.digest)?.doc.subject?.digest;
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
  const orphans = unnamed.filter((d) => graph.get(d.digest) && !attached.has(d.digest)).length;
  if (orphans > 0) {
    warn(`${orphans} unnamed image(s) in index.json belong to no served image and are not served${store.orphanHint ?? ''}`);
  }

  const sortedTags = new Map<string, readonly string[]>([...repos].map(([name, r]) => [name, Object.freeze(sortedNames(r.tags.keys()))]));
  const repoNames = Object.freeze(sortedNames(repos.keys()));

  return {
    description,
    warnings,
    repositories: () => repoNames,
    origin: (repository) => repos.get(repository)?.origin,
    tags: (repository) => sortedTags.get(repository),
    resolveTag: (repository, tag) => repos.get(repository)?.tags.get(tag)?.target,
    manifest: async (repository, digest): Promise<ServedManifest | undefined> => {
      if (!repos.get(repository)?.manifests.has(digest)) return undefined;
      const node = graph.get(digest);
      return node ? { digest, mediaType: node.mediaType, bytes: node.bytes } : undefined;
    },
    blob: async (repository, digest): Promise<ServedBlob | undefined> => {
      const repo = repos.get(repository);
      if (!repo) return undefined;
      const size = repo.blobs.get(digest) ?? (repo.manifests.has(digest) ? graph.get(digest)?.bytes.length : undefined);
      if (size === undefined) return undefined;
      return store.openBlob(digest, size);
    },
    referencedSize: (repository, digest) => repos.get(repository)?.blobs.get(digest),
    storedBlob: (digest, size) => store.openBlob(digest, size),
    referrers: (repository, subject) => [...(repos.get(repository)?.referrers.get(subject) ?? [])],
    close: () => store.close(),
  };
}

function referrerDescriptor(node: ManifestNode): ReferrerDescriptor {
  const doc = node.doc;
  // image-spec: an image manifest without artifactType is typed by its config's media type.
  const artifactType = doc.artifactType || (doc.kind === 'manifest' ? doc.config.mediaType : undefined);
  return {
    mediaType: node.mediaType,
    digest: node.digest,
    size: node.bytes.length,
    ...(artifactType ? { artifactType } : {}),
    ...(Object.keys(doc.annotations).length > 0 ? { annotations: doc.annotations } : {}),
  };
}
