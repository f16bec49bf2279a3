/**
 * ServedContent for a ferry bundle (or any plain OCI archive: a tar holding an OCI layout),
 * served in place. Opening indexes the tar by its headers only (no blob is read or hashed),
 * reads index.json and every reachable manifest from their offsets (size-capped, verified
 * against their digests), and builds the same repositories as layout-content (served-graph.ts): naming by
 * `org.opencontainers.image.ref.name` (else `io.containerd.image.name`), and per repository
 * only the manifests and blobs reachable from its own images plus the untagged artifacts that
 * refer to them.
 *
 * A ferry bundle is checked first as `ferry load` checks it (verify.ts, all but blob content):
 * one that verify refuses is not served at all. Blob content is hashed as it is sent (server.ts).
 *
 * Blobs are served from their byte offsets in the tar (BundleStore): raw members (`blobs/sha256/<hex>`)
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
import path from 'node:path';
import { blobMembers, readZstdMembers } from '../bundle/blobs.js';
import { MEMBER, type BundleManifest } from '../bundle/format.js';
import { BundleInvalidError } from '../bundle/source.js';
import { BundleStore } from '../bundle/store.js';
import { verifyBundle } from '../bundle/verify.js';
import { OciArchive } from '../transports/oci-archive/source.js';
import { FerryError, NotFoundError, UsageError } from '../util/errors.js';
import type { ServedContent } from './content.js';
import { checkRepositoryOption, type ServedNamingOptions } from './served-graph.js';
import { storeContent } from './store-content.js';

export interface BundleContentOptions extends ServedNamingOptions {
  /** The bundle's signature must verify with this public key, checked as `ferry load --key` checks it. */
  key?: string;
  /** Refuse a bundle that is not signed (needs `key`); an OCI archive, which has no signature, is refused too. */
  requireSignature?: boolean;
}

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
  const label = `${isBundle ? 'bundle' : 'oci-archive'}:${file}`;
  let base: BundleManifest['base'];
  let volume: BundleManifest['volume'];
  if (isBundle) {
    // What `ferry verify` refuses structurally (tar safety, duplicates, ferry-bundle.json,
    // SHA256SUMS, manifests, completeness) is not served: checked as load checks it, all but
    // blob content, which the server hashes as it sends it (server.ts, digest-check.ts).
    const checked = await verifyBundle(file, {
      deferBlobContent: true,
      ...(opts.key !== undefined ? { key: opts.key } : {}),
      ...(opts.requireSignature ? { requireSignature: true } : {}),
    });
    if (!checked.ok) throw new BundleInvalidError(file, checked.problems, 'nothing is served');
    base = checked.manifest?.base;
    volume = checked.manifest?.volume;
  }
  const warnings: string[] = [];
  if (!isBundle && opts.requireSignature) {
    throw new UsageError(`${label} is an OCI archive, not a ferry bundle: it carries no signature, and --require-signature refuses it`, {
      hint: 'serve it without --require-signature, or serve a signed bundle of its images',
    });
  }
  if (!isBundle && opts.key !== undefined) warnings.push(`${label}: an OCI archive carries no signature; --key does not check it`);
  if (base?.blobs.length) {
    // Its base layers are served only by a source that holds them (given with it).
    warnings.push(
      `${label}: a differential bundle: ${base.blobs.length} layer${base.blobs.length === 1 ? '' : 's'} it relies on are served only from another source given with it (the store or bundle its base came from)`,
    );
  }
  for (const span of volume?.spans ?? []) {
    if (!span.volumes.includes(volume!.number)) continue;
    // As for a differential bundle: the layers the other volumes of the span carry are served
    // only when those volumes are given too; alone, a client pulling the image gets BLOB_UNKNOWN.
    const others = span.volumes.filter((n) => n !== volume!.number);
    warnings.push(
      `${label}: ${span.ref} spans volumes ${span.volumes[0]}–${span.volumes.at(-1)}; its layers in volume${others.length === 1 ? '' : 's'} ${others.join(', ')} are served only when ${others.length === 1 ? 'that volume is' : 'those volumes are'} given too`,
    );
  }
  const zstdMembers = await readZstdMembers(archive, label);
  const store = new BundleStore(archive, blobMembers(archive.archive.entries, zstdMembers), { handle, label });
  return storeContent(store, opts, {
    // How the user names it again with a repository: serve takes bundle:FILE:REPO for both.
    where: `bundle:${file}`,
    warnings,
    onClose: () => handle.close(),
  });
}
