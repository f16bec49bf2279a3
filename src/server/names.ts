/**
 * Names on the serving side: the repository and tag grammar of the distribution API, and how
 * an OCI layout's image names (`org.opencontainers.image.ref.name`) map to the repository:tag
 * pairs a registry serves. Pure functions, no I/O.
 */
import { isDigest } from '../oci/digest.js';
import { ANCHORED_TAG_RE } from '../ref/grammar.js';
import { parseNormalizedNamed } from '../ref/reference.js';

/** Upper bound on a repository name in the API, slashes included (distribution's limit). */
export const MAX_REPOSITORY_LENGTH = 255;

/** One path component: alphanumerics separated by ".", "_", "__" or runs of "-". */
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);

/** A repository name as the distribution API accepts it in a URL (`library/nginx`). */
export function isRepositoryName(s: string): boolean {
  // The length check comes first so that the pattern only ever sees short input.
  return s.length > 0 && s.length <= MAX_REPOSITORY_LENGTH && REPOSITORY_RE.test(s);
}

/** A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`. */
export function isTag(s: string): boolean {
  return s.length <= 128 && ANCHORED_TAG_RE.test(s);
}

/**
 * The registry host as the first path component of a scoped name: lower-cased, and a port
 * written after `_` instead of `:` (`127.0.0.1:5000` → `127.0.0.1_5000`, `Reg.example:443` →
 * `reg.example_443`), since `:` cannot appear in a repository name. A registry host never holds
 * `_` (Docker's reference grammar allows letters, digits, `-` and `.`), so two hosts never map
 * to one component. IPv6 literals (`[::1]:5000`) are left as they are, and refused.
 */
export function scopedHost(domain: string): string {
  const lower = domain.toLowerCase();
  return lower.startsWith('[') ? lower : lower.replace(/:(\d+)$/, '_$1');
}

/** Where one index.json entry is served: a repository, and a tag unless it is named by digest only. */
export interface ServedName {
  repository: string;
  tag: string | undefined;
}

/** Where an image named by a full reference came from: its registry (`docker.io`, `127.0.0.1:5000`) and path. */
export interface ImageOrigin {
  registry: string;
  path: string;
}

export type NameResult =
  | { kind: 'served'; name: ServedName; origin: ImageOrigin }
  /** A bare tag ("v1"), servable only under a repository given with the source. */
  | { kind: 'bare-tag'; tag: string }
  | { kind: 'invalid'; reason: string };

/**
 * Map an image name from a layout to the repository:tag it is served as.
 *
 * - A full reference `docker.io/library/nginx:1.25` is served as `library/nginx` tag `1.25`:
 *   the registry host is dropped and the rest of the path kept (unlike `skopeo sync`, which
 *   without --scoped keeps only the last component, `nginx`). With `scoped` the host stays
 *   (`docker.io/library/nginx`), lower-cased, a port after `_` (`127.0.0.1_5000/team/app`,
 *   see scopedHost); an IPv6 host cannot be part of a repository name and is refused.
 * - `name@sha256:…` makes the repository exist without a tag; `name:tag@sha256:…` is served
 *   by its tag.
 * - A bare tag (`v1`, `latest`) is reported as such: the caller decides the repository.
 */
export function servedName(refName: string, opts: { scoped?: boolean } = {}): NameResult {
  if (isTag(refName)) return { kind: 'bare-tag', tag: refName };
  let ref;
  try {
    ref = parseNormalizedNamed(refName);
  } catch (err) {
    return { kind: 'invalid', reason: (err as Error).message };
  }
  const tag = ref.tag;
  if (tag === undefined && (ref.digest === undefined || !isDigest(ref.digest))) {
    return { kind: 'invalid', reason: `${JSON.stringify(refName)} has neither a tag nor a digest` };
  }
  let repository = ref.path;
  if (opts.scoped) {
    repository = `${scopedHost(ref.domain)}/${ref.path}`;
    if (!isRepositoryName(repository)) {
      return {
        kind: 'invalid',
        reason: `${JSON.stringify(refName)} cannot keep its registry in the name (--scoped): ${JSON.stringify(repository)} is not a valid repository name${ref.domain.startsWith('[') ? ' (an IPv6 address cannot be part of one)' : ''}`,
      };
    }
  }
  if (!isRepositoryName(repository)) {
    return { kind: 'invalid', reason: `${JSON.stringify(repository)} is not a valid repository name` };
  }
  return { kind: 'served', name: { repository, tag }, origin: { registry: ref.domain, path: ref.path } };
}

/**
 * The one name an image from a registry has whatever way it is asked for: its scoped name
 * (`docker.io/library/nginx`, `127.0.0.1_5000/team/app`). Two images share it only if they are
 * the same repository of the same registry, so no client can tell their tags apart. An IPv6
 * host gives a key that is not a repository name (no request can name it directly).
 */
export function originKey(origin: ImageOrigin): string {
  return `${scopedHost(origin.registry)}/${origin.path}`;
}

/** Docker Hub's host names: what references say (`docker.io`) and what clients may send. */
const DOCKER_HUB_HOSTS = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * A registry host as compared with a request's `ns`: lower-cased, Docker Hub's names as
 * `docker.io`. A port stays part of the host (`ghcr.io` and `ghcr.io:443` are different names
 * in the reference grammar, and clients send the host as the reference wrote it).
 */
export function normalizeRegistry(host: string): string {
  const lower = host.toLowerCase();
  return DOCKER_HUB_HOSTS.has(lower) ? 'docker.io' : lower;
}

export function isDockerHub(host: string): boolean {
  return normalizeRegistry(host) === 'docker.io';
}

/** Longest `ns` value considered: a 253-character host name, a colon and a port. */
export const MAX_NAMESPACE_LENGTH = 253 + 6;

// The reference grammar's `domain` (ref/grammar.ts): host names or a bracketed IPv6 address, optional port.
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const NAMESPACE_RE = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]{1,5})?$`);

/** A registry host as a mirror request's `ns` may name it (containerd sends the reference's host). */
export function isNamespace(s: string): boolean {
  // The length check comes first so that the pattern only ever sees short input.
  return s.length > 0 && s.length <= MAX_NAMESPACE_LENGTH && NAMESPACE_RE.test(s);
}
