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
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { LIMITS, MEMBER, ZSTD_BLOB_RE, parseBundleManifest } from '../bundle/format.js';
import { ZstdError, spawnZstd, zstdAvailable } from '../bundle/reader.js';
import type { Digest } from '../oci/digest.js';
import { OciArchive } from '../transports/oci-archive/source.js';
import { IntegrityError } from '../util/errors.js';
import type { TarEntry } from '../util/tar-reader.js';
import { BlobGoneError, type ByteRange, type ServedContent } from './content.js';
import { buildServedContent, checkRepositoryOption, type ServedNamingOptions } from './served-graph.js';

export type BundleContentOptions = ServedNamingOptions;

/** Where a blob's bytes are in the tar. */
export type BlobMember =
  | { storage: 'raw'; entry: TarEntry }
  | { storage: 'zstd'; entry: TarEntry; uncompressedSize: number };

/**
 * Where every blob of the archive is: raw members by digest, and zstd members that the bundle
 * manifest describes (digest and uncompressedSize). Pure: exported for tests.
 */
export function blobMembers(
  entries: readonly TarEntry[],
  zstdMembers: ReadonlyMap<string, { digest: Digest; uncompressedSize: number }>,
): Map<Digest, BlobMember> {
  const out = new Map<Digest, BlobMember>();
  // Later members replace earlier ones of the same name, as extraction would.
  const byName = new Map<string, TarEntry>();
  for (const e of entries) byName.set(e.name, e);
  for (const e of byName.values()) {
    if (e.type !== 'file') continue;
    const raw = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(e.name);
    if (raw) {
      out.set(`sha256:${raw[1]}` as Digest, { storage: 'raw', entry: e });
      continue;
    }
    const z = zstdMembers.get(e.name);
    if (z && ZSTD_BLOB_RE.test(e.name) && !out.has(z.digest)) {
      out.set(z.digest, { storage: 'zstd', entry: e, uncompressedSize: z.uncompressedSize });
    }
  }
  // A raw copy wins over a compressed one (cheaper, rangeable), whatever the member order.
  for (const e of byName.values()) {
    const raw = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(e.name);
    if (raw && e.type === 'file') out.set(`sha256:${raw[1]}` as Digest, { storage: 'raw', entry: e });
  }
  return out;
}

/** The zstd members the bundle manifest lists, by member path; empty for a plain OCI archive. */
async function readZstdMembers(archive: OciArchive, label: string): Promise<Map<string, { digest: Digest; uncompressedSize: number }>> {
  const out = new Map<string, { digest: Digest; uncompressedSize: number }>();
  if (!archive.archive.has(MEMBER.manifest)) return out;
  const bytes = await archive.archive.readBytes(archive.archive.resolve(MEMBER.manifest), LIMITS.maxJsonBytes, MEMBER.manifest);
  const manifest = parseBundleManifest(bytes, label);
  for (const m of manifest.members) {
    if (m.storage !== 'zstd' || !m.digest || m.uncompressedSize === undefined) continue;
    if (m.uncompressedSize > LIMITS.maxRestoredBytes) continue;
    out.set(m.path, { digest: m.digest as Digest, uncompressedSize: m.uncompressedSize });
  }
  return out;
}

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
          return { digest, size, open: async (range) => openRaw(archive, m.entry, digest, range) };
        }
        if (!canRestore || m.uncompressedSize !== size) return undefined;
        return { digest, size, open: async (range) => openZstd(archive, m.entry, digest, size, range) };
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

/**
 * The restored content of a zstd member (or a range of it), streamed through `zstd -d`: the
 * bytes before the range are read and dropped, and zstd is stopped once the range is complete.
 * A whole-blob read checks that the member restores to exactly `size` bytes.
 */
function openZstd(archive: OciArchive, entry: TarEntry, digest: Digest, size: number, range: ByteRange | undefined): Readable {
  if (!zstdAvailable()) throw new BlobGoneError(digest, { cause: new Error('zstd is not on PATH') });
  const start = range?.start ?? 0;
  const end = range ? range.end + 1 : size;
  async function* restore(): AsyncGenerator<Buffer> {
    const { child, stderr: zstdStderr, exited } = spawnZstd(['-d', '-c', '-q']);
    exited.catch(() => {});
    // EPIPE when zstd is stopped early is expected; real failures show in its exit status.
    child.stdin.on('error', () => {});
    const input = archive.archive.open(entry);
    const feed = pipeline(input, child.stdin).then(
      () => undefined,
      (err: unknown) => err as Error,
    );
    let pos = 0;
    try {
      for await (const c of child.stdout as AsyncIterable<Buffer>) {
        const from = pos;
        pos += c.length;
        if (pos > size) throw new ZstdError('ZSTD_OVERSIZE', `${entry.name} restores to more than the declared ${size} bytes`);
        const a = Math.max(start, from) - from;
        const b = Math.min(end, pos) - from;
        if (b > a) yield a === 0 && b === c.length ? c : c.subarray(a, b);
        if (range && pos >= end) return;
      }
      const { code, signal } = await exited;
      if (code !== 0) {
        const stderr = zstdStderr().trim();
        throw new ZstdError('ZSTD_FAILED', `zstd -d failed on ${entry.name} (${signal ?? `exit ${code}`})${stderr ? `: ${stderr}` : ''}`);
      }
      const feedErr = await feed;
      if (feedErr) throw feedErr;
      if (pos !== size) throw new ZstdError('ZSTD_SHORT', `${entry.name} restores to ${pos} bytes, not the declared ${size}`);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      input.destroy();
    }
  }
  return Readable.from(restore(), { objectMode: false, highWaterMark: 1024 * 1024 });
}
