/** Manifests from a registry: exact bytes, verified against the digest asked for or announced. */
import { MANIFEST_ACCEPT, MediaType } from '../../oci/mediatypes.js';
import { isDigest, sha256, type Digest } from '../../oci/digest.js';
import { MAX_MANIFEST_BYTES } from '../../oci/manifest.js';
import { DigestMismatchError, InvalidManifestError, Schema1UnsupportedError } from '../../util/errors.js';
import { backoffDelay, isRetryableNetworkError, wait, withinBudget } from './retry.js';
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
  alsoAccept?: string,
): Promise<FetchedManifest> {
  const accept = alsoAccept && !MANIFEST_ACCEPT.includes(alsoAccept) ? [...MANIFEST_ACCEPT, alsoAccept] : MANIFEST_ACCEPT;
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const res = await client.send({
      method: 'GET',
      path: `/v2/${repo}/manifests/${reference}`,
      scope: pullScope(repo),
      headers: { accept: accept.join(', ') },
      expect: [200],
      what,
      ...(signal ? { signal } : {}),
    });
    const declaredLength = Number(header(res.headers, 'content-length') ?? NaN);
    if (declaredLength > MAX_MANIFEST_BYTES) {
      res.body.destroy();
      throw new InvalidManifestError(
        what,
        `registry announced ${declaredLength} bytes, over the ${MAX_MANIFEST_BYTES}-byte manifest limit`,
      );
    }
    let bytes: Buffer;
    try {
      bytes = await readCappedBytes(res.body, MAX_MANIFEST_BYTES, what);
    } catch (err) {
      // The body broke off (reset, premature close): ask again, within the retry policy.
      if (!signal?.aborted && isRetryableNetworkError(err) && withinBudget(client.policy, attempt, started)) {
        await wait(backoffDelay(client.policy, attempt), signal);
        continue;
      }
      throw err;
    }
    const ct = header(res.headers, 'content-type')?.split(';')[0]?.trim();
    // Schema1 before any digest check: a signed schema1 manifest's digest covers its payload
    // without the signatures, so comparing would call it tampered with rather than unsupported.
    if (isSchema1(ct, bytes)) throw new Schema1UnsupportedError(what);
    const actual = sha256(bytes);
    if (isDigest(reference)) {
      if (actual !== reference) throw new DigestMismatchError(reference, actual, `${what} (manifest body)`);
    } else {
      const announced = header(res.headers, 'docker-content-digest');
      if (announced?.startsWith('sha256:') && announced !== actual) {
        throw new DigestMismatchError(announced, actual, `${what} (Docker-Content-Digest vs body)`);
      }
    }
    return { bytes, mediaType: ct || undefined, digest: actual };
  }
}

/** A Docker schema1 manifest, by its media type or, for a generic type, its schemaVersion. */
function isSchema1(contentType: string | undefined, bytes: Buffer): boolean {
  if (contentType === MediaType.DockerSchema1 || contentType === MediaType.DockerSchema1Signed) return true;
  if (contentType && contentType !== 'application/json') return false;
  // Generic or absent Content-Type: look at the document (the first kilobyte says it).
  return /"schemaVersion"\s*:\s*1\s*[,}]/.test(bytes.subarray(0, 1024).toString('utf8'));
}
