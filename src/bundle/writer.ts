/**
 * `writeBundle`: images from an OCI layout store into one ferry bundle file (format v1,
 * docs/bundle-format.md). Two phases: planBundle() walks every image graph and decides every
 * member (pure reads of the store, nothing written); then the tar is streamed to a temp file
 * beside the output and renamed into place only once complete, so a killed run never leaves
 * a partial FILE.
 */
import type { BundleBase } from './base.js';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, pipeline as pipelineCb, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestVerifier, hex, isDigest, sha256, type Digest } from '../oci/digest.js';
import { parseManifest, requiredBlobs, type Descriptor } from '../oci/manifest.js';
import { MediaType, declaredCompression, isManifestType } from '../oci/mediatypes.js';
import { formatPlatform } from '../oci/platform.js';
import { CONTAINERD_NAME, REF_NAME, type OciLayout } from '../transports/oci/layout.js';
import { FerryError, NotFoundError, SizeMismatchError, UsageError, pathError, wrap } from '../util/errors.js';
import { FileSink, fileSize, fsyncDir, removeDeadTemps, tempNameFor, writeFileAtomic } from '../util/fsutil.js';
import { TarWriter } from '../tar/writer.js';
import {
  BUNDLE_FORMAT_VERSION,
  BUNDLE_FORMAT_VERSION_IMAGE_SET,
  BUNDLE_MANIFEST_MEDIA_TYPE,
  MEMBER,
  rawBlobPath,
  zstdBlobPath,
  type BundleImage,
  type BundleManifest,
  type BundleMember,
} from './format.js';
import { loadPrivateKey, signManifest } from './sign.js';
import { runZstd, zstdAvailable } from './reader.js';
import { maxRestoredSize } from './limits-check.js';

export const TOOL_VERSION = '0.1.0';
export const OCI_LAYOUT_BYTES = Buffer.from('{"imageLayoutVersion":"1.0.0"}');
/** Every member's mtime: 2000-01-01T00:00:00Z (fixed, so the same images give the same tar). */
export const BUNDLE_MTIME = 946_684_800;
const ZSTD_LEVEL = '-9';

export type BundleCompression = 'auto' | 'zstd' | 'none';

export type BundleEvent =
  | { kind: 'plan'; images: number; blobs: number; uniqueBytes: number }
  | { kind: 'compress'; digest: string; size: number; storedSize: number }
  | { kind: 'member'; path: string; size: number }
  | { kind: 'warning'; message: string };

export interface WriteBundleOptions {
  store: OciLayout;
  /** ref.name values to bundle; default every named image in the store. */
  refs?: string[];
  output: string;
  compression: BundleCompression;
  /** PEM private key (ECDSA P-256 or Ed25519). */
  signKey?: string;
  onEvent?: (e: BundleEvent) => void;
  /** Fixed "created" (tests); default now. */
  created?: Date;
  /** The profiles (and lock) the images were planned from, recorded in ferry-bundle.json. */
  imageSet?: BundleManifest['imageSet'];
  /**
   * A differential bundle: layers the base holds are left out (manifests and configs are always
   * carried) and listed in ferry-bundle.json as relied on.
   */
  base?: BundleBase;
  /** One volume of a set (--volume-size), recorded in ferry-bundle.json (version 2). */
  volume?: BundleManifest['volume'];
  /**
   * A volume of a span (--allow-spanning): layers other volumes of the span carry, digest →
   * that volume's number; left out and recorded in `volume.spanBlobs`.
   */
  spanElsewhere?: ReadonlyMap<string, number>;
  /** Stops the write (Ctrl-C): the streams in flight are destroyed, the temp bundle and spools removed. */
  signal?: AbortSignal;
}

export interface BundleReport {
  output: string;
  signature: string | undefined;
  images: BundleImage[];
  totals: BundleManifest['totals'];
  compressedBlobs: number;
  /** A differential bundle: its base, the layers it relies on the destination holding, the images it left out as unchanged. */
  base?: { record: BundleBase['record']; blobs: number; bytes: number; unchanged: string[] };
}

export type BlobRole = 'manifest' | 'config' | 'layer';

/** A differential bundle would hold nothing: every image is at the far side already. */
export class NothingToCarryError extends FerryError {
  constructor(message: string) {
    super('NOTHING_TO_CARRY', message, { hint: 'nothing needs to travel this time; the far side is up to date with this set' });
  }
}

export interface PlannedBlob {
  digest: Digest;
  size: number;
  mediaType: string;
  role: BlobRole;
  /** Stored as a zstd member. */
  compress: boolean;
}

export interface BundlePlan {
  images: BundleImage[];
  /** Unique blobs in member order: manifests and configs first (discovery order), then layers. */
  blobs: PlannedBlob[];
  /** Index entries, one per image. */
  index: Descriptor[];
}

/** Layer media types that say "uncompressed tar". */
export function isUncompressedLayer(mediaType: string): boolean {
  return declaredCompression(mediaType) === 'none' && (mediaType.includes('.layer.') || mediaType.includes('.rootfs.'));
}

/**
 * Walk every image, dedupe blobs by digest, decide storage. Reads manifests and configs
 * (verified) and checks every other blob is present with its size; writes nothing.
 */
export async function planBundle(
  store: OciLayout,
  refs: string[] | undefined,
  compression: BundleCompression,
  warn: (message: string) => void = () => {},
): Promise<BundlePlan> {
  const index = await store.readIndex();
  const named = index.manifests.filter((d) => typeof d.annotations?.[REF_NAME] === 'string');
  let roots: Array<{ ref: string; desc: Descriptor }>;
  if (refs === undefined) {
    roots = [];
    const seen = new Set<string>();
    for (const d of named) {
      const ref = d.annotations![REF_NAME]!;
      if (seen.has(ref)) continue; // first entry wins, as OciLayout.resolve does
      seen.add(ref);
      roots.push({ ref, desc: d });
    }
    if (roots.length === 0) throw new NotFoundError(`store ${store.dir} holds no named images to bundle`);
  } else {
    if (refs.length === 0) throw new UsageError('nothing to bundle: no image references given');
    // First entry of a name wins, as OciLayout.resolve does; a map, not a scan per name.
    const byName = new Map<string, Descriptor>();
    for (const d of named) if (!byName.has(d.annotations![REF_NAME]!)) byName.set(d.annotations![REF_NAME]!, d);
    roots = [...new Set(refs)].map((ref) => {
      const desc = byName.get(ref);
      if (!desc) throw new NotFoundError(`no image named ${JSON.stringify(ref)} in store ${store.dir}`);
      return { ref, desc };
    });
  }

  let doCompress = compression !== 'none';
  if (doCompress && !zstdAvailable()) {
    if (compression === 'zstd') {
      throw new UsageError('--compression zstd needs the zstd command, which is not on PATH', {
        hint: 'install zstd, or use --compression none (uncompressed layers are then stored as they are)',
      });
    }
    doCompress = false;
    warn('zstd command not found: uncompressed layers are stored raw (install zstd for smaller bundles)');
  }

  const blobs = new Map<string, PlannedBlob>();
  const images: BundleImage[] = [];
  for (const { ref, desc } of roots) {
    const what = `image ${ref}`;
    const mine = new Map<string, number>();
    const platforms: string[] = [];
    const add = (d: Descriptor, role: BlobRole): void => {
      if (!isDigest(d.digest)) throw new FerryError('DIGEST_INVALID', `${what}: unsupported digest ${JSON.stringify(d.digest)}`);
      mine.set(d.digest, d.size);
      if (!blobs.has(d.digest)) {
        blobs.set(d.digest, {
          digest: d.digest,
          size: d.size,
          mediaType: d.mediaType,
          role,
          compress: doCompress && role === 'layer' && isUncompressedLayer(d.mediaType),
        });
      }
    };
    const walk = async (d: Descriptor, depth: number, platform: string | undefined): Promise<void> => {
      if (depth > 8) throw new FerryError('INDEX_TOO_DEEP', `${what}: indexes nested more than 8 deep`);
      if (mine.has(d.digest)) return;
      const bytes = await store.readBlobBytes(d, what).catch((err: unknown) => {
        throw wrap(err, what);
      });
      add(d, 'manifest');
      const doc = parseManifest(bytes, d.mediaType, `${what}: manifest ${d.digest}`);
      if (doc.kind === 'index') {
        for (const child of doc.manifests) {
          if (!isManifestType(child.mediaType)) {
            // Non-image children (attestations with unknown types) still travel as blobs.
            await requirePresent(store, child, what);
            add(child, 'layer');
            continue;
          }
          await walk(child, depth + 1, child.platform ? formatPlatform(child.platform) : undefined);
        }
        return;
      }
      let p = platform;
      for (const b of requiredBlobs(doc)) {
        await requirePresent(store, b, what);
        add(b, b === doc.config ? 'config' : 'layer');
      }
      if (p === undefined && (doc.config.mediaType === MediaType.OciConfig || doc.config.mediaType === MediaType.DockerConfig)) {
        try {
          const cfg = JSON.parse((await store.readBlobBytes(doc.config, what)).toString('utf8')) as Record<string, unknown>;
          if (typeof cfg.os === 'string' && typeof cfg.architecture === 'string') {
            p = formatPlatform({
              os: cfg.os,
              architecture: cfg.architecture,
              variant: typeof cfg.variant === 'string' ? cfg.variant : undefined,
            });
          }
        } catch (err) {
          if ((err as { code?: string }).code === 'BLOB_MISSING') throw err;
          // An unreadable config only costs the platform label.
        }
      }
      if (p !== undefined && !platforms.includes(p)) platforms.push(p);
    };
    await walk(desc, 0, desc.platform ? formatPlatform(desc.platform) : undefined);
    let totalSize = 0;
    for (const s of mine.values()) totalSize += s;
    images.push({ ref, digest: desc.digest as Digest, mediaType: desc.mediaType, size: desc.size, platforms, totalSize });
  }
  const ordered = [...blobs.values()];
  const first = ordered.filter((b) => b.role !== 'layer');
  const layers = ordered.filter((b) => b.role === 'layer');
  const indexEntries: Descriptor[] = images.map((i) => ({
    mediaType: i.mediaType,
    digest: i.digest,
    size: i.size,
    annotations: { [REF_NAME]: i.ref, [CONTAINERD_NAME]: i.ref },
  }));
  return { images, blobs: [...first, ...layers], index: indexEntries };
}

async function requirePresent(store: OciLayout, d: Descriptor, what: string): Promise<void> {
  if (!isDigest(d.digest)) throw new FerryError('DIGEST_INVALID', `${what}: unsupported digest ${JSON.stringify(d.digest)}`);
  const actual = await fileSize(store.blobPath(d.digest));
  if (actual === undefined) {
    throw new FerryError('BLOB_MISSING', `${what}: blob ${d.digest} (${d.mediaType}) is missing from the store`, {
      hint: 'the image was pulled sparsely or the store is damaged; pull it again',
    });
  }
  if (actual !== d.size) throw new SizeMismatchError(d.size, actual, `${what}: blob ${d.digest} in the store`);
}

/** sha256 of what flows through, as a pass-through Transform. */
class Hasher extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** `src | transforms` as one readable whose errors include every stage's. */
function chain(src: Readable, ...transforms: Transform[]): Readable {
  return pipelineCb([src, ...transforms], () => {}) as unknown as Readable;
}

export function checksumsFile(members: Array<{ path: string; sha256: string }>): Buffer {
  return Buffer.from(members.map((m) => `${m.sha256}  ${m.path}\n`).join(''), 'utf8');
}

export async function writeBundle(opts: WriteBundleOptions): Promise<BundleReport> {
  const emit = opts.onEvent ?? (() => {});
  const output = path.resolve(opts.output);
  const signal = opts.signal;
  signal?.throwIfAborted();
  // The streams in flight, destroyed on abort so every await below ends at once.
  const active = new Set<{ destroy(err?: Error): unknown }>();
  const track = <S extends { destroy(err?: Error): unknown }>(stream: S): S => {
    active.add(stream);
    return stream;
  };
  const onAbort = (): void => {
    const reason = signal?.reason instanceof Error ? signal.reason : new Error('interrupted');
    for (const stream of active) stream.destroy(reason);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  // A failure of the file being written (read-only, full, forbidden) is about the output's path.
  let sinkError: unknown;
  const outputSink = (file: string): FileSink => {
    const sink = track(new FileSink(file));
    sink.once('error', (err) => {
      sinkError ??= err;
    });
    return sink;
  };
  const key = opts.signKey !== undefined ? await loadPrivateKey(opts.signKey) : undefined;
  // A differential bundle does not carry an image the base holds under the same name at the
  // same digest: loading the base put it there already.
  let refs = opts.refs;
  const unchanged: string[] = [];
  if (opts.base && opts.base.images.size > 0) {
    const index = await opts.store.readIndex();
    const digestOf = new Map<string, string>();
    for (const d of index.manifests) {
      const name = d.annotations?.[REF_NAME];
      if (name !== undefined && !digestOf.has(name)) digestOf.set(name, d.digest);
    }
    const names = refs ?? [...digestOf.keys()];
    const held = opts.base.images;
    refs = names.filter((r) => {
      const same = digestOf.get(r) !== undefined && held.get(r) === digestOf.get(r);
      if (same) unchanged.push(r);
      return !same;
    });
    if (refs.length === 0) {
      throw new NothingToCarryError(
        `every image (${unchanged.length}) is already at the far side under its name and digest (base ${opts.base.record.digest}): nothing to carry; no bundle written`,
      );
    }
  }
  const full = await planBundle(opts.store, refs, opts.compression, (message) => emit({ kind: 'warning', message }));
  const relied = opts.base ? full.blobs.filter((b) => b.role === 'layer' && opts.base!.present.has(b.digest)) : [];
  const reliedSet = new Set(relied.map((b) => b.digest));
  const away = full.blobs.filter((b) => b.role === 'layer' && !reliedSet.has(b.digest) && opts.spanElsewhere?.has(b.digest));
  for (const b of away) reliedSet.add(b.digest);
  const plan: BundlePlan = reliedSet.size > 0 ? { ...full, blobs: full.blobs.filter((b) => !reliedSet.has(b.digest)) } : full;
  const uniqueBytes = plan.blobs.reduce((n, b) => n + b.size, 0);
  emit({ kind: 'plan', images: plan.images.length, blobs: plan.blobs.length, uniqueBytes });

  // A killed earlier run may have left its temp bundle and spools beside the output.
  const base = path.basename(output);
  await removeDeadTemps(path.dirname(output), (name) => name === base || name.startsWith(`${base}.`));
  const spools = new Map<string, { file: string; size: number; sha256: string }>();
  const tmp = tempNameFor(output);
  let committed = false;
  try {
    signal?.throwIfAborted();
    // Compress first, so the manifest (written before any blob) knows stored sizes and hashes.
    for (const b of plan.blobs.filter((x) => x.compress)) {
      const file = tempNameFor(path.join(path.dirname(output), `${path.basename(output)}.${hex(b.digest).slice(0, 12)}.zst`));
      signal?.throwIfAborted();
      spools.set(b.digest, { file, size: 0, sha256: '' });
      const src = track(
        chain(
          await opts.store.openBlob(b.digest, `layer ${b.digest}`),
          new DigestVerifier({ digest: b.digest, size: b.size, what: `store blob ${b.digest}` }),
        ),
      );
      const hasher = new Hasher();
      const sink = outputSink(file);
      try {
        await runZstd(['-q', '-c', ZSTD_LEVEL, '-T0', '--no-progress', '-'], src, sink, { transforms: [hasher] });
      } finally {
        active.delete(src);
        active.delete(sink);
      }
      signal?.throwIfAborted();
      const spool = { file, size: hasher.bytes, sha256: hasher.hash.digest('hex') };
      if (b.size > maxRestoredSize(spool.size)) {
        // Beyond the ratio a reader accepts (limits-check.ts): stored raw instead.
        spools.delete(b.digest);
        await rm(file, { force: true });
        continue;
      }
      spools.set(b.digest, spool);
      emit({ kind: 'compress', digest: b.digest, size: b.size, storedSize: spool.size });
    }

    const indexBytes = Buffer.from(
      `${JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: plan.index }, null, 2)}\n`,
      'utf8',
    );
    const blobMembers: BundleMember[] = plan.blobs.map((b) => {
      const spool = spools.get(b.digest);
      if (spool) {
        return {
          path: zstdBlobPath(hex(b.digest)),
          size: spool.size,
          sha256: spool.sha256,
          storage: 'zstd',
          digest: b.digest,
          uncompressedSize: b.size,
          mediaType: b.mediaType,
        };
      }
      return {
        path: rawBlobPath(hex(b.digest)),
        size: b.size,
        sha256: hex(b.digest),
        storage: 'raw',
        digest: b.digest,
        mediaType: b.mediaType,
      };
    });
    const head: BundleMember[] = [
      { path: MEMBER.layoutHeader, size: OCI_LAYOUT_BYTES.length, sha256: hex(sha256(OCI_LAYOUT_BYTES)), storage: 'raw' },
      { path: MEMBER.index, size: indexBytes.length, sha256: hex(sha256(indexBytes)), storage: 'raw' },
    ];
    const sums = checksumsFile([...head, ...blobMembers]);
    const members: BundleMember[] = [
      head[0]!,
      head[1]!,
      { path: MEMBER.checksums, size: sums.length, sha256: hex(sha256(sums)), storage: 'raw' },
      ...blobMembers,
    ];
    const totals = {
      images: plan.images.length,
      blobs: plan.blobs.length,
      referencedBytes: plan.images.reduce((n, i) => n + i.totalSize, 0),
      uniqueBytes,
      storedBytes: members.reduce((n, m) => n + m.size, 0),
    };
    const manifest: BundleManifest = {
      mediaType: BUNDLE_MANIFEST_MEDIA_TYPE,
      formatVersion: opts.imageSet || opts.base || opts.volume ? BUNDLE_FORMAT_VERSION_IMAGE_SET : BUNDLE_FORMAT_VERSION,
      tool: { name: 'ferry', version: TOOL_VERSION },
      created: (opts.created ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      images: plan.images,
      members,
      ...(opts.imageSet ? { imageSet: opts.imageSet } : {}),
      ...(opts.base
        ? {
            base: {
              ...opts.base.record,
              blobs: relied.map((b) => ({ digest: b.digest, size: b.size, mediaType: b.mediaType })),
            },
          }
        : {}),
      ...(opts.volume
        ? {
            volume: {
              ...opts.volume,
              ...(away.length > 0
                ? {
                    spanBlobs: away.map((b) => ({
                      digest: b.digest,
                      size: b.size,
                      mediaType: b.mediaType,
                      volume: opts.spanElsewhere!.get(b.digest)!,
                    })),
                  }
                : {}),
            },
          }
        : {}),
      totals,
    };
    const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
    const signature = key ? signManifest(manifestBytes, key) : undefined;

    const tar = new TarWriter({ mtime: BUNDLE_MTIME });
    const sink = outputSink(tmp);
    track(tar.output);
    const written = pipeline(tar.output, sink);
    written.catch(() => {});
    try {
      await tar.addFile(MEMBER.layoutHeader, OCI_LAYOUT_BYTES);
      await tar.addFile(MEMBER.manifest, manifestBytes);
      if (signature) await tar.addFile(MEMBER.signature, signature);
      await tar.addFile(MEMBER.index, indexBytes);
      await tar.addFile(MEMBER.checksums, sums);
      for (let i = 0; i < plan.blobs.length; i++) {
        signal?.throwIfAborted();
        const b = plan.blobs[i]!;
        const m = blobMembers[i]!;
        const spool = spools.get(b.digest);
        // The digest covers the bytes handed to the tar writer, not another read of the store
        // file. (Measured on a 400 MB store: ~13-17% slower than hashing a second read on the
        // worker pool; hashing the written file back on the pool after the write cost ~23%.)
        const src = spool
          ? chain(
              createReadStream(spool.file, { highWaterMark: 1024 * 1024 }),
              new DigestVerifier({ digest: `sha256:${spool.sha256}`, size: spool.size, what: `zstd spool for ${b.digest}` }),
            )
          : chain(
              await opts.store.openBlob(b.digest, `blob ${b.digest}`),
              new DigestVerifier({ digest: b.digest, size: b.size, what: `store blob ${b.digest}` }),
            );
        track(src);
        try {
          await tar.addFile(m.path, m.size, src);
        } finally {
          active.delete(src);
        }
        emit({ kind: 'member', path: m.path, size: m.size });
      }
      await tar.finish();
      await written;
      signal?.throwIfAborted();
    } catch (err) {
      tar.abort(err);
      await written.catch(() => {});
      throw err;
    }
    // FILE.sig never sits beside a bundle it does not sign: the old one goes before the new
    // bundle takes the name, the new one comes after (a run that dies in between leaves a
    // bundle without FILE.sig, whose signature member still verifies).
    const sigFile = `${output}.sig`;
    const dir = path.dirname(output);
    if ((await fileSize(sigFile)) !== undefined) {
      await rm(sigFile, { force: true });
      await fsyncDir(dir);
    }
    await rename(tmp, output);
    committed = true;
    await fsyncDir(dir);
    if (signature) await writeFileAtomic(sigFile, signature);
    return {
      output,
      signature: signature ? sigFile : undefined,
      images: plan.images,
      totals,
      compressedBlobs: spools.size,
      ...(opts.base
        ? { base: { record: opts.base.record, blobs: relied.length, bytes: relied.reduce((n, b) => n + b.size, 0), unchanged } }
        : {}),
    };
  } catch (err) {
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : err;
    // The output's own file system refused (read-only, full, forbidden): name the output.
    throw sinkError !== undefined ? pathError(sinkError, output, 'writing the bundle') : err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (!committed) await rm(tmp, { force: true });
    await Promise.all([...spools.values()].map((s) => rm(s.file, { force: true })));
  }
}
