/**
 * WWW-Authenticate parsing (RFC 7235 §4.1, with the list rules of RFC 9110 §5.6.1).
 *
 *   WWW-Authenticate = 1#challenge
 *   challenge        = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
 *   auth-param       = token BWS "=" BWS ( token / quoted-string )
 *   token68          = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
 *
 * Commas separate both challenges and the parameters inside one, so after a comma we look
 * ahead: `token BWS "="` continues the current challenge, any other token starts a new one.
 *
 * Deliberate leniency, because registries in the wild send it: an unquoted parameter value may
 * hold any visible character except `"`, `,` and `\` (so `realm=https://auth.example/token`
 * parses), and empty list elements (`, ,`) are skipped as RFC 9110 requires of recipients.
 * Everything else is strict: a quoted auth-scheme or parameter name, a missing comma between
 * parameters, an unterminated quoted-string or a dangling backslash are errors, as is a
 * parameter repeated within one challenge (RFC 7235: "MUST only occur once").
 */
import { FerryError } from '../util/errors.js';

export interface Challenge {
  /** Auth scheme, lower-cased (`bearer`, `basic`, ...). */
  scheme: string;
  /** Parameters with lower-cased names; values unquoted and unescaped. Null-prototype object. */
  params: Record<string, string>;
  /** The token68 form (`Negotiate YII...`) instead of parameters; absent when params are used. */
  token68?: string;
}

/** A WWW-Authenticate header that does not follow the grammar. */
export class InvalidChallengeError extends FerryError {
  constructor(
    readonly header: string,
    /** Offset (UTF-16 code units) into `header` where parsing failed. */
    readonly offset: number,
    detail: string,
  ) {
    super('AUTH_CHALLENGE_INVALID', `invalid WWW-Authenticate header: ${detail} at offset ${offset} in ${excerpt(header)}`);
  }
}

const MAX_EXCERPT = 200;

function excerpt(header: string): string {
  const cut = header.length > MAX_EXCERPT ? `${header.slice(0, MAX_EXCERPT)}…` : header;
  return JSON.stringify(cut);
}

// RFC 9110 §5.6.2 tchar.
const TCHAR = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;
// RFC 7235 §2.1 token68 characters, before the trailing '='.
const TOKEN68_CHAR = /[A-Za-z0-9\-._~+/]/;

function isOWS(c: string | undefined): boolean {
  return c === ' ' || c === '\t';
}

/** Visible ASCII or obs-text (RFC 9110 qdtext / quoted-pair ranges, excluding controls). */
function isQuotable(c: string): boolean {
  const code = c.charCodeAt(0);
  return c === '\t' || (code >= 0x20 && code !== 0x7f && code <= 0xff);
}

function isUnquotedValueChar(c: string): boolean {
  const code = c.charCodeAt(0);
  return code > 0x20 && code < 0x7f && c !== '"' && c !== ',' && c !== '\\';
}

class Cursor {
  pos = 0;
  constructor(readonly s: string) {}

  get done(): boolean {
    return this.pos >= this.s.length;
  }
  peek(): string | undefined {
    return this.s[this.pos];
  }
  fail(detail: string, at = this.pos): never {
    throw new InvalidChallengeError(this.s, at, detail);
  }
  /** Skips optional whitespace; returns how much was skipped. */
  skipOWS(): number {
    const start = this.pos;
    while (isOWS(this.s[this.pos])) this.pos++;
    return this.pos - start;
  }
  /** Skips whitespace and commas (empty list elements). */
  skipListSeparators(): void {
    while (isOWS(this.s[this.pos]) || this.s[this.pos] === ',') this.pos++;
  }
  readToken(): string {
    const start = this.pos;
    while (!this.done && TCHAR.test(this.s[this.pos]!)) this.pos++;
    return this.s.slice(start, this.pos);
  }
  readToken68(): string {
    const start = this.pos;
    while (!this.done && TOKEN68_CHAR.test(this.s[this.pos]!)) this.pos++;
    if (this.pos === start) return '';
    while (this.s[this.pos] === '=') this.pos++;
    return this.s.slice(start, this.pos);
  }
  readQuotedString(): string {
    const open = this.pos;
    this.pos++; // opening quote
    let out = '';
    for (;;) {
      const c = this.s[this.pos];
      if (c === undefined) this.fail('unterminated quoted-string', open);
      if (c === '"') {
        this.pos++;
        return out;
      }
      if (c === '\\') {
        const escaped = this.s[this.pos + 1];
        if (escaped === undefined) this.fail('backslash at end of quoted-string');
        if (!isQuotable(escaped)) this.fail('invalid character after backslash', this.pos + 1);
        out += escaped;
        this.pos += 2;
        continue;
      }
      if (!isQuotable(c)) this.fail('control character in quoted-string');
      out += c;
      this.pos++;
    }
  }
  readUnquotedValue(): string {
    const start = this.pos;
    while (!this.done && isUnquotedValueChar(this.s[this.pos]!)) this.pos++;
    return this.s.slice(start, this.pos);
  }
}

/**
 * Parses a WWW-Authenticate header value into its challenges, in header order. Several header
 * lines may be passed joined with ", " (as fetch's Headers does). A blank value yields `[]`, so a
 * 401 without a usable challenge is the caller's decision. Throws InvalidChallengeError
 * (code AUTH_CHALLENGE_INVALID) on malformed input.
 */
export function parseWWWAuthenticate(header: string): Challenge[] {
  const cur = new Cursor(header);
  const challenges: Challenge[] = [];

  for (;;) {
    cur.skipListSeparators();
    if (cur.done) break;

    const schemeAt = cur.pos;
    const scheme = cur.readToken();
    if (scheme === '') cur.fail('expected an auth-scheme token', schemeAt);
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: Object.create(null) as Record<string, string> };
    challenges.push(challenge);

    const gap = cur.skipOWS();
    if (cur.done || cur.peek() === ',') continue;
    if (gap === 0) cur.fail('expected whitespace after the auth-scheme');

    // token68 form: the whole rest of this list element is one token68.
    const token68At = cur.pos;
    const token68 = cur.readToken68();
    if (token68 !== '') {
      cur.skipOWS();
      if (cur.done || cur.peek() === ',') {
        challenge.token68 = token68;
        continue;
      }
    }
    cur.pos = token68At;

    parseParams(cur, challenge);
  }
  return challenges;
}

/** Reads `name=value` pairs until the end of input or a comma that begins the next challenge. */
function parseParams(cur: Cursor, challenge: Challenge): void {
  for (;;) {
    const nameAt = cur.pos;
    const name = cur.readToken();
    if (name === '') cur.fail('expected a parameter name', nameAt);
    cur.skipOWS();
    if (cur.peek() !== '=') cur.fail(`expected "=" after parameter ${JSON.stringify(name)}`);
    cur.pos++;
    cur.skipOWS();

    let value: string;
    if (cur.peek() === '"') {
      value = cur.readQuotedString();
    } else {
      const valueAt = cur.pos;
      value = cur.readUnquotedValue();
      if (value === '') cur.fail(`missing value for parameter ${JSON.stringify(name)}`, valueAt);
    }

    const key = name.toLowerCase();
    if (Object.hasOwn(challenge.params, key)) cur.fail(`parameter ${JSON.stringify(key)} repeated`, nameAt);
    challenge.params[key] = value;

    cur.skipOWS();
    if (cur.done) return;
    if (cur.peek() !== ',') cur.fail('expected "," between parameters');

    // A comma: either another parameter of this challenge, or the start of the next challenge.
    const afterComma = cur.pos;
    cur.skipListSeparators();
    if (cur.done) return;
    const lookahead = cur.pos;
    cur.readToken();
    cur.skipOWS();
    const isParam = cur.peek() === '=';
    cur.pos = isParam ? lookahead : afterComma;
    if (!isParam) return;
  }
}
