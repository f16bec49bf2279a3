/**
 * HTTP Range requests on blobs (RFC 9110 §14): a single byte range is honoured; anything
 * else a server may ignore (multiple ranges, other units, syntax it cannot read) gets the
 * whole blob with 200. Pure functions.
 */

export type RangeResult =
  /** Serve everything with 200 (no Range header, or one to ignore). */
  | { kind: 'full' }
  /** Serve bytes start..end inclusive with 206. */
  | { kind: 'partial'; start: number; end: number }
  /** 416, with `Content-Range: bytes *\/size`. */
  | { kind: 'unsatisfiable' };

const SINGLE_RANGE_RE = /^(\d*)-(\d*)$/;

/** Interpret a Range header against a representation of `size` bytes. */
export function parseRange(header: string | undefined, size: number): RangeResult {
  if (header === undefined) return { kind: 'full' };
  const eq = header.indexOf('=');
  if (eq === -1 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return { kind: 'full' };
  const set = header.slice(eq + 1).trim();
  // Multiple ranges would need multipart/byteranges; registries and their clients never use it.
  if (set.includes(',')) return { kind: 'full' };
  const m = SINGLE_RANGE_RE.exec(set);
  if (!m) return { kind: 'full' };
  const [, first = '', last = ''] = m;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    // Suffix range: the last N bytes.
    const n = Number(last);
    if (n === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(first);
  if (last !== '' && Number(last) < start) return { kind: 'full' }; // invalid: ignore the header
  if (start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  return { kind: 'partial', start, end };
}

export function contentRange(start: number, end: number, size: number): string {
  return `bytes ${start}-${end}/${size}`;
}
