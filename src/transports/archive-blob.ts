/**
 * One blob into a tar stream an engine reads (Docker Engine's load, containerd's import):
 * opened from its source, verified while it streams, its last chunk held back until the digest
 * matched, so the engine never receives a complete copy of bad content. Shared by the
 * docker-daemon and containerd destinations.
 */
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DigestVerifier } from '../oci/digest.js';
import type { Descriptor } from '../oci/manifest.js';
import type { TarWriter } from '../tar/writer.js';

/**
 * putBlob of an ordered stream: add `desc` as the tar member `name`
 * from the bytes `open(0)` gives, verified on the way, the last chunk held back until the digest
 * matched. No events: the executor emits them. Rejects with the source's or the verifier's own
 * error (rather than the tar's view of it).
 */
export async function putVerifiedMember(
  tar: TarWriter,
  name: string,
  desc: Descriptor,
  open: (start: number) => Readable,
  opts: { what: string; onProgress?: ((bytes: number) => void) | undefined },
): Promise<number> {
  const verifier = new DigestVerifier({
    digest: desc.digest,
    size: desc.size,
    what: opts.what,
    holdLast: true,
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  });
  const blob = open(0);
  const piped = pipeline(blob, verifier);
  piped.catch(() => {}); // observed through the tar, or below
  try {
    await tar.addFile(name, desc.size, verifier);
    await piped;
  } catch (err) {
    const cause = await piped.then(
      () => err,
      (e: unknown) => e,
    );
    blob.destroy();
    throw cause;
  }
  return desc.size;
}
