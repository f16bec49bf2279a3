/**
 * Every tag of a repository on a registry (profile tag filters): `GET /v2/<repo>/tags/list`,
 * then the pages its `Link: <…>; rel="next"` headers name (RFC 8288), all through the client's
 * request core, so auth, TLS and retries are those of a pull. The Link rules (parsing, where a
 * next page may be fetched from) are pure functions beside the loop that does the I/O.
 *
 * No `last` is ever guessed: without a Link the first answer is the whole list (distribution 2.8
 * ignores `n` and many registries answer with everything), so asking for more would only repeat it.
 */
import { ANCHORED_TAG_RE } from '../../ref/grammar.js';
import { type FerryError, RegistryError, UsageError } from '../../util/errors.js';
import { z } from '../../util/zod.js';
import { header, readCappedBytes, type RegistryClient, type RegistryResponse } from './client.js';
import { pullScope } from './manifest.js';
import { redactUrl } from './redact.js';
import { backoffDelay, isRetryableNetworkError, wait, withinBudget } from './retry.js';

export interface TagListOptions {
  signal?: AbortSignal;
  /** `n` asked of the registry for the first page (it may answer with fewer or more). Default 1000. */
  pageSize?: number;
  /** More distinct tags than this is an error, not a truncated list. Default 100 000. */
  maxTags?: number;
}

const DEFAULT_PAGE_SIZE = 1000;
const DEFAULT_MAX_TAGS = 100_000;
/** One page's body. 100 000 tags of 40 bytes fit; a body past this is not a tag list. */
const MAX_PAGE_BYTES = 4 * 1024 * 1024;
/** The longest tag the grammar allows: longer strings never reach the regular expression. */
const MAX_TAG_LENGTH = 128;

// `tags: null` is what distribution answers for a repository whose tags were all deleted.
const TagsPage = z.object({ name: z.string(), tags: z.array(z.string()).nullable() });

/**
 * All tags of `repo` on the client's registry, each once, in byte order. Errors name the
 * registry and repository: an unknown repository is the registry's 404 (NAME_UNKNOWN from
 * distribution and `ferry serve`), a page that is no tag list, holds a tag outside the grammar,
 * or a pagination that loops, leaves the origin or passes `maxTags` is REGISTRY_PROTOCOL or
 * TAG_LIMIT.
 */
export async function listTags(client: RegistryClient, repo: string, opts: TagListOptions = {}): Promise<string[]> {
  const pageSize = opts.pageSize ?? DEFAULT_PAGE_SIZE;
  const maxTags = opts.maxTags ?? DEFAULT_MAX_TAGS;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1)
    throw new UsageError(`tag list page size must be a positive integer, not ${pageSize}`);
  if (!Number.isSafeInteger(maxTags) || maxTags < 1) throw new UsageError(`tag list limit must be a positive integer, not ${maxTags}`);
  const signal = opts.signal;
  const what = `listing tags of ${client.registry}/${repo}`;
  const origin = new URL(await client.baseUrl(signal)).origin;
  const tags = new Set<string>();
  const fetched = new Set<string>();
  let path = `/v2/${repo}/tags/list?n=${pageSize}`;
  for (;;) {
    const page = await fetchPage(client, repo, path, what, signal);
    fetched.add(new URL(page.url).toString());
    const fail = (code: string, message: string): RegistryError =>
      new RegistryError(code, `${what}: ${message}`, 'GET', redactUrl(page.url), page.status, []);
    const before = tags.size;
    for (const tag of page.tags) {
      if (tag.length > MAX_TAG_LENGTH || !ANCHORED_TAG_RE.test(tag)) {
        throw fail('REGISTRY_PROTOCOL', `the registry listed ${JSON.stringify(clip(tag))}, which is not a valid tag`);
      }
      tags.add(tag);
      if (tags.size > maxTags) throw fail('TAG_LIMIT', `the repository has more than ${maxTags} tags (the limit of one listing)`);
    }
    const next = nextPageUrl(page.link, page.url, origin);
    if (next.kind === 'none') break;
    if (next.kind === 'refused') throw fail('REGISTRY_PROTOCOL', next.reason);
    if (fetched.has(next.url)) {
      throw fail('REGISTRY_PROTOCOL', `the registry's next page ${redactUrl(next.url)} was fetched before (a pagination loop)`);
    }
    // A page that brings nothing new yet promises more would let a registry keep us paging forever.
    if (tags.size === before) throw fail('REGISTRY_PROTOCOL', `a page with no new tag names a next page ${redactUrl(next.url)}`);
    path = next.url;
  }
  return [...tags].sort();
}

interface TagsPageAnswer {
  /** The URL the page was fetched from (absolute), for resolving its Link and for messages. */
  url: string;
  status: number;
  tags: string[];
  link: string | undefined;
}

/** One page, its body capped and read again (within the retry policy) if it broke off. */
async function fetchPage(client: RegistryClient, repo: string, path: string, what: string, signal?: AbortSignal): Promise<TagsPageAnswer> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const res = await client.send({
      method: 'GET',
      path,
      scope: pullScope(repo),
      headers: { accept: 'application/json' },
      expect: [200],
      what,
      ...(signal ? { signal } : {}),
    });
    const declaredLength = Number(header(res.headers, 'content-length') ?? NaN);
    if (declaredLength > MAX_PAGE_BYTES) {
      res.body.destroy();
      throw protocolError(
        what,
        res,
        `the registry announced a ${declaredLength}-byte tag list, over the ${MAX_PAGE_BYTES}-byte limit of one page`,
      );
    }
    let bytes: Buffer;
    try {
      bytes = await readCappedBytes(res.body, MAX_PAGE_BYTES, what);
    } catch (err) {
      if (!signal?.aborted && isRetryableNetworkError(err) && withinBudget(client.policy, attempt, started)) {
        await wait(backoffDelay(client.policy, attempt), signal);
        continue;
      }
      throw err;
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw protocolError(what, res, 'the answer is not JSON', err);
    }
    const parsed = TagsPage.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
      throw protocolError(what, res, `the answer is not a tag list${where}: ${issue?.message ?? 'invalid'}`);
    }
    return { url: res.url, status: res.status, tags: parsed.data.tags ?? [], link: header(res.headers, 'link') };
  }
}

function protocolError(what: string, res: RegistryResponse, message: string, cause?: unknown): FerryError {
  return new RegistryError(
    'REGISTRY_PROTOCOL',
    `${what}: ${message}`,
    'GET',
    redactUrl(res.url),
    res.status,
    [],
    cause === undefined ? {} : { cause },
  );
}

function clip(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/** One link-value of a Link header: its target as written and its parameters (names lower-cased, first of each kept). */
export interface LinkValue {
  target: string;
  params: Record<string, string>;
}

const TOKEN_CHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

/**
 * The link-values of a Link header (RFC 8288 §3; several headers arrive joined by commas), or
 * undefined when it does not follow the grammar. Quoted parameter values may hold commas and
 * semicolons; a target is whatever lies between `<` and `>`.
 */
export function parseLinkHeader(value: string): LinkValue[] | undefined {
  const links: LinkValue[] = [];
  const n = value.length;
  let i = 0;
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t';
  const skipSpace = (): void => {
    while (isSpace(value[i])) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < n && TOKEN_CHAR.test(value[i] as string)) i++;
    return value.slice(start, i);
  };
  const readQuoted = (): string | undefined => {
    let out = '';
    for (i++; i < n; i++) {
      const c = value[i] as string;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        i++;
        if (i >= n) return undefined;
        out += value[i];
      } else {
        out += c;
      }
    }
    return undefined;
  };
  for (;;) {
    // Empty list elements (", ,") are allowed by the list syntax (RFC 9110 §5.6.1).
    while (i < n && (isSpace(value[i]) || value[i] === ',')) i++;
    if (i >= n) return links;
    if (value[i] !== '<') return undefined;
    const close = value.indexOf('>', i + 1);
    if (close < 0) return undefined;
    const link: LinkValue = { target: value.slice(i + 1, close).trim(), params: {} };
    i = close + 1;
    for (;;) {
      skipSpace();
      if (i >= n || value[i] === ',') break;
      if (value[i] !== ';') return undefined;
      i++;
      skipSpace();
      const name = readToken().toLowerCase();
      if (name === '') {
        // A trailing ";" before the next link-value or the end.
        if (i >= n || value[i] === ',') break;
        return undefined;
      }
      skipSpace();
      let paramValue = '';
      if (value[i] === '=') {
        i++;
        skipSpace();
        if (value[i] === '"') {
          const quoted = readQuoted();
          if (quoted === undefined) return undefined;
          paramValue = quoted;
        } else {
          paramValue = readToken();
        }
      }
      // RFC 8288 §3.3: occurrences of a parameter after the first are ignored.
      if (!Object.hasOwn(link.params, name)) link.params[name] = paramValue;
    }
    links.push(link);
  }
}

export type NextPage = { kind: 'none' } | { kind: 'next'; url: string } | { kind: 'refused'; reason: string };

/**
 * Where the page after `pageUrl` is, from its Link header: the `rel="next"` target resolved
 * against the page's URL. Refused when the header is malformed, names two different next pages,
 * or leaves `origin` (another host, port or scheme, or a URL with userinfo): the request would
 * carry the registry's credentials, and a listing has no reason to go elsewhere.
 */
export function nextPageUrl(link: string | undefined, pageUrl: string, origin: string): NextPage {
  if (link === undefined || link.trim() === '') return { kind: 'none' };
  const links = parseLinkHeader(link);
  if (!links) return { kind: 'refused', reason: `malformed Link header ${JSON.stringify(clip(link))}` };
  const targets = new Set<string>();
  for (const l of links) {
    const rels = (l.params.rel ?? '').toLowerCase().split(/[ \t]+/);
    if (!rels.includes('next')) continue;
    let url: URL;
    try {
      url = new URL(l.target, pageUrl);
    } catch {
      return { kind: 'refused', reason: `the next page ${JSON.stringify(clip(l.target))} is not a URL` };
    }
    if (url.username !== '' || url.password !== '') {
      return { kind: 'refused', reason: `the next page ${redactUrl(url)} carries credentials in its URL` };
    }
    if (url.origin !== origin) {
      return { kind: 'refused', reason: `the next page ${redactUrl(url)} is not on the registry (${origin}); it is not fetched` };
    }
    url.hash = '';
    targets.add(url.toString());
  }
  if (targets.size === 0) return { kind: 'none' };
  if (targets.size > 1) return { kind: 'refused', reason: `the Link header names ${targets.size} different next pages` };
  return { kind: 'next', url: [...targets][0] as string };
}
