/**
 * A ferry bundle as the source of `ferry load`: one ImageSource per image the bundle carries
 * (the store reader over one BundleStore), reading blobs in place from their tar offsets (zstd
 * members restored on the fly).
 *
 * Opening checks the whole bundle except blob content (verify.ts with deferBlobContent: tar
 * safety, ferry-bundle.json, the signature when a key is given, index.json, SHA256SUMS, every
 * manifest, image completeness) and refuses a bundle with any problem, so nothing is loaded
 * from it. Blob content is then checked by the destination while it streams (every
 * destination verifies digest and size), which reads the bundle once instead of twice.
 *
 * A bundle on stdin (`-`) or a FIFO is first spooled to a temporary file, since destinations
 * read blobs in their own order; memory stays flat, the spool stops as soon as the stream goes
 * past what its ferry-bundle.json declares (limits-check.ts), and the file is removed
 * afterwards. Any other path that is not a regular file (a device) is refused unread.
 */
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseReference, REFERENCE_MAX_LENGTH } from '../ref/reference.js';
import { StoreSource } from '../store/source.js';
import { OciArchive } from '../transports/oci-archive/source.js';
import type { ImageSource, OpenedImages } from '../transports/types.js';
import { onExitCleanup } from '../util/cleanup.js';
import { IntegrityError, UsageError } from '../util/errors.js';
import { bundleInputKind, isStdin } from '../util/fsutil.js';
import { blobMembers, readZstdMembers } from './blobs.js';
import type { BundleManifest } from './format.js';
import { BundleSpoolGuard } from './limits-check.js';
import { BundleStore } from './store.js';
import { refuseLoneSpanVolume } from './volume-files.js';
import { verifyBundle, type Problem, type VerifyResult } from './verify.js';

export class BundleInvalidError extends IntegrityError {
  constructor(
    readonly file: string,
    readonly problems: Problem[],
    consequence = 'nothing was loaded',
  ) {
    const shown = problems
      .slice(0, 5)
      .map((p) => `  ${p.code}: ${p.message}`)
      .join('\n');
    super(
      'BUNDLE_INVALID',
      `${file} failed verification (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n${shown}${problems.length > 5 ? '\n  …' : ''}`,
      {
        hint: `${consequence}; \`ferry verify ${file === '(stdin)' ? '-' : file}\` lists every problem`,
      },
    );
  }
}

export interface OpenedBundle {
  file: string;
  manifest: BundleManifest;
  signature: VerifyResult['signature'];
  images: Array<{ name: string; source: ImageSource }>;
  close(): Promise<void>;
}

export interface OpenBundleOptions {
  key?: string;
  requireSignature?: boolean;
  /** Stops spooling a bundle read from stdin. */
  signal?: AbortSignal;
}

/** The full normalised reference when the bundle's ref parses as one (it does for bundles ferry wrote). */
function imageName(ref: string, label: string): string {
  // Checked before anything is named: a reference longer than the grammar allows (a 50 MB
  // "name") would otherwise become a 50 MB index.json entry that no reader accepts.
  if (ref.length > REFERENCE_MAX_LENGTH) {
    throw new IntegrityError(
      'REFERENCE_NAME_TOO_LONG',
      `${label}: an image reference of ${ref.length} characters is over the ${REFERENCE_MAX_LENGTH}-character limit of the reference grammar`,
      { hint: 'nothing was loaded' },
    );
  }
  try {
    return parseReference(ref).toString();
  } catch {
    return ref;
  }
}

/**
 * Open a bundle for loading. `file` may be `-` or /dev/stdin, or any file that is not a
 * regular file (a FIFO, `<(…)`): those are spooled first. `label` names it in messages.
 */
export async function openBundle(file: string, opts: OpenBundleOptions = {}, label = file): Promise<OpenedBundle> {
  // Only a regular file is read in place and only a FIFO (or stdin) is spooled: a device (a
  // symlink to /dev/zero) is refused before a byte is read.
  const kind = isStdin(file) ? 'stdin' : await bundleInputKind(file);
  if (kind !== 'file') return spool(kind === 'stdin' ? process.stdin : createReadStream(file), opts, kind === 'stdin' ? '(stdin)' : label);
  const abs = path.resolve(file);
  const checked = await verifyBundle(abs, {
    deferBlobContent: true,
    ...(opts.key !== undefined ? { key: opts.key } : {}),
    ...(opts.requireSignature ? { requireSignature: true } : {}),
  });
  if (!checked.ok || !checked.manifest) throw new BundleInvalidError(label, checked.problems);
  const manifest = checked.manifest;
  const archive = await OciArchive.open(abs);
  try {
    const blobs = blobMembers(archive.archive.entries, await readZstdMembers(archive, `bundle:${abs}`));
    const store = new BundleStore(archive, blobs, { label: `bundle:${abs}` });
    // One store for every image: the bundle is opened (and indexed) once.
    const images = manifest.images.map((img) => ({
      name: imageName(img.ref, label),
      source: new StoreSource(
        store,
        { descriptor: { digest: img.digest, mediaType: img.mediaType, size: img.size } },
        `bundle:${abs}:${img.ref}`,
      ),
    }));
    return { file: abs, manifest, signature: checked.signature, images, close: () => store.close() };
  } catch (err) {
    await archive.close();
    throw err;
  }
}

/**
 * Spool a stream to a private temp dir, open it, and remove it on close (as containers/image
 * does for a docker-archive on stdin): destinations read blobs in their own order.
 */
async function spool(input: Readable, opts: OpenBundleOptions, label: string): Promise<OpenedBundle> {
  const dir = await mkdtemp(path.join(process.env.FERRY_TMPDIR ?? tmpdir(), 'ferry-stdin-'));
  const file = path.join(dir, 'bundle.tar');
  // A forced exit (a second Ctrl-C) skips the finally blocks: the spool, possibly gigabytes
  // of a partial bundle, must not stay behind.
  const forget = onExitCleanup(() => rmSync(dir, { recursive: true, force: true }));
  try {
    // Bounded by what the bundle declares: its head must hold ferry-bundle.json, and the stream
    // may not go on past the tar that its members add up to (limits-check.ts).
    await pipeline(
      input,
      new BundleSpoolGuard(label),
      createWriteStream(file, { mode: 0o600 }),
      ...(opts.signal ? [{ signal: opts.signal }] : []),
    );
    const opened = await openBundle(file, opts, label);
    return {
      ...opened,
      file: label,
      close: async () => {
        await opened.close();
        await rm(dir, { recursive: true, force: true });
        forget();
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    forget();
    throw err;
  }
}

/**
 * `bundle:FILE` (or `-`, stdin) as a copy source: checked first, all but blob content
 * (openBundle); its images load all or nothing.
 */
export async function openBundleImages(
  file: string,
  opts: Pick<OpenBundleOptions, 'key' | 'requireSignature' | 'signal'> = {},
): Promise<OpenedImages> {
  if (!isStdin(file)) {
    const st = await stat(file).catch(() => undefined);
    if (!st)
      throw new UsageError(`${file}: no such bundle file`, { hint: 'give a bundle written by ferry bundle, - for stdin, or oci:DIR' });
    if (st.isDirectory()) throw new UsageError(`${file} is a directory`, { hint: `for an OCI layout use oci:${file}` });
    await bundleInputKind(file);
  }
  const bundle = await openBundle(file, {
    ...(opts.key !== undefined ? { key: opts.key } : {}),
    ...(opts.requireSignature ? { requireSignature: true } : {}),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  // A volume of a span holds only part of its image: alone it loads nothing (multi-source.ts).
  try {
    refuseLoneSpanVolume(isStdin(file) ? '(stdin)' : bundle.file, bundle.manifest);
  } catch (err) {
    await bundle.close();
    throw err;
  }
  return {
    description: isStdin(file) ? 'bundle:(stdin)' : `bundle:${bundle.file}`,
    images: bundle.images.map((i) => ({ source: i.source, name: i.name })),
    allOrNothing: true,
    signature: bundle.signature,
    ...(bundle.manifest.base?.blobs.length ? { external: new Set(bundle.manifest.base.blobs.map((b) => b.digest)) } : {}),
    close: () => bundle.close(),
  };
}
