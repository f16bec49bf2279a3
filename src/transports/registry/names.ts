/**
 * Where images land in a registry (`ferry load --to docker://HOST/PREFIX`, `ferry mirror`):
 * the source reference's repository path without its registry host, under PREFIX
 * (`docker.io/library/nginx:1.25` → `HOST/PREFIX/library/nginx:1.25`); with `scoped` the source
 * host stays as the first path component, as with `skopeo sync --scoped`, lower-cased and with a
 * port written after `_` (`127.0.0.1:5000/acme/web:1` → `HOST/PREFIX/127.0.0.1_5000/acme/web:1`;
 * skopeo keeps the `:` and so cannot push such names; `_` never occurs in a registry host, so the
 * mapping cannot make two hosts meet; IPv6 hosts are refused). (`skopeo sync`
 * without --scoped keeps only the last path component, `HOST/PREFIX/nginx:1.25`, which makes
 * `a/app` and `b/app` collide; ferry keeps the path.) The same rule `ferry
 * serve` uses (server/names.ts). Two images that would land on one name are an error before
 * anything is pushed.
 */
import type { Digest } from '../../oci/digest.js';
import { isRepositoryName, servedName } from '../../server/names.js';
import { UsageError } from '../../util/errors.js';

export interface RegistryDestination {
  /** Registry host[:port] as written (`localhost:5000`). */
  host: string;
  /** Repository prefix, '' for none (`mirror`, `team/images`). */
  prefix: string;
}

export interface RegistryTarget {
  repo: string;
  /** Tag to push; undefined for an image named by digest only (pushed by digest). */
  tag: string | undefined;
  /** `HOST/REPO:TAG` or `HOST/REPO@DIGEST`. */
  destination: string;
}

/** Parse `docker://HOST[:PORT][/PREFIX]` (the `docker://` already removed). */
export function parseRegistryDestination(rest: string): RegistryDestination {
  const s = rest.replace(/\/+$/, '');
  const slash = s.indexOf('/');
  const host = slash === -1 ? s : s.slice(0, slash);
  const prefix = slash === -1 ? '' : s.slice(slash + 1);
  if (host === '' || !/^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::\d{1,5})?$/.test(host)) {
    throw new UsageError(`invalid registry destination docker://${rest}: expected docker://HOST[:PORT][/PREFIX]`);
  }
  if (/[:@]/.test(prefix)) {
    throw new UsageError(
      `invalid registry destination docker://${rest}: the destination is a repository prefix; tags and digests come from the source images`,
    );
  }
  if (prefix !== '' && !isRepositoryName(prefix)) {
    throw new UsageError(
      `invalid repository prefix ${JSON.stringify(prefix)} in docker://${rest}: lower-case letters and digits, separated by ".", "_", "__", "-" or "/"`,
    );
  }
  return { host, prefix };
}

/**
 * `--prefix` of a destination that takes names rather than a place (Docker Engine,
 * containerd): `HOST[:PORT][/PATH]`, or a plain path (`mirror/team`), which, as in Docker's
 * grammar, lies on docker.io. The first component is a host when it holds a `.` or a `:` or is
 * `localhost` (Docker's splitDockerDomain rule), so `--prefix` names exactly what `docker pull`
 * would read from the same string.
 */
export function parseNamePrefix(input: string): RegistryDestination {
  const s = input.replace(/\/+$/, '');
  const first = s.split('/', 1)[0]!;
  if (s === '' || s.startsWith('/')) throw new UsageError(`--prefix ${JSON.stringify(input)}: expected HOST[:PORT][/PATH] or a path`);
  if (first.includes('.') || first.includes(':') || first === 'localhost') {
    try {
      return parseRegistryDestination(s);
    } catch (err) {
      throw new UsageError(
        `--prefix ${JSON.stringify(input)}: ${(err as Error).message.replace(/^invalid registry destination docker:\/\/\S+: /, '')}`,
        {
          hint: 'e.g. --prefix registry.local:5000/mirror or --prefix mirror/team',
        },
      );
    }
  }
  if (!isRepositoryName(s)) {
    throw new UsageError(
      `--prefix ${JSON.stringify(input)}: ${JSON.stringify(s)} is not a repository path (lower-case letters and digits, separated by ".", "_", "__", "-" or "/")`,
      { hint: 'e.g. --prefix registry.local:5000/mirror or --prefix mirror/team' },
    );
  }
  return { host: 'docker.io', prefix: s };
}

/** `--prefix` (and `--scoped`) of an engine destination: registryTargets' rule under HOST/PREFIX. */
export interface PrefixRenaming {
  prefix: RegistryDestination;
  scoped: boolean;
}

/** `--prefix` as given back: HOST[/PATH], or the plain path on docker.io. */
export function formatNamePrefix(p: RegistryDestination): string {
  return p.host === 'docker.io' && p.prefix ? p.prefix : `${p.host}${p.prefix ? `/${p.prefix}` : ''}`;
}

/** The naming of a run into a place that takes names (registryTargets' rule, used by Docker Engine and containerd too). */
export interface PrefixNaming {
  /** Where the names go: `docker://HOST/PREFIX`, `docker-daemon`, … (messages only). */
  where: string;
  /** What happens to an image under its name: "pushed", "loaded" (messages only). */
  verb: string;
  /** The same as a verb: "push", "load". */
  action: string;
}

/** The target of every image, in order; throws a UsageError naming every problem found. */
export function registryTargets(
  images: ReadonlyArray<{ name: string; digest: Digest }>,
  dest: RegistryDestination,
  opts: { scoped?: boolean } = {},
): RegistryTarget[] {
  return prefixedTargets(images, dest, {
    ...opts,
    where: `docker://${dest.host}${dest.prefix ? `/${dest.prefix}` : ''}`,
    verb: 'pushed',
    action: 'push',
  });
}

/**
 * Every image's name under `dest` (HOST/PREFIX/REPOSITORY[:TAG|@DIGEST]), in order. Two images
 * on one name, or a name that cannot be placed there, are one UsageError naming every problem,
 * before anything is written.
 */
export function prefixedTargets(
  images: ReadonlyArray<{ name: string; digest: Digest }>,
  dest: RegistryDestination,
  opts: { scoped?: boolean } & PrefixNaming,
): RegistryTarget[] {
  const problems: string[] = [];
  const taken = new Map<string, string>();
  const out: RegistryTarget[] = [];
  for (const img of images) {
    const r = servedName(img.name, { scoped: !!opts.scoped });
    if (r.kind !== 'served') {
      problems.push(r.kind === 'bare-tag' ? `${img.name}: a bare tag has no repository to ${opts.action} to` : `${img.name}: ${r.reason}`);
      continue;
    }
    const repo = dest.prefix ? `${dest.prefix}/${r.name.repository}` : r.name.repository;
    if (!isRepositoryName(repo)) {
      problems.push(`${img.name}: ${JSON.stringify(repo)} is too long or not a valid repository name`);
      continue;
    }
    const destination = `${dest.host}/${repo}${r.name.tag !== undefined ? `:${r.name.tag}` : `@${img.digest}`}`;
    const other = taken.get(destination);
    if (other !== undefined) {
      problems.push(
        `${other} and ${img.name} would both be ${opts.verb} as ${destination}${opts.scoped ? '' : ' (use --scoped to keep the source registry in the name)'}`,
      );
      continue;
    }
    taken.set(destination, img.name);
    out.push({ repo, tag: r.name.tag, destination });
  }
  if (problems.length > 0) {
    throw new UsageError(
      `cannot name ${problems.length === 1 ? 'an image' : `${problems.length} images`} in ${opts.where}:\n  ${problems.join('\n  ')}`,
      {
        hint: `nothing was ${opts.verb}`,
      },
    );
  }
  return out;
}
