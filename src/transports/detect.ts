/**
 * What an image archive file is, as `docker load -i` works it out: a ferry bundle
 * (`ferry-bundle.json`), a `docker save` tar (`manifest.json` listing Config/RepoTags/Layers),
 * or an OCI archive (`oci-layout` and `index.json`), plain or gzip-compressed (`docker save |
 * gzip`). `ferry load FILE` uses it for a path given without a transport.
 *
 * Two parts: `classifyArchive`, a pure function over the file's first bytes and what a bounded
 * scan of its member headers saw; and `detectArchive`, the scan. A plain tar is scanned by its
 * headers alone, seeking over member data (bundles are decided at their 2nd member; the
 * `manifest.json` of a docker save sits after the blobs, which costs one 512-byte read per
 * member); no declared size is trusted beyond the file's end, and at most MAX_SCAN_MEMBERS
 * headers are read. A gzip stream cannot be sought, so its members are read through gunzip to
 * the deciding member (for a docker save, near the end of the stream); `ferry load` has the
 * decompressed bytes written to a private copy as they are scanned (DetectOptions.gunzipTo), so
 * a docker save or OCI archive is decompressed once, not once to detect and again to load.
 * manifest.json is read only up to MAX_MANIFEST_PEEK bytes.
 *
 * A docker save by Docker 25+ is also an OCI layout; like `docker load`, detection goes by its
 * manifest.json, which names exactly the images saved (its index.json may list platforms
 * whose blobs the archive lacks).
 */
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import { type Readable, Transform, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { iterateTar, scanTarFile, type TarEntry } from '../tar/reader.js';
import { FerryError, type FerryErrorOptions, errorMessage } from '../util/errors.js';
import { z } from '../util/zod.js';
import { type Compression, sniffCompression } from './oci-archive/archive.js';
import { readFileHead } from '../util/fsutil.js';

export type ArchiveKind = 'bundle' | 'oci-archive' | 'docker-archive';

/** Member headers read at most while detecting (a bundle's own limit). */
export const MAX_SCAN_MEMBERS = 100_000;
/** Bytes of manifest.json read to tell a docker save's from another file of that name. */
export const MAX_MANIFEST_PEEK = 1024 * 1024;
/** Member names kept to say what a file that is none of the three holds. */
const NAMES_SHOWN = 6;
/** Names that decide what an archive is (at its root). */
const MARKERS = [
  'ferry-bundle.json',
  'SHA256SUMS',
  'ferry-bundle.json.sig',
  'manifest.json',
  'index.json',
  'oci-layout',
  'repositories',
] as const;

/** What a bounded scan of a file saw: the input of classifyArchive. */
export interface ArchiveScan {
  /** The file's first bytes (up to 512). */
  head: Buffer;
  /** The first members' names, in order (at most NAMES_SHOWN). */
  firstNames: string[];
  /** Which MARKERS were seen as regular files. */
  markers: Set<string>;
  /** Member headers read. */
  members: number;
  /** How the scan ended: the end of the archive, an early decision, the member limit, or a tar error. */
  ended: 'end' | 'decided' | 'limit' | { error: string };
  /** manifest.json's bytes, or 'too-large' past MAX_MANIFEST_PEEK; absent if not reached. */
  manifestJson?: Buffer | 'too-large';
}

export type Detection =
  | { kind: ArchiveKind; compression: Compression /** The archive also holds an OCI layout. */; ociLayout: boolean }
  | { kind: 'unknown'; compression: Compression /** What the file is instead, for the message. */; found: string };

/** The shape of a docker save manifest.json (`[{Config, RepoTags, Layers}]`). */
const DockerManifestJson = z.array(
  z.looseObject({ Config: z.string().min(1), RepoTags: z.array(z.string()).nullish(), Layers: z.array(z.string()).nullish() }),
);

/** manifest.json as `docker save` writes it (a web app's manifest.json is not one). */
export function isDockerManifestJson(bytes: Buffer | 'too-large'): boolean {
  // A manifest.json too large to peek at is a docker save's listing of many images, or
  // nothing; the docker-archive reader checks it whole.
  if (bytes === 'too-large') return true;
  try {
    return DockerManifestJson.safeParse(JSON.parse(bytes.toString('utf8'))).success;
  } catch {
    return false;
  }
}

/** Say what the first bytes of a file that is not a tar look like. */
function describeBytes(head: Buffer): string {
  if (head.length === 0) return 'an empty file';
  const sample = head.subarray(0, 32);
  // Printable ASCII and line breaks: quote it (a list of images, a YAML file given by mistake).
  if (sample.every((b) => (b >= 0x20 && b < 0x7f) || b === 0x0a || b === 0x0d || b === 0x09)) {
    return `text starting ${JSON.stringify(sample.toString('latin1'))}`;
  }
  return `data that is not a tar archive (it starts ${[...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ')})`;
}

function describeTar(scan: ArchiveScan): string {
  const names = scan.firstNames.map((n) => JSON.stringify(n)).join(', ');
  const more = scan.members > scan.firstNames.length ? ', …' : '';
  const what = `${scan.members} member${scan.members === 1 ? '' : 's'}${names ? `: ${names}${more}` : ''}`;
  if (typeof scan.ended === 'object') return `a damaged tar archive (${scan.ended.error}) after ${what}`;
  if (scan.ended === 'limit')
    return `a tar archive of more than ${MAX_SCAN_MEMBERS} members without the files of an image archive (${what})`;
  return `a tar archive of ${what}, without ferry-bundle.json, manifest.json or oci-layout and index.json`;
}

/**
 * What a scanned file is. `compression` is what its first bytes show; for gzip the scan is of
 * the decompressed tar. A tar error before any member means the file is not a tar at all.
 */
export function classifyArchive(scan: ArchiveScan, compression: Compression = sniffCompression(scan.head)): Detection {
  if (compression !== 'none' && compression !== 'gzip') {
    return { kind: 'unknown', compression, found: `${compression}-compressed data` };
  }
  const gz = compression === 'gzip' ? 'gzip-compressed ' : '';
  const ociLayout = scan.markers.has('oci-layout') && scan.markers.has('index.json');
  // A bundle's own members without its ferry-bundle.json: a damaged bundle, not an OCI archive
  // to load leniently; read as a bundle, it fails as ferry verify fails it (exit 3).
  if (scan.markers.has('ferry-bundle.json') || scan.markers.has('SHA256SUMS') || scan.markers.has('ferry-bundle.json.sig')) {
    return { kind: 'bundle', compression, ociLayout };
  }
  const dockerManifest = scan.manifestJson !== undefined && isDockerManifestJson(scan.manifestJson);
  // A save without manifest.json but with `repositories` is a pre-1.10 one: the docker-archive
  // reader says why it cannot be read.
  if (dockerManifest || (scan.markers.has('repositories') && !scan.markers.has('manifest.json') && !ociLayout)) {
    return { kind: 'docker-archive', compression, ociLayout };
  }
  if (ociLayout) return { kind: 'oci-archive', compression, ociLayout };
  if (scan.members === 0) {
    // No header parsed: not a tar at all (or nothing), unless it was a tar holding nothing.
    if (typeof scan.ended === 'object' || scan.head.length === 0) {
      const found = compression === 'gzip' ? 'gzip-compressed data that is not a tar archive' : describeBytes(scan.head);
      return { kind: 'unknown', compression, found };
    }
    return { kind: 'unknown', compression, found: `${gz}an empty tar archive` };
  }
  const found = `${gz}${describeTar(scan)}${scan.markers.has('manifest.json') ? ' (its manifest.json is not a docker save listing)' : ''}`;
  return { kind: 'unknown', compression, found };
}

/** The file is none of the archives ferry load reads: exit 2, as for any input that is not what the command takes. */
export class UnknownArchiveError extends FerryError {
  override readonly exitCode = 2 as const;
  constructor(message: string, options?: FerryErrorOptions) {
    super('NOT_AN_IMAGE_ARCHIVE', message, options);
  }
}

async function readCapped(body: AsyncIterable<unknown>, cap: number): Promise<Buffer | 'too-large'> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    if (n > cap) return 'too-large';
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/**
 * Scans members until one decides; `peek` reads manifest.json's bytes (capped). With `toEnd`
 * (a gzip stream being copied while it is scanned) a docker save is read on to its end, so the
 * copy is whole; a bundle still ends the scan at once.
 */
async function scanMembers(
  members: AsyncIterable<{ entry: TarEntry; peek: () => Promise<Buffer | 'too-large'> }>,
  head: Buffer,
  toEnd = false,
): Promise<ArchiveScan> {
  const scan: ArchiveScan = { head, firstNames: [], markers: new Set(), members: 0, ended: 'end' };
  let decided = false;
  try {
    for await (const { entry, peek } of members) {
      scan.members++;
      if (decided) continue;
      if (scan.firstNames.length < NAMES_SHOWN) scan.firstNames.push(entry.name);
      if (entry.type === 'file' && (MARKERS as readonly string[]).includes(entry.name)) {
        scan.markers.add(entry.name);
        if (entry.name === 'ferry-bundle.json') {
          scan.ended = 'decided';
          break;
        }
        if (entry.name === 'manifest.json') {
          scan.manifestJson = entry.size > MAX_MANIFEST_PEEK ? 'too-large' : await peek();
          if (isDockerManifestJson(scan.manifestJson)) {
            if (!toEnd) {
              scan.ended = 'decided';
              break;
            }
            decided = true;
            continue;
          }
        }
      }
      if (!decided && scan.members >= MAX_SCAN_MEMBERS) {
        scan.ended = 'limit';
        break;
      }
    }
  } catch (err) {
    scan.ended = { error: errorMessage(err) };
  }
  return scan;
}

export interface DetectOptions {
  /**
   * For a gzip-compressed file: gives a path (which must not exist; called only for gzip) where
   * the decompressed tar is written while it is scanned. A docker save or an OCI archive is then read to its end and
   * the detection names the whole copy in `gunzipped`, so the file is decompressed once; for
   * anything else, or when the stream fails, the partial copy is removed.
   */
  gunzipTo?: () => Promise<string>;
}

/** Detect what `file` (a regular file) holds. Only reading it can fail (a missing file): the rest is the answer. */
export async function detectArchive(file: string, opts: DetectOptions = {}): Promise<Detection & { gunzipped?: string }> {
  const head = await readFileHead(file, 512);
  const compression = sniffCompression(head);
  if (compression === 'gzip') {
    const copyTo = opts.gunzipTo ? await opts.gunzipTo() : undefined;
    const copy = copyTo !== undefined ? await open(copyTo, 'wx', 0o600) : undefined;
    // Each chunk goes to the copy before the scan sees it: when the scan reaches the end, the copy is whole.
    const stages: Array<NodeJS.ReadableStream | NodeJS.WritableStream> = [createReadStream(file), createGunzip()];
    if (copy) {
      stages.push(
        new Transform({
          transform(chunk: Buffer, _enc, done) {
            copy.write(chunk).then(() => done(null, chunk), done);
          },
        }),
      );
    }
    // pipeline() passes a failure of any stage (a read error, corrupt gzip) on to the last one, which the scan reads.
    const tarStream = pipeline(stages as [NodeJS.ReadableStream, ...NodeJS.ReadWriteStream[]], () => {}) as unknown as Readable;
    async function* entries(): AsyncGenerator<{ entry: TarEntry; peek: () => Promise<Buffer | 'too-large'> }> {
      for await (const { entry, body } of iterateTar(tarStream, { maxEntries: MAX_SCAN_MEMBERS + 1 })) {
        yield { entry, peek: () => readCapped(body, MAX_MANIFEST_PEEK) };
      }
    }
    let whole = false;
    try {
      const scan = await scanMembers(entries(), head, copy !== undefined);
      const detection = classifyArchive(scan, compression);
      whole = copy !== undefined && scan.ended === 'end' && (detection.kind === 'docker-archive' || detection.kind === 'oci-archive');
      return whole ? { ...detection, gunzipped: copyTo! } : detection;
    } finally {
      tarStream.destroy();
      await copy?.close();
      if (copyTo !== undefined && !whole) await rm(copyTo, { force: true });
    }
  }
  if (compression !== 'none') return classifyArchive({ head, firstNames: [], markers: new Set(), members: 0, ended: 'end' }, compression);
  async function* entries(): AsyncGenerator<{ entry: TarEntry; peek: () => Promise<Buffer | 'too-large'> }> {
    for await (const entry of scanTarFile(file, { maxEntries: MAX_SCAN_MEMBERS + 1 })) {
      yield { entry, peek: () => peekFile(file, entry) };
    }
  }
  return classifyArchive(await scanMembers(entries(), head), compression);
}

async function peekFile(file: string, entry: TarEntry): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(entry.size);
    const { bytesRead } = await fh.read(buf, 0, entry.size, entry.dataOffset);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** Names of the kinds, for messages. */
export const KIND_NAMES: Record<ArchiveKind, string> = {
  bundle: 'a ferry bundle',
  'oci-archive': 'an OCI archive',
  'docker-archive': 'a docker save archive',
};
