/** An OCI layout as an ImageSource: `oci:DIR[:REF]`, the store reader over a LayoutStore. */
import type { PlatformSpec } from '../../oci/platform.js';
import { StoreSource } from '../../store/source.js';
import { OciLayout } from './layout.js';
import { LayoutStore } from './store.js';
import type { OpenedImages } from '../types.js';
import { UsageError } from '../../util/errors.js';
import { fullName, layoutImageName } from '../names.js';

export class LayoutSource extends StoreSource {
  constructor(layout: OciLayout, ref: string | undefined, platforms: PlatformSpec[] = []) {
    super(new LayoutStore(layout), { ref, platforms }, `oci:${layout.dir}${ref ? `:${ref}` : ''}`);
  }

  static async open(dir: string, ref: string | undefined, platforms: PlatformSpec[] = []): Promise<LayoutSource> {
    return new LayoutSource(await OciLayout.open(dir), ref, platforms);
  }
}

/** `oci:DIR[:REF]` as a copy source: the one image REF names, else every index.json entry. */
export async function openLayoutImages(dir: string, ref: string | undefined): Promise<OpenedImages> {
  const layout = await OciLayout.open(dir);
  const entries = ref !== undefined ? [await layout.resolve(ref)] : (await layout.readIndex()).manifests;
  if (entries.length === 0) throw new UsageError(`oci:${dir}${ref !== undefined ? `:${ref}` : ''} holds no images`);
  const images: OpenedImages['images'] = [];
  const seen = new Set<string>();
  for (const desc of entries) {
    const name = fullName(layoutImageName(desc, ref));
    if (seen.has(name)) continue;
    seen.add(name);
    // Address each entry by digest when it has no name of its own.
    const layoutRef = desc.annotations?.['org.opencontainers.image.ref.name'] ?? ref ?? desc.digest;
    images.push({ source: new LayoutSource(layout, layoutRef), name });
  }
  return { description: `oci:${layout.dir}`, images, allOrNothing: false, close: async () => {} };
}
