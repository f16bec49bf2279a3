/**
 * Image locations in skopeo's syntax: `docker://REF`, `oci:PATH[:REF]`, `oci-archive:PATH[:REF]`,
 * `docker-archive:PATH[:REF|:@N]`, `docker-daemon:REF`, plus ferry's `containerd:REF` and
 * `bundle:PATH`. formatLocation(parseLocation(s)) round-trips.
 */
import { parseReference, type Reference } from '../ref/reference.js';
import { UsageError } from '../util/errors.js';

export type ImageLocation =
  | { transport: 'docker'; ref: Reference }
  | { transport: 'oci' | 'oci-archive' | 'docker-archive' | 'bundle'; path: string; ref: string | undefined }
  | { transport: 'docker-daemon' | 'containerd'; ref: Reference };

export const TRANSPORTS = ['docker', 'oci', 'oci-archive', 'docker-archive', 'docker-daemon', 'containerd', 'bundle'] as const;

/**
 * Parse a location. A string with no known transport prefix is a registry reference
 * (`nginx`, `ghcr.io/x/y:1`), as `docker pull` takes it.
 */
export function parseLocation(input: string): ImageLocation {
  const s = input.trim();
  if (s.startsWith('docker://')) return { transport: 'docker', ref: parseReference(s.slice('docker://'.length)) };
  const m = /^(oci|oci-archive|docker-archive|bundle|docker-daemon|containerd):(.*)$/.exec(s);
  if (!m) {
    if (/^[a-z][a-z0-9-]*:\/\//.test(s) || /^(dir|containers-storage|sif|tarball):/.test(s)) {
      throw new UsageError(
        `unsupported transport in ${JSON.stringify(input)}; ferry knows ${TRANSPORTS.map((t) => (t === 'docker' ? 'docker://' : `${t}:`)).join(', ')}`,
      );
    }
    return { transport: 'docker', ref: parseReference(s) };
  }
  const transport = m[1] as 'oci' | 'oci-archive' | 'docker-archive' | 'bundle' | 'docker-daemon' | 'containerd';
  const rest = m[2]!;
  if (transport === 'docker-daemon' || transport === 'containerd') {
    if (rest === '') throw new UsageError(`${transport}: needs an image reference, e.g. ${transport}:nginx:latest`);
    return { transport, ref: parseReference(rest) };
  }
  // Like containers/image on non-Windows systems: the path ends at the first colon.
  const colon = rest.indexOf(':');
  const path = colon === -1 ? rest : rest.slice(0, colon);
  const ref = colon === -1 ? undefined : rest.slice(colon + 1);
  if (path === '') throw new UsageError(`${transport}: needs a path, e.g. ${transport}:./images${transport === 'oci' ? ':myref' : ''}`);
  if (ref !== undefined && ref !== '' && transport === 'oci' && !/^[A-Za-z0-9._@+-]+(?:[/:][A-Za-z0-9._@+-]+)*$/.test(ref)) {
    throw new UsageError(`oci: invalid reference ${JSON.stringify(ref)} in ${JSON.stringify(input)}`);
  }
  return { transport, path, ref: ref === '' ? undefined : ref };
}

export function formatLocation(loc: ImageLocation): string {
  switch (loc.transport) {
    case 'docker':
      return `docker://${loc.ref.toString()}`;
    case 'docker-daemon':
    case 'containerd':
      return `${loc.transport}:${loc.ref.toString()}`;
    default:
      return `${loc.transport}:${loc.path}${loc.ref !== undefined ? `:${loc.ref}` : ''}`;
  }
}
