/**
 * What every `ferry mirror-config` generator shares: the mirror as the user named it
 * (`--registry [http://|https://]HOST[:PORT][/PREFIX]`, `--scoped`, TLS), the upstream
 * registries it stands in for, and the one naming rule: an upstream image
 * `UPSTREAM/REPO:TAG` is at `HOST/PREFIX[/SCOPEDHOST]/REPO:TAG`, exactly where
 * `ferry load --to docker://HOST/PREFIX [--scoped]` puts it (transports/registry/names.ts) and
 * where `ferry serve` answers it (server/names.ts). Pure: no I/O.
 *
 * Scheme rule: the mirror is reached over HTTPS unless `--registry` starts with `http://`.
 * `--insecure` means "do not verify the mirror's certificate" (and, for runtimes whose insecure
 * switch also allows plain HTTP, that too); `--ca-file` names the CA file as it will be on the
 * node, so it is written as given, never read.
 */
import { parseNormalizedNamed } from '../ref/reference.js';
import { isRepositoryName, scopedHost } from '../server/names.js';
import { parseRegistryDestination } from '../transports/registry/names.js';
import { UsageError, errorMessage } from '../util/errors.js';

export const FORMATS = ['containerd', 'registries-conf', 'k3s', 'docker', 'openshift'] as const;
export type MirrorFormat = (typeof FORMATS)[number];

export type MirrorTls = { kind: 'verify' } | { kind: 'insecure' } | { kind: 'ca'; file: string };

export interface Mirror {
  scheme: 'https' | 'http';
  /** host[:port] as written. */
  host: string;
  /** Repository prefix, '' for none. */
  prefix: string;
  scoped: boolean;
  tls: MirrorTls;
}

/** One image the sources name, by the name a runtime asks for. */
export interface UpstreamImage {
  /** Normalised registry host (`docker.io`, `ghcr.io`, `reg.local:5000`). */
  upstream: string;
  /** Repository path on that registry (`library/nginx`). */
  path: string;
  /** `:tag`, `@digest`, `:tag@digest` or '' (a repository from a profile). */
  suffix: string;
}

export interface MirrorInput {
  mirror: Mirror;
  /** Sorted, without duplicates. */
  upstreams: readonly string[];
  /** Sorted, without duplicates. */
  images: readonly UpstreamImage[];
}

export interface GeneratedFile {
  /** Relative, `/`-separated (`certs.d/docker.io/hosts.toml`). */
  path: string;
  text: string;
}

export interface Generated {
  files: GeneratedFile[];
  /** Things the user must know (shown on stderr). */
  notes: string[];
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Parse `--registry`; a UsageError (exit 2) names what is wrong. */
export function parseMirror(registry: string, opts: { scoped?: boolean; insecure?: boolean; caFile?: string | undefined } = {}): Mirror {
  const m = /^(https?):\/\/(.*)$/i.exec(registry);
  const scheme = m ? (m[1]!.toLowerCase() as 'http' | 'https') : 'https';
  const rest = m ? m[2]! : registry;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    throw new UsageError(`invalid --registry ${JSON.stringify(registry)}: expected [http://|https://]HOST[:PORT][/PREFIX]`);
  }
  let dest;
  try {
    dest = parseRegistryDestination(rest);
  } catch (err) {
    throw new UsageError(
      `invalid --registry ${JSON.stringify(registry)}: expected [http://|https://]HOST[:PORT][/PREFIX] (${errorMessage(err).replace(/^invalid [^:]*: /, '')})`,
    );
  }
  if (opts.insecure && opts.caFile !== undefined) throw new UsageError('--insecure and --ca-file cannot be used together');
  if (scheme === 'http' && opts.caFile !== undefined) {
    throw new UsageError(`--ca-file is for a mirror reached over HTTPS; --registry ${registry} says http://`);
  }
  let tls: MirrorTls = { kind: 'verify' };
  if (opts.insecure) tls = { kind: 'insecure' };
  if (opts.caFile !== undefined) {
    // The path lands inside TOML and YAML strings: keep it to what a file path on a node is.
    if (opts.caFile === '' || /[\u0000-\u001f\u007f]/.test(opts.caFile) || LONE_SURROGATE.test(opts.caFile)) {
      throw new UsageError(`invalid --ca-file ${JSON.stringify(opts.caFile)}: give the CA file's path on the node`);
    }
    tls = { kind: 'ca', file: opts.caFile };
  }
  return { scheme, host: dest.host, prefix: dest.prefix, scoped: !!opts.scoped, tls };
}

/**
 * A registry host given with `--for`, normalised as a reference's registry is (`index.docker.io`
 * → `docker.io`, lower case); a name that a reference would not take as a registry (no dot, no
 * port, not localhost) is refused rather than silently read as a Docker Hub path.
 */
export function parseUpstream(input: string): string {
  const s = input.trim();
  let domain: string | undefined;
  if (s !== '' && !s.includes('/') && !s.includes('@')) {
    try {
      domain = parseNormalizedNamed(`${s.toLowerCase()}/ferry-probe`).domain;
    } catch {
      domain = undefined;
    }
  }
  const lower = s.toLowerCase();
  const expected = lower === 'index.docker.io' || lower === 'registry-1.docker.io' ? 'docker.io' : lower;
  if (domain === undefined || domain !== expected) {
    throw new UsageError(
      `invalid --for ${JSON.stringify(input)}: a registry host[:port] (docker.io, ghcr.io, registry.example:5000); a host needs a "." or a port, or is localhost`,
    );
  }
  return domain;
}

/** Where the mirror holds an upstream's repositories, below the host: '' or `PREFIX[/SCOPEDHOST]`. */
export function mirrorPath(mirror: Mirror, upstream: string): string {
  const parts = [mirror.prefix, mirror.scoped ? scopedHost(upstream) : ''].filter((p) => p !== '');
  return parts.join('/');
}

/** `HOST[/PREFIX[/SCOPEDHOST]]`: the mirror location of an upstream, without a scheme. */
export function mirrorLocation(mirror: Mirror, upstream: string): string {
  const p = mirrorPath(mirror, upstream);
  return p === '' ? mirror.host : `${mirror.host}/${p}`;
}

/** The name a runtime that cannot use the mirror must pull instead (`HOST/PREFIX/org/app:1`). */
export function mirrorName(mirror: Mirror, image: UpstreamImage): string {
  return `${mirrorLocation(mirror, image.upstream)}/${image.path}${image.suffix}`;
}

export function fullName(image: UpstreamImage): string {
  return `${image.upstream}/${image.path}${image.suffix}`;
}

/** The registry's real API endpoint, as containerd and the Docker client know it. */
export function upstreamEndpoint(upstream: string): string {
  return upstream === 'docker.io' ? 'https://registry-1.docker.io' : `https://${upstream}`;
}

/**
 * Refuse an upstream whose scoped component cannot be a repository name (an IPv6 literal), and
 * two upstream repositories that would land on one mirror repository (without --scoped,
 * `docker.io/org/app` and `ghcr.io/org/app` both become `HOST/PREFIX/org/app`): the same
 * refusal `ferry load --to docker://…` makes, so the configuration never promises a name the
 * mirror cannot hold.
 */
export function checkNames(input: MirrorInput): void {
  const problems: string[] = [];
  for (const u of input.upstreams) {
    const p = mirrorPath(input.mirror, u);
    if (p !== '' && !isRepositoryName(p)) problems.push(`${u}: ${JSON.stringify(p)} is not a valid repository path on the mirror`);
  }
  const owner = new Map<string, string>();
  for (const img of input.images) {
    const at = `${mirrorPath(input.mirror, img.upstream)}/${img.path}`.replace(/^\//, '');
    const repo = `${img.upstream}/${img.path}`;
    const other = owner.get(at);
    if (other !== undefined && other !== repo) {
      problems.push(
        `${other} and ${repo} would both be ${input.mirror.host}/${at}${input.mirror.scoped ? '' : ' (use --scoped, as with ferry load)'}`,
      );
    } else owner.set(at, repo);
  }
  if (problems.length > 0) throw new UsageError(`cannot name every image on the mirror:\n  ${problems.join('\n  ')}`);
}

/** `ferry load … --to docker://HOST/PREFIX [--scoped]`, and `ferry serve` where it answers the same paths. */
export function matchingCommands(mirror: Mirror): string[] {
  const to = `docker://${mirror.host}${mirror.prefix ? `/${mirror.prefix}` : ''}`;
  const out = [`ferry load BUNDLE --to ${to}${mirror.scoped ? ' --scoped' : ''}`];
  if (mirror.prefix === '' && !mirror.scoped) out.push(`ferry serve BUNDLE|oci:DIR listening on ${mirror.host}`);
  return out;
}

/** The lines every generated file starts with (without a comment marker). */
export function headerLines(mirror: Mirror, what: string): string[] {
  return [
    `Generated by ferry mirror-config: ${what}.`,
    `Mirror: ${mirror.scheme}://${mirror.host}${mirror.prefix ? `/${mirror.prefix}` : ''}${mirror.scoped ? ' (scoped: the upstream host is the first path component)' : ''}.`,
    `It matches images put there with: ${matchingCommands(mirror).join(', or ')}.`,
  ];
}

export function comment(lines: readonly string[], marker = '#'): string {
  return lines.map((l) => (l === '' ? marker : `${marker} ${l}`)).join('\n');
}

/**
 * A TOML basic string. JSON's escapes are TOML's (`\"`, `\\`, `\n`, `\uXXXX`…) except that
 * TOML also forbids DEL and lone surrogates, which the callers' inputs never hold (hosts and
 * paths are checked); DEL is escaped anyway.
 */
export function tomlString(s: string): string {
  return JSON.stringify(s).replace(/\u007f/g, '\\u007F');
}
