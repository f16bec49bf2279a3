/** Manifests from a registry: exact bytes, verified against the digest asked for or announced. */
import { MANIFEST_ACCEPT } from '../../oci/mediatypes.js';
import { isDigest, sha256, type Digest } from '../../oci/digest.js';
import { MAX_MANIFEST_BYTES } from '../../oci/manifest.js';
import { DigestMismatchError, InvalidManifestError } from '../../util/errors.js';
import { header, readCappedBytes, type RegistryClient } from './client.js';

export interface FetchedManifest {
  bytes: Buffer;
  /** The Content-Type the registry served (parameters stripped). */
  mediaType: string | undefined;
  digest: Digest;
}

export function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}

/** GET a manifest by tag or digest with the full Accept list. */
export async function getManifest(
  client: RegistryClient,
  repo: string,
  reference: string,
  what: string,
  signal?: AbortSignal,
): Promise<FetchedManifest> {
  const res = await client.send({
    method: 'GET',
    path: `/v2/${repo}/manifests/${reference}`,
    scope: pullScope(repo),
    headers: { accept: MANIFEST_ACCEPT.join(', ') },
    expect: [200],
    what,
    ...(signal ? { signal } : {}),
  });
  const declaredLength = Number(header(res.headers, 'content-length') ?? NaN);
  if (declaredLength > MAX_MANIFEST_BYTES) {
    res.body.destroy();
    throw new InvalidManifestError(what, `registry announced ${declaredLength} bytes, over the ${MAX_MANIFEST_BYTES}-byte manifest limit`);
  }
  const bytes = await readCappedBytes(res.body, MAX_MANIFEST_BYTES, what);
  const actual = sha256(bytes);
  if (isDigest(reference)) {
    if (actual !== reference) throw new DigestMismatchError(reference, actual, `${what} (manifest body)`);
  } else {
    const announced = header(res.headers, 'docker-content-digest');
    if (announced && announced.startsWith('sha256:') && announced !== actual) {
      throw new DigestMismatchError(announced, actual, `${what} (Docker-Content-Digest vs body)`);
    }
  }
  const ct = header(res.headers, 'content-type')?.split(';')[0]?.trim();
  return { bytes, mediaType: ct || undefined, digest: actual };
}
