/**
 * `oci-archive:FILE[:REF]`: a tar of an OCI image layout (what `skopeo copy … oci-archive:`,
 * `ctr images export`, Docker 25+ `docker save` and ferry's own raw bundles write), read in
 * place: the tar is indexed once (headers only) and blobs are streamed from their offsets.
 * References resolve exactly as for `oci:` directories (resolveIndexEntry): a ref.name, a
 * digest, or the only image. A blob the archive lacks (sparse exports) is a MissingBlobError
 * (BLOB_MISSING), like a missing file in a layout directory.
 */
import { hex, isDigest, verifyBytes } from '../../oci/digest.js';
import { MAX_MANIFEST_BYTES, type Descriptor } from '../../oci/manifest.js';
import type { PlatformSpec } from '../../oci/platform.js';
import { resolveIndexEntry } from '../../store/blob-store.js';
import { StoreSource } from '../../store/source.js';
import type { TarEntry } from '../../tar/reader.js';
import { FerryError, LayoutError, UsageError } from '../../util/errors.js';
import { MAX_INDEX_JSON_BYTES, MissingBlobError, parseIndexJson, parseLayoutHeader, REF_NAME } from '../oci/layout.js';
import { fullName, layoutImageName } from '../names.js';
import type { OpenedImages } from '../types.js';
import { type ArchiveOpenOptions, TarArchive } from './archive.js';
import { ArchiveStore } from './store.js';

/** An OCI layout inside a tar file. */
export class OciArchive {
  private constructor(
    readonly archive: TarArchive,
    readonly manifests: Descriptor[],
    readonly label: string,
  ) {}

  static async open(file: string, opts: ArchiveOpenOptions = {}): Promise<OciArchive> {
    const label = `oci-archive:${file}`;
    const archive = await TarArchive.open(file, label, { ...opts, refuseDuplicates: true });
    try {
      if (!archive.has('index.json')) {
        const hint = archive.has('manifest.json') ? `it looks like a docker save archive: use docker-archive:${file}` : undefined;
        throw new LayoutError(
          'LAYOUT_INVALID',
          `${label}: the archive has no index.json, so it is not an OCI layout`,
          hint ? { hint } : {},
        );
      }
      if (archive.has('oci-layout')) {
        parseLayoutHeader(await archive.readBytes(archive.resolve('oci-layout'), 64 * 1024, 'oci-layout'), `${label}: oci-layout`);
      }
      const index = parseIndexJson(
        await archive.readBytes(archive.resolve('index.json'), MAX_INDEX_JSON_BYTES, 'index.json'),
        `${label}: index.json`,
      );
      return new OciArchive(archive, index.manifests ?? [], label);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  /** The images the archive names (index.json entries). */
  listImages(): Descriptor[] {
    return [...this.manifests];
  }

  /** Same rules as an OCI layout (resolveIndexEntry). */
  resolve(ref: string | undefined, platforms: readonly PlatformSpec[] = []): Descriptor {
    return resolveIndexEntry(this.manifests, ref, platforms, {
      store: this.label,
      location: this.label,
      emptyHint: this.archive.has('manifest.json') ? `its manifest.json lists images: try docker-archive:${this.archive.file}` : undefined,
    });
  }

  /** The member holding a blob, or MissingBlobError. */
  blobEntry(digest: string, what: string): TarEntry {
    if (!isDigest(digest)) throw new LayoutError('DIGEST_INVALID', `refusing to address blob with digest ${JSON.stringify(digest)}`);
    const name = `blobs/sha256/${hex(digest)}`;
    if (!this.archive.has(name)) throw new MissingBlobError(digest, what);
    return this.archive.resolve(name);
  }

  async readBlobBytes(desc: { digest: string; size?: number }, what: string, cap = MAX_MANIFEST_BYTES): Promise<Buffer> {
    const e = this.blobEntry(desc.digest, what);
    if (e.size > cap) throw new FerryError('BLOB_TOO_LARGE', `${what}: blob ${desc.digest} is ${e.size} bytes, over the ${cap}-byte limit`);
    const bytes = await this.archive.readBytes(e, cap, `blob ${desc.digest}`);
    verifyBytes(bytes, desc, `${what}: blob ${desc.digest}`);
    return bytes;
  }

  close(): Promise<void> {
    return this.archive.close();
  }
}

/** `oci-archive:FILE[:REF]`: the store reader over an ArchiveStore. Closing it closes the archive. */
export class OciArchiveSource extends StoreSource {
  constructor(
    readonly archive: OciArchive,
    ref: string | undefined,
    platforms: PlatformSpec[] = [],
  ) {
    super(new ArchiveStore(archive), { ref, platforms }, `${archive.label}${ref ? `:${ref}` : ''}`);
  }

  static async open(
    file: string,
    ref: string | undefined,
    platforms: PlatformSpec[] = [],
    opts: ArchiveOpenOptions = {},
  ): Promise<OciArchiveSource> {
    return new OciArchiveSource(await OciArchive.open(file, opts), ref, platforms);
  }

  override async close(): Promise<void> {
    await this.archive.close();
  }
}

/** `oci-archive:FILE[:REF]` as a copy source: every image the archive holds, or the one REF picks. */
export async function openOciArchiveImages(
  file: string,
  ref: string | undefined,
  opts: Pick<ArchiveOpenOptions, 'decompressed'> = {},
): Promise<OpenedImages> {
  const archive = await OciArchive.open(file, opts);
  const images: OpenedImages['images'] = [];
  const seen = new Set<string>();
  try {
    const entries = ref !== undefined ? [archive.resolve(ref)] : archive.listImages();
    if (entries.length === 0) throw new UsageError(`oci-archive:${file} holds no images`);
    for (const desc of entries) {
      const name = fullName(layoutImageName(desc, ref));
      if (seen.has(name)) continue;
      seen.add(name);
      images.push({ name, source: new OciArchiveSource(archive, desc.annotations?.[REF_NAME] ?? ref ?? desc.digest) });
    }
  } catch (err) {
    await archive.close();
    throw err;
  }
  return { description: archive.label, images, allOrNothing: false, close: () => archive.close() };
}
