/**
 * An OCI image layout on disk (image-spec "image-layout"): `oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`. Reads are strict about digests and sizes; writes are atomic and
 * verified; index.json changes happen under the layout lock.
 */
import { constants as fsConstants, createReadStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { z } from '../../util/zod.js';
import { DigestVerifier, hex, isDigest, sha256, verifyBytes, type Digest } from '../../oci/digest.js';
import { DescriptorSchema, MAX_MANIFEST_BYTES, parseJsonBounded, type Descriptor } from '../../oci/manifest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { platformMatches, type PlatformSpec } from '../../oci/platform.js';
import { FerryError, IntegrityError, LayoutError, NotFoundError, PathError, SizeMismatchError, pathError } from '../../util/errors.js';
import {
  FileSink,
  deadTemps,
  fileSize,
  fsyncDir,
  streamToFileAtomic,
  tempNameFor,
  writeFileAtomic,
  type DeadTemp,
} from '../../util/fsutil.js';
import { withLayoutLock } from './lock.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';
/** When ferry named an entry (RFC 3339), for `ferry store ls`; entries of earlier versions have none. */
export const ADDED_ANNOTATION = 'dev.ferry.added';
export const MAX_INDEX_JSON_BYTES = 64 * 1024 * 1024;
/** A partial download older than this is not resumed: its writer's run is long forgotten. */
const KEEP_PARTIAL_MS = 7 * 24 * 60 * 60 * 1000;
/** Group commit of index.json entries: the most a batch waits for more, and a batch that does not wait. */
const MAX_COMMIT_PAUSE_MS = 500;
const MIN_COMMIT_PAUSE_MS = 100;
const FULL_BATCH = 1024;

/** The `oci-layout` file and `index.json` of an image layout, wherever it is stored. */
export const LayoutHeader = z.looseObject({ imageLayoutVersion: z.string() });
export const IndexJson = z.looseObject({
  schemaVersion: z.number().optional(),
  mediaType: z.string().optional(),
  // Docker 25's `docker save` writes "manifests": null; that means no images, not corruption.
  manifests: z.array(DescriptorSchema).nullable(),
  annotations: z.record(z.string(), z.string()).nullish(),
});

/** `imageLayoutVersion`s ferry reads: 1.x.y (image-spec's layout version). */
export const LAYOUT_VERSION_RE = /^1\.\d+\.\d+$/;

/**
 * The checks every reader of an `oci-layout` file applies (a layout directory, an OCI archive,
 * a bundle's verify and load): JSON, an object with a supported imageLayoutVersion. Throws
 * LayoutError LAYOUT_INVALID naming `label`.
 */
export function parseLayoutHeader(bytes: Uint8Array, label: string): { imageLayoutVersion: string } {
  let doc: unknown;
  try {
    doc = parseJsonBounded(bytes);
  } catch {
    throw new LayoutError('LAYOUT_INVALID', `${label} is not valid JSON`);
  }
  const r = LayoutHeader.safeParse(doc);
  if (!r.success) throw new LayoutError('LAYOUT_INVALID', `${label} has no imageLayoutVersion`);
  if (!LAYOUT_VERSION_RE.test(r.data.imageLayoutVersion)) {
    throw new LayoutError(
      'LAYOUT_INVALID',
      `${label}: unsupported imageLayoutVersion ${JSON.stringify(r.data.imageLayoutVersion).slice(0, 80)}`,
    );
  }
  return r.data;
}

/**
 * index.json as every reader reads it (a layout directory, an OCI archive, a bundle's verify
 * and load): bounded JSON, the IndexJson schema (every entry a descriptor: sizes whole,
 * non-negative and safe). Throws LayoutError LAYOUT_INVALID naming `label`.
 */
export function parseIndexJson(bytes: Uint8Array, label: string): z.infer<typeof IndexJson> {
  if (bytes.byteLength > MAX_INDEX_JSON_BYTES) {
    throw new LayoutError('LAYOUT_INVALID', `${label} is ${bytes.byteLength} bytes, over the ${MAX_INDEX_JSON_BYTES}-byte limit`);
  }
  let doc: unknown;
  try {
    doc = parseJsonBounded(bytes);
  } catch (err) {
    throw new LayoutError('LAYOUT_INVALID', `${label} is not valid JSON (${(err as Error).message})`);
  }
  const r = IndexJson.safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new LayoutError('LAYOUT_INVALID', `${label}: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}`);
  }
  return r.data;
}

export class MissingBlobError extends LayoutError {
  constructor(
    readonly digest: string,
    what: string,
  ) {
    super('BLOB_MISSING', `${what}: blob ${digest} is missing from the layout`);
  }
}

export interface LayoutIndex {
  manifests: Descriptor[];
  annotations: Record<string, string>;
  /** The whole document, so a rewrite keeps fields ferry does not know. */
  raw: Record<string, unknown>;
}

interface CachedIndex {
  ino: number;
  dev: number;
  size: number;
  mtimeMs: number;
  index: LayoutIndex;
  byName?: Map<string, Descriptor>;
}

/** The last parse of each index.json this process read (by absolute path). */
const indexCache = new Map<string, CachedIndex>();

/** What a layout directory may hold before ferry makes it one (another process may be making it). */
const LAYOUT_ENTRIES = new Set(['oci-layout', 'index.json', 'blobs']);

async function readOptional(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * `mkdir -p`, one directory at a time. Node's recursive mkdir spins for ever where the kernel
 * answers ENOENT for a directory whose parent exists (under /proc), and elsewhere reports the
 * wrong directory; made one by one, each refusal names its real reason (EROFS, EACCES), and
 * ENOENT with the parent present is said as what it is: nothing can be created there.
 */
async function makeDirs(dir: string): Promise<void> {
  const missing: string[] = [];
  for (let d = dir; ; ) {
    const isDir = await stat(d).then(
      (st) => st.isDirectory(),
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : false),
    );
    if (isDir === true) break;
    if (isDir === false && d === dir) {
      throw new LayoutError('LAYOUT_NOT_FOUND', `${dir} exists and is not a directory; choose another --store`);
    }
    if (isDir === false) break; // an ancestor that is no directory (or unreadable): the mkdir below says why
    missing.unshift(d);
    const parent = path.dirname(d);
    if (parent === d) break;
    d = parent;
  }
  for (const d of missing) {
    try {
      await mkdir(d);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code === 'EEXIST') continue; // another process made it meanwhile
      if (e.code === 'ENOENT') {
        throw new PathError(dir, 'creating the store', 'ENOENT', {
          code: 'PATH_NOT_WRITABLE',
          says: `${path.dirname(d)} takes no new directories`,
          hint: 'choose a path on a writable file system',
          cause: err,
        });
      }
      throw err;
    }
  }
}

export class OciLayout {
  /**
   * Blobs were written (renamed into blobs/sha256) since that directory was last fsynced.
   * Blob writes skip the per-file directory fsync; putIndexEntries makes their names durable
   * with one fsync before index.json can name them.
   */
  private blobsDirty = false;

  private constructor(readonly dir: string) {}

  /** Open an existing layout; with create, make an empty one where none exists. */
  static async open(dir: string, opts: { create?: boolean } = {}): Promise<OciLayout> {
    const abs = path.resolve(dir);
    const layoutFile = path.join(abs, 'oci-layout');
    let header = await readOptional(layoutFile);
    if (header === undefined) {
      // A bare index.json (as some tools and test suites write) is readable; ferry only
      // insists on the oci-layout marker before it writes into a directory.
      if (!opts.create && (await fileSize(path.join(abs, 'index.json'))) !== undefined) return new OciLayout(abs);
      if (!opts.create) {
        const exists = await stat(abs).then(
          (s) => s.isDirectory(),
          () => false,
        );
        throw new LayoutError(
          'LAYOUT_NOT_FOUND',
          exists ? `${abs} is not an OCI image layout (no oci-layout file)` : `OCI layout ${abs} does not exist`,
        );
      }
      // A store on a read-only, full or forbidden file system: say so about the store's path.
      header = await OciLayout.create(abs, layoutFile).catch(async (err: unknown) => {
        throw pathError(err, abs, 'creating the store');
      });
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(header);
    } catch {
      throw new LayoutError('LAYOUT_INVALID', `${layoutFile} is not valid JSON`);
    }
    const h = LayoutHeader.safeParse(parsed);
    if (!h.success) throw new LayoutError('LAYOUT_INVALID', `${layoutFile} has no imageLayoutVersion`);
    if (!/^1\.\d+\.\d+$/.test(h.data.imageLayoutVersion)) {
      throw new LayoutError('LAYOUT_INVALID', `${layoutFile}: unsupported imageLayoutVersion ${h.data.imageLayoutVersion}`);
    }
    return new OciLayout(abs);
  }

  /**
   * Make an empty layout in `abs` (which may not exist yet) and return its oci-layout text.
   * Two first pulls into one new directory may race here, so the check and the writes happen
   * under the layout lock (whose file lives in the directory), and a layout that another
   * process finished meanwhile is simply opened. index.json and oci-layout are only ever
   * created, never replaced (a process of an earlier version, which creates without the
   * lock, may be writing them too); oci-layout is written last, as the marker that the
   * layout is complete.
   */
  private static async create(abs: string, layoutFile: string): Promise<string> {
    await makeDirs(abs);
    return withLayoutLock(abs, async () => {
      const existing = await readOptional(layoutFile);
      if (existing !== undefined) return existing;
      // Refuse to turn a non-empty unrelated directory into a store. Dot files (the lock,
      // temp files) and the parts of a layout being made by someone else do not count.
      const entries = (await readdir(abs)).filter((e) => !e.startsWith('.') && !LAYOUT_ENTRIES.has(e));
      if (entries.length > 0) {
        throw new LayoutError('LAYOUT_NOT_FOUND', `${abs} is not empty and not an OCI image layout; choose another --store`);
      }
      await mkdir(path.join(abs, 'blobs', 'sha256'), { recursive: true });
      await writeFileAtomic(
        path.join(abs, 'index.json'),
        JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
        {
          exclusive: true,
        },
      );
      await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }), { exclusive: true });
      const header = await readOptional(layoutFile);
      if (header === undefined) throw new LayoutError('LAYOUT_INVALID', `${layoutFile} vanished while the layout was being created`);
      return header;
    });
  }

  blobPath(digest: string): string {
    if (!isDigest(digest)) throw new LayoutError('DIGEST_INVALID', `refusing to address blob with digest ${JSON.stringify(digest)}`);
    return path.join(this.dir, 'blobs', 'sha256', hex(digest));
  }

  get indexPath(): string {
    return path.join(this.dir, 'index.json');
  }

  /**
   * index.json, parsed and checked. The last parse per file is kept (see indexCache) and used
   * again while the file's inode, size and mtime are unchanged: pulling N images named in one
   * layout (`oci:DIR:REF` each) must not read and parse that index N times.
   */
  async readIndex(): Promise<LayoutIndex> {
    const cached = await this.cachedIndex();
    return { manifests: [...cached.index.manifests], annotations: { ...cached.index.annotations }, raw: cached.index.raw };
  }

  private async cachedIndex(): Promise<CachedIndex> {
    let st: Awaited<ReturnType<typeof stat>>;
    try {
      st = await stat(this.indexPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new LayoutError('LAYOUT_INVALID', `${this.indexPath} is missing`);
      throw err;
    }
    const hit = indexCache.get(this.indexPath);
    if (hit && hit.ino === st.ino && hit.dev === st.dev && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit;
    const size = st.size;
    if (size > MAX_INDEX_JSON_BYTES) throw new LayoutError('LAYOUT_INVALID', `${this.indexPath} is ${size} bytes, over the limit`);
    const data = parseIndexJson(await readFile(this.indexPath), this.indexPath);
    const entry: CachedIndex = {
      ino: st.ino,
      dev: st.dev,
      size: st.size,
      mtimeMs: st.mtimeMs,
      index: { manifests: data.manifests ?? [], annotations: data.annotations ?? {}, raw: data },
    };
    // One entry per file; a file written within the mtime granularity of its last read could
    // look unchanged, so a file younger than a second is never kept.
    if (Date.now() - st.mtimeMs > 1000) indexCache.set(this.indexPath, entry);
    else indexCache.delete(this.indexPath);
    return entry;
  }

  /** The first entry with each ref.name (what resolve answers), built once per parse. */
  private async namedEntries(): Promise<{ index: LayoutIndex; byName: Map<string, Descriptor> }> {
    const cached = await this.cachedIndex();
    if (!cached.byName) {
      cached.byName = new Map();
      for (const d of cached.index.manifests) {
        const name = d.annotations?.[REF_NAME];
        if (name !== undefined && !cached.byName.has(name)) cached.byName.set(name, d);
      }
    }
    return { index: cached.index, byName: cached.byName };
  }

  /**
   * Find the image a layout reference names. With a name: the entries whose ref.name equals
   * it (the first wins when a layout lists one name twice, as containers/image does). With a
   * digest: the entry with that digest. Without either: the only entry.
   */
  async resolve(ref: string | undefined, platforms: PlatformSpec[] = []): Promise<Descriptor> {
    const index = (await this.cachedIndex()).index; // read only here: no copy
    if (ref === undefined || ref === '') {
      if (index.manifests.length === 1) return index.manifests[0]!;
      if (index.manifests.length === 0) throw new NotFoundError(`OCI layout ${this.dir} holds no images`);
      // Untagged per-platform entries (as some tools write): a platform choice can pick one.
      const byPlatform = index.manifests.filter((d) => platforms.some((p) => platformMatches(p, d.platform)));
      if (platforms.length > 0 && byPlatform.length === 1) return byPlatform[0]!;
      throw new LayoutError(
        'LAYOUT_AMBIGUOUS',
        `OCI layout ${this.dir} holds more than one image (${index.manifests.length}); name one: oci:${this.dir}:REF`,
      );
    }
    if (isDigest(ref)) {
      const hit = index.manifests.find((d) => d.digest === ref);
      if (hit) return hit;
      throw new NotFoundError(`no image with digest ${ref} in OCI layout ${this.dir}`);
    }
    const hit = (await this.namedEntries()).byName.get(ref);
    if (hit === undefined) {
      const names = index.manifests.map((d) => d.annotations?.[REF_NAME]).filter((n): n is string => !!n);
      throw new NotFoundError(`no image named ${JSON.stringify(ref)} in OCI layout ${this.dir}`, {
        hint: names.length ? `it has: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}` : 'it has no named images',
      });
    }
    return hit;
  }

  async hasBlob(digest: string, size?: number): Promise<boolean> {
    if (this.knownAbsent(digest)) return false;
    const s = await fileSize(this.blobPath(digest));
    return s !== undefined && (size === undefined || size < 0 || s === size);
  }

  /** Read a small blob (manifest, config) fully, verifying digest and size. */
  async readBlobBytes(desc: { digest: string; size?: number }, what: string, cap = MAX_MANIFEST_BYTES): Promise<Buffer> {
    const p = this.blobPath(desc.digest);
    const size = await fileSize(p);
    if (size === undefined) throw new MissingBlobError(desc.digest, what);
    if (size > cap) throw new FerryError('BLOB_TOO_LARGE', `${what}: blob ${desc.digest} is ${size} bytes, over the ${cap}-byte limit`);
    const bytes = await readFile(p);
    verifyBytes(bytes, desc, `${what}: blob ${desc.digest}`);
    return bytes;
  }

  /** Open a blob as a raw stream (callers verify). Throws MissingBlobError at once if absent. */
  async openBlob(digest: string, what: string, start = 0): Promise<Readable> {
    const p = this.blobPath(digest);
    if ((await fileSize(p)) === undefined) throw new MissingBlobError(digest, what);
    return createReadStream(p, { highWaterMark: 1024 * 1024, start });
  }

  /**
   * Store a blob, verified against desc while streaming; atomic. Given a stream, it is written
   * whole. Given an opener (`start` → the blob's bytes from that offset), the download resumes
   * across runs: a temp file a dead writer left for this blob (kept by removeStaleTemps) is
   * claimed, its bytes are hashed again as the start of the blob, and only the rest is opened
   * (a registry sends it with `Range`); a download that fails for any reason but the content
   * (network, Ctrl-C) keeps its temp file for the next try. The digest check covers the kept
   * bytes too: when the whole does not match, the partial is dropped and the blob fetched once
   * more from byte 0. Returns the bytes taken from the source.
   */
  async putBlob(
    desc: { digest: string; size: number },
    source: Readable | ((start: number) => Readable),
    what: string,
    onProgress?: (bytes: number) => void,
  ): Promise<number> {
    const target = this.blobPath(desc.digest);
    if (typeof source !== 'function') {
      const verifier = new DigestVerifier({ digest: desc.digest, size: desc.size, what, ...(onProgress ? { onProgress } : {}) });
      const written = await streamToFileAtomic(target, source, [verifier]);
      this.wrote(desc.digest);
      return written;
    }
    if (desc.size >= 0 && desc.size <= SMALL_BLOB_BYTES) return this.putSmallBlob(desc, source, what, onProgress);
    const partial = await this.claimPartial(desc);
    if (partial !== undefined) {
      try {
        return await this.writeBlob(desc, partial, source, what, onProgress);
      } catch (err) {
        // Only content that does not match: the kept bytes may be what is wrong; once more from 0.
        if (!(err instanceof IntegrityError)) throw err;
      }
    }
    await this.ensureBlobDir(desc.digest);
    return this.writeBlob(desc, { file: tempNameFor(target), size: 0 }, source, what, onProgress);
  }

  /**
   * A small blob (a config, a small layer): read whole into memory (it is at most
   * SMALL_BLOB_BYTES), checked, and written with one write to a temp file opened with O_DSYNC,
   * then renamed. Per blob that is four file system requests instead of a stream pipeline's
   * five (open, write, fsync, close, rename) and none of its per-chunk machinery: with
   * thousands of small images, dispatching file system calls is most of what a pull costs.
   * Crash safety is the stream path's: the name appears only after the bytes are durable, and
   * the directory is fsynced before index.json names anything. A broken download keeps no
   * partial (there is little to resume).
   */
  private async putSmallBlob(
    desc: { digest: string; size: number },
    open: (start: number) => Readable,
    what: string,
    onProgress?: (bytes: number) => void,
  ): Promise<number> {
    const target = this.blobPath(desc.digest);
    const bytes = await readExactly(open(0), desc.size, what);
    verifyBytes(bytes, desc, what);
    onProgress?.(bytes.length);
    await this.ensureBlobDir(desc.digest);
    await writeDurable(target, bytes).catch((err: unknown) => {
      throw pathError(err, this.dir, `writing blob ${desc.digest}`);
    });
    this.wrote(desc.digest);
    return bytes.length;
  }

  /**
   * The blob names blobs/sha256 held when knowBlobNames read it, plus every blob this process
   * wrote since: a digest in neither is absent without a stat (a pull of thousands of small
   * images asked the file system once per blob and manifest only to hear "no"). A blob another
   * process writes meanwhile is not seen, and is then written again: the same verified bytes,
   * renamed over the same name. Undefined: not read (or too many names to keep), stat each.
   */
  private knownNames: Set<string> | undefined;

  /** Read blobs/sha256 once (see knownNames); a destination does this when it opens the store. */
  async knowBlobNames(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(path.join(this.dir, 'blobs', 'sha256'));
    } catch {
      return;
    }
    this.knownNames = names.length <= MAX_KNOWN_NAMES ? new Set(names.filter(isBlobHex)) : undefined;
  }

  /** Certainly not in the layout (see knownNames). */
  private knownAbsent(digest: string): boolean {
    return this.knownNames !== undefined && isDigest(digest) && !this.knownNames.has(hex(digest));
  }

  /** A blob was renamed into blobs/sha256 by this process. */
  private wrote(digest: string): void {
    this.blobsDirty = true;
    if (this.knownNames && isDigest(digest)) this.knownNames.add(hex(digest));
  }

  /** blobs/sha256, created once per run, not once per blob. */
  private async ensureBlobDir(digest: string): Promise<void> {
    this.blobDir ??= mkdir(path.join(this.dir, 'blobs', 'sha256'), { recursive: true }).then(() => undefined);
    await this.blobDir.catch((err: unknown) => {
      this.blobDir = undefined;
      throw pathError(err, this.dir, `writing blob ${digest}`);
    });
  }

  /** blobs/sha256 made (ensureBlobDir). */
  private blobDir: Promise<void> | undefined;

  /** Partial downloads of dead runs, by blob hex, read once (claimPartial). */
  private deadPartials: Promise<Map<string, DeadTemp[]>> | undefined;

  /** Temp files of this process kept after a failed download, by digest (claimable once their try ended). */
  private readonly ownPartials = new Map<Digest, string>();

  /**
   * The longest partial download of `desc` whose writer is gone (or an earlier try of this
   * process), renamed to a temp name of this process: the rename is the claim, so two runs
   * never append to one file (the loser's rename fails and it tries the next, or starts at 0).
   */
  private async claimPartial(desc: { digest: string; size: number }): Promise<{ file: string; size: number } | undefined> {
    const target = this.blobPath(desc.digest);
    const base = hex(desc.digest as Digest);
    // The directory is read once per run (it holds every blob: one read per blob would make a
    // pull quadratic in blobs), by removeStaleTemps when the run began with it; a partial left by
    // a run that dies after this one started is not seen until the next run.
    this.deadPartials ??= deadTemps(path.dirname(target), isBlobHex).then(partialsByBlob);
    const byBase = await this.deadPartials;
    const candidates = (byBase.get(base) ?? []).map((t) => ({ file: t.file, size: t.size }));
    byBase.delete(base);
    const own = this.ownPartials.get(desc.digest as Digest);
    if (own !== undefined) {
      this.ownPartials.delete(desc.digest as Digest);
      const size = await fileSize(own);
      if (size !== undefined) candidates.push({ file: own, size });
    }
    candidates.sort((a, b) => b.size - a.size);
    for (const c of candidates) {
      if (c.size === 0 || c.size > desc.size) continue;
      const mine = tempNameFor(target);
      try {
        await rename(c.file, mine);
      } catch {
        continue; // claimed by another run meanwhile
      }
      // Another run may have claimed it first and grown it since: its size now is what counts.
      const size = await fileSize(mine);
      if (size === undefined || size > desc.size) {
        await rm(mine, { force: true });
        continue;
      }
      return { file: mine, size };
    }
    return undefined;
  }

  /**
   * Write the blob into `partial.file` after its first `partial.size` bytes (already there):
   * those bytes are read back through the verifier first, then the source from that offset.
   */
  private async writeBlob(
    desc: { digest: string; size: number },
    partial: { file: string; size: number },
    open: (start: number) => Readable,
    what: string,
    onProgress?: (bytes: number) => void,
  ): Promise<number> {
    const target = this.blobPath(desc.digest);
    const kept = partial.size;
    const verifier = new DigestVerifier({ digest: desc.digest, size: desc.size, what, ...(onProgress ? { onProgress } : {}) });
    let fetched = 0;
    let rest: Readable | undefined;
    // pipeline() calls a source function with { signal }, aborted when a later stage fails.
    async function* bytes({ signal }: { signal: AbortSignal }): AsyncGenerator<Buffer> {
      if (kept > 0) {
        for await (const chunk of createReadStream(partial.file, { start: 0, end: kept - 1, highWaterMark: 1024 * 1024 })) {
          yield chunk as Buffer;
        }
      }
      // A complete partial needs nothing more (a Range from its end would be refused).
      if (kept > 0 && kept >= desc.size) return;
      rest = open(kept);
      signal.addEventListener('abort', () => rest?.destroy(), { once: true });
      for await (const chunk of rest) {
        fetched += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
    }
    // The kept bytes are in the file already: only what follows them is appended.
    let skip = kept;
    const appendOnly = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        if (skip >= chunk.length) {
          skip -= chunk.length;
          return cb();
        }
        const out = skip > 0 ? chunk.subarray(skip) : chunk;
        skip = 0;
        cb(null, out);
      },
    });
    const sink = new FileSink(partial.file, { append: true });
    // The store's own file system failing (read-only, full, forbidden) is said about the store.
    let storeFailure: unknown;
    sink.once('error', (err) => {
      storeFailure ??= pathError(err, this.dir, `writing blob ${desc.digest}`);
    });
    try {
      await pipeline(bytes as unknown as () => AsyncIterable<Buffer>, verifier, appendOnly, sink);
      await rename(partial.file, target).catch((err: unknown) => {
        storeFailure = pathError(err, this.dir, `writing blob ${desc.digest}`);
        throw storeFailure;
      });
    } catch (err) {
      rest?.destroy();
      sink.destroy();
      await sink.fdClosed;
      // Bytes that cannot be the blob's are dropped, as is a partial on a full disk; a download
      // cut short (network, Ctrl-C) is kept for the next try.
      const full = (storeFailure as { code?: string } | undefined)?.code === 'PATH_NO_SPACE';
      if (err instanceof IntegrityError || full || (await fileSize(partial.file).catch(() => undefined)) === 0) {
        await rm(partial.file, { force: true });
      } else {
        this.ownPartials.set(desc.digest as Digest, partial.file);
      }
      throw storeFailure instanceof Error ? storeFailure : err;
    }
    this.wrote(desc.digest);
    return fetched;
  }

  async putBytes(bytes: Uint8Array, expected?: Digest): Promise<Digest> {
    const digest = sha256(bytes);
    if (expected && expected !== digest) verifyBytes(bytes, { digest: expected }, 'storing manifest');
    const p = this.blobPath(digest);
    if (this.knownAbsent(digest) || (await fileSize(p)) !== bytes.byteLength) {
      await this.ensureBlobDir(digest);
      await writeDurable(p, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      this.wrote(digest);
    }
    return digest;
  }

  /**
   * Add or replace index.json entries, under the lock. An entry replaces existing ones that
   * carry the same ref.name; entries with no ref.name replace ones with the same digest. A
   * replacement keeps the place of what it replaces, so writing the same entries again leaves
   * index.json untouched. Returns true when index.json changed.
   */
  async putIndexEntries(entries: Descriptor[]): Promise<boolean> {
    return (await this.commitEntries(entries)).some((c) => c);
  }

  /**
   * Name one entry (as putIndexEntries does) in a group commit: entries queued while a write
   * is in flight (or in the same turn of the event loop) are merged and written together, with
   * one lock, one read, one merge, one blobs-dir fsync and one atomic write per batch, instead
   * of a rewrite of the whole index.json per image. Resolves once the batch holding the entry
   * is durable: true when this entry changed index.json (it was new or different).
   */
  queueIndexEntry(entry: Descriptor): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.queued.push({ entry, resolve, reject });
      if (!this.committing) this.committing = this.drainQueue();
    });
  }

  private queued: Array<{ entry: Descriptor; resolve: (changed: boolean) => void; reject: (err: unknown) => void }> = [];
  private committing: Promise<void> | undefined;

  private async drainQueue(): Promise<void> {
    // One turn of the event loop, so the images that finish together go into the first batch.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queued.length > 0) {
      const batch = this.queued;
      this.queued = [];
      const started = performance.now();
      try {
        const changed = await this.commitEntries(batch.map((b) => b.entry));
        for (const [i, b] of batch.entries()) b.resolve(changed[i]!);
      } catch (err) {
        // The whole batch failed (lock, read or write); its callers report it, later batches retry.
        for (const b of batch) b.reject(err);
      }
      // A commit costs O(index size) and three fsyncs: when images finish one by one, wait at
      // least 100 ms, and twice as long as the last commit took, before the next, so rewriting
      // index.json takes at most about a third of a run however large the index grows, and its
      // fsyncs do not crowd out the blob writes' (a backlog of a full batch goes at once).
      const pause = Math.min(MAX_COMMIT_PAUSE_MS, Math.max(MIN_COMMIT_PAUSE_MS, 2 * (performance.now() - started)));
      if (this.queued.length > 0 && this.queued.length < FULL_BATCH) await new Promise<void>((r) => setTimeout(r, pause));
    }
    this.committing = undefined;
  }

  /** One read-merge-write of index.json under the lock; per entry, whether it changed the index. */
  private async commitEntries(entries: Descriptor[]): Promise<boolean[]> {
    return withLayoutLock(this.dir, async () => {
      const { raw, manifests: current } = await this.readIndex();
      const { next, changed } = mergeIndexEntries(current, stampAdded(current, entries));
      const any = changed.some((c) => c);
      // Blob files are fsynced but their directory entries are not (one fsync per blob is
      // slow): make them durable, once, before index.json names them, so a power cut cannot
      // leave a name whose blobs vanished. Also when index.json changes without blobs from
      // this process: another process (or a killed earlier run) may have written them.
      if (any || this.blobsDirty) await this.syncBlobsDir();
      if (!any) return changed;
      const doc = { ...raw, schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: next };
      await writeFileAtomic(this.indexPath, `${JSON.stringify(doc, null, 2)}\n`);
      return changed;
    });
  }

  /**
   * Rewrite index.json's entries under the lock: `edit` gets the current entries (read under
   * the lock) and returns the new list, or undefined to leave index.json alone. For `ferry
   * store tag` and `rm`, which must decide against what is there when they write.
   */
  async updateIndex<T>(edit: (current: Descriptor[]) => { manifests: Descriptor[] | undefined; result: T }): Promise<T> {
    return withLayoutLock(this.dir, async () => {
      const { raw, manifests: current } = await this.readIndex();
      const { manifests, result } = edit(current);
      if (manifests === undefined) return result;
      if (this.blobsDirty) await this.syncBlobsDir();
      const doc = { ...raw, schemaVersion: 2, mediaType: MediaType.OciIndex, manifests };
      await writeFileAtomic(this.indexPath, `${JSON.stringify(doc, null, 2)}\n`);
      return result;
    });
  }

  private async syncBlobsDir(): Promise<void> {
    this.blobsDirty = false; // blobs renamed in while the fsync runs set it again
    try {
      await fsyncDir(path.join(this.dir, 'blobs', 'sha256'));
    } catch (err) {
      this.blobsDirty = true;
      throw err;
    }
  }

  /**
   * Remove temp files that killed runs left behind (their writers are gone), except, per blob
   * not stored yet, the longest partial download younger than KEEP_PARTIAL_MS: putBlob resumes
   * from it. Returns how many files were removed.
   */
  async removeStaleTemps(): Promise<number> {
    const dir = path.join(this.dir, 'blobs', 'sha256');
    const dead = await deadTemps(dir, isBlobHex);
    const keep = new Map<string, DeadTemp>();
    const now = Date.now();
    for (const t of dead) {
      if (t.size === 0 || now - t.mtimeMs > KEEP_PARTIAL_MS) continue;
      const best = keep.get(t.base);
      if (best === undefined || t.size > best.size) keep.set(t.base, t);
    }
    for (const [base, t] of keep) if ((await fileSize(path.join(dir, base))) !== undefined) keep.delete(t.base);
    // What is kept is what putBlob may resume: claimPartial need not read the directory again.
    this.deadPartials = Promise.resolve(partialsByBlob(keep.values()));
    let removed = 0;
    for (const t of dead) {
      if (keep.get(t.base) === t) continue;
      await rm(t.file, { force: true });
      removed++;
    }
    return removed;
  }
}

/** A blob file's name under blobs/sha256 (what a temp file there is for). */
const isBlobHex = (base: string): boolean => /^[a-f0-9]{64}$/.test(base);

/** Dead temp files by the blob they were for. */
function partialsByBlob(dead: Iterable<DeadTemp>): Map<string, DeadTemp[]> {
  const byBase = new Map<string, DeadTemp[]>();
  for (const t of dead) {
    const list = byBase.get(t.base);
    if (list) list.push(t);
    else byBase.set(t.base, [t]);
  }
  return byBase;
}

/**
 * Entries with ADDED_ANNOTATION: the time now for a name that is new or now names another
 * digest; the time recorded before for one naming the same digest again (so a repeated pull
 * leaves index.json as it was, and an entry of an earlier version stays without one). An
 * entry that carries its own time keeps it.
 */
function stampAdded(current: Descriptor[], entries: Descriptor[]): Descriptor[] {
  const before = new Map<string, Descriptor>();
  for (const d of current) if (!before.has(entryKey(d))) before.set(entryKey(d), d);
  const now = new Date().toISOString();
  return entries.map((e) => {
    if (e.annotations?.[ADDED_ANNOTATION] !== undefined) return e;
    const prev = before.get(entryKey(e));
    const added = prev === undefined || prev.digest !== e.digest ? now : prev.annotations?.[ADDED_ANNOTATION];
    return added === undefined ? e : { ...e, annotations: { ...e.annotations, [ADDED_ANNOTATION]: added } };
  });
}

/** What an index entry replaces: entries of the same ref.name, or unnamed entries of the same digest. */
function entryKey(d: Descriptor): string {
  const name = d.annotations?.[REF_NAME];
  return name !== undefined ? `n\0${name}` : `d\0${d.digest}`;
}

const sameEntry = (a: Descriptor, b: Descriptor): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

/**
 * Merge `entries` into `current` in one pass (O(current + entries)), with the meaning of
 * applying them one after another: an entry takes the place of the first existing entry with
 * its key and removes the others with that key; an entry with a new key is appended; of two
 * entries with one key, the later wins (at the earlier one's place). `changed[i]` says whether
 * entries[i] changed the index (new, different, or it removed duplicates of its key).
 */
export function mergeIndexEntries(current: Descriptor[], entries: Descriptor[]): { next: Descriptor[]; changed: boolean[] } {
  const incoming = new Map<string, { entry: Descriptor; indexes: number[]; placed: boolean; changed: boolean }>();
  entries.forEach((e, i) => {
    const key = entryKey(e);
    const slot = incoming.get(key);
    if (slot) {
      slot.entry = e;
      slot.indexes.push(i);
    } else incoming.set(key, { entry: e, indexes: [i], placed: false, changed: false });
  });
  const next: Descriptor[] = [];
  for (const d of current) {
    const slot = incoming.get(entryKey(d));
    if (!slot) next.push(d);
    else if (!slot.placed) {
      slot.placed = true;
      if (!sameEntry(d, slot.entry)) slot.changed = true;
      next.push(slot.entry);
    } else slot.changed = true; // a duplicate of the key: removed
  }
  const changed = entries.map(() => false);
  for (const slot of incoming.values()) {
    if (!slot.placed) {
      slot.changed = true;
      next.push(slot.entry);
    }
    // Earlier entries of a key that a later one overrode changed nothing that is left.
    if (slot.changed) changed[slot.indexes.at(-1)!] = true;
  }
  return { next, changed };
}

/** The most blob names knowBlobNames keeps (~100 bytes each); a larger store is asked per blob. */
const MAX_KNOWN_NAMES = 200_000;

/** Blobs up to this size are read whole and written with one write (OciLayout.putSmallBlob). */
export const SMALL_BLOB_BYTES = 64 * 1024;

/** O_DSYNC where the platform has it: each write returns once its bytes are durable. */
const DSYNC = fsConstants.O_DSYNC ?? 0;

/**
 * The bytes of `stream`, which must be exactly `size` (fewer: the verifier's SizeMismatchError
 * follows from the length; more: refused as soon as they arrive, as DigestVerifier does).
 */
async function readExactly(stream: Readable, size: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > size) throw new SizeMismatchError(size, n, `${what} (more bytes than declared)`);
      chunks.push(chunk);
    }
  } finally {
    stream.destroy();
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
}

/**
 * `data` into a new temp file beside `target` (durable when the write returns: O_DSYNC, or an
 * fsync where the platform has no O_DSYNC), then renamed to `target`. The directory is not
 * fsynced (see OciLayout.blobsDirty). The temp file is removed on failure.
 */
async function writeDurable(target: string, data: Buffer): Promise<void> {
  const tmp = tempNameFor(target);
  const fh = await open(tmp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | DSYNC, 0o644);
  try {
    for (let off = 0; off < data.length; ) {
      const { bytesWritten } = await fh.write(data, off);
      if (bytesWritten <= 0) throw new FerryError('WRITE_FAILED', `writing ${tmp}: the file system took no bytes`);
      off += bytesWritten;
    }
    if (DSYNC === 0) await fh.sync();
    await fh.close();
    await rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
}
