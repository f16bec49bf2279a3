/**
 * `ferry inventory LOCATION -o FILE`: what a far-side destination holds, as an inventory file
 * (src/inventory/format.ts) the next bundle is built against (`ferry bundle --base FILE`).
 * LOCATION is named as `ferry load --to` names it; the collector for its kind only reads.
 */
import { TOOL_VERSION } from '../bundle/writer.js';
import { loadPrivateKey } from '../bundle/sign.js';
import type { Digest } from '../oci/digest.js';
import { collectContainerd } from '../inventory/containerd.js';
import { collectDockerDaemon } from '../inventory/docker-daemon.js';
import type { Collected } from '../inventory/collect.js';
import {
  INVENTORY_FORMAT_VERSION,
  INVENTORY_LIMITS,
  INVENTORY_MEDIA_TYPE,
  formatInventory,
  writeInventory,
  type Inventory,
} from '../inventory/format.js';
import { collectLayout } from '../inventory/oci.js';
import { collectRegistry } from '../inventory/registry.js';
import { RegistryClient } from '../transports/registry/client.js';
import { formatLoadDestination, parseLoadDestination, type Destination } from '../transports/table.js';
import { FerryError, UsageError, pathError } from '../util/errors.js';
import { DEFAULT_CONCURRENCY, bindStaticCredential, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';

export interface InventoryOptions extends RegistryAccessOptions {
  /** The destination, as `ferry load --to` takes it. */
  location: string;
  /** The inventory file to write (FILE.sig beside it with signKey). */
  output: string;
  signKey?: string;
  concurrency?: number;
  /** containerd client command, argv form (default ['ctr']). */
  ctr?: string[];
  signal?: AbortSignal;
  /** The inventory's `created` (tests); default now. */
  now?: Date;
}

export interface InventoryReport {
  location: string;
  kind: Inventory['kind'];
  output: string;
  /** sha256 of the file's bytes: what a differential bundle records as its base. */
  digest: Digest;
  signature?: string;
  images: number;
  blobs: number;
  /** Size of the inventory file. */
  bytes: number;
  notes: string[];
  durationMs: number;
}

async function collect(dest: Destination, opts: InventoryOptions): Promise<Collected> {
  const concurrency = opts.concurrency ?? DEFAULT_CONCURRENCY;
  const common = { concurrency, ...(opts.signal ? { signal: opts.signal } : {}) };
  switch (dest.kind) {
    case 'oci':
      return collectLayout(dest.dir, common);
    case 'registry': {
      const client = new RegistryClient(dest.host, registryClientOptions(opts, bindStaticCredential(opts, [dest.host])));
      try {
        return await collectRegistry(client, dest.host, dest.prefix, common);
      } finally {
        await client.close();
      }
    }
    case 'containerd':
      return collectContainerd({ ...common, address: dest.address, namespace: dest.namespace, ...(opts.ctr ? { ctr: opts.ctr } : {}) });
    case 'docker-daemon':
      return collectDockerDaemon({ ...common, socket: dest.socket });
  }
}

/** LOCATION as `ferry load --to` takes it; a source-only transport (bundle:, oci-archive:) is pointed elsewhere. */
export function parseInventoryLocation(location: string): Destination {
  try {
    return parseLoadDestination(location);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    throw new UsageError(`inventory of ${location}: ${err.message}`, {
      cause: err,
      hint: 'an inventory is taken of a place ferry load writes to; what a bundle or archive holds, ferry inspect --json says',
    });
  }
}

/** The inventory of what `opts.location` holds, written to `opts.output`. */
export async function inventory(opts: InventoryOptions): Promise<InventoryReport> {
  const started = Date.now();
  const dest = parseInventoryLocation(opts.location);
  if (dest.kind !== 'registry' && (opts.staticCredential || opts.staticCredentialRegistry !== undefined)) {
    throw new UsageError(`--username is for a registry; ${opts.location} is not one`);
  }
  // A key that cannot sign fails before the far side is read, not after.
  if (opts.signKey !== undefined) await loadPrivateKey(opts.signKey);
  const got = await collect(dest, opts);
  const inv: Inventory = {
    mediaType: INVENTORY_MEDIA_TYPE,
    formatVersion: INVENTORY_FORMAT_VERSION,
    tool: { name: 'ferry', version: TOOL_VERSION },
    created: (opts.now ?? new Date()).toISOString(),
    location: formatLoadDestination(dest),
    kind: dest.kind,
    images: got.images,
    blobs: got.blobs,
    notes: got.notes.slice(0, INVENTORY_LIMITS.maxNotes),
  };
  if (inv.images.length > INVENTORY_LIMITS.maxImages || inv.blobs.length > INVENTORY_LIMITS.maxBlobs) {
    throw new FerryError(
      'INVENTORY_TOO_LARGE',
      `${inv.location} holds ${inv.images.length} images and ${inv.blobs.length} blobs, over the limits of one inventory ` +
        `(${INVENTORY_LIMITS.maxImages} and ${INVENTORY_LIMITS.maxBlobs})`,
    );
  }
  const bytes = formatInventory(inv).length;
  const written = await writeInventory(opts.output, inv, opts.signKey).catch((err: unknown) => {
    throw pathError(err, opts.output, 'writing the inventory');
  });
  return {
    location: inv.location,
    kind: inv.kind,
    output: opts.output,
    digest: written.digest,
    ...(written.signature ? { signature: written.signature } : {}),
    images: inv.images.length,
    blobs: new Set(inv.blobs).size,
    bytes,
    notes: inv.notes,
    durationMs: Date.now() - started,
  };
}
