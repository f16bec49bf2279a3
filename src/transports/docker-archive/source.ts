/**
 * `docker-archive:FILE[:REF|:@N]`: what `docker save` writes, read in place through its
 * `manifest.json` ([{Config, RepoTags, Layers, LayerSources?}]), in all the layouts seen in
 * the wild:
 *  - legacy (Docker < 25): `<id>/layer.tar` (shared layers as symlinks `../<id>/layer.tar`,
 *    resolved inside the archive only), `<hex>.json` config;
 *  - go-containerregistry `tarball`: config named `sha256:<hex>`, gzipped `<hex>.tar.gz` layers;
 *  - Docker 25+: an OCI layout plus manifest.json pointing into `blobs/sha256/`. The
 *    manifest.json view is used (index.json may say `"manifests": null`).
 *
 * The source serves a synthesized Docker schema2 manifest, serialised like containers/image
 * (compact JSON; schemaVersion, mediaType, config, layers; each descriptor mediaType, size,
 * digest). The config digest is the sha256 of its bytes, never its file name. Each layer is
 * served as its file's bytes: `…rootfs.diff.tar` when the file is a plain tar (digest = its
 * diff_id, which the bytes are verified against), `…rootfs.diff.tar.gzip` when its magic
 * bytes say gzip (digest = sha256 of the file, computed at open). For plain-tar layers the
 * layer digests and sizes are skopeo's, but the manifest digest is not: skopeo
 * (containers/image docker/internal/tarfile) labels every layer `…tar.gzip` whatever its
 * bytes, decompresses gzip layers on the fly and describes every layer by its diff_id and
 * uncompressed size. ferry keeps compressed layers' bytes unchanged and every media type
 * truthful, so a docker-archive image's manifest digest differs from skopeo's (neither is a
 * published digest: `docker save` archives carry none). While a layer
 * streams, the sha256 of its uncompressed content is checked against `rootfs.diff_ids`; a
 * mismatch fails the stream with IntegrityError DIFF_ID_MISMATCH.
 */
import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { lazyStream } from '../../util/streams.js';
import { createGunzip } from 'node:zlib';
import { z } from '../../util/zod.js';
import { isDigest, sha256, type Digest } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { parseReference } from '../../ref/reference.js';
import { errorMessage, type FerryError, IntegrityError, NotFoundError, UsageError } from '../../util/errors.js';
import type { TarEntry } from '../../tar/reader.js';
import { ArchiveError, sniffCompression, TarArchive, type ArchiveOpenOptions } from '../oci-archive/archive.js';
import { dropPrefix, type BlobOpenOptions, type ImageSource, type ManifestBytes, type OpenedImages } from '../types.js';

export const MAX_CONFIG_BYTES = 32 * 1024 * 1024;
const MAX_MANIFEST_JSON_BYTES = 64 * 1024 * 1024;

const ManifestItem = z.looseObject({
  Config: z.string().min(1),
  RepoTags: z.array(z.string()).nullish(),
  Layers: z.array(z.string()).nullish(),
  LayerSources: z.record(z.string(), z.unknown()).nullish(),
});
const ManifestJson = z.array(ManifestItem);

const ConfigRootfs = z.looseObject({
  rootfs: z.looseObject({ type: z.string().optional(), diff_ids: z.array(z.string()).nullish() }),
});

/** One image as manifest.json lists it. */
export interface DockerArchiveImage {
  index: number;
  /** Normalised tags ("docker.io/library/x:latest"), in the archive's order. */
  repoTags: string[];
  /** Tags as written in the archive. */
  rawRepoTags: string[];
  config: string;
  layers: string[];
}

export class DockerArchive {
  private readonly prepared = new Map<number, Promise<PreparedImage>>();

  private constructor(
    readonly archive: TarArchive,
    readonly images: DockerArchiveImage[],
    readonly label: string,
  ) {}

  static async open(file: string, opts: ArchiveOpenOptions = {}): Promise<DockerArchive> {
    const label = `docker-archive:${file}`;
    const archive = await TarArchive.open(file, label, opts);
    try {
      if (!archive.has('manifest.json')) {
        if (archive.has('repositories')) {
          throw new ArchiveError(
            'LEGACY_ARCHIVE_UNSUPPORTED',
            `${label}: the archive has no manifest.json, only a legacy "repositories" file (a pre-Docker-1.10 save)`,
            {
              hint: 'load it with an old Docker (< 29) and save it again, or rebuild the image',
            },
          );
        }
        throw new ArchiveError(
          'ARCHIVE_INVALID',
          `${label}: the archive does not contain manifest.json, so it is not a docker save archive`,
          {
            ...(archive.has('index.json') ? { hint: `it holds an OCI layout: use oci-archive:${file}` } : {}),
          },
        );
      }
      const bytes = await archive.readBytes(archive.resolve('manifest.json'), MAX_MANIFEST_JSON_BYTES, 'manifest.json');
      let doc: unknown;
      try {
        doc = JSON.parse(bytes.toString('utf8'));
      } catch {
        throw new ArchiveError('ARCHIVE_INVALID', `${label}: manifest.json is not valid JSON`);
      }
      if (doc === null)
        throw new ArchiveError('ARCHIVE_INVALID', `${label}: invalid manifest.json: it is null (an empty list [] would mean no images)`);
      const r = ManifestJson.safeParse(doc);
      if (!r.success) {
        const i = r.error.issues[0];
        throw new ArchiveError(
          'ARCHIVE_INVALID',
          `${label}: invalid manifest.json: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}`,
        );
      }
      const images = r.data.map((m, index): DockerArchiveImage => {
        const raw = m.RepoTags ?? [];
        const repoTags = raw.map((t) => {
          try {
            return parseReference(t).toString();
          } catch (err) {
            throw new ArchiveError(
              'ARCHIVE_INVALID',
              `${label}: image ${index} has an invalid RepoTag ${JSON.stringify(t)}: ${errorMessage(err)}`,
            );
          }
        });
        return { index, repoTags, rawRepoTags: raw, config: m.Config, layers: m.Layers ?? [] };
      });
      return new DockerArchive(archive, images, label);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  /** The images the archive holds. */
  listImages(): DockerArchiveImage[] {
    return this.images.map((i) => ({ ...i, repoTags: [...i.repoTags], rawRepoTags: [...i.rawRepoTags], layers: [...i.layers] }));
  }

  /** Pick an image: by tag (normalised like Docker), by `@N`, or the only one. */
  select(ref: string | undefined): DockerArchiveImage {
    if (ref === undefined || ref === '') {
      if (this.images.length === 1) return this.images[0]!;
      if (this.images.length === 0) throw new NotFoundError(`${this.label} holds no images`);
      throw new ArchiveError(
        'ARCHIVE_AMBIGUOUS',
        `${this.label}: archive holds ${this.images.length} images; choose one with :TAG or :@N`,
        {
          hint: `it has: ${this.images.map((i) => `@${i.index}${i.repoTags.length ? ` (${i.repoTags.join(', ')})` : ''}`).join('; ')}`,
        },
      );
    }
    if (ref.startsWith('@')) {
      const n = ref.slice(1);
      if (!/^(0|[1-9][0-9]*)$/.test(n)) throw new UsageError(`${this.label}: invalid image index ${JSON.stringify(ref)} (want @0, @1, …)`);
      const img = this.images[Number(n)];
      if (!img) throw new NotFoundError(`${this.label}: no image @${n} (the archive holds ${this.images.length})`);
      return img;
    }
    let want: string;
    try {
      const parsed = parseReference(ref);
      if (parsed.digest !== undefined) throw new UsageError(`${this.label}: docker-archive references cannot name a digest (${ref})`);
      want = parsed.toString();
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`${this.label}: invalid reference ${JSON.stringify(ref)}: ${errorMessage(err)}`);
    }
    const hit = this.images.find((i) => i.repoTags.includes(want));
    if (hit) return hit;
    const tags = this.images.flatMap((i) => i.repoTags);
    throw new NotFoundError(`no image tagged ${want} in ${this.label}`, {
      hint: tags.length ? `it has: ${tags.join(', ')}` : 'its images are untagged; use :@N',
    });
  }

  /** The synthesized manifest and blob map for one image (computed once). */
  prepare(image: DockerArchiveImage): Promise<PreparedImage> {
    let p = this.prepared.get(image.index);
    if (!p) {
      p = prepareImage(this.archive, image, this.label);
      this.prepared.set(image.index, p);
      p.catch(() => this.prepared.delete(image.index));
    }
    return p;
  }

  close(): Promise<void> {
    return this.archive.close();
  }
}

interface PreparedLayer {
  entry: TarEntry;
  descriptor: Descriptor;
  diffId: string;
  gzip: boolean;
}

export interface PreparedImage {
  manifest: ManifestBytes;
  config: { bytes: Buffer; descriptor: Descriptor };
  layers: PreparedLayer[];
}

async function prepareImage(archive: TarArchive, image: DockerArchiveImage, label: string): Promise<PreparedImage> {
  const what = `${label} image @${image.index}`;
  const configEntry = archive.resolve(image.config);
  const configBytes = await archive.readBytes(configEntry, MAX_CONFIG_BYTES, `config ${image.config}`);
  let configDoc: unknown;
  try {
    configDoc = JSON.parse(configBytes.toString('utf8'));
  } catch {
    throw new ArchiveError('ARCHIVE_INVALID', `${what}: config ${image.config} is not valid JSON`);
  }
  const cr = ConfigRootfs.safeParse(configDoc);
  if (!cr.success) throw new ArchiveError('ARCHIVE_INVALID', `${what}: config ${image.config} has no rootfs`);
  const diffIds = cr.data.rootfs.diff_ids ?? [];
  if (diffIds.length !== image.layers.length) {
    throw new ArchiveError(
      'ARCHIVE_INVALID',
      `${what}: manifest.json lists ${image.layers.length} layers but the config has ${diffIds.length} diff_ids`,
    );
  }
  const layers: PreparedLayer[] = [];
  /** Layer digest → the diff_id it was listed with: one blob cannot stand for two. */
  const diffIdOf = new Map<string, string>();
  for (const [i, layerName] of image.layers.entries()) {
    const diffId = diffIds[i]!;
    if (!isDigest(diffId)) throw new ArchiveError('ARCHIVE_INVALID', `${what}: diff_id ${JSON.stringify(diffId)} is not a sha256 digest`);
    const entry = archive.resolve(layerName);
    const comp = sniffCompression(await archive.readHead(entry, 8));
    if (comp !== 'none' && comp !== 'gzip') {
      throw new ArchiveError(
        'UNSUPPORTED_COMPRESSION',
        `${what}: layer ${layerName} is ${comp}-compressed; docker-archive layers may be plain tar or gzip`,
      );
    }
    const gzip = comp === 'gzip';
    const digest = gzip ? await hashEntry(archive, entry) : (diffId as Digest);
    const listedAs = diffIdOf.get(digest);
    if (listedAs !== undefined && listedAs !== diffId) {
      // Only one of the two could be checked (the blob is fetched once): refuse, as skopeo does.
      throw new ArchiveError(
        'ARCHIVE_INVALID',
        `${what}: layer ${layerName} (${digest}) is listed for two different diff_ids, ${listedAs} and ${diffId}`,
      );
    }
    diffIdOf.set(digest, diffId);
    layers.push({
      entry,
      diffId,
      gzip,
      descriptor: { mediaType: gzip ? MediaType.DockerLayerGzip : MediaType.DockerLayer, size: entry.size, digest },
    });
  }
  const config: Descriptor = { mediaType: MediaType.DockerConfig, size: configBytes.length, digest: sha256(configBytes) };
  // Field order as Go's json.Marshal of containers/image's manifest.Schema2 writes it.
  const doc = {
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: { mediaType: config.mediaType, size: config.size, digest: config.digest },
    layers: layers.map((l) => ({ mediaType: l.descriptor.mediaType, size: l.descriptor.size, digest: l.descriptor.digest })),
  };
  const bytes = Buffer.from(JSON.stringify(doc), 'utf8');
  return {
    manifest: { bytes, mediaType: MediaType.DockerManifest, digest: sha256(bytes) },
    config: { bytes: configBytes, descriptor: config },
    layers,
  };
}

async function hashEntry(archive: TarArchive, entry: TarEntry): Promise<Digest> {
  const h = createHash('sha256');
  for await (const c of archive.open(entry)) h.update(c as Buffer);
  return `sha256:${h.digest('hex')}`;
}

/**
 * Passes bytes through unchanged while hashing their uncompressed form (gunzipped when
 * `gzip`); fails at the end unless that hash is `diffId`.
 */
export class DiffIdVerifier extends Transform {
  private readonly hash = createHash('sha256');
  private readonly gunzip: ReturnType<typeof createGunzip> | undefined;
  private gunzipDone: Promise<void> | undefined;
  private gunzipError: Error | undefined;

  constructor(
    private readonly diffId: string,
    gzip: boolean,
    private readonly what: string,
  ) {
    super();
    if (gzip) {
      const g = createGunzip();
      this.gunzip = g;
      g.on('data', (c: Buffer) => this.hash.update(c));
      this.gunzipDone = new Promise<void>((resolve) => {
        g.on('end', () => resolve());
        g.on('error', (err) => {
          this.gunzipError = err;
          resolve();
        });
      });
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.gunzip) {
      this.hash.update(chunk);
      cb(null, chunk);
      return;
    }
    if (this.gunzipError) {
      cb(this.failGzip());
      return;
    }
    // Keep the gunzip side's memory bounded: wait for it to drain before taking more, or for
    // it to fail (corrupt gzip): it never drains then, and waiting for 'drain' alone stalled
    // the whole copy, which then ended with nothing reported.
    const g = this.gunzip;
    if (g.write(chunk)) {
      cb(null, chunk);
      return;
    }
    const onDrain = (): void => {
      g.off('error', onError);
      cb(null, chunk);
    };
    const onError = (): void => {
      g.off('drain', onDrain);
      cb(this.failGzip());
    };
    g.once('drain', onDrain);
    g.once('error', onError);
  }

  override _flush(cb: TransformCallback): void {
    const finish = () => {
      if (this.gunzipError) {
        cb(this.failGzip());
        return;
      }
      const actual = `sha256:${this.hash.digest('hex')}`;
      if (actual !== this.diffId) {
        cb(
          new IntegrityError(
            'DIFF_ID_MISMATCH',
            `${this.what}: uncompressed content has digest ${actual}, but the config's diff_id is ${this.diffId}`,
          ),
        );
        return;
      }
      cb();
    };
    if (!this.gunzip) return finish();
    this.gunzip.end();
    void this.gunzipDone!.then(finish);
  }

  private failGzip(): FerryError {
    return new IntegrityError(
      'DIFF_ID_MISMATCH',
      `${this.what}: layer is not valid gzip, so it cannot match diff_id ${this.diffId}: ${errorMessage(this.gunzipError)}`,
    );
  }
}

export class DockerArchiveSource implements ImageSource {
  readonly description: string;

  constructor(
    readonly archive: DockerArchive,
    readonly image: DockerArchiveImage,
    ref: string | undefined,
    /** False when the archive is shared by the images of one `OpenedImages`, which closes it. */
    private readonly ownsArchive = true,
  ) {
    this.description = `${archive.label}${ref ? `:${ref}` : ''}`;
  }

  /** Open FILE and select REF (tag or @N; none with a single image). */
  static async open(file: string, ref: string | undefined, opts: ArchiveOpenOptions = {}): Promise<DockerArchiveSource> {
    const archive = await DockerArchive.open(file, opts);
    try {
      return new DockerArchiveSource(archive, archive.select(ref), ref);
    } catch (err) {
      await archive.close();
      throw err;
    }
  }

  /** The image's first tag, normalised; undefined when untagged. */
  get name(): string | undefined {
    return this.image.repoTags[0];
  }

  async getRootManifest(): Promise<ManifestBytes> {
    return (await this.archive.prepare(this.image)).manifest;
  }

  async getManifest(digest: Digest): Promise<ManifestBytes> {
    const m = (await this.archive.prepare(this.image)).manifest;
    if (m.digest !== digest)
      throw new NotFoundError(`${this.description}: no manifest ${digest} (a docker archive image has exactly one, ${m.digest})`);
    return m;
  }

  openBlob(desc: Descriptor, opts: BlobOpenOptions): Readable {
    // Layers are checked against their diff_ids from byte 0, so a later start reads and drops.
    if (opts.start) return dropPrefix(this.openBlob(desc, { ...opts, start: 0 }), opts.start);
    // Opened on first read: a blob that is not part of the image fails then, not before the
    // caller's listeners are attached.
    return lazyStream(async () => {
      const p = await this.archive.prepare(this.image);
      if (desc.digest === p.config.descriptor.digest) return Readable.from([p.config.bytes]);
      const layer = p.layers.find((l) => l.descriptor.digest === desc.digest);
      if (!layer) throw new NotFoundError(`${opts.what}: blob ${desc.digest} is not part of ${this.description}`);
      const raw = this.archive.archive.open(layer.entry);
      const check = new DiffIdVerifier(layer.diffId, layer.gzip, `${opts.what}: layer ${layer.entry.name}`);
      raw.on('error', (e) => check.destroy(e));
      check.on('close', () => raw.destroy());
      return raw.pipe(check);
    });
  }

  async close(): Promise<void> {
    if (this.ownsArchive) await this.archive.close();
  }
}

/**
 * `docker-archive:FILE[:REF|:@N]` as a copy source: every image the archive holds (as
 * `docker load` takes a `docker save` file), under every tag it was saved with, or the one
 * REF picks.
 */
export async function openDockerArchiveImages(
  file: string,
  ref: string | undefined,
  opts: Pick<ArchiveOpenOptions, 'decompress' | 'decompressed'> = {},
): Promise<OpenedImages> {
  const archive = await DockerArchive.open(file, opts);
  const images: OpenedImages['images'] = [];
  const seen = new Set<string>();
  const add = (name: string, source: ImageSource): void => {
    if (seen.has(name)) return;
    seen.add(name);
    images.push({ source, name });
  };
  try {
    const listed = ref !== undefined ? [archive.select(ref)] : archive.listImages();
    if (listed.length === 0) throw new UsageError(`docker-archive:${file} holds no images`);
    for (const img of listed) {
      const source = new DockerArchiveSource(archive, img, ref ?? `@${img.index}`, false);
      // Every tag the image was saved under, as `docker load` restores them.
      if (img.repoTags.length === 0) add(`@${(await source.getRootManifest()).digest}`, source);
      for (const tag of img.repoTags) add(tag, source);
    }
  } catch (err) {
    await archive.close();
    throw err;
  }
  return { description: archive.label, images, allOrNothing: false, close: () => archive.close() };
}
