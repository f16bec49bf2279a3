/**
 * Everything ferry prints to a terminal goes through here. Much of it comes from untrusted
 * media: image names and platform strings from a bundle's ferry-bundle.json or index.json
 * annotations, registry error replies, file names. A terminal acts on control characters: an
 * ESC or CSI sequence in a "reference" can move the cursor, rewrite earlier lines (a forged
 * "verified" verdict), set the window title, or (OSC 52) write the clipboard. So every control
 * character ferry did not put there itself is printed as a visible escape (`\x1b`), as
 * skopeo and crane do by quoting: C0 except newline and tab, DEL, the C1 range (U+0080–U+009F;
 * U+009B is a one-character CSI for some terminals) and the bidirectional overrides that can
 * make text read differently from what it is (U+202A–U+202E, U+2066–U+2069).
 */

import type { CopyEvent } from '../copy/events.js';

/** Control characters a terminal may act on, but newline and tab (which ferry's own lines use). */
const UNSAFE_IN_TEXT = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
/** The same, newline and tab included: for one field that must stay on its line. */
const UNSAFE_IN_FIELD = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
/** What JSON.stringify leaves raw that a terminal may still act on (C0 it escapes itself). */
const UNSAFE_IN_JSON = /[\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

function visible(c: string): string {
  const n = c.charCodeAt(0);
  if (c === '\n') return '\\n';
  if (c === '\t') return '\\t';
  if (c === '\r') return '\\r';
  return n < 0x100 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** Text with lines of ferry's own: every control character but newline and tab made visible. */
export function terminalSafe(text: string): string {
  return text.replace(UNSAFE_IN_TEXT, visible);
}

/** One untrusted value inside a line (a name, a message): newlines made visible too. */
export function safeField(value: string): string {
  return value.replace(UNSAFE_IN_FIELD, visible);
}

/** JSON text whose strings may hold C1 or bidi characters: escaped the JSON way (same value). */
export function jsonSafe(json: string): string {
  return json.replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

export function writeOut(text: string): void {
  process.stdout.write(terminalSafe(text));
}

export function writeErr(text: string): void {
  process.stderr.write(terminalSafe(text));
}

/** One JSON document per line on stdout (--json). */
export function writeJsonLine(obj: unknown): void {
  process.stdout.write(`${jsonSafe(JSON.stringify(obj))}\n`);
}

/** An event with every string it carries made safe to draw (names, messages, platforms). */
export function safeEvent(e: CopyEvent): CopyEvent {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) {
    out[k] = typeof v === 'string' ? safeField(v) : Array.isArray(v) ? v.map((x) => (typeof x === 'string' ? safeField(x) : x)) : v;
  }
  return out as CopyEvent;
}
