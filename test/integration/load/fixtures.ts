/**
 * Shared set-up for the load suites: a plan over every named image of a store (what `ferry
 * load oci:DIR` would plan), and a signed bundle of the small corpus with a second key that
 * does not match it.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { planCopy, type CopyItem, type CopyPlan } from '../../../src/copy/plan.js';
import { parseReference } from '../../../src/ref/reference.js';
import { OciLayout, REF_NAME } from '../../../src/transports/oci/layout.js';
import { LayoutSource } from '../../../src/transports/oci/source.js';
import type { ImageSource } from '../../../src/transports/types.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';

export interface Planned {
  plan: CopyPlan;
  sources: ImageSource[];
}

/** Plan every image the store names (full references), or only those in `only`. */
export async function planStore(dir: string, only?: readonly string[]): Promise<Planned> {
  const store = await OciLayout.open(dir);
  const items: CopyItem[] = [];
  for (const entry of (await store.readIndex()).manifests) {
    const refName = entry.annotations?.[REF_NAME];
    if (!refName) continue;
    const name = parseReference(refName).toString();
    if (only && !only.includes(name)) continue;
    items.push({ source: new LayoutSource(store, refName), name });
  }
  const plan = await planCopy(items);
  expect(plan.failures).toEqual([]);
  return { plan, sources: items.map((i) => i.source) };
}

export interface SignedCorpusBundle {
  corpus: CorpusManifest;
  store: OciLayout;
  /** The bundle (compression auto: the uncompressed layer travels zstd-compressed). */
  bundle: string;
  pubKey: string;
  /** A public key the bundle was not signed with. */
  otherPub: string;
}

/** The small corpus pulled into `work/store` and bundled into `work/all.ferry`, signed. */
export async function signedCorpusBundle(work: string, otherAlgorithm: 'ec-p256' | 'ed25519' = 'ed25519'): Promise<SignedCorpusBundle> {
  const { corpus, store } = await storeFromSmallCorpus(path.join(work, 'store'));
  const keys = path.join(work, 'keys');
  await mkdir(keys);
  const { key, pub } = makeKeyPair(keys, 'ec', 'ec-p256');
  const otherPub = makeKeyPair(keys, 'other', otherAlgorithm).pub;
  const bundle = path.join(work, 'all.ferry');
  await writeBundle({ store, output: bundle, compression: 'auto', signKey: key });
  return { corpus, store, bundle, pubKey: pub, otherPub };
}
