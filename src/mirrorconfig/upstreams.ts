/**
 * The upstream registries (and images) that `ferry mirror-config`'s sources name: bundles
 * (ferry-bundle.json, read with the bundle schema; a plain OCI archive: its index.json), stores
 * (`oci:DIR` or a directory holding an OCI layout: index.json names), lock files (the names
 * recorded at the destination) and profiles (each entry's `target:` or its reference). Only
 * names are read, nothing is verified: the configuration says where to look, and the runtime
 * checks what it pulls. Every image counts by the name a runtime will ask for, which is the
 * name `ferry load` gives it.
 */
import { stat } from 'node:fs/promises';
import { LIMITS, MEMBER, parseBundleManifest } from '../bundle/format.js';
import { loadProfiles } from '../profile/load.js';
import { readLock } from '../profile/lock.js';
import { parseNormalizedNamed, type Reference } from '../ref/reference.js';
import type { Descriptor } from '../oci/manifest.js';
import { isTag } from '../server/names.js';
import { CONTAINERD_NAME, OciLayout, REF_NAME } from '../transports/oci/layout.js';
import { OciArchive } from '../transports/oci-archive/source.js';
import { UsageError, errorMessage } from '../util/errors.js';
import type { UpstreamImage } from './model.js';
import { readFileHead } from '../util/fsutil.js';

export type SourceKind = 'bundle' | 'oci-archive' | 'store' | 'lock' | 'profile';

export interface CollectedSource {
  source: string;
  kind: SourceKind;
  images: UpstreamImage[];
  /** Names that are not references (a bare tag, a digest-only entry): skipped, said why. */
  skipped: string[];
}

/** What a tar starts with: "ustar" at offset 257 of the first header. */
function isTar(head: Buffer): boolean {
  return head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
}

function toImage(ref: Reference): UpstreamImage {
  const suffix = `${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
  return { upstream: ref.domain, path: ref.path, suffix };
}

/** A name as a runtime would write it; undefined when it names no registry (a bare tag, junk). */
function imageOf(name: string): UpstreamImage | undefined {
  try {
    return toImage(parseNormalizedNamed(name));
  } catch {
    return undefined;
  }
}

function addNames(out: CollectedSource, names: Iterable<string>): void {
  for (const n of names) {
    const img = imageOf(n);
    if (img) out.images.push(img);
    else out.skipped.push(n);
  }
}

/**
 * The name `ferry serve` answers for an index.json entry (server/served-graph.ts): its ref.name
 * when that is more than a bare tag, else the containerd name. A bare tag alone (`skopeo copy …
 * oci:DIR:v1`) names no repository, let alone a registry: skipped, as serve skips it.
 */
function addIndexEntries(out: CollectedSource, manifests: readonly Descriptor[]): void {
  const names: string[] = [];
  for (const d of manifests) {
    const refName = d.annotations?.[REF_NAME];
    const name = refName && !isTag(refName) ? refName : d.annotations?.[CONTAINERD_NAME];
    if (name) names.push(name);
    else if (refName) out.skipped.push(refName);
  }
  addNames(out, names);
}

async function fromLayout(source: string, dir: string): Promise<CollectedSource> {
  const layout = await OciLayout.open(dir);
  const out: CollectedSource = { source, kind: 'store', images: [], skipped: [] };
  addIndexEntries(out, (await layout.readIndex()).manifests);
  return out;
}

async function fromArchive(source: string, file: string): Promise<CollectedSource> {
  const archive = await OciArchive.open(file);
  try {
    if (archive.archive.has(MEMBER.manifest)) {
      const bytes = await archive.archive.readBytes(archive.archive.resolve(MEMBER.manifest), LIMITS.maxJsonBytes, MEMBER.manifest);
      const manifest = parseBundleManifest(bytes, file);
      const out: CollectedSource = { source, kind: 'bundle', images: [], skipped: [] };
      addNames(
        out,
        manifest.images.map((i) => i.ref),
      );
      return out;
    }
    const out: CollectedSource = { source, kind: 'oci-archive', images: [], skipped: [] };
    addIndexEntries(out, archive.listImages());
    return out;
  } finally {
    await archive.close();
  }
}

async function fromLock(source: string, file: string): Promise<CollectedSource> {
  const { images } = await readLock(file);
  const out: CollectedSource = { source, kind: 'lock', images: [], skipped: [] };
  addNames(
    out,
    images.map((i) => i.name),
  );
  return out;
}

async function fromProfile(source: string, file: string): Promise<CollectedSource> {
  const set = await loadProfiles([file]);
  const out: CollectedSource = { source, kind: 'profile', images: [], skipped: [] };
  for (const e of set.entries) {
    // A `target:` renames the image at the destination: that is the name runtimes ask for.
    const ref = e.target ?? e.ref;
    out.images.push(toImage(ref));
  }
  return out;
}

/** Read one source (its kind found from what it is, not from its name). */
export async function collectSource(source: string): Promise<CollectedSource> {
  if (source.startsWith('oci:')) return fromLayout(source, source.slice(4));
  const file = source.startsWith('bundle:') ? source.slice(7) : source;
  const st = await stat(file).catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`${source}: ${err.code === 'ENOENT' ? 'no such file or directory' : errorMessage(err)}`, {
      hint: 'a source is a bundle, an OCI layout (oci:DIR or DIR), a lock file or a profile',
    });
  });
  if (st.isDirectory()) return fromLayout(source, file);
  if (!st.isFile()) throw new UsageError(`${source} is not a regular file or a directory`);
  const head = await readFileHead(file, 512);
  if (isTar(head)) return fromArchive(source, file);
  if (source.startsWith('bundle:')) throw new UsageError(`${source}: not a bundle (not a tar file)`);
  // A lock is JSON (ferry plan -o); a profile is YAML, and YAML never starts with "{" in a profile.
  if (head.toString('utf8').trimStart().startsWith('{')) return fromLock(source, file);
  return fromProfile(source, file);
}

export interface Collected {
  upstreams: string[];
  images: UpstreamImage[];
  sources: CollectedSource[];
}

function compareImages(a: UpstreamImage, b: UpstreamImage): number {
  const x = `${a.upstream}/${a.path}${a.suffix}`;
  const y = `${b.upstream}/${b.path}${b.suffix}`;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Every source, then the union of upstreams (plus `extra`, from --for), sorted and without duplicates. */
export async function collectUpstreams(sources: readonly string[], extra: readonly string[] = []): Promise<Collected> {
  const collected: CollectedSource[] = [];
  for (const s of sources) collected.push(await collectSource(s));
  const seen = new Map<string, UpstreamImage>();
  for (const c of collected) for (const i of c.images) seen.set(`${i.upstream}/${i.path}${i.suffix}`, i);
  const images = [...seen.values()].sort(compareImages);
  const upstreams = [...new Set([...images.map((i) => i.upstream), ...extra])].sort();
  return { upstreams, images, sources: collected };
}
