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

/** The target of every image, in order; throws a UsageError naming every problem found. */
export function registryTargets(
  images: ReadonlyArray<{ name: string; digest: Digest }>,
  dest: RegistryDestination,
  opts: { scoped?: boolean } = {},
): RegistryTarget[] {
  const problems: string[] = [];
  const taken = new Map<string, string>();
  const out: RegistryTarget[] = [];
  for (const img of images) {
    const r = servedName(img.name, { scoped: !!opts.scoped });
    if (r.kind !== 'served') {
      problems.push(r.kind === 'bare-tag' ? `${img.name}: a bare tag has no repository to push to` : `${img.name}: ${r.reason}`);
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
        `${other} and ${img.name} would both be pushed as ${destination}${opts.scoped ? '' : ' (use --scoped to keep the source registry in the name)'}`,
      );
      continue;
    }
    taken.set(destination, img.name);
    out.push({ repo, tag: r.name.tag, destination });
  }
  if (problems.length > 0) {
    throw new UsageError(
      `cannot name ${problems.length === 1 ? 'an image' : `${problems.length} images`} in docker://${dest.host}${dest.prefix ? `/${dest.prefix}` : ''}:\n  ${problems.join('\n  ')}`,
      {
        hint: 'nothing was pushed',
      },
    );
  }
  return out;
}
