/**
 * `ferry copy SRC DST`, as skopeo copy: one image (or, with `all`, every image of an archive,
 * layout or bundle) from any readable location to any writable one, through the transport
 * table: open the source's images, plan, hand the plan to the destination, report per image.
 * Without `all`, DST may name the image (`docker://HOST/REPO[:TAG]`, `oci:DIR:REF`); with it,
 * DST is a place the images keep their names in.
 */
import type { EventSink } from '../copy/events.js';
import type { DestinationReport } from '../copy/report.js';
import { planCopy, type CopyPlan } from '../copy/plan.js';
import type { PlatformSpec } from '../oci/platform.js';
import { RegistryClient } from '../transports/registry/client.js';
import { engineNaming, formatDestination, openSource, parseDestination, parseLocation } from '../transports/table.js';
import { UsageError } from '../util/errors.js';
import { destinationResult, type LoadReport } from './load.js';
import { writePlan } from './write.js';
import { DEFAULT_CONCURRENCY, bindStaticCredential, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';

export interface CopyOptions extends RegistryAccessOptions {
  source: string;
  destination: string;
  /** Every image the source holds (the destination is then a place, not an image name). */
  all?: boolean;
  platforms?: PlatformSpec[];
  concurrency?: number;
  /** Plan only: nothing is written. */
  dryRun?: boolean;
  scoped?: boolean;
  /** docker-daemon and containerd: names under this `HOST[:PORT][/PATH]` (or path), as in a registry. */
  prefix?: string;
  chunkSize?: number;
  ctr?: string[];
  signal?: AbortSignal;
  onEvent?: EventSink;
}

export interface CopyCommandReport extends LoadReport {
  /** With dryRun: the plan that would have run. */
  plan?: CopyPlan;
}

export async function copy(opts: CopyOptions): Promise<CopyCommandReport> {
  const started = Date.now();
  const loc = parseLocation(opts.source);
  const dest = parseDestination(opts.destination, { image: !opts.all });
  const naming = engineNaming(dest, opts);
  const hosts = [...(loc.transport === 'docker' ? [loc.ref.domain] : []), ...(dest.kind === 'registry' ? [dest.host] : [])];
  const clientOpts = registryClientOptions(
    opts,
    bindStaticCredential(opts, hosts, dest.kind === 'registry' && loc.transport !== 'docker' ? dest.host : undefined),
  );
  const clients = new Map<string, RegistryClient>();
  const registry = (host: string): RegistryClient => {
    let c = clients.get(host);
    if (!c) {
      c = new RegistryClient(host, clientOpts);
      clients.set(host, c);
    }
    return c;
  };
  const src = await openSource(loc, { registry, ...(opts.signal ? { signal: opts.signal } : {}) });
  try {
    if (!opts.all && src.images.length > 1) {
      throw new UsageError(
        `${src.description} holds ${src.images.length} images; name one (e.g. ${loc.transport}:PATH:REF) or copy them all with --all`,
      );
    }
    const items = src.images.map((i) => ({ ...i, ...(opts.platforms?.length ? { platforms: opts.platforms } : {}) }));
    const plan = await planCopy(items, {
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    const empty: DestinationReport = {
      images: [],
      blobs: { total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 },
      durationMs: 0,
    };
    if (opts.dryRun) {
      return { source: src.description, destination: formatDestination(dest), ...destinationResult(plan, empty, started), plan };
    }
    let report = empty;
    if (plan.images.length > 0) {
      report = await writePlan(
        dest,
        {
          registryClientOptions: clientOpts,
          ...(opts.scoped ? { scoped: true } : {}),
          ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
          ...(opts.ctr ? { ctr: opts.ctr } : {}),
          ...(naming ? { naming } : {}),
        },
        plan,
        items.map((i) => i.source),
        {
          concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
          allOrNothing: src.allOrNothing,
          ...(src.external ? { external: src.external } : {}),
          action: 'copying',
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
        },
      );
    }
    return {
      source: src.description,
      destination: formatDestination(dest),
      ...(src.signature ? { signature: src.signature } : {}),
      ...destinationResult(plan, report, started),
    };
  } finally {
    await src.close();
    await Promise.all([...clients.values()].map((c) => c.close()));
  }
}
