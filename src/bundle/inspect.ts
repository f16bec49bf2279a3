/**
 * `inspect`: what a bundle (or an OCI layout store) holds, from its manifest alone: images,
 * platforms, sizes, signature state. Reads the first members of a bundle only; it does not
 * verify content (that is verifyBundle's job).
 */
import { OciLayout } from '../transports/oci/layout.js';
import { parseLocation } from '../transports/table.js';
import { readBundleHead } from './reader.js';
import { loadPublicKey, verifyManifestSignature } from './sign.js';
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
  images: InspectImage[];
  blobs: number;
  referencedBytes: number;
  uniqueBytes: number;
  storedBytes: number;
  signature: 'none' | 'present' | 'valid' | 'invalid';
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
    };
  }
  const key = opts.key !== undefined ? await loadPublicKey(opts.key) : undefined;
  const { manifest, manifestBytes, signature } = await readBundleHead(source);
  let sig: InspectResult['signature'] = signature ? 'present' : 'none';
  if (signature && key) sig = verifyManifestSignature(manifestBytes, signature, key) ? 'valid' : 'invalid';
  return {
    source,
    kind: 'bundle',
    format: manifest.formatVersion,
    tool: manifest.tool,
    created: manifest.created,
    images: manifest.images.map(({ ref, digest, mediaType, platforms, totalSize }) => ({ ref, digest, mediaType, platforms, totalSize })),
    blobs: manifest.totals.blobs,
    referencedBytes: manifest.totals.referencedBytes,
    uniqueBytes: manifest.totals.uniqueBytes,
    storedBytes: manifest.totals.storedBytes,
    signature: sig,
  };
}
