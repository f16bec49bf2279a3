/**
 * An OCI image layout on disk (image-spec "image-layout"): `oci-layout`, `index.json`,
 * `blobs/<alg>/<hex>`. Reads are strict about digests and sizes; writes are atomic and
 * verified; index.json changes happen under the layout lock.
 */
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { z } from '../../util/zod.js';
import { DigestVerifier, hex, isDigest, sha256, verifyBytes, type Digest } from '../../oci/digest.js';
import { DescriptorSchema, MAX_MANIFEST_BYTES, type Descriptor } from '../../oci/manifest.js';
import { MediaType } from '../../oci/mediatypes.js';
import { platformMatches, type PlatformSpec } from '../../oci/platform.js';
import { FerryError, LayoutError, NotFoundError } from '../../util/errors.js';
import { fileSize, removeDeadTemps, streamToFileAtomic, writeFileAtomic } from '../../util/fsutil.js';
import { withLayoutLock } from './lock.js';

export const REF_NAME = 'org.opencontainers.image.ref.name';
export const CONTAINERD_NAME = 'io.containerd.image.name';
export const MAX_INDEX_JSON_BYTES = 64 * 1024 * 1024;

/** The `oci-layout` file and `index.json` of an image layout, wherever it is stored. */
export const LayoutHeader = z.looseObject({ imageLayoutVersion: z.string() });
export const IndexJson = z.looseObject({
  schemaVersion: z.number().optional(),
  mediaType: z.string().optional(),
  // Docker 25's `docker save` writes "manifests": null; that means no images, not corruption.
  manifests: z.array(DescriptorSchema).nullable(),
  annotations: z.record(z.string(), z.string()).nullish(),
});

export class MissingBlobError extends LayoutError {
  constructor(readonly digest: string, what: string) {
    super('BLOB_MISSING', `${what}: blob ${digest} is missing from the layout`);
  }
}

export interface LayoutIndex {
  manifests: Descriptor[];
  annotations: Record<string, string>;
  /** The whole document, so a rewrite keeps fields ferry does not know. */
  raw: Record<string, unknown>;
}

export class OciLayout {
  private constructor(readonly dir: string) {}

  /** Open an existing layout; with create, make an empty one where none exists. */
  static async open(dir: string, opts: { create?: boolean } = {}): Promise<OciLayout> {
    const abs = path.resolve(dir);
    const layoutFile = path.join(abs, 'oci-layout');
    let header: string | undefined;
    try {
      header = await readFile(layoutFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
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
      await mkdir(path.join(abs, 'blobs', 'sha256'), { recursive: true });
      // Refuse to turn a non-empty unrelated directory into a store.
      const entries = (await readdir(abs)).filter((e) => e !== 'blobs' && !e.startsWith('.'));
      if (entries.length > 0 && !entries.every((e) => e === 'index.json')) {
        throw new LayoutError('LAYOUT_NOT_FOUND', `${abs} is not empty and not an OCI image layout; choose another --store`);
      }
      if (!entries.includes('index.json')) {
        await writeFileAtomic(
          path.join(abs, 'index.json'),
          JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] }),
        );
      }
      await writeFileAtomic(layoutFile, JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      return new OciLayout(abs);
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

  blobPath(digest: string): string {
    if (!isDigest(digest)) throw new LayoutError('DIGEST_INVALID', `refusing to address blob with digest ${JSON.stringify(digest)}`);
    return path.join(this.dir, 'blobs', 'sha256', hex(digest));
  }

  get indexPath(): string {
    return path.join(this.dir, 'index.json');
  }

  async readIndex(): Promise<LayoutIndex> {
    const size = await fileSize(this.indexPath);
    if (size === undefined) throw new LayoutError('LAYOUT_INVALID', `${this.indexPath} is missing`);
    if (size > MAX_INDEX_JSON_BYTES) throw new LayoutError('LAYOUT_INVALID', `${this.indexPath} is ${size} bytes, over the limit`);
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(this.indexPath, 'utf8'));
    } catch {
      throw new LayoutError('LAYOUT_INVALID', `${this.indexPath} is not valid JSON`);
    }
    const r = IndexJson.safeParse(doc);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new LayoutError('LAYOUT_INVALID', `${this.indexPath}: ${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'}`);
    }
    return { manifests: r.data.manifests ?? [], annotations: r.data.annotations ?? {}, raw: r.data };
  }

  /**
   * Find the image a layout reference names. With a name: the entries whose ref.name equals
   * it (the first wins when a layout lists one name twice, as containers/image does). With a
   * digest: the entry with that digest. Without either: the only entry.
   */
  async resolve(ref: string | undefined, platforms: PlatformSpec[] = []): Promise<Descriptor> {
    const index = await this.readIndex();
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
    const hits = index.manifests.filter((d) => d.annotations?.[REF_NAME] === ref);
    if (hits.length === 0) {
      const names = index.manifests.map((d) => d.annotations?.[REF_NAME]).filter((n): n is string => !!n);
      throw new NotFoundError(`no image named ${JSON.stringify(ref)} in OCI layout ${this.dir}`, {
        hint: names.length ? `it has: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}` : 'it has no named images',
      });
    }
    return hits[0]!;
  }

  async hasBlob(digest: string, size?: number): Promise<boolean> {
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

  /** Store a blob from a stream, verified against desc while streaming; atomic. */
  async putBlob(desc: { digest: string; size: number }, source: Readable, what: string, onProgress?: (bytes: number) => void): Promise<number> {
    const verifier = new DigestVerifier({ digest: desc.digest, size: desc.size, what, ...(onProgress ? { onProgress } : {}) });
    return streamToFileAtomic(this.blobPath(desc.digest), source, [verifier]);
  }

  async putBytes(bytes: Uint8Array, expected?: Digest): Promise<Digest> {
    const digest = sha256(bytes);
    if (expected && expected !== digest) verifyBytes(bytes, { digest: expected }, 'storing manifest');
    const p = this.blobPath(digest);
    if ((await fileSize(p)) !== bytes.byteLength) await writeFileAtomic(p, bytes, { syncDir: false });
    return digest;
  }

  /**
   * Add or replace index.json entries, under the lock. An entry replaces existing ones that
   * carry the same ref.name; entries with no ref.name replace ones with the same digest. A
   * replacement keeps the place of what it replaces, so writing the same entries again leaves
   * index.json untouched. Returns true when index.json changed.
   */
  async putIndexEntries(entries: Descriptor[]): Promise<boolean> {
    return withLayoutLock(this.dir, async () => {
      const { raw, manifests: current } = await this.readIndex();
      let next = current;
      for (const e of entries) {
        const name = e.annotations?.[REF_NAME];
        const same = (d: Descriptor): boolean => (name ? d.annotations?.[REF_NAME] === name : d.digest === e.digest && d.annotations?.[REF_NAME] === undefined);
        // The first match is where the entry goes (nothing before it is removed).
        const at = next.findIndex(same);
        next = next.filter((d) => !same(d));
        next.splice(at === -1 ? next.length : at, 0, e);
      }
      if (JSON.stringify(next) === JSON.stringify(current)) return false;
      const doc = { ...raw, schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: next };
      await writeFileAtomic(this.indexPath, JSON.stringify(doc, null, 2) + '\n');
      return true;
    });
  }

  /** Remove temp files that killed runs left behind (their writers are gone). */
  async removeStaleTemps(): Promise<number> {
    return removeDeadTemps(path.join(this.dir, 'blobs', 'sha256'), (base) => /^[a-f0-9]{64}$/.test(base));
  }
}
