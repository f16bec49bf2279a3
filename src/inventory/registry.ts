/**
 * Inventory of a registry (`docker://HOST[/PREFIX]`), read only: the repositories `_catalog`
 * lists under PREFIX (its pages followed by `Link`, with the rules tags.ts uses for tag lists),
 * each repository's tags, each tag's manifest (an index's children too), and every blob those
 * manifests reference, confirmed by a HEAD. Blobs live per repository in a registry; a blob
 * counts as present when a HEAD answered 200 with the declared size in any repository that
 * references it (a load then mounts it, or finds it, where it is missing). Manifests count as
 * present when fetched and verified against their digest.
 */
import { eachLimit } from '../copy/scheduler.js';
import { isDigest, type Digest } from '../oci/digest.js';
import { MAX_INDEX_DEPTH, parseManifest, type Descriptor } from '../oci/manifest.js';
import type { RegistryClient } from '../transports/registry/client.js';
import { header, readCappedBytes } from '../transports/registry/client.js';
import { drain } from '../transports/registry/http.js';
import { getManifest, pullScope } from '../transports/registry/manifest.js';
import { redactUrl } from '../transports/registry/redact.js';
import { listTags, nextPageUrl } from '../transports/registry/tags.js';
import { isRepositoryName } from '../server/names.js';
import { AbortedError, AuthError, errorMessage, ManifestError, RegistryError } from '../util/errors.js';
import { z } from '../util/zod.js';
import { type Collected, type CollectOptions, plural } from './collect.js';

/** One catalog page's body (100 000 names of 40 bytes fit). */
const MAX_CATALOG_PAGE_BYTES = 8 * 1024 * 1024;
const CATALOG_PAGE_SIZE = 1000;
const MAX_REPOSITORIES = 100_000;
const CatalogPage = z.object({ repositories: z.array(z.string()).nullable() });

const CATALOG_HINT =
  'this registry does not list its repositories to this user (GET /v2/_catalog); distribution serves it, ' +
  'many hosted registries do not or need an admin token. Inventory a registry that does, or load into an OCI layout and inventory that';

/**
 * Every repository `_catalog` lists, in order. A registry that refuses the catalog (401, 403,
 * 404) is CATALOG_UNAVAILABLE with a hint; a pagination that loops or leaves the registry is
 * REGISTRY_PROTOCOL, as for tag lists.
 */
export async function listCatalog(client: RegistryClient, signal?: AbortSignal, pageSize = CATALOG_PAGE_SIZE): Promise<string[]> {
  const what = `listing the repositories of ${client.registry}`;
  const origin = new URL(await client.baseUrl(signal)).origin;
  const repos = new Set<string>();
  const fetched = new Set<string>();
  let path = `/v2/_catalog?n=${pageSize}`;
  for (;;) {
    let res: Awaited<ReturnType<RegistryClient['send']>>;
    try {
      res = await client.send({
        method: 'GET',
        path,
        scope: 'registry:catalog:*',
        headers: { accept: 'application/json' },
        expect: [200],
        what,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      const status = err instanceof RegistryError ? err.status : err instanceof AuthError ? 401 : undefined;
      if (status === 401 || status === 403 || status === 404) {
        // A 401 may just as well mean missing or wrong credentials: say both.
        const hint =
          status === 401
            ? `the credentials for ${client.registry} are missing, wrong, or not allowed to list repositories (docker login ${client.registry}, or --username with --password-stdin); ${CATALOG_HINT}`
            : CATALOG_HINT;
        throw new RegistryError(
          'CATALOG_UNAVAILABLE',
          `${what}: the registry refused the repository list (GET /v2/_catalog answered ${status})`,
          'GET',
          err instanceof RegistryError ? err.url : path,
          status,
          err instanceof RegistryError ? err.errors : [],
          { cause: err, hint },
        );
      }
      throw err;
    }
    const fail = (message: string): RegistryError =>
      new RegistryError('REGISTRY_PROTOCOL', `${what}: ${message}`, 'GET', redactUrl(res.url), res.status, []);
    fetched.add(new URL(res.url).toString());
    const bytes = await readCappedBytes(res.body, MAX_CATALOG_PAGE_BYTES, what);
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw fail('the answer is not JSON');
    }
    const page = CatalogPage.safeParse(json);
    if (!page.success) throw fail('the answer is not a repository list');
    const before = repos.size;
    for (const r of page.data.repositories ?? []) {
      if (r.length > 255 || !isRepositoryName(r))
        throw fail(`the registry listed ${JSON.stringify(r.slice(0, 80))}, not a repository name`);
      repos.add(r);
      if (repos.size > MAX_REPOSITORIES) throw fail(`more than ${MAX_REPOSITORIES} repositories (the limit of one inventory)`);
    }
    const next = nextPageUrl(header(res.headers, 'link'), res.url, origin);
    if (next.kind === 'none') break;
    if (next.kind === 'refused') throw fail(next.reason);
    if (fetched.has(next.url)) throw fail(`the next page ${redactUrl(next.url)} was fetched before (a pagination loop)`);
    if (repos.size === before) throw fail(`a page with no new repository names a next page ${redactUrl(next.url)}`);
    path = next.url;
  }
  return [...repos];
}

/** The repositories at or under `prefix` ('' for all). */
export function underPrefix(repos: readonly string[], prefix: string): string[] {
  return repos.filter((r) => prefix === '' || r === prefix || r.startsWith(`${prefix}/`)).sort();
}

/** HEAD a blob with pull rights only: its size, or undefined when the repository does not hold it. */
async function headBlob(client: RegistryClient, repo: string, digest: string, signal?: AbortSignal): Promise<number | undefined> {
  const res = await client.send({
    method: 'HEAD',
    path: `/v2/${repo}/blobs/${digest}`,
    scope: pullScope(repo),
    expect: [200, 404],
    what: `blob ${digest} in ${client.registry}/${repo}`,
    // A HEAD on a blob may redirect to storage; the size is in the final answer.
    followRedirects: true,
    ...(signal ? { signal } : {}),
  });
  await drain(res.body);
  if (res.status === 404) return undefined;
  const len = Number(header(res.headers, 'content-length'));
  return Number.isFinite(len) ? len : -1;
}

/** A manifest that is not there (a tag deleted while listing) or not one ferry reads: a note, not a failure. */
function skippable(err: unknown): boolean {
  return err instanceof ManifestError || (err instanceof RegistryError && err.status === 404);
}

export async function collectRegistry(client: RegistryClient, host: string, prefix: string, opts: CollectOptions): Promise<Collected> {
  const { signal, concurrency } = opts;
  const check = (): void => {
    if (signal?.aborted) throw new AbortedError('inventory aborted');
  };
  const repos = underPrefix(await listCatalog(client, signal), prefix);
  const notes: string[] = [];
  const skipped: string[] = [];

  const tagged: Array<{ repo: string; tag: string }> = [];
  await eachLimit(repos, concurrency, async (repo) => {
    check();
    try {
      for (const tag of await listTags(client, repo, signal ? { signal } : {})) tagged.push({ repo, tag });
    } catch (err) {
      // A repository the catalog lists but that answers 404 has no tags left (all deleted).
      if (!(err instanceof RegistryError && err.status === 404)) throw err;
    }
  });
  tagged.sort((a, b) => (a.repo === b.repo ? (a.tag < b.tag ? -1 : 1) : a.repo < b.repo ? -1 : 1));

  const images: Collected['images'] = [];
  const present = new Set<Digest>();
  /** Each manifest digest once: where it was found, so children are fetched from the same repository. */
  const manifests = new Map<string, string>();
  /** Blob digest → declared size and the repositories whose manifests reference it. */
  const blobs = new Map<string, { size: number; repos: Set<string> }>();
  let level: Array<{ repo: string; desc: Descriptor }> = [];

  const walk = (repo: string, digest: Digest, doc: ReturnType<typeof parseManifest>, next: typeof level): void => {
    present.add(digest);
    if (doc.kind === 'index') {
      for (const c of doc.manifests)
        if (isDigest(c.digest) && !manifests.has(c.digest)) {
          manifests.set(c.digest, repo);
          next.push({ repo, desc: c });
        }
      return;
    }
    for (const d of [doc.config, ...doc.layers]) {
      if (!isDigest(d.digest)) continue;
      const b = blobs.get(d.digest) ?? { size: d.size, repos: new Set<string>() };
      b.repos.add(repo);
      blobs.set(d.digest, b);
    }
  };

  await eachLimit(tagged, concurrency, async ({ repo, tag }) => {
    check();
    const name = `${host}/${repo}:${tag}`;
    try {
      const m = await getManifest(client, repo, tag, `fetching manifest for ${name}`, signal);
      images.push({ name, digest: m.digest });
      if (manifests.has(m.digest)) return;
      manifests.set(m.digest, repo);
      walk(repo, m.digest, parseManifest(m.bytes, m.mediaType, name), level);
    } catch (err) {
      if (!skippable(err)) throw err;
      skipped.push(`${name}: ${errorMessage(err)}`);
    }
  });

  for (let depth = 1; level.length > 0; depth++) {
    if (depth > MAX_INDEX_DEPTH) {
      notes.push(`indexes nested deeper than ${MAX_INDEX_DEPTH} levels: what lies below was not inventoried`);
      break;
    }
    const current = level;
    const next: typeof level = [];
    await eachLimit(current, concurrency, async ({ repo, desc }) => {
      check();
      const what = `manifest ${desc.digest} in ${host}/${repo}`;
      try {
        const m = await getManifest(client, repo, desc.digest, `fetching ${what}`, signal);
        walk(repo, m.digest, parseManifest(m.bytes, m.mediaType ?? desc.mediaType, what), next);
      } catch (err) {
        if (!skippable(err)) throw err;
        skipped.push(`${what}: ${errorMessage(err)}`);
      }
    });
    level = next;
  }

  let absent = 0;
  await eachLimit([...blobs], concurrency, async ([digest, b]) => {
    check();
    for (const repo of [...b.repos].sort()) {
      const size = await headBlob(client, repo, digest, signal);
      if (size !== undefined && (size === b.size || size < 0 || b.size < 0)) {
        present.add(digest as Digest);
        return;
      }
    }
    absent++;
  });

  if (absent) notes.push(`${plural(absent, 'blob')} referenced by manifests here but not found by HEAD: not claimed`);
  if (skipped.length) {
    notes.push(`${plural(skipped.length, 'manifest')} not inventoried (gone, or not a manifest ferry reads):`);
    for (const s of skipped.sort().slice(0, 20)) notes.push(`  ${s}`);
  }
  notes.push(
    `registry: ${plural(repos.length, 'repository', 'repositories')}${prefix ? ` under ${prefix}` : ''}; blobs are kept per repository, ` +
      'and a blob is claimed when any repository that references it has it (a load mounts or re-checks it where it is missing)',
  );
  return { images, blobs: [...present], notes };
}
