/**
 * `ferry pull`: registry (or OCI layout) images into an OCI image-layout store.
 * Resolve every reference, plan one deduplicated blob set, fetch it with one scheduler,
 * and name each image in index.json only once all of its content is stored.
 */
import type { PlatformSpec } from '../oci/platform.js';
import { LayoutSource } from '../transports/oci/source.js';
import { OciArchiveSource } from '../transports/oci-archive/source.js';
import { DockerArchiveSource, openDockerArchiveImages } from '../transports/docker-archive/source.js';
import { layoutImageName } from '../transports/names.js';
import { OciLayoutDestination } from '../transports/oci/destination.js';
import { RegistryClient } from '../transports/registry/client.js';
import { formatLocation, openSource, parseLocation, type ImageLocation } from '../transports/table.js';
import type { SetFailure, SetImage } from '../profile/resolve.js';
import type { ImageSource, OpenedImages } from '../transports/types.js';
import { UsageError, wrap } from '../util/errors.js';
import type { EventSink } from '../copy/events.js';
import { executeCopy } from '../copy/execute.js';
import type { DestinationReport } from '../copy/report.js';
import { planCopy, type CopyItem } from '../copy/plan.js';
import { shardPlan, type ShardSpec } from '../copy/shard.js';
import { DEFAULT_CONCURRENCY, bindStaticCredential, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';
import { collectFailures, type Failure } from './report.js';

export const DEFAULT_STORE = './ferry-store';

export interface PullOptions extends RegistryAccessOptions {
  refs: string[];
  /**
   * Registry images chosen by profiles or a lock (commands/image-set.ts), each with the name it
   * is stored as and its own platforms; pulled after `refs`.
   */
  images?: SetImage[];
  /** Entries of the image set that could not be resolved: reported as failures of this run. */
  setFailures?: SetFailure[];
  /**
   * Stop before transferring anything when any image cannot be resolved (profile and lock runs
   * without --keep-going): the report then lists the failures and nothing was written.
   */
  allOrNothing?: boolean;
  store: string;
  platforms?: PlatformSpec[];
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /**
   * Carry only this shard of the planned images (copy/shard.ts). The whole set is planned
   * (manifests only) so every shard computes the same partition.
   */
  shard?: ShardSpec;
}

export interface PullReport extends DestinationReport {
  store: string;
  failures: Failure[];
  /** allOrNothing and something did not resolve: nothing was transferred. */
  stopped?: boolean;
}

const EMPTY_BLOB_STATS = Object.freeze({ total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 });

export async function pull(opts: PullOptions): Promise<PullReport> {
  if (opts.refs.length === 0 && !opts.images?.length && !opts.setFailures?.length)
    throw new UsageError('nothing to pull: give image references, -f LIST, -p PROFILE or --lock LOCK');
  const started = Date.now();
  const locations: Array<{ loc: ImageLocation; name?: string; platforms?: PlatformSpec[] }> = opts.refs.map((r) => {
    try {
      return { loc: parseLocation(r), ...(opts.platforms?.length ? { platforms: opts.platforms } : {}) };
    } catch (err) {
      throw wrap(err, `image list entry ${JSON.stringify(r)}`);
    }
  });
  for (const image of opts.images ?? []) {
    locations.push({
      loc: { transport: 'docker', ref: image.ref },
      name: image.name,
      ...(image.platforms ? { platforms: image.platforms } : {}),
    });
  }
  // Reject duplicates up front: two entries naming one store name would race for it.
  const clients = new Map<string, RegistryClient>();
  const registries = locations.flatMap(({ loc: l }) => (l.transport === 'docker' ? [l.ref.domain] : []));
  const clientOpts = registryClientOptions(opts, bindStaticCredential(opts, registries));
  const registry = (host: string): RegistryClient => {
    let client = clients.get(host);
    if (!client) {
      client = new RegistryClient(host, clientOpts);
      clients.set(host, client);
    }
    return client;
  };
  // Registry sources open through the table; the file sources keep their own opening, because
  // openSource has copy's contract and pull's differs: a list entry is exactly one image (oci:DIR
  // with several images is ambiguous, and --platform may pick an untagged per-platform entry),
  // stored under the name the layout gives it (`v1`, not a full reference). openSource lists
  // every image of a layout or archive under full references: it would rename stored images.
  const openedSources: OpenedImages[] = [];
  const items: CopyItem[] = [];
  const seen = new Map<string, { source: ImageSource; entry: string }>();
  const sources: ImageSource[] = [];
  let dest: OciLayoutDestination | undefined;
  try {
    for (const { loc, name: setName, platforms } of locations) {
      let name: string;
      let source: ImageSource;
      /** The entry's further images (a docker save file of several), handled as the first is. */
      let more: Array<{ name: string; source: ImageSource }> = [];
      if (loc.transport === 'docker') {
        // Through the table, with one client per host shared by every reference to it (and the
        // credentials bound above for all of them); a registry source holds exactly one image.
        const opened = await openSource(loc, { registry, ...(opts.signal ? { signal: opts.signal } : {}) });
        openedSources.push(opened);
        const image = opened.images[0]!;
        name = setName ?? image.name;
        source = image.source;
      } else if (loc.transport === 'oci') {
        const layoutSource = await LayoutSource.open(loc.path, loc.ref, platforms ?? []);
        name = layoutImageName(await layoutSource.rootDescriptor(), loc.ref);
        source = layoutSource;
      } else if (loc.transport === 'oci-archive') {
        const archiveSource = await OciArchiveSource.open(loc.path, loc.ref, platforms ?? []);
        name = layoutImageName(await archiveSource.rootDescriptor(), loc.ref);
        source = archiveSource;
      } else if (loc.transport === 'docker-archive' && loc.ref === undefined) {
        // A docker save file without :TAG or :@N: every image it holds, under every tag it was
        // saved with, as `docker load` (and ferry load) take it. The archive closes with `opened`.
        const opened = await openDockerArchiveImages(loc.path, undefined);
        openedSources.push(opened);
        [{ name, source }, ...more] = opened.images as [OpenedImages['images'][number], ...OpenedImages['images']];
      } else if (loc.transport === 'docker-archive') {
        const archiveSource = await DockerArchiveSource.open(loc.path, loc.ref);
        name = archiveSource.name ?? `@${(await archiveSource.getRootManifest()).digest}`;
        source = archiveSource;
      } else {
        throw new UsageError(`pull cannot read from ${loc.transport}: sources yet (use docker://, oci:, oci-archive: or docker-archive:)`);
      }
      for ({ name, source } of [{ name, source }, ...more]) {
        // The same name twice: the same image listed twice is skipped; two different images
        // that would take one store name are a usage error (one would silently replace the other).
        const entry = formatLocation(loc);
        const earlier = seen.get(name);
        if (earlier !== undefined) {
          // Registry references name their image; other sources are compared by root digest
          // (read only now, so a broken source still fails as its own image, in planning).
          const rootOf = async (src: ImageSource): Promise<string | undefined> =>
            (await src.getRootManifest().catch(() => undefined))?.digest;
          const same =
            loc.transport === 'docker' ||
            entry === earlier.entry ||
            ((await rootOf(source)) ?? 'a') === ((await rootOf(earlier.source)) ?? 'b');
          await source.close();
          if (same) continue;
          throw new UsageError(`${earlier.entry} and ${entry} are different images that would both be stored as ${JSON.stringify(name)}`, {
            hint: 'name one of them explicitly (oci:DIR:REF with a full reference), or pull them into different stores',
          });
        }
        seen.set(name, { source, entry });
        sources.push(source);
        items.push({ source, name, ...(platforms?.length ? { platforms } : {}) });
      }
    }
    dest = await OciLayoutDestination.open(opts.store);
    const store = dest.store;
    const whole = await planCopy(items, {
      // Child manifests of an index the store already holds (read verified against their digest).
      localManifests: async (digest) =>
        (await store.hasBlob(digest))
          ? await store.readBlobBytes({ digest }, `manifest ${digest} in ${store.dir}`).catch(() => undefined)
          : undefined,
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    const allSetFailures = (opts.setFailures ?? []).map((f) => ({ name: f.name, source: f.where, error: f.error }));
    // All-or-nothing looks at the whole plan, so every shard stops alike. Unplaceable failures
    // (nothing resolved, no blobs known) are reported by shard 1 only.
    const setFailures = !opts.shard || opts.shard.index === 1 ? allSetFailures : [];
    if (opts.allOrNothing && (whole.failures.length > 0 || allSetFailures.length > 0)) {
      // Nothing is transferred: every image that did resolve is reported as not attempted.
      const failures = collectFailures([...allSetFailures, ...whole.failures], []);
      return {
        images: [],
        blobs: { ...EMPTY_BLOB_STATS },
        durationMs: Date.now() - started,
        store: dest.store.dir,
        failures,
        stopped: true,
      };
    }
    const plan = opts.shard ? shardPlan(whole, opts.shard) : whole;
    const report = await executeCopy(plan, sources, dest, {
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    const failures = collectFailures([...setFailures, ...plan.failures], report.images);
    return { ...report, durationMs: Date.now() - started, store: dest.store.dir, failures };
  } finally {
    // Gives back the store's writer lease (ferry store gc waits for it).
    await dest?.close();
    await Promise.all([...clients.values()].map((c) => c.close()));
    await Promise.all(sources.map((s) => s.close()));
    await Promise.all(openedSources.map((o) => o.close()));
  }
}
