/**
 * What `ferry serve` serves from any BlobStore: the store's index entries named and their
 * graphs loaded by served-graph.ts, manifests read through the store (verified), blobs stat'ed
 * and opened through it. layout-content.ts and bundle-content.ts only open their stores.
 */
import type { BlobStore } from '../store/blob-store.js';
import type { ServedContent } from './content.js';
import { buildServedContent, type ServedNamingOptions } from './served-graph.js';

export interface StoreContentOptions {
  /** How the user names the store again with a repository (`oci:DIR`, `bundle:FILE`), for hints. */
  where: string;
  /** Said after "N unnamed image(s) are not served". */
  orphanHint?: string | undefined;
  /** Found while opening the store, for the operator. */
  warnings?: string[];
  /** Called on close after the store is closed (a descriptor the caller keeps). */
  onClose?: () => Promise<void>;
}

export async function storeContent(store: BlobStore, naming: ServedNamingOptions, opts: StoreContentOptions): Promise<ServedContent> {
  return buildServedContent(
    {
      description: store.label,
      where: opts.where,
      orphanHint: opts.orphanHint,
      manifests: await store.indexEntries(),
      readManifest: (desc, what) => store.readBlob(desc, what),
      openBlob: (digest, size) => store.statBlob(digest, size),
      close: async () => {
        await store.close();
        await opts.onClose?.();
      },
    },
    naming,
    opts.warnings ?? [],
  );
}
