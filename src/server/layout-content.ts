/**
 * ServedContent for an OCI image layout, served in place. Opening reads index.json and every
 * manifest reachable from it (verified against its digest: manifests are small); blobs are
 * never read or hashed, only stat'ed when asked for, and streamed straight from their files
 * (LayoutStore: lstat, no symlinks, the declared size, O_NOFOLLOW).
 *
 * Naming, the manifest graph and the per-repository reachability are shared with
 * bundle-content (served-graph.ts, through store-content.ts); this module only opens the layout.
 */
import { OciLayout } from '../transports/oci/layout.js';
import { LayoutStore } from '../transports/oci/store.js';
import type { ServedContent } from './content.js';
import { checkRepositoryOption, type ServedNamingOptions } from './served-graph.js';
import { storeContent } from './store-content.js';

export type LayoutContentOptions = ServedNamingOptions;

/** Open an OCI layout for serving. Throws only when the layout itself is unusable. */
export async function layoutContent(dir: string, opts: LayoutContentOptions = {}): Promise<ServedContent> {
  checkRepositoryOption(opts);
  const store = new LayoutStore(await OciLayout.open(dir));
  return storeContent(store, opts, {
    where: store.label,
    orphanHint: opts.repository === undefined ? ' (name a repository with oci:DIR:REPO to serve them)' : undefined,
  });
}
