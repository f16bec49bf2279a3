/**
 * Where `ferry load` writes: `oci:DIR`, `docker://HOST[:PORT][/PREFIX]`,
 * `docker-daemon[:SOCKET]`, `containerd[:SOCKET][?namespace=NS]`. Destinations name a place,
 * not an image: image names come from the source.
 */
import { UsageError } from '../util/errors.js';
import { parseRegistryDestination, type RegistryDestination } from '../transports/registry/names.js';

export const DEFAULT_CONTAINERD_NAMESPACE = 'k8s.io';

export type LoadDestination =
  | { kind: 'oci'; dir: string }
  | ({ kind: 'registry' } & RegistryDestination)
  | { kind: 'docker-daemon'; socket: string | undefined }
  | { kind: 'containerd'; address: string | undefined; namespace: string };

const FORMS = 'oci:DIR, docker://HOST[:PORT][/PREFIX], docker-daemon[:SOCKET] or containerd[:SOCKET][?namespace=NS]';

/** A socket given as a path or as unix:///path. */
function socketPath(s: string, what: string): string {
  const p = s.startsWith('unix://') ? s.slice('unix://'.length) : s;
  if (p === '' || /^[a-z]+:\/\//.test(p)) throw new UsageError(`${what}: expected a unix socket path, got ${JSON.stringify(s)}`);
  return p;
}

export function parseLoadDestination(input: string): LoadDestination {
  const s = input.trim();
  if (s.startsWith('docker://')) return { kind: 'registry', ...parseRegistryDestination(s.slice('docker://'.length)) };
  if (s.startsWith('oci:')) {
    const rest = s.slice('oci:'.length);
    if (rest === '') throw new UsageError('oci: needs a directory, e.g. --to oci:./store');
    // Like skopeo, the path ends at the first colon; a reference part makes no sense here.
    if (rest.includes(':')) {
      throw new UsageError(`--to ${input}: an oci: destination is a directory; the images keep the names they have in the source`);
    }
    return { kind: 'oci', dir: rest };
  }
  if (s === 'docker-daemon' || s.startsWith('docker-daemon:')) {
    const rest = s.slice('docker-daemon'.length).replace(/^:/, '');
    return { kind: 'docker-daemon', socket: rest === '' ? undefined : socketPath(rest, 'docker-daemon') };
  }
  if (s === 'containerd' || s.startsWith('containerd:') || s.startsWith('containerd?')) {
    let rest = s.slice('containerd'.length).replace(/^:/, '');
    let namespace = DEFAULT_CONTAINERD_NAMESPACE;
    const q = rest.indexOf('?');
    if (q !== -1) {
      const params = new URLSearchParams(rest.slice(q + 1));
      for (const k of params.keys()) {
        if (k !== 'namespace') throw new UsageError(`--to ${input}: unknown parameter ${JSON.stringify(k)} (only namespace=NS)`);
      }
      const ns = params.get('namespace');
      // containerd's identifier rule (pkg/identifiers): alphanumeric runs joined by single
      // '.', '_' or '-', at most 76 characters (containerd 1.6/1.7).
      if (!ns || !/^[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*$/.test(ns) || ns.length > 76) {
        throw new UsageError(`--to ${input}: invalid containerd namespace ${JSON.stringify(ns ?? '')}`);
      }
      namespace = ns;
      rest = rest.slice(0, q);
    }
    return { kind: 'containerd', address: rest === '' ? undefined : socketPath(rest, 'containerd'), namespace };
  }
  if (/^(oci-archive|docker-archive|dir|containers-storage):/.test(s)) {
    throw new UsageError(`ferry load cannot write to ${s.split(':')[0]}: (destinations: ${FORMS})`);
  }
  throw new UsageError(`invalid destination ${JSON.stringify(input)}: expected ${FORMS}`);
}

export function formatLoadDestination(d: LoadDestination): string {
  switch (d.kind) {
    case 'oci':
      return `oci:${d.dir}`;
    case 'registry':
      return `docker://${d.host}${d.prefix ? `/${d.prefix}` : ''}`;
    case 'docker-daemon':
      return d.socket ? `docker-daemon:${d.socket}` : 'docker-daemon';
    case 'containerd':
      return `containerd${d.address ? `:${d.address}` : ''}?namespace=${d.namespace}`;
  }
}
