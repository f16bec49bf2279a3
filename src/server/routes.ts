/**
 * The distribution API's URL space: raw request paths to routes, with every name, tag and
 * digest validated before anything is looked up. Paths are matched undecoded: the repository,
 * tag and digest grammars have no character that needs percent-encoding, so any `%` (an
 * encoded `/` or `..` included) simply fails validation. Pure functions, no I/O.
 */
import { isDigest, type Digest } from '../oci/digest.js';
import { isNamespace, isRepositoryName, isTag, MAX_REPOSITORY_LENGTH } from './names.js';

export type Route =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'tags'; name: string }
  | { kind: 'manifest'; name: string; tag: string; digest?: undefined }
  | { kind: 'manifest'; name: string; digest: Digest; tag?: undefined }
  | { kind: 'blob'; name: string; digest: Digest }
  | { kind: 'upload'; name: string }
  | { kind: 'referrers'; name: string; digest: Digest };

/** An error response, in the distribution API's terms. */
export interface ApiError {
  status: number;
  code: string;
  message: string;
  detail?: Record<string, unknown>;
}

export type RouteResult = { ok: true; route: Route } | { ok: false; error: ApiError };

// `(.+)` is greedy, so the last "/manifests/" (etc.) splits name and reference, as in
// distribution; a name containing such a segment is then checked against the grammar.
const PATTERNS: Array<[RegExp, (name: string, arg: string) => RouteResult]> = [
  [/^(.+)\/tags\/list$/, (name) => withName(name, (n) => ({ kind: 'tags', name: n }))],
  [/^(.+)\/manifests\/([^/]+)$/, (name, ref) => withName(name, (n) => manifestRoute(n, ref))],
  [/^(.+)\/blobs\/uploads(?:\/[^/]*)?$/, (name) => withName(name, (n) => ({ kind: 'upload', name: n }))],
  [/^(.+)\/blobs\/([^/]+)$/, (name, d) => withName(name, (n) => digestRoute(d, (digest) => ({ kind: 'blob', name: n, digest })))],
  [/^(.+)\/referrers\/([^/]+)$/, (name, d) => withName(name, (n) => digestRoute(d, (digest) => ({ kind: 'referrers', name: n, digest })))],
];

/** Longest path considered at all (a repository name plus the longest suffix, with room to spare). */
const MAX_PATH_LENGTH = 4 + MAX_REPOSITORY_LENGTH + 512;

/** Match a raw request path (no query string). */
export function matchRoute(path: string): RouteResult {
  if (path === '/v2/' || path === '/v2') return { ok: true, route: { kind: 'base' } };
  if (path === '/v2/_catalog') return { ok: true, route: { kind: 'catalog' } };
  if (path.startsWith('/v2/') && path.length <= MAX_PATH_LENGTH) {
    const rest = path.slice('/v2/'.length);
    for (const [re, build] of PATTERNS) {
      const m = re.exec(rest);
      if (m) return build(m[1]!, m[2] ?? '');
    }
  }
  return fail(404, 'UNSUPPORTED', 'no such endpoint: this is an OCI distribution API (read-only) under /v2/', { path: clip(path) });
}

/**
 * The registry a mirror request is for: containerd's `ns` query parameter (`?ns=docker.io`),
 * undefined when absent. It is untrusted input like the path: one value, a registry host as the
 * reference grammar allows it (`ghcr.io`, `127.0.0.1:5000`, `[::1]:5000`), length-capped.
 */
export function namespaceOf(query: URLSearchParams): { ok: true; ns: string | undefined } | { ok: false; error: ApiError } {
  const bad = (message: string, detail: Record<string, unknown>): { ok: false; error: ApiError } => ({
    ok: false,
    error: { status: 400, code: 'NAME_INVALID', message, detail },
  });
  const all = query.getAll('ns');
  if (all.length === 0) return { ok: true, ns: undefined };
  if (all.length > 1) {
    return bad('the ns parameter is given more than once: give the one registry this request is for', { ns: all.slice(0, 4).map(clip) });
  }
  const ns = all[0]!;
  if (!isNamespace(ns)) {
    return bad(`invalid ns ${JSON.stringify(clip(ns))}: want a registry host, e.g. ns=docker.io or ns=registry.example:5000`, {
      ns: clip(ns),
    });
  }
  return { ok: true, ns };
}

function withName(name: string, build: (name: string) => Route | RouteResult): RouteResult {
  if (!isRepositoryName(name)) {
    return fail(400, 'NAME_INVALID', `invalid repository name ${JSON.stringify(clip(name))}`, { name: clip(name) });
  }
  const r = build(name);
  return 'ok' in r ? r : { ok: true, route: r };
}

function manifestRoute(name: string, reference: string): Route | RouteResult {
  if (isDigest(reference)) return { kind: 'manifest', name, digest: reference };
  if (reference.includes(':')) return invalidDigest(reference);
  if (isTag(reference)) return { kind: 'manifest', name, tag: reference };
  // No manifest can have this name; distribution answers such paths with a 404 too.
  return fail(404, 'MANIFEST_UNKNOWN', `invalid tag ${JSON.stringify(clip(reference))}`, { name, tag: clip(reference) });
}

function digestRoute(d: string, build: (digest: Digest) => Route): Route | RouteResult {
  return isDigest(d) ? build(d) : invalidDigest(d);
}

function invalidDigest(d: string): RouteResult {
  const message =
    /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/.test(d) && !d.startsWith('sha256:')
      ? `unsupported digest algorithm in ${JSON.stringify(clip(d))}: this registry serves sha256 content only`
      : `invalid digest ${JSON.stringify(clip(d))}: want sha256: followed by 64 lower-case hex digits`;
  return fail(400, 'DIGEST_INVALID', message, { digest: clip(d) });
}

function fail(status: number, code: string, message: string, detail?: Record<string, unknown>): RouteResult {
  return { ok: false, error: { status, code, message, ...(detail ? { detail } : {}) } };
}

/** Hostile input is echoed back only in part. */
function clip(s: string): string {
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}
