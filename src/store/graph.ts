/**
 * What a store holds and what reaches what: every index.json entry is a root; from it the
 * walk follows index children, manifests' configs and layers (reading each manifest through
 * the layout, verified against its digest). The walk is iterative with a seen set, and
 * indexes nest at most MAX_INDEX_DEPTH deep (as copy/plan.ts bounds them), so no input can
 * make it recurse without bound. Blob files are listed once from blobs/sha256.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { isDigest, type Digest } from '../oci/digest.js';
import { MAX_INDEX_DEPTH, isPlaceholderDescriptor, parseJsonObject, parseManifest, type Descriptor } from '../oci/manifest.js';
import { isManifestType } from '../oci/mediatypes.js';
import { formatPlatform } from '../oci/platform.js';
import { ADDED_ANNOTATION, MissingBlobError, REF_NAME, type OciLayout } from '../transports/oci/layout.js';
import { z } from '../util/zod.js';

/** A manifest or index as the walk needs it. */
interface Node {
  kind: 'index' | 'manifest';
  /** Index: its children; manifest: config then layers. */
  children: Descriptor[];
  layers: Descriptor[];
  config?: Descriptor;
}

/** One index.json entry and what it reaches. */
export interface EntryGraph {
  desc: Descriptor;
  /** ref.name, or undefined for an unnamed entry. */
  name: string | undefined;
  added: string | undefined;
  /** Every digest it reaches (itself included), present or not. */
  reach: Set<Digest>;
  /** Digests it reaches that have no blob file. */
  missing: Digest[];
  /** Manifests it reaches that could not be read or parsed (their children are unknown). */
  problems: Array<{ digest: string; message: string }>;
  /** Distinct layer digests. */
  layers: Set<Digest>;
  /** Sizes the descriptors it reaches declare, by digest. */
  declared: Map<Digest, number>;
  /** Some manifest it reaches is missing or unreadable: what lies below it is unknown. */
  incomplete: boolean;
  /** Image manifests it reaches, with their platform when known. */
  images: Array<{ digest: Digest; platform: string | undefined; config: Descriptor | undefined }>;
}

export interface StoreGraph {
  entries: EntryGraph[];
  /** Blob files under blobs/sha256, by digest: their size. */
  blobs: Map<Digest, number>;
  /** Digests some entry reaches. */
  reachable: Set<Digest>;
  /** How many entries reach each digest. */
  refCount: Map<Digest, number>;
}

const ConfigPlatform = z.looseObject({
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
});

/** The blob files of the layout (temp files and other names are not blobs). */
export async function listBlobs(layout: OciLayout): Promise<Map<Digest, number>> {
  const dir = path.join(layout.dir, 'blobs', 'sha256');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  const blobs = new Map<Digest, number>();
  for (const n of names) {
    if (!/^[a-f0-9]{64}$/.test(n)) continue;
    const st = await stat(path.join(dir, n)).catch(() => undefined);
    if (st?.isFile()) blobs.set(`sha256:${n}`, st.size);
  }
  return blobs;
}

/** Reads and caches manifests and config platforms across the entries of one walk. */
export class GraphReader {
  private readonly nodes = new Map<string, Node | Error>();
  private readonly platforms = new Map<string, string | undefined>();

  constructor(readonly layout: OciLayout) {}

  async node(desc: Descriptor): Promise<Node> {
    const hit = this.nodes.get(desc.digest);
    if (hit instanceof Error) throw hit;
    if (hit) return hit;
    try {
      const bytes = await this.layout.readBlobBytes(desc, `manifest ${desc.digest}`);
      const doc = parseManifest(bytes, desc.mediaType, `manifest ${desc.digest}`);
      const node: Node =
        doc.kind === 'index'
          ? { kind: 'index', children: doc.manifests.filter((d) => !isPlaceholderDescriptor(d)), layers: [] }
          : {
              kind: 'manifest',
              children: [doc.config, ...doc.layers].filter((d) => !isPlaceholderDescriptor(d)),
              layers: doc.layers.filter((d) => !isPlaceholderDescriptor(d)),
              config: doc.config,
            };
      this.nodes.set(desc.digest, node);
      return node;
    } catch (err) {
      this.nodes.set(desc.digest, err as Error);
      throw err;
    }
  }

  /** `os/arch[/variant]` from an image's config, or undefined when it cannot be read. */
  async configPlatform(config: Descriptor): Promise<string | undefined> {
    if (this.platforms.has(config.digest)) return this.platforms.get(config.digest);
    let p: string | undefined;
    try {
      const doc = parseJsonObject(await this.layout.readBlobBytes(config, `config ${config.digest}`), `config ${config.digest}`);
      const r = ConfigPlatform.safeParse(doc);
      if (r.success && r.data.os && r.data.architecture) {
        p = formatPlatform({ os: r.data.os, architecture: r.data.architecture, variant: r.data.variant });
      }
    } catch {
      p = undefined;
    }
    this.platforms.set(config.digest, p);
    return p;
  }
}

/**
 * Walk one entry's graph. `blobs` says which blob files exist (missing ones are listed, not
 * thrown); a manifest that cannot be read or parsed is a problem, and its children unknown.
 */
export async function walkEntry(
  reader: GraphReader,
  desc: Descriptor,
  blobs: ReadonlyMap<Digest, number>,
  opts: { platforms?: boolean } = {},
): Promise<EntryGraph> {
  const g: EntryGraph = {
    desc,
    name: desc.annotations?.[REF_NAME],
    added: desc.annotations?.[ADDED_ANNOTATION],
    reach: new Set(),
    missing: [],
    problems: [],
    layers: new Set(),
    declared: new Map(),
    incomplete: false,
    images: [],
  };
  const stack: Array<{ d: Descriptor; depth: number; platform: string | undefined }> = [{ d: desc, depth: 0, platform: undefined }];
  while (stack.length > 0) {
    const { d, depth, platform } = stack.pop()!;
    if (!isDigest(d.digest)) {
      g.problems.push({ digest: d.digest, message: `unsupported digest ${JSON.stringify(d.digest).slice(0, 80)}` });
      continue;
    }
    if (!g.declared.has(d.digest)) g.declared.set(d.digest, d.size);
    if (g.reach.has(d.digest)) continue;
    g.reach.add(d.digest);
    const isDocument = depth === 0 || isManifestType(d.mediaType);
    if (!blobs.has(d.digest)) {
      g.missing.push(d.digest);
      if (isDocument) g.incomplete = true;
      continue;
    }
    // Index children of media types ferry does not know are blobs to keep, not documents to read.
    if (!isDocument) continue;
    if (depth > MAX_INDEX_DEPTH) {
      g.problems.push({ digest: d.digest, message: `indexes nested more than ${MAX_INDEX_DEPTH} deep` });
      g.incomplete = true;
      continue;
    }
    let node: Node;
    try {
      node = await reader.node(d);
    } catch (err) {
      if (err instanceof MissingBlobError) g.missing.push(d.digest);
      else g.problems.push({ digest: d.digest, message: (err as Error).message });
      g.incomplete = true;
      continue;
    }
    if (node.kind === 'index') {
      for (const c of node.children) {
        const p = c.platform ? formatPlatform(c.platform) : undefined;
        stack.push({ d: c, depth: depth + 1, platform: p });
      }
    } else {
      for (const l of node.layers) if (isDigest(l.digest)) g.layers.add(l.digest);
      let p = platform;
      if (opts.platforms && node.config && p === undefined && isDigest(node.config.digest) && blobs.has(node.config.digest)) {
        p = await reader.configPlatform(node.config);
      }
      g.images.push({ digest: d.digest, platform: p, config: node.config });
      for (const c of node.children) stack.push({ d: c, depth: depth + 1, platform: undefined });
    }
  }
  return g;
}

/** The whole store: every entry walked, blob files listed, reach counted. */
export async function analyzeStore(layout: OciLayout, opts: { platforms?: boolean; entries?: Descriptor[] } = {}): Promise<StoreGraph> {
  const entries = opts.entries ?? (await layout.readIndex()).manifests;
  const blobs = await listBlobs(layout);
  const reader = new GraphReader(layout);
  const graphs: EntryGraph[] = [];
  const refCount = new Map<Digest, number>();
  for (const e of entries) {
    const g = await walkEntry(reader, e, blobs, opts);
    graphs.push(g);
    for (const d of g.reach) refCount.set(d, (refCount.get(d) ?? 0) + 1);
  }
  return { entries: graphs, blobs, reachable: new Set(refCount.keys()), refCount };
}
