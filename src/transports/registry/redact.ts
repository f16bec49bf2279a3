/** Keeps credentials and signed-URL secrets out of messages and logs. */

/** A URL safe to print: no userinfo, and query values hidden (pre-signed blob URLs carry secrets). */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    return '<unparsable URL>';
  }
  u.username = '';
  u.password = '';
  const keys = [...u.searchParams.keys()];
  if (keys.length === 0) return u.toString();
  // Registry-relevant parameters are harmless and help debugging; everything else is hidden.
  const keep = new Set(['n', 'last', 'digest', 'mount', 'from', 'service', 'scope']);
  const parts = [...u.searchParams.entries()].map(
    ([k, v]) => `${encodeURIComponent(k)}=${keep.has(k) ? encodeURIComponent(v) : 'REDACTED'}`,
  );
  u.search = '';
  return `${u.toString()}?${parts.join('&')}`;
}
