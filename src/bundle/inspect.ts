/**
 * `inspect`: what a bundle (or an OCI layout store) holds, from its manifest: images,
 * platforms, sizes, signature state. A bundle is read as `ferry load` reads it before loading
 * (verifyBundle with deferBlobContent: the tar's headers, the head with the same rules for
 * duplicates and order, index.json, SHA256SUMS, every manifest), so inspect, verify and load
 * agree on what the bundle says; what inspect did not check (blob content, an unverified
 * signature) is said in `notChecked`. A bundle read from a pipe is read once, wholly verified.
 */
import type { BundleManifest } from './format.js';
import { stat } from 'node:fs/promises';
import { OciLayout } from '../transports/oci/layout.js';
import { parseLocation } from '../transports/table.js';
import { IntegrityError } from '../util/errors.js';
import { isStdin } from '../util/fsutil.js';
import { createReadStream } from 'node:fs';
import { siblingWarnings } from './volume-files.js';
import { verifyBundle, verifyBundleStream, type Problem } from './verify.js';
import { TOOL_VERSION, planBundle } from './writer.js';

export interface InspectImage {
  ref: string;
  digest: string;
  mediaType: string;
  platforms: string[];
  totalSize: number;
}

export interface InspectResult {
  source: string;
  kind: 'bundle' | 'oci-layout';
  /** Bundle formatVersion (undefined for a layout). */
  format: number | undefined;
  tool: { name: string; version: string };
  created: string | undefined;
  /** The profiles (and lock) a bundle was planned from, as ferry-bundle.json records them. */
  imageSet?: BundleManifest['imageSet'];
  /** A differential bundle's base and the blobs it relies on. */
  base?: BundleManifest['base'];
  /** One volume of a set (--volume-size): its number, the count, the set id and which volume holds which images. */
  volume?: BundleManifest['volume'];
  /** Bundles: sha256 of ferry-bundle.json, the blobs carried and those relied on (what `bundle --base` of this output needs). */
  manifestDigest?: string;
  blobDigests?: string[];
  baseDigests?: string[];
  images: InspectImage[];
  blobs: number;
  referencedBytes: number;
  uniqueBytes: number;
  storedBytes: number;
  signature: 'none' | 'present' | 'valid' | 'invalid';
  /** A volume: things worth saying that are not problems of this bundle (volumes of another set under its NAME beside it). */
  warnings?: string[];
  /** Problems found in what was read (a bundle with any is refused by verify and load: exit 3). */
  problems: Problem[];
  /** What inspect did not check, in words (empty for a layout, and for a bundle read from a pipe). */
  notChecked: string[];
}

export async function inspect(source: string, opts: { key?: string } = {}): Promise<InspectResult> {
  // An oci: store goes through the table's grammar (the path ends at the first colon, as
  // skopeo's); oci:DIR:REF inspects the one image REF names. Anything else is a bundle file.
  if (source.startsWith('oci:')) {
    const loc = parseLocation(source);
    if (loc.transport !== 'oci') throw new TypeError(`not an oci: location: ${source}`);
    const store = await OciLayout.open(loc.path);
    const plan = await planBundle(store, loc.ref !== undefined ? [loc.ref] : undefined, 'none');
    const uniqueBytes = plan.blobs.reduce((n, b) => n + b.size, 0);
    return {
      source,
      kind: 'oci-layout',
      format: undefined,
      tool: { name: 'ferry', version: TOOL_VERSION },
      created: undefined,
      images: plan.images.map(({ ref, digest, mediaType, platforms, totalSize }) => ({ ref, digest, mediaType, platforms, totalSize })),
      blobs: plan.blobs.length,
      referencedBytes: plan.images.reduce((n, i) => n + i.totalSize, 0),
      uniqueBytes,
      storedBytes: uniqueBytes,
      signature: 'none',
      problems: [],
      notChecked: [],
    };
  }
  const fromPipe = isStdin(source) || !(await stat(source)).isFile();
  const checked = fromPipe
    ? await verifyBundleStream(isStdin(source) ? process.stdin : createReadStream(source), opts.key !== undefined ? { key: opts.key } : {})
    : await verifyBundle(source, { deferBlobContent: true, ...(opts.key !== undefined ? { key: opts.key } : {}) });
  const manifest = checked.manifest;
  if (!manifest) {
    const shown = checked.problems
      .slice(0, 5)
      .map((p) => `  ${p.code}: ${p.message}`)
      .join('\n');
    throw new IntegrityError('BUNDLE_INVALID', `${source} cannot be inspected: its ferry-bundle.json could not be read\n${shown}`, {
      hint: `\`ferry verify ${source}\` lists every problem`,
    });
  }
  const notChecked: string[] = [];
  if (!fromPipe) notChecked.push('blob content (digests, zstd members): ferry verify checks it');
  if (checked.signature === 'present') notChecked.push('the signature: no --key given');
  const warnings = manifest.volume && !fromPipe ? await siblingWarnings(source, manifest) : [];
  return {
    source,
    kind: 'bundle',
    format: manifest.formatVersion,
    tool: manifest.tool,
    created: manifest.created,
    ...(manifest.imageSet ? { imageSet: manifest.imageSet } : {}),
    ...(manifest.base ? { base: manifest.base } : {}),
    ...(manifest.volume ? { volume: manifest.volume } : {}),
    ...(checked.manifestDigest ? { manifestDigest: checked.manifestDigest } : {}),
    blobDigests: manifest.members.flatMap((m) => (m.digest ? [m.digest] : [])),
    baseDigests: (manifest.base?.blobs ?? []).map((b) => b.digest),
    images: manifest.images.map(({ ref, digest, mediaType, platforms, totalSize }) => ({ ref, digest, mediaType, platforms, totalSize })),
    blobs: manifest.totals.blobs,
    referencedBytes: manifest.totals.referencedBytes,
    uniqueBytes: manifest.totals.uniqueBytes,
    storedBytes: manifest.totals.storedBytes,
    signature: checked.signature,
    problems: checked.problems,
    notChecked,
    ...(warnings.length > 0 ? { warnings } : {}),
  };
}
