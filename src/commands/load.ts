/**
 * `ferry load SOURCE --to DEST`: a bundle (or `-` for stdin, or an OCI layout `oci:DIR[:REF]`)
 * into an OCI layout, a registry, Docker Engine or containerd.
 *
 * 1. Open the source. A bundle is checked first, all but blob content (bundle/source.ts); a
 *    bundle with any problem, or a bad signature when a key is given, loads nothing (exit 3).
 * 2. Plan (plan.ts): every image's manifests and one deduplicated blob list.
 * 3. Hand the plan to the destination, which verifies every blob while it streams and names an
 *    image only once its content is in place. From a bundle, a blob that fails its check
 *    stops every image from being named (the bundle is one signed unit).
 * 4. Report per image, with the mapping source reference → destination reference and digest.
 */
import { stat } from 'node:fs/promises';
import { openBundle } from '../bundle/source.js';
import type { EventSink } from '../copy/events.js';
import { executeCopy } from '../copy/execute.js';
import { planCopy, type CopyItem, type CopyPlan } from '../copy/plan.js';
import { DEFAULT_CONCURRENCY, bindStaticCredential, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';
import { collectFailures, type Failure } from './report.js';
import { fullName, layoutImageName } from '../transports/names.js';
import type { Digest } from '../oci/digest.js';
import type { PlatformSpec } from '../oci/platform.js';
import { DockerArchive, DockerArchiveSource } from '../transports/docker-archive/source.js';
import { OciArchive, OciArchiveSource } from '../transports/oci-archive/source.js';
import { OciLayout, REF_NAME } from '../transports/oci/layout.js';
import { OciLayoutDestination } from '../transports/oci/destination.js';
import { LayoutSource } from '../transports/oci/source.js';
import { RegistryClient } from '../transports/registry/client.js';
import type { ImageSource } from '../transports/types.js';
import { UsageError } from '../util/errors.js';
import { isStdin } from '../util/fsutil.js';
import { loadIntoContainerd } from '../transports/containerd/destination.js';
import { formatLoadDestination, parseLoadDestination, type Destination as LoadDestination } from '../transports/table.js';
import { loadIntoDockerDaemon } from '../transports/docker-daemon/destination.js';
import { registryTargets } from '../transports/registry/names.js';
import { pushToRegistry } from '../transports/registry/destination.js';
import type { DestinationOptions, DestinationReport, LoadBlobStats, LoadedImage } from '../copy/report.js';

export interface LoadOptions extends RegistryAccessOptions {
  /** A bundle file, `-` (a bundle on stdin), `bundle:FILE`, or `oci:DIR[:REF]`. */
  source: string;
  to: string;
  key?: string;
  requireSignature?: boolean;
  scoped?: boolean;
  /**
   * Only these platforms of multi-platform images: their indexes are rewritten to list just
   * those (new digest; the source's is kept in an annotation), as `ferry pull --platform` does.
   */
  platforms?: PlatformSpec[];
  concurrency?: number;
  /** containerd: the ctr command (argv), e.g. ['k3s', 'ctr']. */
  ctr?: string[];
  /** containerd: snapshotter to unpack into. */
  snapshotter?: string;
  /** containerd: false = import with --no-unpack (Kubernetes' CRI unpacks on container create). */
  unpack?: boolean;
  /** Registry destinations: PATCH chunk size. */
  chunkSize?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
}

export interface MappingEntry {
  destination: string;
  digest: Digest;
}

export interface LoadReport {
  source: string;
  destination: string;
  signature?: 'none' | 'present' | 'valid' | 'invalid';
  images: LoadedImage[];
  failures: Failure[];
  blobs: LoadBlobStats;
  /** Source reference → where it is now: only images that are in place. */
  mapping: Record<string, MappingEntry>;
  durationMs: number;
}

interface OpenedSource {
  description: string;
  items: CopyItem[];
  fromBundle: boolean;
  signature?: LoadReport['signature'];
  close(): Promise<void>;
}

/**
 * `oci-archive:FILE[:REF]` and `docker-archive:FILE[:REF|:@N]`: every image the archive holds
 * (as `docker load` takes a `docker save` file), or the one REF picks.
 */
async function openArchiveSource(transport: 'oci-archive' | 'docker-archive', rest: string): Promise<OpenedSource> {
  const colon = rest.indexOf(':');
  const file = colon === -1 ? rest : rest.slice(0, colon);
  const ref = colon === -1 ? undefined : rest.slice(colon + 1) || undefined;
  const items: CopyItem[] = [];
  const seen = new Set<string>();
  const add = (name: string, source: ImageSource): void => {
    if (seen.has(name)) return;
    seen.add(name);
    items.push({ source, name });
  };
  if (transport === 'oci-archive') {
    const archive = await OciArchive.open(file);
    try {
      const entries = ref !== undefined ? [archive.resolve(ref)] : archive.listImages();
      if (entries.length === 0) throw new UsageError(`oci-archive:${file} holds no images`);
      for (const desc of entries) {
        add(fullName(layoutImageName(desc, ref)), new OciArchiveSource(archive, desc.annotations?.[REF_NAME] ?? ref ?? desc.digest));
      }
    } catch (err) {
      await archive.close();
      throw err;
    }
    return { description: archive.label, items, fromBundle: false, close: () => archive.close() };
  }
  const archive = await DockerArchive.open(file);
  try {
    const images = ref !== undefined ? [archive.select(ref)] : archive.listImages();
    if (images.length === 0) throw new UsageError(`docker-archive:${file} holds no images`);
    for (const img of images) {
      const source = new DockerArchiveSource(archive, img, ref ?? `@${img.index}`);
      // Every tag the image was saved under, as `docker load` restores them.
      if (img.repoTags.length === 0) add(`@${(await source.getRootManifest()).digest}`, source);
      for (const tag of img.repoTags) add(tag, source);
    }
  } catch (err) {
    await archive.close();
    throw err;
  }
  return { description: archive.label, items, fromBundle: false, close: () => archive.close() };
}

async function openSource(source: string, opts: LoadOptions): Promise<OpenedSource> {
  const archive = /^(oci-archive|docker-archive):(.*)$/.exec(source);
  if (source.startsWith('oci:') || archive) {
    if (opts.key !== undefined || opts.requireSignature) {
      throw new UsageError(`--key and --require-signature check bundles; a ${source.split(':')[0]}: source carries no signature`);
    }
  }
  if (archive) return openArchiveSource(archive[1] as 'oci-archive' | 'docker-archive', archive[2]!);
  if (source.startsWith('oci:')) {
    const rest = source.slice('oci:'.length);
    const colon = rest.indexOf(':');
    const dir = colon === -1 ? rest : rest.slice(0, colon);
    const ref = colon === -1 ? undefined : rest.slice(colon + 1) || undefined;
    const layout = await OciLayout.open(dir);
    const entries = ref !== undefined ? [await layout.resolve(ref)] : (await layout.readIndex()).manifests;
    if (entries.length === 0) throw new UsageError(`${source} holds no images`);
    const items: CopyItem[] = [];
    const seen = new Set<string>();
    for (const desc of entries) {
      const name = fullName(layoutImageName(desc, ref));
      if (seen.has(name)) continue;
      seen.add(name);
      // Address each entry by digest when it has no name of its own.
      const layoutRef = desc.annotations?.['org.opencontainers.image.ref.name'] ?? ref ?? desc.digest;
      items.push({ source: new LayoutSource(layout, layoutRef), name });
    }
    return { description: `oci:${layout.dir}`, items, fromBundle: false, close: async () => {} };
  }
  const file = source.startsWith('bundle:') ? source.slice('bundle:'.length) : source;
  if (!isStdin(file)) {
    const st = await stat(file).catch(() => undefined);
    if (!st)
      throw new UsageError(`${file}: no such bundle file`, { hint: 'give a bundle written by ferry bundle, - for stdin, or oci:DIR' });
    if (st.isDirectory()) throw new UsageError(`${file} is a directory`, { hint: `for an OCI layout use oci:${file}` });
  }
  const bundle = await openBundle(file, {
    ...(opts.key !== undefined ? { key: opts.key } : {}),
    ...(opts.requireSignature ? { requireSignature: true } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return {
    description: isStdin(file) ? 'bundle:(stdin)' : `bundle:${bundle.file}`,
    items: bundle.images.map((i) => ({ source: i.source, name: i.name })),
    fromBundle: true,
    signature: bundle.signature,
    close: () => bundle.close(),
  };
}

async function write(
  dest: LoadDestination,
  plan: CopyPlan,
  sources: ImageSource[],
  src: OpenedSource,
  opts: LoadOptions,
): Promise<DestinationReport> {
  const common: DestinationOptions = {
    concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
  };
  switch (dest.kind) {
    case 'oci': {
      const target = await OciLayoutDestination.open(dest.dir);
      const r = await executeCopy(plan, sources, target, { ...common, allOrNothing: src.fromBundle, action: 'loading' });
      return {
        ...r,
        images: r.images.map((i) => ({
          ...i,
          ...(i.status === 'done' ? { destination: target.nameOf(i), destinationDigest: i.digest } : {}),
        })),
      };
    }
    case 'registry': {
      const targets = registryTargets(
        plan.images.map((i) => ({ name: i.name, digest: i.root.digest })),
        dest,
        { scoped: !!opts.scoped },
      );
      const client = new RegistryClient(dest.host, registryClientOptions(opts, bindStaticCredential(opts, [dest.host])));
      try {
        return await pushToRegistry(plan, sources, client, targets, {
          ...common,
          allOrNothing: src.fromBundle,
          ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
        });
      } finally {
        await client.close();
      }
    }
    case 'docker-daemon':
      return loadIntoDockerDaemon(plan, sources, {
        ...common,
        allOrNothing: src.fromBundle,
        ...(dest.socket ? { socket: dest.socket } : {}),
      });
    case 'containerd':
      return loadIntoContainerd(plan, sources, {
        ...common,
        namespace: dest.namespace,
        ...(dest.address ? { address: dest.address } : {}),
        ...(opts.ctr ? { ctr: opts.ctr } : {}),
        ...(opts.snapshotter ? { snapshotter: opts.snapshotter } : {}),
        ...(opts.unpack === false ? { unpack: false } : {}),
        allOrNothing: src.fromBundle,
      });
  }
}

/** What load and mirror report about a destination's work: per image, failures, blobs, mapping. */
export function destinationResult(
  plan: CopyPlan,
  report: DestinationReport,
  started: number,
): Pick<LoadReport, 'images' | 'failures' | 'blobs' | 'mapping' | 'durationMs'> {
  return {
    images: report.images,
    failures: collectFailures(plan.failures, report.images),
    blobs: report.blobs,
    mapping: mappingOf(report.images),
    durationMs: Date.now() - started,
  };
}

/** The mapping of a report: every image that is in place. */
export function mappingOf(images: readonly LoadedImage[]): Record<string, MappingEntry> {
  const out: Record<string, MappingEntry> = {};
  for (const i of images) {
    if (i.status === 'done' && i.destination && i.destinationDigest)
      out[i.name] = { destination: i.destination, digest: i.destinationDigest };
  }
  return out;
}

export async function load(opts: LoadOptions): Promise<LoadReport> {
  const started = Date.now();
  const dest = parseLoadDestination(opts.to);
  if (opts.staticCredential && dest.kind !== 'registry') {
    throw new UsageError(`--username is for a registry destination; ${formatLoadDestination(dest)} is not one`);
  }
  if (dest.kind === 'registry') bindStaticCredential(opts, [dest.host]);
  const src = await openSource(opts.source, opts);
  try {
    const sources = src.items.map((i) => i.source);
    const items = opts.platforms?.length ? src.items.map((i) => ({ ...i, platforms: opts.platforms! })) : src.items;
    const plan = await planCopy(items, {
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    // From a bundle, an image that cannot even be planned means the bundle is inconsistent.
    const report =
      plan.images.length > 0
        ? await write(dest, plan, sources, src, opts)
        : { images: [], blobs: { total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 }, durationMs: 0 };
    return {
      source: src.description,
      destination: formatLoadDestination(dest),
      ...(src.signature ? { signature: src.signature } : {}),
      ...destinationResult(plan, report, started),
    };
  } finally {
    await src.close();
  }
}
