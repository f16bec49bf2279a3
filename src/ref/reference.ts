/**
 * Image references ("nginx", "ghcr.io/org/app:1.2@sha256:…"), parsed and normalised with the
 * semantics of github.com/distribution/reference, which is what Docker, containerd, skopeo
 * and crane all agree on:
 *
 * - `parseStrict`          = reference.Parse: the grammar only, no defaults (domain '' when absent).
 * - `parseNormalizedNamed` = reference.ParseNormalizedNamed: "nginx" → "docker.io/library/nginx".
 * - `parseReference`       = ParseNormalizedNamed + TagNameOnly: adds ":latest" when there is
 *                            neither tag nor digest; keeps both when both are given.
 * - `parseDockerRef`       = reference.ParseDockerRef: like parseReference, but a digest wins
 *                            over a tag (the tag is dropped).
 * - `parseNamed`           = reference.ParseNamed: input must already be canonical.
 * - `parseAnyReference`    = reference.ParseAnyReference: a bare 64-hex image ID or a
 *                            "sha256:…" string is a digest, anything else a name.
 *
 * Where this module is stricter than upstream:
 * - the only digest algorithm accepted is sha256 (ferry verifies every byte it moves and can
 *   only verify sha256), and `withDigest` validates the digest, not just its grammar;
 * - a normalised reference always has a domain: "my_host.local/app", whose first component is
 *   taken for a registry but is not a valid host name, is refused where upstream returns a
 *   reference with an empty domain;
 * - parseAnyReference refuses well-formed sha384/sha512 digests instead of reading them as
 *   Docker Hub names.
 */
import { isDigest, type Digest } from '../oci/digest.js';
import { InvalidReferenceError, type ReferenceErrorCode } from '../util/errors.js';
import {
  ANCHORED_DIGEST_RE,
  ANCHORED_IDENTIFIER_RE,
  ANCHORED_NAME_RE,
  ANCHORED_TAG_RE,
  GO_DIGEST_RE,
  REFERENCE_RE,
  REPOSITORY_PATH_MAX,
} from './grammar.js';

/**
 * The longest reference string accepted, checked before any matching: a domain (a DNS name of
 * at most 253 characters, with a port of at most 5 digits, or a bracketed IPv6 address), the
 * repository path (REPOSITORY_PATH_MAX = 255), a tag (128) and a sha256 digest, with their
 * separators. Anything longer cannot be a valid reference (hostile input: a 50 MB "name").
 */
export const REFERENCE_MAX_LENGTH = 253 + 6 + 1 + REPOSITORY_PATH_MAX + 1 + 128 + 1 + 'sha256:'.length + 64;

/** Docker Hub's canonical domain. */
export const DEFAULT_DOMAIN = 'docker.io';
/** The Docker Hub domain of the v1 "index" days; normalised to DEFAULT_DOMAIN. */
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
/** Namespace of Docker Hub's official images: "nginx" is "library/nginx". */
export const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';

export interface Reference {
  /** Registry host with optional port: 'docker.io', 'localhost:5000', '[::1]:5000'. '' only from parseStrict/withName. */
  readonly domain: string;
  /** Repository path without the domain: 'library/nginx'. */
  readonly path: string;
  readonly tag: string | undefined;
  /** 'sha256:<64 hex>'. */
  readonly digest: string | undefined;
  /** domain + '/' + path ('docker.io/library/nginx'), or path alone when there is no domain. */
  readonly name: string;
  /** Full form: name[:tag][@digest]. */
  toString(): string;
  /** Docker's FamiliarString: 'docker.io/library/nginx:1' → 'nginx:1', 'docker.io/user/x' → 'user/x'. */
  familiar(): string;
}

/** What parseAnyReference returns for an image ID or a bare digest. */
export interface DigestReference {
  readonly digest: Digest;
  toString(): string;
}

class ImageReference implements Reference {
  readonly domain: string;
  readonly path: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
  readonly name: string;

  constructor(domain: string, path: string, tag: string | undefined, digest: string | undefined) {
    this.domain = domain;
    this.path = path;
    this.tag = tag;
    this.digest = digest;
    this.name = joinName(domain, path);
    Object.freeze(this);
  }

  toString(): string {
    return withSuffixes(this.name, this.tag, this.digest);
  }

  familiar(): string {
    let domain = this.domain;
    let path = this.path;
    if (domain === DEFAULT_DOMAIN) {
      domain = '';
      // Only a single component below library/ is an official image: "library/a/b" stays as is.
      const rest = path.startsWith(OFFICIAL_REPO_PREFIX) ? path.slice(OFFICIAL_REPO_PREFIX.length) : undefined;
      if (rest !== undefined && !rest.includes('/')) path = rest;
    }
    return withSuffixes(joinName(domain, path), this.tag, this.digest);
  }
}
Object.freeze(ImageReference.prototype);

function joinName(domain: string, path: string): string {
  return domain === '' ? path : `${domain}/${path}`;
}

function withSuffixes(name: string, tag: string | undefined, digest: string | undefined): string {
  return name + (tag === undefined ? '' : `:${tag}`) + (digest === undefined ? '' : `@${digest}`);
}

/** True for anything produced by this module's parse and with* functions. */
export function isReference(value: unknown): value is Reference {
  return value instanceof ImageReference;
}

// ---------------------------------------------------------------------------------------
// Errors

/** A reference as messages show it: quoted, and cut short when it is too long to be one. */
function quote(s: string): string {
  return s.length > REFERENCE_MAX_LENGTH ? `${JSON.stringify(s.slice(0, 64))}… (${s.length} characters)` : JSON.stringify(s);
}

function invalid(code: ReferenceErrorCode, input: string, reason: string): InvalidReferenceError {
  return new InvalidReferenceError(code, input, `invalid reference ${quote(input)}: ${reason}`);
}

const TAG_RULE = 'a tag is 1 to 128 characters from [A-Za-z0-9_.-] and must not start with "." or "-"';

/** A best-effort explanation of why `input` does not match the reference grammar at all. */
function formatReason(input: string): string {
  if (input === '') return 'reference is empty';
  if (/\s/.test(input)) return 'must not contain whitespace';
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(input)) return 'must not include a URL scheme such as "https://"';
  if (input.startsWith(':') || input.startsWith('@')) return 'repository name is missing';

  const at = input.indexOf('@');
  const digest = at === -1 ? undefined : input.slice(at + 1);
  const beforeDigest = at === -1 ? input : input.slice(0, at);
  if (digest !== undefined && !ANCHORED_DIGEST_RE.test(digest)) {
    return `malformed digest ${quote(digest)} (expected <algorithm>:<hex>)`;
  }
  const lastSegment = beforeDigest.slice(beforeDigest.lastIndexOf('/') + 1);
  const colon = lastSegment.indexOf(':');
  // A ':' in the last segment starts the tag, unless that segment is a bracketed IPv6 host.
  if (colon !== -1 && !lastSegment.includes('[')) {
    const tag = lastSegment.slice(colon + 1);
    if (!ANCHORED_TAG_RE.test(tag)) return `invalid tag ${quote(tag)}: ${TAG_RULE}`;
  }
  if (beforeDigest.startsWith('/') || beforeDigest.includes('//') || beforeDigest.endsWith('/')) {
    return 'repository path has an empty component';
  }
  if (/\[[^\]]*%/.test(beforeDigest)) return 'IPv6 zone identifiers are not allowed in a registry address';
  return (
    'expected [registry[:port]/]repository[:tag][@digest], where repository path components are ' +
    'lower-case letters and digits separated by ".", "_", "__" or dashes'
  );
}

// ---------------------------------------------------------------------------------------
// Digests

/**
 * go-digest's Parse with sha256 as the only available algorithm: undefined when `digest` is
 * acceptable, else the error code and reason. Assumes the reference digest grammar matched.
 */
function digestProblem(digest: string): [ReferenceErrorCode, string] | undefined {
  if (isDigest(digest)) return undefined;
  const sep = digest.indexOf(':');
  const algorithm = digest.slice(0, sep);
  const encoded = digest.slice(sep + 1);
  if (algorithm !== 'sha256') {
    // go-digest calls an unknown algorithm "unsupported" only if the digest is otherwise
    // well formed by its own (lower-case algorithm) grammar; "SHA256:..." is malformed.
    return GO_DIGEST_RE.test(digest)
      ? ['REFERENCE_DIGEST_UNSUPPORTED', `unsupported digest algorithm ${quote(algorithm)} (only sha256 is supported)`]
      : ['REFERENCE_DIGEST_INVALID_FORMAT', `malformed digest algorithm ${quote(algorithm)}`];
  }
  if (encoded.length !== 64) {
    return ['REFERENCE_DIGEST_INVALID_LENGTH', `sha256 digest must have 64 hex characters, not ${encoded.length}`];
  }
  return ['REFERENCE_DIGEST_INVALID_FORMAT', 'sha256 digest must be lower-case hex'];
}

// ---------------------------------------------------------------------------------------
// Parsing

/**
 * reference.Parse: the strict grammar, no normalisation. "nginx" has domain '' and path
 * "nginx"; "test.com:5000" is the repository "test.com" with tag "5000" (a port needs a path
 * after it). Upper case is allowed only in the domain and the tag.
 */
export function parseStrict(input: string): Reference {
  return strict(input, input);
}

/** parseStrict of `s`, with errors naming `input` (what the user typed, before normalisation). */
function strict(s: string, input: string): Reference {
  if (s === '') {
    throw invalid('REFERENCE_NAME_EMPTY', input, 'repository name must have at least one component');
  }
  checkTotalLength(s, input);
  const m = REFERENCE_RE.exec(s);
  if (m === null) {
    const lower = s.toLowerCase();
    if (lower !== s && REFERENCE_RE.test(lower)) {
      throw invalid('REFERENCE_NAME_CONTAINS_UPPERCASE', input, 'repository name must be lowercase');
    }
    throw invalid('REFERENCE_INVALID_FORMAT', input, formatReason(input));
  }
  const [, name = '', tag, digest] = m;
  // The reference grammar guarantees `name` matches the name grammar; this split never fails.
  const n = ANCHORED_NAME_RE.exec(name);
  const domain = n?.[1] ?? '';
  const path = n?.[2] ?? name;
  checkPathLength(path, input);
  if (digest !== undefined) {
    const problem = digestProblem(digest);
    if (problem !== undefined) throw invalid(problem[0], input, problem[1]);
  }
  return new ImageReference(domain, path, tag, digest);
}

function checkTotalLength(s: string, input: string): void {
  if (s.length > REFERENCE_MAX_LENGTH) {
    throw invalid(
      'REFERENCE_NAME_TOO_LONG',
      input,
      `a reference must not be more than ${REFERENCE_MAX_LENGTH} characters (it has ${s.length})`,
    );
  }
}

function checkPathLength(path: string, input: string): void {
  if (path.length > REPOSITORY_PATH_MAX) {
    throw invalid(
      'REFERENCE_NAME_TOO_LONG',
      input,
      `repository name must not be more than ${REPOSITORY_PATH_MAX} characters (it has ${path.length})`,
    );
  }
}

/**
 * Docker's splitDockerDomain: decide whether the first component of `name` is a registry.
 * It is one when it contains "." or ":", is "localhost", or has an upper-case letter
 * (repository paths are lower-case, so "Docker/docker" must be a host). Docker Hub names
 * get the canonical domain and, when they have a single component, "library/".
 * `name` is not validated here.
 */
function splitDockerDomain(name: string): [domain: string, remainder: string] {
  const slash = name.indexOf('/');
  let domain: string;
  let remainder: string;
  if (slash === -1) {
    // A single component is always a Docker Hub name: "localhost" and "foo.com" included,
    // and "foo:5000" is the repository "foo" with tag "5000".
    [domain, remainder] = [DEFAULT_DOMAIN, name];
  } else {
    const first = name.slice(0, slash);
    const isDomain = first === 'localhost' || /[.:]/.test(first) || first.toLowerCase() !== first;
    [domain, remainder] = isDomain ? [first, name.slice(slash + 1)] : [DEFAULT_DOMAIN, name];
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_REPO_PREFIX + remainder;
  return [domain, remainder];
}

/**
 * reference.ParseNormalizedNamed: turn a name as typed on a `docker` command line into a fully
 * qualified reference. No default tag is added. A bare 64-hex string is rejected: it is an
 * image ID, and would be ambiguous (use parseAnyReference when IDs are acceptable).
 */
export function parseNormalizedNamed(input: string): Reference {
  checkTotalLength(input, input);
  if (ANCHORED_IDENTIFIER_RE.test(input)) {
    throw invalid('REFERENCE_INVALID_FORMAT', input, 'a 64-character hexadecimal string is an image ID, not a repository name');
  }
  const [domain, remainder] = splitDockerDomain(input);
  const colon = remainder.indexOf(':');
  const remote = colon === -1 ? remainder : remainder.slice(0, colon);
  if (remote.toLowerCase() !== remote) {
    throw invalid('REFERENCE_NAME_CONTAINS_UPPERCASE', input, 'repository name must be lowercase');
  }
  const ref = strict(`${domain}/${remainder}`, input);
  if (ref.domain !== domain) {
    // The first component was taken for a registry (it has a "." for instance) but is not a
    // valid host name, e.g. "my_registry.local/app". Upstream then quietly returns the whole
    // input as a domain-less path; a normalised reference must name its registry.
    throw invalid(
      'REFERENCE_INVALID_FORMAT',
      input,
      `${quote(domain)} is not a valid registry host name (host names allow letters, digits, "-" and ".")`,
    );
  }
  return ref;
}

/**
 * What ferry uses for user input: ParseNormalizedNamed, plus ":latest" when the reference has
 * neither a tag nor a digest. A reference with both keeps both (the digest is what gets pulled).
 */
export function parseReference(input: string): Reference {
  return tagNameOnly(parseNormalizedNamed(input));
}

/** reference.TagNameOnly: add the default tag to a bare name; anything else is returned as is. */
export function tagNameOnly(ref: Reference): Reference {
  return ref.tag === undefined && ref.digest === undefined ? withTag(ref, DEFAULT_TAG) : ref;
}

/**
 * reference.ParseDockerRef: normalised, ":latest" when bare, and when both a tag and a
 * digest are present the tag is dropped (the result is what the registry is asked for).
 */
export function parseDockerRef(input: string): Reference {
  const ref = parseNormalizedNamed(input);
  if (ref.tag !== undefined && ref.digest !== undefined) {
    return new ImageReference(ref.domain, ref.path, undefined, ref.digest);
  }
  return tagNameOnly(ref);
}

/**
 * reference.ParseNamed: like parseNormalizedNamed but the input must already be in canonical
 * form ("docker.io/library/nginx", not "nginx" or "docker.io/nginx").
 */
export function parseNamed(input: string): Reference {
  const ref = parseNormalizedNamed(input);
  const canonical = ref.toString();
  if (canonical !== input) {
    throw invalid('REFERENCE_NAME_NOT_CANONICAL', input, `repository name must be canonical (the canonical form is ${quote(canonical)})`);
  }
  return ref;
}

/**
 * reference.ParseAnyReference: a 64-hex image ID or a sha256 digest is returned as a
 * DigestReference; anything else goes through parseNormalizedNamed.
 *
 * One deliberate difference: "sha384:…" and "sha512:…" are refused as unsupported digests
 * rather than read as the Docker Hub image "library/sha512" with a 128-hex tag, which is what
 * upstream does when those algorithms are not compiled in.
 */
export function parseAnyReference(input: string): Reference | DigestReference {
  if (ANCHORED_IDENTIFIER_RE.test(input)) return digestReference(`sha256:${input}`);
  if (isDigest(input)) return digestReference(input);
  if (/^(?:sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128})$/.test(input)) {
    throw invalid(
      'REFERENCE_DIGEST_UNSUPPORTED',
      input,
      `unsupported digest algorithm ${quote(input.slice(0, 6))} (only sha256 is supported)`,
    );
  }
  return parseNormalizedNamed(input);
}

function digestReference(digest: Digest): DigestReference {
  return Object.freeze({ digest, toString: () => digest });
}

/**
 * reference.WithName: a repository name with no tag or digest, validated against the strict
 * grammar and not normalised ("foo" keeps domain '').
 */
export function withName(name: string): Reference {
  const m = ANCHORED_NAME_RE.exec(name);
  if (m === null) {
    throw invalid('REFERENCE_INVALID_FORMAT', name, 'not a valid repository name (expected [registry[:port]/]path)');
  }
  const [, domain = '', path = ''] = m;
  checkPathLength(path, name);
  return new ImageReference(domain, path, undefined, undefined);
}

/** reference.WithTag: replace (or set) the tag. A digest already present is kept. */
export function withTag(ref: Reference, tag: string): Reference {
  if (!ANCHORED_TAG_RE.test(tag)) {
    throw new InvalidReferenceError('REFERENCE_TAG_INVALID_FORMAT', tag, `invalid tag ${quote(tag)}: ${TAG_RULE}`);
  }
  return new ImageReference(ref.domain, ref.path, tag, ref.digest);
}

/**
 * reference.WithDigest: replace (or set) the digest. A tag already present is kept. Unlike
 * upstream, which only checks the digest grammar, the digest must be a valid sha256 digest.
 */
export function withDigest(ref: Reference, digest: string): Reference {
  if (!ANCHORED_DIGEST_RE.test(digest)) {
    throw new InvalidReferenceError(
      'REFERENCE_DIGEST_INVALID_FORMAT',
      digest,
      `invalid digest ${quote(digest)}: expected sha256: followed by 64 lower-case hex characters`,
    );
  }
  const problem = digestProblem(digest);
  if (problem !== undefined) {
    throw new InvalidReferenceError(problem[0], digest, `invalid digest ${quote(digest)}: ${problem[1]}`);
  }
  return new ImageReference(ref.domain, ref.path, ref.tag, digest);
}

/**
 * The registry and repository path of a name, after Docker normalisation
 * ("nginx" → { domain: "docker.io", path: "library/nginx" }). Any tag or digest is ignored.
 */
export function splitHostname(input: string | Reference): { domain: string; path: string } {
  const ref = typeof input === 'string' ? parseNormalizedNamed(input) : input;
  return { domain: ref.domain, path: ref.path };
}
