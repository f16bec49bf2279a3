/** An OCI layout as an ImageSource: `oci:DIR[:REF]`, the store reader over a LayoutStore. */
import type { PlatformSpec } from '../../oci/platform.js';
import { StoreSource } from '../../store/source.js';
import { OciLayout } from './layout.js';
import { LayoutStore } from './store.js';

export class LayoutSource extends StoreSource {
  constructor(layout: OciLayout, ref: string | undefined, platforms: PlatformSpec[] = []) {
    super(new LayoutStore(layout), { ref, platforms }, `oci:${layout.dir}${ref ? `:${ref}` : ''}`);
  }

  static async open(dir: string, ref: string | undefined, platforms: PlatformSpec[] = []): Promise<LayoutSource> {
    return new LayoutSource(await OciLayout.open(dir), ref, platforms);
  }
}
