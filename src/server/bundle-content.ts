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
 *
 * The file is opened once, before it is indexed, and every blob is read through that
 * descriptor: the index stays true to the bytes served even if the path is replaced (an atomic
 * `mv` of a new bundle over it: the old file is served until a restart), and a bundle given
 * through a symlink is served like any other. Opening checks that the path still names the
 * file the descriptor holds once everything was read, and starts over if it was replaced.
 */
import type { Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import path from 'node:path';
import { LIMITS, MEMBER } from '../bundle/format.js';
import { blobMembers, openRestored, readZstdMembers } from '../bundle/blobs.js';
import { zstdAvailable } from '../bundle/reader.js';
import type { Digest } from '../oci/digest.js';
import { OciArchive } from '../transports/oci-archive/source.js';
import { FerryError, NotFoundError } from '../util/errors.js';
import { openTarEntry, type TarEntry } from '../tar/reader.js';
import { BlobGoneError, type ByteRange, type ServedContent } from './content.js';
import { buildServedContent, checkRepositoryOption, type ServedNamingOptions } from './served-graph.js';

export type BundleContentOptions = ServedNamingOptions;

/** Times opening starts over when the file is replaced while it is being read. */
const OPEN_ATTEMPTS = 3;

/** Open a ferry bundle or OCI archive for serving. Throws only when the archive itself is unusable. */
export async function bundleContent(file: string, opts: BundleContentOptions = {}): Promise<ServedContent> {
  checkRepositoryOption(opts);
  const abs = path.resolve(file);
  for (let attempt = 1; ; attempt++) {
    // Opened first, following symlinks: what is indexed below must be this very file.
    let handle: FileHandle;
    try {
      handle = await open(abs, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(`bundle:${abs}: ${abs} does not exist`);
      throw err;
    }
    let content: ServedContent | undefined;
    try {
      const before = await handle.stat();
      if (!before.isFile()) throw new FerryError('ARCHIVE_INVALID', `bundle:${abs}: ${abs} is not a regular file`);
      const archive = await OciArchive.open(abs);
      try {
        content = await build(archive, handle, abs, opts);
      } catch (err) {
        await archive.close();
        throw err;
      }
      if (sameFile(before, await handle.stat()) && sameFile(before, await stat(abs))) return content;
    } catch (err) {
      await handle.close().catch(() => {});
      throw err;
    }
    // Replaced (or rewritten) while it was being indexed: the index may describe another file.
    await content.close();
    if (attempt >= OPEN_ATTEMPTS) {
      throw new FerryError('ARCHIVE_CHANGED', `bundle:${abs}: ${abs} kept changing while it was being opened`, {
        hint: 'serve it once it is completely written',
      });
    }
  }
}

/** The same file, unchanged: device, inode, size and modification time. */
function sameFile(a: Stats, b: Stats): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

async function build(archive: OciArchive, handle: FileHandle, file: string, opts: BundleContentOptions): Promise<ServedContent> {
  const isBundle = archive.archive.has(MEMBER.manifest);
  const description = `${isBundle ? 'bundle' : 'oci-archive'}:${file}`;
  const warnings: string[] = [];
  const zstdMembers = await readZstdMembers(archive, description);
  const blobs = blobMembers(archive.archive.entries, zstdMembers);
  const canRestore = zstdMembers.size === 0 || zstdAvailable();
  if (!canRestore) {
    warnings.push(
      `${description}: ${zstdMembers.size} blob(s) are stored zstd-compressed and no zstd tool is on PATH: they are not served`,
    );
  }
  return buildServedContent(
    {
      description,
      // How the user names it again with a repository: serve takes bundle:FILE:REPO for both.
      where: `bundle:${file}`,
      manifests: archive.listImages(),
      // Manifests are raw members: ferry never compresses them.
      readManifest: (desc, what) => archive.readBlobBytes(desc, what, LIMITS.maxManifestBytes),
      openBlob: async (digest, size) => {
        const m = blobs.get(digest);
        if (!m) return undefined;
        if (m.storage === 'raw') {
          // A member that is not the size its descriptors declare is not served.
          if (m.entry.size !== size) return undefined;
          return {
            digest,
            size,
            open: async (range) => openRaw(file, handle, m.entry, digest, range),
            file: { handle, offset: m.entry.dataOffset },
          };
        }
        if (!canRestore || m.uncompressedSize !== size) return undefined;
        return {
          digest,
          size,
          restore: true,
          open: async (range) => {
            if (!zstdAvailable()) throw new BlobGoneError(digest, { cause: new Error('zstd is not on PATH') });
            return openRestored(archive, m.entry, size, range ? { start: range.start, end: range.end + 1 } : undefined, handle);
          },
        };
      },
      close: async () => {
        await archive.close();
        await handle.close();
      },
    },
    opts,
    warnings,
  );
}

function openRaw(file: string, handle: FileHandle, entry: TarEntry, digest: Digest, range: ByteRange | undefined): Readable {
  try {
    // ByteRange is inclusive; openTarEntry's end is exclusive.
    return openTarEntry(file, entry, range ? { start: range.start, end: range.end + 1 } : undefined, handle);
  } catch (err) {
    throw new BlobGoneError(digest, { cause: err });
  }
}
