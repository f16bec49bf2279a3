/**
 * What every inventory collector (oci.ts, registry.ts, containerd.ts, docker-daemon.ts) hands
 * back to `ferry inventory` (commands/inventory.ts). Collectors only read: an inventory never
 * changes the far side. They claim a blob only when the destination itself confirmed it (a
 * file of the right size, a HEAD that answered 200, the content store listing it); what they
 * could not confirm goes into `notes`, in words, so a differential bundle built on the
 * inventory relies on nothing the far side did not say it has.
 */
import type { Digest } from '../oci/digest.js';
import type { Inventory } from './format.js';

export interface Collected {
  images: Inventory['images'];
  blobs: Digest[];
  notes: string[];
}

export interface CollectOptions {
  /** Requests (HEADs, manifest reads, stats) at once. */
  concurrency: number;
  signal?: AbortSignal;
}

/** "1 blob" / "2 blobs": notes are read by people. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
