/**
 * `n`/`last` pagination of tags/list and _catalog: results in lexical order, at most `n`
 * of them, strictly after `last`, and a `Link: <…>; rel="next"` header while more remain.
 */
import type { ApiError } from './routes.js';

/** The most entries one page returns, whatever `n` asks for (a Link header says there is more). */
export const MAX_PAGE_SIZE = 10_000;

export interface PageRequest {
  n: number | undefined;
  last: string | undefined;
}

export function parsePageRequest(query: URLSearchParams): PageRequest | ApiError {
  const rawN = query.get('n');
  const last = query.get('last') ?? undefined;
  let n: number | undefined;
  if (rawN !== null && rawN !== '') {
    if (!/^\d+$/.test(rawN)) {
      return {
        status: 400,
        code: 'PAGINATION_NUMBER_INVALID',
        message: `invalid number of results requested: n=${JSON.stringify(rawN.slice(0, 40))} (want a non-negative integer)`,
        detail: { n: rawN.slice(0, 40) },
      };
    }
    n = Math.min(Number(rawN), MAX_PAGE_SIZE);
  }
  return { n, last: last === '' ? undefined : last };
}

export interface Page {
  items: string[];
  /** The `last` of the next page, when there is one. */
  next: string | undefined;
}

/** One page of `sorted` (which must be sorted and free of duplicates). */
export function paginate(sorted: readonly string[], req: PageRequest): Page {
  const from = req.last === undefined ? 0 : firstAfter(sorted, req.last);
  const rest = sorted.length - from;
  const take = req.n === undefined ? rest : Math.min(req.n, rest);
  const items = sorted.slice(from, from + take);
  const next = take < rest && take > 0 ? items[items.length - 1] : undefined;
  return { items, next };
}

/** `</v2/…?last=X&n=N>; rel="next"` for a page that has a successor. */
export function nextLink(path: string, next: string, n: number, ns?: string): string {
  return `<${path}?last=${encodeURIComponent(next)}&n=${n}${ns !== undefined ? `&ns=${encodeURIComponent(ns)}` : ''}>; rel="next"`;
}

/** Index of the first element greater than `key` (binary search). */
function firstAfter(sorted: readonly string[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
