/**
 * Access log lines, one per request: NCSA common log format with the duration appended, or a
 * JSON object per line. Request data is attacker-controlled, so it is escaped (no forged lines,
 * no terminal escapes); credentials never reach the log (only the authenticated user name).
 */

export interface AccessRecord {
  /** Client address. */
  remote: string;
  /** Authenticated user, if any. */
  user: string | undefined;
  time: Date;
  method: string;
  /** The request target as sent (path and query). */
  target: string;
  /** `HTTP/1.1`. */
  protocol: string;
  status: number;
  /** Body bytes sent. */
  bytes: number;
  durationMs: number;
  userAgent?: string | undefined;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** `10/Oct/2000:13:55:36 +0000` (always UTC). */
export function clfTime(d: Date): string {
  return (
    `${pad(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`
  );
}

const MAX_FIELD = 1024;

/** Escape quotes, backslashes, control and non-ASCII characters as Apache does (`\xHH`). */
export function escapeField(s: string): string {
  const clipped = s.length > MAX_FIELD ? `${s.slice(0, MAX_FIELD)}...` : s;
  return clipped.replace(/[^\x20-\x7e]|["\\]/g, (c) => {
    if (c === '"' || c === '\\') return `\\${c}`;
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
  });
}

/** `host - user [time] "METHOD /target HTTP/1.1" status bytes 12.3ms` */
export function formatCommonLog(r: AccessRecord): string {
  const user = r.user ? escapeField(r.user).replace(/ /g, '\\x20') : '-';
  const requestLine = r.method ? `${escapeField(r.method)} ${escapeField(r.target)} ${escapeField(r.protocol)}` : '-';
  return `${r.remote || '-'} - ${user || '-'} [${clfTime(r.time)}] "${requestLine}" ${r.status} ${r.bytes > 0 ? r.bytes : '-'} ${r.durationMs.toFixed(1)}ms`;
}

export function formatJsonLog(r: AccessRecord): string {
  return JSON.stringify({
    type: 'request',
    time: r.time.toISOString(),
    remote: r.remote,
    user: r.user ?? null,
    method: r.method,
    target: r.target.length > MAX_FIELD ? `${r.target.slice(0, MAX_FIELD)}...` : r.target,
    protocol: r.protocol,
    status: r.status,
    bytes: r.bytes,
    durationMs: Math.round(r.durationMs * 10) / 10,
    ...(r.userAgent ? { userAgent: r.userAgent.slice(0, MAX_FIELD) } : {}),
  });
}
