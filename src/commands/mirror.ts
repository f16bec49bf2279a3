/**
 * `ferry mirror [REF...] --to docker://HOST/PREFIX`: registry to registry, streaming (no
 * staging on disk), with the naming, skipping and ordering rules of a registry load
 * (transports/registry/destination.ts, driven by the one executor) and one blob scheduler for the whole list. An image the destination already
 * holds costs a manifest read at the source and a HEAD at the destination, nothing more.
 */
import type { EventSink } from '../copy/events.js';
import type { Digest } from '../oci/digest.js';
import type { PlatformSpec } from '../oci/platform.js';
import { planCopy, type CopyItem } from '../copy/plan.js';
import { shardPlan, type ShardSpec } from '../copy/shard.js';
import { DEFAULT_CONCURRENCY, bindStaticCredential, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';
import { parseLocation } from '../transports/table.js';
import { RegistryClient } from '../transports/registry/client.js';
import { RegistrySource } from '../transports/registry/source.js';
import { UsageError, wrap } from '../util/errors.js';
import { formatLoadDestination, parseLoadDestination } from '../transports/table.js';
import { destinationResult, type LoadReport } from './load.js';
import { registryTargets } from '../transports/registry/names.js';
import { RegistryDestination } from '../transports/registry/destination.js';
import { executeCopy } from '../copy/execute.js';
import type { SetFailure, SetImage } from '../profile/resolve.js';
import { collectFailures } from './report.js';

export interface MirrorOptions extends RegistryAccessOptions {
  refs: string[];
  /** Images chosen by profiles or a lock (commands/image-set.ts), with their names and platforms. */
  images?: SetImage[];
  /** Image-set entries that could not be resolved: failures of this run. */
  setFailures?: SetFailure[];
  /** Stop before anything is sent when an image cannot be resolved (profile and lock runs without --keep-going). */
  allOrNothing?: boolean;
  to: string;
  scoped?: boolean;
  /** Only these platforms of multi-platform images (indexes rewritten, as pull --platform does). */
  platforms?: PlatformSpec[];
  concurrency?: number;
  chunkSize?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
  /** Send only this shard of the planned images (copy/shard.ts); the whole set is planned. */
  shard?: ShardSpec;
}

export async function mirror(opts: MirrorOptions): Promise<LoadReport> {
  const started = Date.now();
  if (opts.refs.length === 0 && !opts.images?.length && !opts.setFailures?.length)
    throw new UsageError('nothing to mirror: give image references, -f LIST, -p PROFILE or --lock LOCK');
  const dest = parseLoadDestination(opts.to);
  if (dest.kind !== 'registry')
    throw new UsageError(`ferry mirror writes to a registry (--to docker://HOST[/PREFIX]), not ${opts.to}`, {
      hint: 'to fill a local store use ferry pull; to load a bundle use ferry load',
    });
  // The list is parsed once, before anything is contacted.
  const refs = opts.refs.map((r) => {
    let loc;
    try {
      loc = parseLocation(r);
    } catch (err) {
      throw wrap(err, `image list entry ${JSON.stringify(r)}`);
    }
    if (loc.transport !== 'docker') {
      throw new UsageError(`ferry mirror reads from registries; ${JSON.stringify(r)} is a ${loc.transport}: location`, {
        hint: 'bundle it and use ferry load, or pull it',
      });
    }
    return { ref: loc.ref, name: loc.ref.toString(), platforms: opts.platforms };
  });
  for (const image of opts.images ?? []) refs.push({ ref: image.ref, name: image.name, platforms: image.platforms });
  // A --username credential is the destination's, unless --auth-registry names a source.
  const clientOpts = registryClientOptions(opts, bindStaticCredential(opts, [...refs.map((r) => r.ref.domain), dest.host], dest.host));
  const clients = new Map<string, RegistryClient>();
  const clientFor = (host: string): RegistryClient => {
    let c = clients.get(host);
    if (!c) {
      c = new RegistryClient(host, clientOpts);
      clients.set(host, c);
    }
    return c;
  };
  try {
    const items: CopyItem[] = [];
    const seen = new Set<string>();
    for (const { ref, name, platforms } of refs) {
      if (seen.has(name)) continue;
      seen.add(name);
      items.push({
        source: new RegistrySource(clientFor(ref.domain), ref),
        name,
        ...(platforms?.length ? { platforms } : {}),
      });
    }
    // Names are checked before anything is read: a collision stops the run up front. (The
    // destination names them again once the digests are known, for digest-only references.)
    registryTargets(
      items.map((i) => ({ name: i.name, digest: ((i.source as RegistrySource).ref.digest ?? 'sha256:') as Digest })),
      dest,
      { scoped: !!opts.scoped },
    );
    const whole = await planCopy(items, {
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    const setFailures = (opts.setFailures ?? []).map((f) => ({ name: f.name, source: f.where, error: f.error }));
    whole.failures.unshift(...setFailures);
    if (opts.allOrNothing && whole.failures.length > 0) {
      // Nothing is sent: the report lists what did not resolve (every shard stops alike).
      return {
        source: `${items.length} reference${items.length === 1 ? '' : 's'}`,
        destination: formatLoadDestination(dest),
        images: [],
        failures: collectFailures(whole.failures, []),
        blobs: { total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 },
        mapping: {},
        durationMs: Date.now() - started,
        stopped: true,
      };
    }
    // Failures of the whole plan are reported by shard 1 only (copy/shard.ts).
    const plan = opts.shard ? shardPlan(whole, opts.shard) : whole;
    const sources = items.map((i) => i.source as RegistrySource);
    // The destination's client is closed with the others below (it may also be a source's).
    const target = new RegistryDestination(clientFor(dest.host), {
      location: dest,
      ...(opts.scoped ? { scoped: true } : {}),
      ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      // Within one registry, blobs are mounted from the source repository, not copied.
      mountSource: (b) => {
        const src = sources[b.sourceIndex]!;
        return src.ref.domain === dest.host ? src.ref.path : undefined;
      },
    });
    const report = await executeCopy(plan, sources, target, {
      action: 'mirroring',
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    return {
      source: `${items.length} reference${items.length === 1 ? '' : 's'}`,
      destination: formatLoadDestination(dest),
      ...destinationResult(plan, report, started),
    };
  } finally {
    await Promise.all([...clients.values()].map((c) => c.close()));
  }
}
