/**
 * ServedContent for an OCI image layout, served in place. Opening reads index.json and every
 * manifest reachable from it (verified against its digest: manifests are small); blobs are
 * never read or hashed, only stat'ed when asked for, and streamed straight from their files.
 *
 * Naming, the manifest graph and the per-repository reachability are shared with
 * bundle-content (served-graph.ts); this module only supplies the layout's bytes.
 */
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { OciLayout } from '../transports/oci/layout.js';
import { BlobGoneError, isMissing, notAFile, type ByteRange, type ServedContent } from './content.js';
import { buildServedContent, checkRepositoryOption, type ServedNamingOptions } from './served-graph.js';

export type LayoutContentOptions = ServedNamingOptions;

const STREAM_CHUNK = 1024 * 1024;

/** Open an OCI layout for serving. Throws only when the layout itself is unusable. */
export async function layoutContent(dir: string, opts: LayoutContentOptions = {}): Promise<ServedContent> {
  checkRepositoryOption(opts);
  const layout = await OciLayout.open(dir);
  const index = await layout.readIndex();
  return buildServedContent(
    {
      description: `oci:${layout.dir}`,
      where: `oci:${layout.dir}`,
      orphanHint: opts.repository === undefined ? ' (name a repository with oci:DIR:REPO to serve them)' : undefined,
      manifests: index.manifests,
      readManifest: (desc, what) => layout.readBlobBytes(desc, what),
      openBlob: async (digest, size) => {
        const file = layout.blobPath(digest);
        // A blob that is absent (sparse layout) or not the size its descriptors declare is not
        // served; nor is a symlink, which could point anywhere on this machine. Anything else
        // that keeps the file from being read (EACCES, EIO, EMFILE, a directory in its place)
        // is the server's problem, not a missing blob: it is thrown, for a 5xx.
        let st;
        try {
          st = await lstat(file);
        } catch (err) {
          if (isMissing(err)) return undefined;
          throw err;
        }
        if (st.isSymbolicLink()) return undefined;
        if (!st.isFile()) throw notAFile(file, st.isDirectory());
        if (st.size !== size) return undefined;
        return { digest, size, open: (range) => openFile(file, digest, range), file: { path: file, offset: 0 } };
      },
      close: async () => {},
    },
    opts,
    [],
  );
}

/** Open a blob file for streaming, resolving once the file is open. */
async function openFile(file: string, digest: string, range: ByteRange | undefined): Promise<Readable> {
  let handle;
  try {
    // O_NOFOLLOW: the file checked with lstat cannot have been swapped for a symlink since.
    handle = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (err) {
    if (isMissing(err)) throw new BlobGoneError(digest, { cause: err });
    throw err;
  }
  // The stream owns the descriptor from here: it is closed when the stream ends or is destroyed.
  return handle.createReadStream({ highWaterMark: STREAM_CHUNK, ...(range ? { start: range.start, end: range.end } : {}) });
}
