/**
 * `oci-archive:FILE[:REF]`: a tar of an OCI image layout (what `skopeo copy … oci-archive:`,
 * `ctr images export`, Docker 25+ `docker save` and ferry's own raw bundles write), read in
 * place: the tar is indexed once (headers only) and blobs are streamed from their offsets.
 * References resolve exactly as for `oci:` directories (OciLayout.resolve): a ref.name, a
 * digest, or the only image. A blob the archive lacks (sparse exports) is a MissingBlobError
 * (BLOB_MISSING), like a missing file in a layout directory.
 */
import type { Readable } from 'node:stream';
import { hex, isDigest, verifyBytes, type Digest } from '../../oci/digest.js';
import { MAX_MANIFEST_BYTES, type Descriptor } from '../../oci/manifest.js';
import { isManifestType } from '../../oci/mediatypes.js';
import { platformMatches, type PlatformSpec } from '../../oci/platform.js';
import { FerryError, LayoutError, NotFoundError, UnsupportedMediaTypeError, UsageError } from '../../util/errors.js';
import { failingStream } from '../../util/streams.js';
import type { TarEntry } from '../../util/tar-reader.js';
import { IndexJson, LayoutHeader, MAX_INDEX_JSON_BYTES, MissingBlobError, REF_NAME } from '../oci/layout.js';
import { fullName, layoutImageName } from '../names.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes, OpenedImages } from '../types.js';
import { TarArchive, type ArchiveOpenOptions } from './archive.js';

/** An OCI layout inside a tar file. */
export class OciArchive {
  private constructor(
    readonly archive: TarArchive,
    readonly manifests: Descriptor[],
    readonly label: string,
  ) {}

  static async open(file: string, opts: ArchiveOpenOptions = {}): Promise<OciArchive> {
    const label = `oci-archive:${file}`;
    const archive = await TarArchive.open(file, label, opts);
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
        const h = parseJson(await archive.readBytes(archive.resolve('oci-layout'), 64 * 1024, 'oci-layout'), `${label}: oci-layout`);
        const r = LayoutHeader.safeParse(h);
        if (!r.success) throw new LayoutError('LAYOUT_INVALID', `${label}: oci-layout has no imageLayoutVersion`);
        if (!/^1\.\d+\.\d+$/.test(r.data.imageLayoutVersion)) {
          throw new LayoutError('LAYOUT_INVALID', `${label}: unsupported imageLayoutVersion ${r.data.imageLayoutVersion}`);
        }
      }
      const doc = parseJson(
        await archive.readBytes(archive.resolve('index.json'), MAX_INDEX_JSON_BYTES, 'index.json'),
        `${label}: index.json`,
      );
      const r = IndexJson.safeParse(doc);
      if (!r.success) {
        const i = r.error.issues[0];
        throw new LayoutError('LAYOUT_INVALID', `${label}: index.json: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}`);
      }
      return new OciArchive(archive, r.data.manifests ?? [], label);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  /** The images the archive names (index.json entries). */
  listImages(): Descriptor[] {
    return [...this.manifests];
  }

  /** Same rules as OciLayout.resolve. */
  resolve(ref: string | undefined, platforms: PlatformSpec[] = []): Descriptor {
    const all = this.manifests;
    if (ref === undefined || ref === '') {
      if (all.length === 1) return all[0]!;
      if (all.length === 0) {
        throw new NotFoundError(`${this.label} holds no images`, {
          ...(this.archive.has('manifest.json') ? { hint: `its manifest.json lists images: try docker-archive:${this.archive.file}` } : {}),
        });
      }
      const byPlatform = all.filter((d) => platforms.some((p) => platformMatches(p, d.platform)));
      if (platforms.length > 0 && byPlatform.length === 1) return byPlatform[0]!;
      throw new LayoutError('LAYOUT_AMBIGUOUS', `${this.label} holds more than one image (${all.length}); name one: ${this.label}:REF`);
    }
    if (isDigest(ref)) {
      const hit = all.find((d) => d.digest === ref);
      if (hit) return hit;
      throw new NotFoundError(`no image with digest ${ref} in ${this.label}`);
    }
    const hit = all.find((d) => d.annotations?.[REF_NAME] === ref);
    if (hit) return hit;
    const names = all.map((d) => d.annotations?.[REF_NAME]).filter((n): n is string => !!n);
    throw new NotFoundError(`no image named ${JSON.stringify(ref)} in ${this.label}`, {
      hint: names.length ? `it has: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}` : 'it has no named images',
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

function parseJson(bytes: Buffer, what: string): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new LayoutError('LAYOUT_INVALID', `${what} is not valid JSON`);
  }
}

export class OciArchiveSource implements ImageSource {
  readonly description: string;

  constructor(
    readonly archive: OciArchive,
    private readonly ref: string | undefined,
    private readonly platforms: PlatformSpec[] = [],
  ) {
    this.description = `${archive.label}${ref ? `:${ref}` : ''}`;
  }

  static async open(
    file: string,
    ref: string | undefined,
    platforms: PlatformSpec[] = [],
    opts: ArchiveOpenOptions = {},
  ): Promise<OciArchiveSource> {
    return new OciArchiveSource(await OciArchive.open(file, opts), ref, platforms);
  }

  /** The index.json entry the reference resolves to (its annotations carry names). */
  async rootDescriptor(): Promise<Descriptor> {
    return this.archive.resolve(this.ref, this.platforms);
  }

  async getRootManifest(): Promise<ManifestBytes> {
    const desc = await this.rootDescriptor();
    if (!isManifestType(desc.mediaType)) {
      throw new UnsupportedMediaTypeError(desc.mediaType, `${this.description}: the entry is not an image manifest or index`);
    }
    const bytes = await this.archive.readBlobBytes(desc, `reading ${this.description}`);
    return { bytes, mediaType: desc.mediaType, digest: desc.digest as Digest };
  }

  async getManifest(digest: Digest, mediaType: string | undefined): Promise<ManifestBytes> {
    const bytes = await this.archive.readBlobBytes({ digest }, `reading manifest ${digest} from ${this.description}`);
    return { bytes, mediaType, digest };
  }

  openBlob(desc: Descriptor, opts: BlobOpenOptions): Readable {
    // A missing blob surfaces as a stream error, like any other read failure.
    try {
      const entry = this.archive.blobEntry(desc.digest, opts.what);
      const start = Math.min(opts.start ?? 0, entry.size);
      return this.archive.archive.open(entry, start > 0 ? { start, end: entry.size } : undefined);
    } catch (err) {
      return failingStream(err as Error);
    }
  }

  async close(): Promise<void> {
    await this.archive.close();
  }
}

/** `oci-archive:FILE[:REF]` as a copy source: every image the archive holds, or the one REF picks. */
export async function openOciArchiveImages(file: string, ref: string | undefined): Promise<OpenedImages> {
  const archive = await OciArchive.open(file);
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
