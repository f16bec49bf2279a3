/**
 * Shared set-up for the inventory suites: a store of the small corpus, and what an inventory of
 * a destination holding all of it must say: the store's names with their digests, and every
 * manifest, config and layer the names reach.
 */
import path from 'node:path';
import type { Digest } from '../../../src/oci/digest.js';
import { OciLayout, REF_NAME } from '../../../src/transports/oci/layout.js';
import { planStore } from '../load/fixtures.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';

export interface Expected {
  storeDir: string;
  /** The store's index.json names → digest. */
  names: Map<string, Digest>;
  /** Every manifest, index, config and layer the named images reach. */
  digests: Set<string>;
  /** Per full reference (docker.io/…) the plan's root digest, manifests and blobs. */
  images: Map<string, { root: string; manifests: string[]; blobs: string[] }>;
}

export async function corpusStore(work: string, refs?: readonly string[]): Promise<Expected> {
  const storeDir = path.join(work, 'store');
  await storeFromSmallCorpus(storeDir, refs);
  const layout = await OciLayout.open(storeDir);
  const names = new Map<string, Digest>();
  for (const e of (await layout.readIndex()).manifests) names.set(e.annotations![REF_NAME]!, e.digest as Digest);
  const { plan } = await planStore(storeDir);
  const digests = new Set<string>();
  const images = new Map<string, { root: string; manifests: string[]; blobs: string[] }>();
  for (const img of plan.images) {
    const manifests = img.manifests.map((m) => m.digest);
    const blobs = img.blobs.map((b) => b.digest);
    for (const d of [...manifests, ...blobs]) digests.add(d);
    images.set(img.name, { root: img.root.digest, manifests, blobs });
  }
  return { storeDir, names, digests, images };
}

export function sorted(xs: Iterable<string>): string[] {
  return [...xs].sort();
}
