/**
 * Inventory of an OCI image layout (`oci:DIR`), read only: every name in index.json with its
 * digest, and every blob a name reaches whose file is present with the size its descriptor
 * declares. Manifests and indexes are read and verified (digest and size) because their
 * children are walked; layers and configs are confirmed by their file's size only (a layout
 * written by ferry holds verified content in every blob file; `ferry verify` rehashes). A file
 * under blobs/sha256 that no name reaches is not claimed: a garbage collector may take it.
 */
import { isDigest, type Digest } from '../oci/digest.js';
import { MAX_INDEX_DEPTH, parseManifest, type Descriptor } from '../oci/manifest.js';
import { OciLayout, REF_NAME } from '../transports/oci/layout.js';
import { AbortedError, errorMessage, FerryError } from '../util/errors.js';
import { eachLimit } from '../copy/scheduler.js';
import { type Collected, type CollectOptions, plural } from './collect.js';

export async function collectLayout(dir: string, opts: CollectOptions): Promise<Collected> {
  const layout = await OciLayout.open(dir);
  const index = await layout.readIndex();
  const images: Collected['images'] = [];
  const notes: string[] = [];
  let unnamed = 0;
  let badDigest = 0;
  const roots: Descriptor[] = [];
  for (const d of index.manifests) {
    const name = d.annotations?.[REF_NAME];
    if (!isDigest(d.digest)) {
      badDigest++;
      continue;
    }
    if (name === undefined || name === '') {
      unnamed++;
      continue;
    }
    images.push({ name, digest: d.digest });
    roots.push(d);
  }
  if (unnamed) notes.push(`${plural(unnamed, 'index.json entry', 'index.json entries')} without a name: not inventoried`);
  if (badDigest)
    notes.push(`${plural(badDigest, 'index.json entry', 'index.json entries')} with a digest other than sha256: not inventoried`);

  const present = new Set<Digest>();
  const missing = new Set<string>();
  const unreadable: string[] = [];
  // Each manifest once, level by level (an index's children are one level down): iterative and
  // bounded by the depth every ferry reader allows.
  const seen = new Set<string>();
  const leaves = new Map<string, number>();
  let level = roots.filter((d) => !seen.has(d.digest) && seen.add(d.digest));
  for (let depth = 0; level.length > 0; depth++) {
    if (depth > MAX_INDEX_DEPTH) {
      notes.push(`indexes nested deeper than ${MAX_INDEX_DEPTH} levels: what lies below was not inventoried`);
      break;
    }
    const next: Descriptor[] = [];
    await eachLimit(level, opts.concurrency, async (d) => {
      if (opts.signal?.aborted) throw new AbortedError('inventory aborted');
      let doc: ReturnType<typeof parseManifest>;
      try {
        const bytes = await layout.readBlobBytes(d, `manifest ${d.digest}`);
        doc = parseManifest(bytes, d.mediaType, `manifest ${d.digest} in ${layout.dir}`);
      } catch (err) {
        if (!(err instanceof FerryError)) throw err;
        if (err.code === 'BLOB_MISSING') missing.add(d.digest);
        else unreadable.push(`${d.digest}: ${errorMessage(err)}`);
        return;
      }
      present.add(d.digest as Digest);
      const children = doc.kind === 'index' ? doc.manifests : [doc.config, ...doc.layers];
      for (const c of children) {
        if (!isDigest(c.digest) || seen.has(c.digest)) continue;
        seen.add(c.digest);
        if (doc.kind === 'index') next.push(c);
        else leaves.set(c.digest, c.size);
      }
    });
    level = next;
  }
  const leafList = [...leaves];
  await eachLimit(leafList, opts.concurrency, async ([digest, size]) => {
    if (await layout.hasBlob(digest, size)) present.add(digest as Digest);
    else missing.add(digest);
  });
  if (missing.size) notes.push(`${plural(missing.size, 'blob')} that names reach missing or of the wrong size: not claimed`);
  for (const u of unreadable.sort().slice(0, 20)) notes.push(`manifest not readable, not claimed: ${u}`);
  notes.push('layers and configs confirmed by file size (ferry verifies every blob it writes; ferry verify rehashes)');
  return { images, blobs: [...present], notes };
}
