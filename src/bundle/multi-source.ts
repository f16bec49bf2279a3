/**
 * The volumes of a span (an image larger than one volume, written with --allow-spanning) as
 * ONE load source: each volume is opened and checked as any bundle (openBundle: everything but
 * blob content, its `spanBlobs` expected from the others), then every blob is read from the
 * volume that carries it. Alone, a span volume is refused before anything is written
 * (VOLUME_SPAN_INCOMPLETE), naming the volume files it needs.
 */
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { BlobOpenOptions, ImageSource, ManifestBytes, OpenedImages } from '../transports/types.js';
import { IntegrityError } from '../util/errors.js';
import { openBundle, type OpenBundleOptions, type OpenedBundle } from './source.js';
import { VolumeSpanIncompleteError, fileOfVolume, spanOf, spanRange, type Span } from './volume-files.js';

/** The missing volume files of a span, given the files of it that are here (by number). */
export function missingSpanFiles(span: Span, given: ReadonlyMap<number, string>): string[] {
  const any = [...given.values()][0] ?? '';
  return span.volumes.filter((n) => !given.has(n)).map((n) => fileOfVolume(any, n));
}

/** One image read from several volumes: manifests and blobs from whichever volume carries them. */
class SpanImageSource implements ImageSource {
  constructor(
    readonly description: string,
    private readonly first: ImageSource,
    private readonly owner: (digest: string) => ImageSource | undefined,
  ) {}

  getRootManifest(signal?: AbortSignal): Promise<ManifestBytes> {
    return this.first.getRootManifest(signal);
  }

  getManifest(digest: Digest, mediaType: string | undefined, signal?: AbortSignal): Promise<ManifestBytes> {
    return (this.owner(digest) ?? this.first).getManifest(digest, mediaType, signal);
  }

  openBlob(desc: Descriptor, opts: BlobOpenOptions): Readable {
    // A blob no volume carries is the first volume's missing blob (an error of the stream).
    return (this.owner(desc.digest) ?? this.first).openBlob(desc, opts);
  }

  async close(): Promise<void> {}
}

const SIGNATURE_ORDER: ReadonlyArray<OpenedBundle['signature']> = ['invalid', 'none', 'present', 'valid'];

/**
 * Open the volumes of one span (every one of them, any order) as one source. Each is checked
 * as openBundle checks a bundle; they must be volumes of one set and one span, and together
 * carry every blob each lists in spanBlobs.
 */
export async function openVolumeSpan(files: readonly string[], opts: OpenBundleOptions = {}): Promise<OpenedImages> {
  const opened: OpenedBundle[] = [];
  const closeAll = async (): Promise<void> => {
    await Promise.all(opened.map((b) => b.close()));
  };
  try {
    for (const f of files) opened.push(await openBundle(f, opts));
    const first = opened[0]!;
    const span = spanOf(first.manifest);
    const setId = first.manifest.volume?.setId;
    if (!span) throw new IntegrityError('VOLUME_SPAN_INVALID', `${first.file} is not a volume of a span`);
    const byNumber = new Map<number, OpenedBundle>();
    for (const b of opened) {
      const v = b.manifest.volume;
      const mine = spanOf(b.manifest);
      if (!v || v.setId !== setId || mine?.ref !== span.ref || mine.digest !== span.digest || mine.volumes.join() !== span.volumes.join()) {
        throw new IntegrityError('VOLUME_SPAN_INVALID', `${b.file} is not a volume of the span of ${span.ref} in set ${setId}`);
      }
      byNumber.set(v.number, b);
    }
    const missing = span.volumes.filter((n) => !byNumber.has(n));
    if (missing.length > 0) {
      throw new VolumeSpanIncompleteError(
        first.file,
        span,
        missing.map((n) => fileOfVolume(first.file, n)),
      );
    }
    // Which volume carries which blob, and every blob one volume expects is where it says.
    const carrier = new Map<string, OpenedBundle>();
    for (const b of byNumber.values()) for (const m of b.manifest.members) if (m.digest && !carrier.has(m.digest)) carrier.set(m.digest, b);
    for (const b of byNumber.values()) {
      for (const e of b.manifest.volume?.spanBlobs ?? []) {
        const there = byNumber.get(e.volume)!;
        const member = there?.manifest.members.find((m) => m.digest === e.digest);
        const size = member ? (member.storage === 'raw' ? member.size : member.uncompressedSize) : undefined;
        if (size !== e.size) {
          throw new IntegrityError(
            'VOLUME_SPAN_INVALID',
            `${b.file} expects layer ${e.digest} (${e.size} bytes) in volume ${e.volume} (${there?.file ?? 'not given'}), which does not carry it at that size; nothing was loaded`,
          );
        }
      }
    }
    const sourceIn = (b: OpenedBundle, ref: string): ImageSource | undefined => b.images.find((i) => i.name === ref)?.source;
    const names = [...new Set(opened.flatMap((b) => b.images.map((i) => i.name)))];
    const ordered = span.volumes.map((n) => byNumber.get(n)!);
    const images = names.map((name) => {
      const home = ordered.find((b) => sourceIn(b, name))!;
      return {
        name,
        source: new SpanImageSource(
          `${sourceIn(home, name)!.description} (+ volumes ${spanRange(span.volumes)})`,
          sourceIn(home, name)!,
          (digest) => {
            const b = carrier.get(digest);
            return b ? (sourceIn(b, name) ?? b.images[0]?.source) : undefined;
          },
        ),
      };
    });
    const signature = SIGNATURE_ORDER.find((s) => opened.some((b) => b.signature === s)) ?? 'none';
    const external = new Set(opened.flatMap((b) => (b.manifest.base?.blobs ?? []).map((x) => x.digest)));
    return {
      description: `bundle:${ordered.map((b) => path.basename(b.file)).join('+')} (span of ${span.ref}, volumes ${spanRange(span.volumes)})`,
      images,
      allOrNothing: true,
      signature,
      ...(external.size > 0 ? { external } : {}),
      close: closeAll,
    };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
