/**
 * `ferry load SOURCE --to DEST`: a bundle (or `-` for stdin, or an OCI layout `oci:DIR[:REF]`)
 * into an OCI layout, a registry, Docker Engine or containerd.
 *
 * 1. Open the source. A bundle is checked first, all but blob content (bundle/source.ts); a
 *    bundle with any problem, or a bad signature when a key is given, loads nothing (exit 3).
 * 2. Plan (plan.ts): every image's manifests and one deduplicated blob list.
 * 3. Hand the plan to the destination the transport table opens, which verifies every blob while it streams and names an
 *    image only once its content is in place. From a bundle, a blob that fails its check
 *    stops every image from being named (the bundle is one signed unit).
 * 4. Report per image, with the mapping source reference → destination reference and digest.
 */
import path from 'node:path';
import type { BundleManifest } from '../bundle/format.js';
import { openBundleImages } from '../bundle/source.js';
import { missingSpanFiles, openVolumeSpan } from '../bundle/multi-source.js';
import { VolumeSpanIncompleteError, mixedSetWarnings, readBundleHead, spanOf, type Span } from '../bundle/volume-files.js';
import type { EventSink } from '../copy/events.js';
import { planCopy, type CopyPlan } from '../copy/plan.js';
import type { DestinationReport, LoadBlobStats, LoadedImage } from '../copy/report.js';
import type { Digest } from '../oci/digest.js';
import type { PlatformSpec } from '../oci/platform.js';
import {
  engineNaming,
  formatLoadDestination,
  openArchiveFile,
  openSource,
  parseLoadDestination,
  parseLocation,
} from '../transports/table.js';
import type { OpenedImages } from '../transports/types.js';
import { FerryError, UsageError } from '../util/errors.js';
import { DEFAULT_CONCURRENCY, bindStaticCredential, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';
import { collectFailures, type Failure } from './report.js';
import { writePlan } from './write.js';
import { isStdin } from '../util/fsutil.js';

export interface LoadOptions extends RegistryAccessOptions {
  /** A file (a bundle, docker save tar or OCI archive, detected), `-` (a bundle on stdin), `bundle:FILE`, or `oci:DIR[:REF]`. */
  source: string;
  to: string;
  key?: string;
  requireSignature?: boolean;
  scoped?: boolean;
  /** docker-daemon and containerd: names under this `HOST[:PORT][/PATH]` (or path), as in a registry. */
  prefix?: string;
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
  /** An all-or-nothing run (mirror of a profile or lock) stopped before sending: something did not resolve. */
  stopped?: boolean;
}

/**
 * What `ferry load` reads: a file without a transport (a bundle, a docker save tar or an OCI
 * archive, told apart by transports/detect.ts), a bundle (`-` for stdin, or `bundle:FILE`), or `oci:DIR[:REF]`, `oci-archive:FILE[:REF]`, `docker-archive:FILE[:REF]`,
 * opened through the transport table (every image it holds, or the one REF picks).
 */
async function openLoadSource(source: string, opts: LoadOptions): Promise<OpenedImages> {
  const m = /^(oci|oci-archive|docker-archive):/.exec(source);
  if (m) {
    if (opts.key !== undefined || opts.requireSignature) {
      throw new UsageError(`--key and --require-signature check bundles; a ${m[1]}: source carries no signature`);
    }
    return openSource(parseLocation(source));
  }
  // A bundle's path is taken whole (it may hold a colon); load reads every image of it.
  const file = source.startsWith('bundle:') ? source.slice('bundle:'.length) : source;
  const signing = {
    ...(opts.key !== undefined ? { key: opts.key } : {}),
    ...(opts.requireSignature ? { requireSignature: true } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  // A bare path is looked at first (a bundle, a docker save tar or an OCI archive); `bundle:FILE` and stdin are bundles.
  if (file === source && !isStdin(file)) return openArchiveFile(file, signing);
  return openBundleImages(file, {
    ...(opts.key !== undefined ? { key: opts.key } : {}),
    ...(opts.requireSignature ? { requireSignature: true } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
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

/** `opened`: a source already open (the volumes of a span, loadEach); `opts.source` then only names it. */
export async function load(opts: LoadOptions, opened?: OpenedImages): Promise<LoadReport> {
  const started = Date.now();
  const dest = parseLoadDestination(opts.to);
  if (opts.staticCredential && dest.kind !== 'registry') {
    throw new UsageError(`--username is for a registry destination; ${formatLoadDestination(dest)} is not one`);
  }
  if (dest.kind === 'registry') bindStaticCredential(opts, [dest.host]);
  const naming = engineNaming(dest, opts);
  const src = opened ?? (await openLoadSource(opts.source, opts));
  try {
    const sources = src.images.map((i) => i.source);
    const items = opts.platforms?.length ? src.images.map((i) => ({ ...i, platforms: opts.platforms! })) : src.images;
    const plan = await planCopy(items, {
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    // From a bundle, an image that cannot even be planned means the bundle is inconsistent.
    let report: DestinationReport = {
      images: [],
      blobs: { total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 },
      durationMs: 0,
    };
    if (plan.images.length > 0) {
      report = await writePlan(
        dest,
        {
          ...(dest.kind === 'registry'
            ? { registryClientOptions: registryClientOptions(opts, bindStaticCredential(opts, [dest.host])) }
            : {}),
          ...(opts.scoped ? { scoped: true } : {}),
          ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
          ...(opts.ctr ? { ctr: opts.ctr } : {}),
          ...(opts.snapshotter ? { snapshotter: opts.snapshotter } : {}),
          ...(opts.unpack === false ? { unpack: false } : {}),
          ...(naming ? { naming } : {}),
        },
        plan,
        sources,
        {
          concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
          allOrNothing: src.allOrNothing,
          ...(src.external ? { external: src.external } : {}),
          action: 'loading',
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
        },
      );
    }
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

/**
 * Several bundle files (the volumes of a set, `ferry load NAME.*.ferry`), loaded one after the
 * other, each as `load` loads one (all or nothing per bundle). A bundle that cannot be read or
 * fails its checks is a failure of that bundle only: the others still load. The report sums them.
 */
export async function loadEach(
  sources: readonly string[],
  opts: Omit<LoadOptions, 'source'>,
): Promise<{ report: LoadReport; refused: Array<{ source: string; error: FerryError }> }> {
  const started = Date.now();
  const reports: LoadReport[] = [];
  const refused: Array<{ source: string; error: FerryError }> = [];
  // Volumes of an earlier run beside a new set look alike by name: said, and loaded all the same.
  const heads = await readVolumeHeads(sources);
  for (const message of mixedSetWarnings(heads)) opts.onEvent?.({ kind: 'warning', message });
  const spans = spanGroups(heads);
  const done = new Set<object>();
  for (const source of sources) {
    opts.signal?.throwIfAborted();
    // The volumes of a span load together, as one source, where its first given volume stands.
    const group = spans.get(source);
    if (group && done.has(group)) continue;
    if (group) done.add(group);
    const members = group ? [...group.given.values()] : [source];
    try {
      if (group) {
        const missing = missingSpanFiles(group.span, group.given);
        if (missing.length > 0) throw new VolumeSpanIncompleteError(group.file, group.span, missing);
        const files = [...group.given.values()].map(bundleFile);
        const opened = await openVolumeSpan(files, {
          ...(opts.key !== undefined ? { key: opts.key } : {}),
          ...(opts.requireSignature ? { requireSignature: true } : {}),
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
        reports.push(await load({ ...opts, source: members.join(', ') }, opened));
      } else {
        reports.push(await load({ ...opts, source }));
      }
    } catch (err) {
      // Usage errors and interruptions are about the whole run, not one volume.
      if (!(err instanceof FerryError) || err instanceof UsageError || opts.signal?.aborted) throw err;
      for (const m of members) refused.push({ source: m, error: err });
    }
  }
  const signatures = new Set(reports.map((r) => r.signature));
  const failures: Failure[] = [
    ...reports.flatMap((r) => r.failures),
    ...refused.map(({ source, error }) => ({
      name: source,
      error: error.message,
      errorCode: error.code,
      ...(error.hint !== undefined ? { hint: error.hint } : {}),
    })),
  ];
  const sum = (pick: (b: LoadBlobStats) => number | undefined): number => reports.reduce((n, r) => n + (pick(r.blobs) ?? 0), 0);
  const mounted = sum((b) => b.mounted);
  const blobs: LoadBlobStats = {
    total: sum((b) => b.total),
    fetched: sum((b) => b.fetched),
    skipped: sum((b) => b.skipped),
    failed: sum((b) => b.failed),
    bytesFetched: sum((b) => b.bytesFetched),
    bytesSkipped: sum((b) => b.bytesSkipped),
    ...(mounted > 0 ? { mounted } : {}),
  };
  const report: LoadReport = {
    source: sources.join(', '),
    destination: reports[0]?.destination ?? formatLoadDestination(parseLoadDestination(opts.to)),
    // One word for all of them only when they agree.
    ...(signatures.size === 1 && reports[0]?.signature ? { signature: reports[0].signature } : {}),
    images: reports.flatMap((r) => r.images),
    failures,
    blobs,
    mapping: Object.assign({}, ...reports.map((r) => r.mapping)) as Record<string, MappingEntry>,
    durationMs: Date.now() - started,
  };
  return { report, refused };
}

function bundleFile(source: string): string {
  return source.startsWith('bundle:') ? source.slice('bundle:'.length) : source;
}

/** Given source → its span (the volumes of it given, by number), for every volume of a span among the sources. */
function spanGroups(
  heads: ReadonlyArray<{ source: string; file: string; manifest: BundleManifest | undefined }>,
): Map<string, { span: Span; file: string; given: Map<number, string> }> {
  const byKey = new Map<string, { span: Span; file: string; given: Map<number, string> }>();
  const out = new Map<string, { span: Span; file: string; given: Map<number, string> }>();
  for (const h of heads) {
    const span = spanOf(h.manifest);
    const v = h.manifest?.volume;
    if (!span || !v) continue;
    const key = `${v.setId} ${span.ref} ${span.volumes.join(',')}`;
    const group = byKey.get(key) ?? { span, file: h.file, given: new Map<number, string>() };
    byKey.set(key, group);
    // The same volume given twice is loaded once.
    if (!group.given.has(v.number)) group.given.set(v.number, h.source);
    out.set(h.source, group);
  }
  return out;
}

/** The heads of the bundle files given (undefined for what is not a readable bundle; load says why). */
async function readVolumeHeads(
  sources: readonly string[],
): Promise<Array<{ source: string; file: string; manifest: BundleManifest | undefined }>> {
  return Promise.all(
    sources.map(async (source) => {
      const file = path.resolve(bundleFile(source));
      return { source, file, manifest: await readBundleHead(file) };
    }),
  );
}
