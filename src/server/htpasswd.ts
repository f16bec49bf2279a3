/**
 * HTTP Basic authentication against an Apache htpasswd file, as distribution's htpasswd
 * auth does: bcrypt entries only (`htpasswd -B`; `$2y$`, `$2a$`, `$2b$`). Verified
 * credentials are cached for the life of the server so that a pull, which authenticates every
 * request, pays for bcrypt once; repeated failures are throttled per client address and user
 * name (and, more loosely, per address), and cached credentials are never throttled.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';
import { FerryError } from '../util/errors.js';

const BCRYPT_RE = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

export class HtpasswdError extends FerryError {
  constructor(message: string, options?: { cause?: unknown; hint?: string }) {
    super('HTPASSWD_INVALID', message, options);
  }
}

/** Parse htpasswd text into user → bcrypt hash. Blank lines and `#` comments are skipped. */
export function parseHtpasswd(text: string, file = 'htpasswd'): Map<string, string> {
  const users = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const where = `${file}:${i + 1}`;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HtpasswdError(`${where}: expected USER:HASH`);
    const user = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (!BCRYPT_RE.test(hash)) {
      throw new HtpasswdError(`${where}: the password of ${JSON.stringify(user)} is not a bcrypt hash; only bcrypt entries are supported`, {
        hint: `recreate it with: htpasswd -B ${file} ${user}`,
      });
    }
    if (users.has(user)) throw new HtpasswdError(`${where}: user ${JSON.stringify(user)} is listed more than once`);
    users.set(user, hash);
  }
  if (users.size === 0) throw new HtpasswdError(`${file} has no users; nobody could log in`);
  return users;
}

/** Verified credentials kept at most (the cache is emptied when it fills). */
const CACHE_LIMIT = 1024;

export class Htpasswd {
  /** sha256(user NUL password) of credentials bcrypt has accepted. */
  private readonly verified = new Set<string>();
  private dummyHash: Promise<string> | undefined;

  constructor(private readonly users: ReadonlyMap<string, string>) {}

  static async load(file: string): Promise<Htpasswd> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new HtpasswdError(`cannot read htpasswd file ${file}: ${(err as Error).message}`, { cause: err });
    }
    return new Htpasswd(parseHtpasswd(text, file));
  }

  /** True when bcrypt has already accepted these credentials: no work, no throttle. */
  isVerified(user: string, password: string): boolean {
    return this.verified.has(cacheKey(user, password));
  }

  async verify(user: string, password: string): Promise<boolean> {
    const key = cacheKey(user, password);
    if (this.verified.has(key)) return true;
    const hash = this.users.get(user);
    if (hash === undefined) {
      // Spend the same time on unknown users as on wrong passwords: no user enumeration.
      await bcrypt.compare(password, await this.dummy());
      return false;
    }
    if (!(await bcrypt.compare(password, hash))) return false;
    if (this.verified.size >= CACHE_LIMIT) this.verified.clear();
    this.verified.add(key);
    return true;
  }

  private dummy(): Promise<string> {
    const first = this.users.values().next().value as string;
    const rounds = Number(BCRYPT_RE.exec(first)?.[1] ?? 10);
    this.dummyHash ??= bcrypt.hash('ferry: no such user', rounds);
    return this.dummyHash;
  }
}

function cacheKey(user: string, password: string): string {
  return createHash('sha256').update(user).update('\0').update(password).digest('hex');
}

/** `Authorization: Basic …` → user and password; undefined when absent or malformed. */
export function parseBasicAuth(header: string | undefined): { user: string; password: string } | undefined {
  if (!header) return undefined;
  const m = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/**
 * Throttles authentication failures per key (a client address, or an address and user name):
 * after `max` failures within `windowMs`, the key is refused (429) until the window ends.
 */
export class FailureThrottle {
  private readonly failures = new Map<string, { count: number; resetAt: number }>();

  constructor(
    private readonly max = 10,
    private readonly windowMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seconds until `addr` may try again, or 0 when it may try now. */
  retryAfter(addr: string): number {
    const f = this.failures.get(addr);
    if (!f) return 0;
    const t = this.now();
    if (t >= f.resetAt) {
      this.failures.delete(addr);
      return 0;
    }
    return f.count >= this.max ? Math.ceil((f.resetAt - t) / 1000) : 0;
  }

  fail(addr: string): void {
    const t = this.now();
    if (this.failures.size >= 10_000) {
      for (const [k, v] of this.failures) if (t >= v.resetAt) this.failures.delete(k);
    }
    const f = this.failures.get(addr);
    if (!f || t >= f.resetAt) this.failures.set(addr, { count: 1, resetAt: t + this.windowMs });
    else f.count++;
  }

  succeed(addr: string): void {
    this.failures.delete(addr);
  }
}
