/**
 * `ferry store …`: the store (an OCI image layout, transports/oci/layout.ts) as a managed
 * thing. Each core returns plain data; cli/store.ts prints it. Names change only through the
 * layout's locked index update; blobs are removed only by gc (store/maintain.ts).
 */
import { isDigest } from '../oci/digest.js';
import { parseManifest, parseJsonObject, type Descriptor } from '../oci/manifest.js';
import { formatPlatform, platformMatches, type PlatformSpec } from '../oci/platform.js';
import { parseReference } from '../ref/reference.js';
import { GraphReader, analyzeStore, type StoreGraph } from '../store/graph.js';
import { unreachable } from '../store/maintain.js';
import { ADDED_ANNOTATION, CONTAINERD_NAME, OciLayout, REF_NAME } from '../transports/oci/layout.js';
import { FerryError, NotFoundError, UsageError } from '../util/errors.js';
import { deadTemps } from '../util/fsutil.js';
import { z } from '../util/zod.js';
import path from 'node:path';
import { DEFAULT_STORE } from './pull.js';

export { gcStore, verifyStore, verifyOk, type GcResult, type VerifyResult } from '../store/maintain.js';

/** The store a command works on: --store, else $FERRY_STORE, else ./ferry-store (as pull). */
export function storeDir(flag: string | undefined): string {
  return flag ?? process.env.FERRY_STORE ?? DEFAULT_STORE;
}

export function openStore(dir: string): Promise<OciLayout> {
  return OciLayout.open(dir);
}

// ---- names and patterns ----

/** Whether an argument is a pattern (has `*` or `?`) rather than one reference. */
export const isPattern = (s: string): boolean => /[*?]/.test(s);

/**
 * A glob over names: `*` matches any run of characters (`/` and `:` included), `?` one
 * character. It is tried against the stored name and against its short form
 * (`docker.io/library/nginx:1` is also `nginx:1`).
 */
export function globMatcher(pattern: string): (name: string) => boolean {
  const re = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    's',
  );
  return (name) => re.test(name) || re.test(shortName(name));
}

/** A stored name in Docker's familiar form where it parses as a reference. */
export function shortName(name: string): string {
  try {
    return parseReference(name).familiar();
  } catch {
    return name;
  }
}

/** A name as pull stores it (`nginx` → `docker.io/library/nginx:latest`); names that do not parse stay as they are. */
export function normalizeName(name: string): string {
  try {
    return parseReference(name).toString();
  } catch {
    return name;
  }
}

/** The entries a reference means: its exact name, its normalised name, or a manifest digest. */
export function matchRef(entries: readonly Descriptor[], ref: string): Descriptor[] {
  if (isDigest(ref)) return entries.filter((d) => d.digest === ref);
  const exact = entries.filter((d) => d.annotations?.[REF_NAME] === ref);
  if (exact.length > 0) return exact;
  const full = normalizeName(ref);
  return entries.filter((d) => d.annotations?.[REF_NAME] === full);
}

function resolveOne(entries: readonly Descriptor[], ref: string, dir: string): Descriptor {
  const hit = matchRef(entries, ref);
  if (hit.length === 0) {
    throw new NotFoundError(`no image ${JSON.stringify(ref)} in store ${dir}`, { hint: 'ferry store ls lists what it holds' });
  }
  return hit[0]!;
}

// ---- ls / df ----

export interface StoreImageRow {
  name: string | undefined;
  digest: string;
  mediaType: string;
  platforms: string[];
  layers: number;
  /** Bytes of every blob the name reaches (present ones), each once. */
  size: number;
  /** Bytes of blobs no other name reaches: what `rm` of this name and then gc would free. */
  unique: number;
  added: string | undefined;
  /** Blobs it reaches that are not there. */
  missing: number;
}

export interface StoreTotals {
  images: number;
  blobs: number;
  bytes: number;
  /** Blobs no name reaches (gc removes them). */
  reclaimableBlobs: number;
  reclaimable: number;
  /** Temp files of writers that are gone (gc removes them). */
  temps: number;
  tempBytes: number;
}

export interface StoreListing {
  store: string;
  images: StoreImageRow[];
  totals: StoreTotals;
}

async function totalsOf(layout: OciLayout, graph: StoreGraph): Promise<StoreTotals> {
  const dead = unreachable(graph);
  const temps = [
    ...(await deadTemps(path.join(layout.dir, 'blobs', 'sha256'), (b) => /^[a-f0-9]{64}$/.test(b))),
    ...(await deadTemps(layout.dir, (b) => b === 'index.json' || b === 'oci-layout')),
  ];
  let bytes = 0;
  for (const s of graph.blobs.values()) bytes += s;
  return {
    images: graph.entries.length,
    blobs: graph.blobs.size,
    bytes,
    reclaimableBlobs: dead.length,
    reclaimable: dead.reduce((n, b) => n + b.size, 0),
    temps: temps.length,
    tempBytes: temps.reduce((n, t) => n + t.size, 0),
  };
}

export async function storeLs(dir: string, pattern?: string): Promise<StoreListing> {
  const layout = await openStore(dir);
  const graph = await analyzeStore(layout, { platforms: true });
  const match = pattern === undefined ? () => true : globMatcher(pattern);
  const images: StoreImageRow[] = [];
  for (const e of graph.entries) {
    if (!match(e.name ?? '') && !(pattern !== undefined && e.desc.digest === pattern)) continue;
    let size = 0;
    let unique = 0;
    for (const d of e.reach) {
      const s = graph.blobs.get(d);
      if (s === undefined) continue;
      size += s;
      if (graph.refCount.get(d) === 1) unique += s;
    }
    const platforms = [...new Set(e.images.map((i) => i.platform).filter((p): p is string => p !== undefined && p !== 'unknown/unknown'))];
    images.push({
      name: e.name,
      digest: e.desc.digest,
      mediaType: e.desc.mediaType,
      platforms: platforms.sort(),
      layers: e.layers.size,
      size,
      unique,
      added: e.added,
      missing: e.missing.length,
    });
  }
  return { store: layout.dir, images, totals: await totalsOf(layout, graph) };
}

export async function storeDf(dir: string): Promise<{ store: string; totals: StoreTotals }> {
  const layout = await openStore(dir);
  const graph = await analyzeStore(layout);
  return { store: layout.dir, totals: await totalsOf(layout, graph) };
}

// ---- inspect / history ----

const StringList = z.array(z.string()).nullish();
const ImageConfig = z.looseObject({
  created: z.string().optional(),
  author: z.string().optional(),
  architecture: z.string().optional(),
  os: z.string().optional(),
  variant: z.string().optional(),
  config: z
    .looseObject({
      Env: StringList,
      Entrypoint: StringList,
      Cmd: StringList,
      WorkingDir: z.string().optional(),
      User: z.string().optional(),
      Labels: z.record(z.string(), z.string()).nullish(),
      ExposedPorts: z.record(z.string(), z.unknown()).nullish(),
    })
    .nullish(),
  history: z
    .array(
      z.looseObject({
        created: z.string().optional(),
        created_by: z.string().optional(),
        comment: z.string().optional(),
        empty_layer: z.boolean().optional(),
      }),
    )
    .nullish(),
});
type ImageConfig = z.infer<typeof ImageConfig>;

export interface InspectedImage {
  digest: string;
  mediaType: string;
  platform: string | undefined;
  config: {
    digest: string;
    created: string | undefined;
    author: string | undefined;
    architecture: string | undefined;
    os: string | undefined;
    variant: string | undefined;
    env: string[];
    entrypoint: string[] | null;
    cmd: string[] | null;
    workingDir: string | undefined;
    user: string | undefined;
    labels: Record<string, string>;
    exposedPorts: string[];
  };
  layers: Array<{ digest: string; size: number; mediaType: string }>;
  /** Manifest, config and layers. */
  size: number;
  annotations: Record<string, string>;
}

export interface InspectResult {
  name: string | undefined;
  digest: string;
  mediaType: string;
  added: string | undefined;
  annotations: Record<string, string>;
  /** One per image manifest (one for a single image, one per platform for an index). */
  images: InspectedImage[];
}

async function readConfig(layout: OciLayout, desc: Descriptor): Promise<ImageConfig> {
  const doc = parseJsonObject(await layout.readBlobBytes(desc, `config ${desc.digest}`), `config ${desc.digest}`);
  const r = ImageConfig.safeParse(doc);
  if (!r.success) throw new FerryError('CONFIG_INVALID', `config ${desc.digest}: ${r.error.issues[0]?.message ?? 'invalid'}`);
  return r.data;
}

/** The image manifests under an entry, with the platform their index gives them (depth-bounded). */
async function imageManifests(layout: OciLayout, root: Descriptor): Promise<Array<{ desc: Descriptor; platform: string | undefined }>> {
  const reader = new GraphReader(layout);
  const out: Array<{ desc: Descriptor; platform: string | undefined }> = [];
  const seen = new Set<string>();
  const stack: Array<{ d: Descriptor; depth: number; platform: string | undefined }> = [{ d: root, depth: 0, platform: undefined }];
  while (stack.length > 0) {
    const { d, depth, platform } = stack.pop()!;
    if (seen.has(d.digest) || depth > 8) continue;
    seen.add(d.digest);
    const node = await reader.node(d);
    if (node.kind === 'manifest') out.push({ desc: d, platform });
    else {
      for (const c of [...node.children].reverse()) {
        if (c.platform?.os === 'unknown') continue; // attestations, not images
        stack.push({ d: c, depth: depth + 1, platform: c.platform ? formatPlatform(c.platform) : undefined });
      }
    }
  }
  return out;
}

export async function storeInspect(dir: string, ref: string): Promise<InspectResult> {
  const layout = await openStore(dir);
  const root = resolveOne((await layout.readIndex()).manifests, ref, layout.dir);
  const images: InspectedImage[] = [];
  for (const { desc, platform } of await imageManifests(layout, root)) {
    const doc = parseManifest(await layout.readBlobBytes(desc, `manifest ${desc.digest}`), desc.mediaType, `manifest ${desc.digest}`);
    if (doc.kind !== 'manifest') continue;
    const cfg = await readConfig(layout, doc.config);
    const c = cfg.config ?? {};
    const p =
      platform ??
      (cfg.os && cfg.architecture ? formatPlatform({ os: cfg.os, architecture: cfg.architecture, variant: cfg.variant }) : undefined);
    images.push({
      digest: desc.digest,
      mediaType: doc.mediaType,
      platform: p,
      config: {
        digest: doc.config.digest,
        created: cfg.created,
        author: cfg.author,
        architecture: cfg.architecture,
        os: cfg.os,
        variant: cfg.variant,
        env: c.Env ?? [],
        entrypoint: c.Entrypoint ?? null,
        cmd: c.Cmd ?? null,
        workingDir: c.WorkingDir || undefined,
        user: c.User || undefined,
        labels: c.Labels ?? {},
        exposedPorts: Object.keys(c.ExposedPorts ?? {}),
      },
      layers: doc.layers.map((l) => ({ digest: l.digest, size: l.size, mediaType: l.mediaType })),
      size: desc.size + doc.config.size + doc.layers.reduce((n, l) => n + l.size, 0),
      annotations: doc.annotations,
    });
  }
  return {
    name: root.annotations?.[REF_NAME],
    digest: root.digest,
    mediaType: root.mediaType,
    added: root.annotations?.[ADDED_ANNOTATION],
    annotations: root.annotations ?? {},
    images,
  };
}

export interface HistoryRow {
  created: string | undefined;
  createdBy: string;
  /** Bytes of the layer the step made; 0 for an empty_layer step; undefined when the history does not line up with the layers. */
  size: number | undefined;
  comment: string | undefined;
  emptyLayer: boolean;
  layer: string | undefined;
}

export interface HistoryResult {
  name: string | undefined;
  images: Array<{ digest: string; platform: string | undefined; rows: HistoryRow[] }>;
}

/** The config's history, newest first (as `docker history`), each non-empty step beside its layer. */
export async function storeHistory(dir: string, ref: string, platforms: PlatformSpec[] = []): Promise<HistoryResult> {
  const layout = await openStore(dir);
  const root = resolveOne((await layout.readIndex()).manifests, ref, layout.dir);
  const out: HistoryResult = { name: root.annotations?.[REF_NAME], images: [] };
  let manifests = await imageManifests(layout, root);
  if (platforms.length > 0) {
    manifests = manifests.filter((m) => m.platform !== undefined && platforms.some((p) => platformMatches(p, platformOf(m.platform!))));
    if (manifests.length === 0) throw new NotFoundError(`${ref} has no image for ${platforms.map((p) => formatPlatform(p)).join(', ')}`);
  }
  for (const { desc, platform } of manifests) {
    const doc = parseManifest(await layout.readBlobBytes(desc, `manifest ${desc.digest}`), desc.mediaType, `manifest ${desc.digest}`);
    if (doc.kind !== 'manifest') continue;
    const cfg = await readConfig(layout, doc.config);
    const history = cfg.history ?? [];
    const nonEmpty = history.filter((h) => !h.empty_layer).length;
    // Layers line up with the non-empty steps only when their counts agree.
    const aligned = nonEmpty === doc.layers.length;
    let li = 0;
    const rows: HistoryRow[] = history.map((h) => {
      const empty = !!h.empty_layer;
      const layer = empty ? undefined : doc.layers[li++];
      return {
        created: h.created,
        createdBy: h.created_by ?? '',
        size: empty ? 0 : aligned && layer ? layer.size : undefined,
        comment: h.comment || undefined,
        emptyLayer: empty,
        layer: aligned ? layer?.digest : undefined,
      };
    });
    out.images.push({ digest: desc.digest, platform, rows: rows.reverse() });
  }
  return out;
}

function platformOf(s: string): { os: string; architecture: string; variant?: string } {
  const [os = '', architecture = '', variant] = s.split('/');
  return { os, architecture, ...(variant ? { variant } : {}) };
}

// ---- tag / rm ----

export interface TagResult {
  source: string;
  name: string;
  digest: string;
  /** false: the name already named this digest. */
  changed: boolean;
  /** The digest the name had before (with --force). */
  replaced?: string;
}

export async function storeTag(dir: string, src: string, target: string, opts: { force?: boolean } = {}): Promise<TagResult> {
  const layout = await openStore(dir);
  const name = normalizeName(target);
  if (isDigest(name) || name === '') throw new UsageError(`${JSON.stringify(target)} is not a name to tag with`);
  // Decided under the lock against index.json as it is when written: a concurrent rm or tag
  // cannot make this name point at something that is gone.
  return layout.updateIndex((current) => {
    const from = resolveOne(current, src, layout.dir);
    const existing = current.filter((d) => d.annotations?.[REF_NAME] === name);
    const other = existing.find((d) => d.digest !== from.digest);
    if (other && !opts.force) {
      throw new FerryError('NAME_EXISTS', `${name} already names ${other.digest} in store ${layout.dir}`, {
        hint: 'give --force to move the name (the image it named keeps its other names)',
      });
    }
    const result: TagResult = { source: src, name, digest: from.digest, changed: other !== undefined || existing.length === 0 };
    if (other) result.replaced = other.digest;
    if (!result.changed) return { manifests: undefined, result };
    const annotations: Record<string, string> = { ...from.annotations, [REF_NAME]: name, [CONTAINERD_NAME]: name };
    annotations[ADDED_ANNOTATION] = new Date().toISOString();
    const entry: Descriptor = { ...from, annotations };
    // The new name takes the place of the entry it replaces (others of that name go), else goes last.
    let placed = false;
    const kept: Descriptor[] = [];
    for (const d of current) {
      if (d.annotations?.[REF_NAME] !== name) kept.push(d);
      else if (!placed) {
        kept.push(entry);
        placed = true;
      }
    }
    if (!placed) kept.push(entry);
    return { manifests: kept, result };
  });
}

export interface RmResult {
  removed: Array<{ name: string | undefined; digest: string }>;
}

/**
 * Remove names (never blobs). Each argument is a reference (exact, normalised or a digest) or
 * a pattern (`*`, `?`); one that matches nothing fails the whole command and nothing is removed.
 */
export async function storeRm(dir: string, args: string[]): Promise<RmResult> {
  if (args.length === 0) throw new UsageError('name the images to remove (references, digests or patterns)');
  const layout = await openStore(dir);
  return layout.updateIndex((current) => {
    const drop = new Set<Descriptor>();
    const unmatched: string[] = [];
    for (const a of args) {
      const glob = isPattern(a) ? globMatcher(a) : undefined;
      const hits = glob ? current.filter((d) => glob(d.annotations?.[REF_NAME] ?? '')) : matchRef(current, a);
      if (hits.length === 0) unmatched.push(a);
      for (const h of hits) drop.add(h);
    }
    if (unmatched.length > 0) {
      throw new NotFoundError(
        `nothing in store ${layout.dir} matches ${unmatched.map((u) => JSON.stringify(u)).join(', ')}; nothing was removed`,
        {
          hint: 'ferry store ls lists what it holds',
        },
      );
    }
    const removed = current.filter((d) => drop.has(d)).map((d) => ({ name: d.annotations?.[REF_NAME], digest: d.digest }));
    return { manifests: current.filter((d) => !drop.has(d)), result: { removed } };
  });
}
