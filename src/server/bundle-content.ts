/**
 * ServedContent for a ferry bundle (or any plain OCI archive: a tar holding an OCI layout),
 * served in place. Opening indexes the tar by its headers only (no blob is read or hashed),
 * reads index.json and every reachable manifest from their offsets (size-capped, verified
 * against their digests), and builds the same repositories as layout-content (served-graph.ts): naming by
 * `org.opencontainers.image.ref.name` (else `io.containerd.image.name`), and per repository
 * only the manifests and blobs reachable from its own images plus the untagged artifacts that
 * refer to them.
 *
 * Blobs are served from their byte offsets in the tar: raw members (`blobs/sha256/<hex>`)
 * directly, with ranges; zstd members (`ferry/zstd/sha256/<hex>.zst`, bundles only) restored
 * on the fly through `zstd -d`, a range by skipping and limiting the restored stream (zstd is
 * stopped once the range is complete), never holding more than a chunk in memory.
 */
import { Readable } from 'node:stream';
import path from 'node:path';
import { LIMITS, MEMBER } from '../bundle/format.js';
import { blobMembers, openRestored, readZstdMembers } from '../bundle/blobs.js';
import { zstdAvailable } from '../bundle/reader.js';
import type { Digest } from '../oci/digest.js';
import { OciArchive } from '../transports/oci-archive/source.js';
import type { TarEntry } from '../util/tar-reader.js';
import { BlobGoneError, type ByteRange, type ServedContent } from './content.js';
import { buildServedContent, checkRepositoryOption, type ServedNamingOptions } from './served-graph.js';

export type BundleContentOptions = ServedNamingOptions;

/** Open a ferry bundle or OCI archive for serving. Throws only when the archive itself is unusable. */
export async function bundleContent(file: string, opts: BundleContentOptions = {}): Promise<ServedContent> {
  checkRepositoryOption(opts);
  const abs = path.resolve(file);
  const archive = await OciArchive.open(abs);
  try {
    return await build(archive, abs, opts);
  } catch (err) {
    await archive.close();
    throw err;
  }
}

async function build(archive: OciArchive, file: string, opts: BundleContentOptions): Promise<ServedContent> {
  const isBundle = archive.archive.has(MEMBER.manifest);
  const description = `${isBundle ? 'bundle' : 'oci-archive'}:${file}`;
  const warnings: string[] = [];
  const zstdMembers = await readZstdMembers(archive, description);
  const blobs = blobMembers(archive.archive.entries, zstdMembers);
  const canRestore = zstdMembers.size === 0 || zstdAvailable();
  if (!canRestore) {
    warnings.push(`${description}: ${zstdMembers.size} blob(s) are stored zstd-compressed and no zstd tool is on PATH: they are not served`);
  }
  return buildServedContent(
    {
      description,
      where: description,
      manifests: archive.listImages(),
      // Manifests are raw members: ferry never compresses them.
      readManifest: (desc, what) => archive.readBlobBytes(desc, what, LIMITS.maxManifestBytes),
      openBlob: async (digest, size) => {
        const m = blobs.get(digest);
        if (!m) return undefined;
        if (m.storage === 'raw') {
          // A member that is not the size its descriptors declare is not served.
          if (m.entry.size !== size) return undefined;
          return { digest, size, open: async (range) => openRaw(archive, m.entry, digest, range), file: { path: file, offset: m.entry.dataOffset } };
        }
        if (!canRestore || m.uncompressedSize !== size) return undefined;
        return {
          digest,
          size,
          open: async (range) => {
            if (!zstdAvailable()) throw new BlobGoneError(digest, { cause: new Error('zstd is not on PATH') });
            return openRestored(archive, m.entry, size, range ? { start: range.start, end: range.end + 1 } : undefined);
          },
        };
      },
      close: async () => {
        await archive.close();
      },
    },
    opts,
    warnings,
  );
}

function openRaw(archive: OciArchive, entry: TarEntry, digest: Digest, range: ByteRange | undefined): Readable {
  try {
    // ByteRange is inclusive; openTarEntry's end is exclusive.
    return archive.archive.open(entry, range ? { start: range.start, end: range.end + 1 } : undefined);
  } catch (err) {
    throw new BlobGoneError(digest, { cause: err });
  }
}

