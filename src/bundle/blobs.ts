/**
 * Where a bundle's (or any OCI archive's) blobs are, and how to read them: raw members
 * (`blobs/sha256/<hex>`) straight from their offsets, zstd members
 * (`ferry/zstd/sha256/<hex>.zst`, bundles only) restored on the fly (zstd/restore.ts). Used by
 * BundleStore (store.ts), which `ferry serve` and `ferry load` both read bundles through.
 */
import type { FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import type { OciArchive } from '../transports/oci-archive/source.js';
import { openTarEntry, type TarEntry } from '../tar/reader.js';
import { LIMITS, MEMBER, ZSTD_BLOB_RE, parseBundleManifest } from './format.js';
import { restoreZstd } from '../zstd/restore.js';
import { declaredSizeProblem } from './limits-check.js';

/** Where a blob's bytes are in the tar. */
export type BlobMember = { storage: 'raw'; entry: TarEntry } | { storage: 'zstd'; entry: TarEntry; uncompressedSize: number };

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
export async function readZstdMembers(
  archive: OciArchive,
  label: string,
): Promise<Map<string, { digest: Digest; uncompressedSize: number }>> {
  const out = new Map<string, { digest: Digest; uncompressedSize: number }>();
  if (!archive.archive.has(MEMBER.manifest)) return out;
  const bytes = await archive.archive.readBytes(archive.archive.resolve(MEMBER.manifest), LIMITS.maxJsonBytes, MEMBER.manifest);
  const manifest = parseBundleManifest(bytes, label);
  for (const m of manifest.members) {
    if (m.storage !== 'zstd' || !m.digest || m.uncompressedSize === undefined) continue;
    // Not plausible for its stored size (limits-check.ts): never restored, so the blob is missing.
    if (declaredSizeProblem(m) !== undefined) continue;
    out.set(m.path, { digest: m.digest as Digest, uncompressedSize: m.uncompressedSize });
  }
  return out;
}

/**
 * The restored content of a zstd member (or a range of it), through restoreZstd (one checked
 * frame, output capped at the declared size): the bytes before the range are read and dropped,
 * and the restore stops once the range is complete. A whole-blob read checks that the member
 * restores to exactly `size` bytes.
 *
 * `handle`, when given, is a descriptor of the archive's tar file opened before it was indexed
 * (`ferry serve` keeps one): the member is read through it, not by opening the path again.
 */
export function openRestored(
  archive: OciArchive,
  entry: TarEntry,
  size: number,
  range?: { start: number; end: number },
  handle?: FileHandle,
): Readable {
  const start = range?.start ?? 0;
  const end = range ? range.end : size;
  async function* restore(): AsyncGenerator<Buffer> {
    const input = handle ? openTarEntry(archive.archive.tarFile, entry, undefined, handle) : archive.archive.open(entry);
    let pos = 0;
    try {
      for await (const c of restoreZstd({ expectedSize: size, what: `member ${entry.name}` })(input as AsyncIterable<Buffer>)) {
        const from = pos;
        pos += c.length;
        const a = Math.max(start, from) - from;
        const b = Math.min(end, pos) - from;
        if (b > a) yield a === 0 && b === c.length ? c : c.subarray(a, b);
        if (range && pos >= end) return;
      }
    } finally {
      input.destroy();
    }
  }
  return Readable.from(restore(), { objectMode: false, highWaterMark: 1024 * 1024 });
}
