/**
 * How `ferry serve` answers as a mirror for several registries at once: which served
 * repository a request's name (and containerd's `?ns=` parameter) means. Pure, no I/O.
 *
 * Every repository has one key (content.ts): the scoped name of its origin
 * (`docker.io/library/nginx`), or the name given with its source (`oci:DIR:team/app`). Clients
 * ask for it in three ways:
 * - containerd (hosts.toml) sends the path without the registry and names the registry in
 *   `?ns=`: `/v2/library/nginx/manifests/1?ns=docker.io`, for blobs and tags too;
 * - podman, CRI-O (registries.conf `location = "HOST/docker.io"`) and containerd with
 *   `override_path` send the scoped path: `/v2/docker.io/library/nginx/…` (containerd adds ns);
 * - Docker's `registry-mirrors` sends `/v2/library/nginx/…` without ns, and only for Docker Hub.
 * So a repository answers at its unscoped path and at its scoped path (with `scoped`, at the
 * scoped path only). An unscoped path that several registries share is told apart by ns;
 * without ns it is Docker Hub's when one of them is Docker Hub (the only client that sends
 * neither ns nor a scoped path), otherwise it is ambiguous and answered 404.
 */
import { type ImageOrigin, isDockerHub, isRepositoryName, normalizeRegistry, scopedHost } from './names.js';

export interface NamedRepository {
  /** The repository's key in the served content. */
  repository: string;
  /** Where its images came from; undefined for a repository named as given with its source. */
  origin: ImageOrigin | undefined;
}

export type Resolution =
  | { kind: 'found'; repository: string }
  /** An unscoped path that several registries (none of them Docker Hub) hold, asked for without ns. */
  | { kind: 'ambiguous'; registries: string[] }
  | { kind: 'unknown'; message: string };

/** One registry the server mirrors, for the start-up report. */
export interface MirroredRegistry {
  /** As the images name it (`docker.io`, `127.0.0.1:5000`). */
  registry: string;
  /** Request paths it answers at, with REPO for the repository path (`/v2/REPO?ns=ghcr.io`). */
  paths: string[];
  repositories: Array<{ repository: string; path: string }>;
}

/** An unscoped path held for several registries. */
export interface SharedPath {
  path: string;
  registries: string[];
  /** The registry a request without ns gets (Docker Hub's), or undefined: such a request is refused. */
  withoutNs: string | undefined;
}

interface Aliased {
  repository: string;
  origin: ImageOrigin;
}

export class MirrorNames {
  /** Names served as they are: scoped names and names given with a source. */
  private readonly exact = new Map<string, NamedRepository>();
  /** Unscoped paths (`library/nginx`) → the repositories that answer there, sorted by key. */
  private readonly byPath = new Map<string, Aliased[]>();
  /** Normalized hosts of every origin, for "nothing from ns" answers. */
  private readonly registrySet = new Set<string>();
  private readonly local: NamedRepository[] = [];
  private readonly catalogNames: readonly string[];

  constructor(
    repositories: readonly NamedRepository[],
    private readonly opts: { scoped: boolean },
  ) {
    const sorted = [...repositories].sort((a, b) => compare(a.repository, b.repository));
    for (const r of sorted) {
      if (isRepositoryName(r.repository)) this.exact.set(r.repository, r);
      if (!r.origin) {
        this.local.push(r);
        continue;
      }
      this.registrySet.add(normalizeRegistry(r.origin.registry));
      if (opts.scoped) continue;
      const list = this.byPath.get(r.origin.path);
      const entry = { repository: r.repository, origin: r.origin };
      if (list) list.push(entry);
      else this.byPath.set(r.origin.path, [entry]);
    }
    this.catalogNames = Object.freeze([...new Set([...this.exact.keys(), ...this.byPath.keys()])].sort(compare));
  }

  /**
   * The repository a request names. `ns` is the request's `ns` parameter, already checked
   * against the host grammar (isNamespace).
   */
  resolve(name: string, ns: string | undefined): Resolution {
    if (ns === undefined) {
      const exact = this.exact.get(name);
      if (exact) return found(exact.repository);
      const list = this.byPath.get(name);
      if (list) {
        if (list.length === 1) return found(list[0]!.repository);
        const hub = list.filter((a) => isDockerHub(a.origin.registry));
        if (hub.length > 0) return found(preferred(hub, 'docker.io').repository);
        return { kind: 'ambiguous', registries: list.map((a) => a.origin.registry) };
      }
      return { kind: 'unknown', message: `repository ${name} is not known to this registry` };
    }
    const want = normalizeRegistry(ns);
    const aliased = this.byPath.get(name)?.filter((a) => normalizeRegistry(a.origin.registry) === want);
    if (aliased?.length) return found(preferred(aliased, ns).repository);
    const exact = this.exact.get(name);
    // The scoped path with ns (containerd's override_path), or a name given with a source:
    // that one is what the operator chose to serve it as, whichever registry the client mirrors.
    if (exact && (!exact.origin || normalizeRegistry(exact.origin.registry) === want)) return found(exact.repository);
    if (!this.registrySet.has(want)) {
      return { kind: 'unknown', message: `repository ${name} is not known to this registry: it serves nothing from ${ns} (ns=${ns})` };
    }
    return { kind: 'unknown', message: `repository ${name} of ${ns} is not known to this registry (ns=${ns})` };
  }

  /** Every name a request may use without ns: scoped names, unscoped paths, names given with a source. */
  catalog(): readonly string[] {
    return this.catalogNames;
  }

  /** The registries served, each with the paths it answers at, sorted; then the names given with a source. */
  registries(): { mirrored: MirroredRegistry[]; local: string[] } {
    const groups = new Map<string, MirroredRegistry>();
    for (const r of [...this.exact.values(), ...[...this.byPath.values()].flat()]) {
      if (!r.origin) continue;
      const registry = r.origin.registry.toLowerCase();
      let g = groups.get(registry);
      if (!g) {
        g = { registry, paths: this.pathsOf(registry), repositories: [] };
        groups.set(registry, g);
      }
      if (!g.repositories.some((x) => x.repository === r.repository))
        g.repositories.push({ repository: r.repository, path: r.origin.path });
    }
    for (const g of groups.values()) g.repositories.sort((a, b) => compare(a.path, b.path));
    return {
      mirrored: [...groups.values()].sort((a, b) => compare(a.registry, b.registry)),
      local: this.local.map((r) => r.repository),
    };
  }

  /** Unscoped paths that several registries hold (only without `scoped`). */
  shared(): SharedPath[] {
    const out: SharedPath[] = [];
    for (const [path, list] of this.byPath) {
      if (list.length < 2) continue;
      const hub = list.filter((a) => isDockerHub(a.origin.registry));
      out.push({
        path,
        registries: list.map((a) => a.origin.registry),
        withoutNs: hub.length > 0 ? preferred(hub, 'docker.io').origin.registry : undefined,
      });
    }
    return out.sort((a, b) => compare(a.path, b.path));
  }

  private pathsOf(registry: string): string[] {
    const scoped = scopedHost(registry);
    // An IPv6 host cannot be a path component: such a registry is reachable through ns only.
    const hasScoped = !scoped.startsWith('[');
    if (this.opts.scoped) return hasScoped ? [`/v2/${scoped}/REPO`] : [];
    return [`/v2/REPO (ns=${normalizeRegistry(registry)})`, ...(hasScoped ? [`/v2/${scoped}/REPO`] : [])];
  }
}

function found(repository: string): Resolution {
  return { kind: 'found', repository };
}

/** Of repositories on one normalized registry, the one whose host is spelled `host`, else the first. */
function preferred(list: readonly Aliased[], host: string): Aliased {
  const lower = host.toLowerCase();
  return list.find((a) => a.origin.registry.toLowerCase() === lower) ?? list[0]!;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
