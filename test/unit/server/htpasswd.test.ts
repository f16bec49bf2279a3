import bcrypt from 'bcryptjs';
import { describe, expect, it } from 'vitest';
import { FailureThrottle, Htpasswd, HtpasswdError, parseBasicAuth, parseHtpasswd } from '../../../src/server/htpasswd.js';

// Low cost keeps the suite fast; the format is what matters.
const hash2b = bcrypt.hashSync('s3cret', 4);
const hash2a = hash2b.replace(/^\$2b\$/, '$2a$');
const hash2y = bcrypt.hashSync('other', 4).replace(/^\$2b\$/, '$2y$');

describe('parseHtpasswd', () => {
  it('reads bcrypt entries of every flavour, skipping blanks and comments', () => {
    const users = parseHtpasswd(`# users\nalice:${hash2b}\r\n\n  bob:${hash2y}  \ncarol:${hash2a}\n`);
    expect([...users.keys()]).toEqual(['alice', 'bob', 'carol']);
    expect(users.get('bob')).toBe(hash2y);
  });

  it('refuses non-bcrypt hashes, naming the line and the fix', () => {
    for (const hash of ['$apr1$abc$def', '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=', 'plaintext', '$6$salt$hash', '$2b$04$short']) {
      let err: unknown;
      try {
        parseHtpasswd(`# x\nalice:${hash}\n`, 'users.htpasswd');
      } catch (e) {
        err = e;
      }
      expect(err, hash).toBeInstanceOf(HtpasswdError);
      expect((err as HtpasswdError).message).toMatch(/^users\.htpasswd:2: .*alice.*bcrypt/);
      expect((err as HtpasswdError).hint).toMatch(/htpasswd -B/);
    }
  });

  it('refuses malformed lines, duplicate users and empty files', () => {
    expect(() => parseHtpasswd('no-colon\n')).toThrow(/:1: expected USER:HASH/);
    expect(() => parseHtpasswd(`:${hash2b}\n`)).toThrow(/expected USER:HASH/);
    expect(() => parseHtpasswd(`a:${hash2b}\na:${hash2y}\n`)).toThrow(/more than once/);
    expect(() => parseHtpasswd('# nobody\n\n')).toThrow(/no users/);
  });
});

describe('Htpasswd.verify', () => {
  const auth = new Htpasswd(parseHtpasswd(`alice:${hash2b}\nbob:${hash2y}\ncarol:${hash2a}\n`));

  it('accepts the right password for $2b$, $2y$ and $2a$ entries', async () => {
    expect(await auth.verify('alice', 's3cret')).toBe(true);
    expect(await auth.verify('bob', 'other')).toBe(true);
    expect(await auth.verify('carol', 's3cret')).toBe(true);
  });

  it('refuses wrong passwords and unknown users', async () => {
    expect(await auth.verify('alice', 'wrong')).toBe(false);
    expect(await auth.verify('alice', 's3cret ')).toBe(false);
    expect(await auth.verify('mallory', 's3cret')).toBe(false);
    expect(await auth.verify('bob', 's3cret')).toBe(false);
  });

  it('remembers verified credentials so bcrypt runs once per credential', async () => {
    const slow = new Htpasswd(parseHtpasswd(`u:${bcrypt.hashSync('pw', 8)}\n`));
    let t = performance.now();
    expect(await slow.verify('u', 'pw')).toBe(true);
    const first = performance.now() - t;
    t = performance.now();
    for (let i = 0; i < 20; i++) expect(await slow.verify('u', 'pw')).toBe(true);
    expect(performance.now() - t).toBeLessThan(first);
    // A cached success must not make a different password pass.
    expect(await slow.verify('u', 'pw2')).toBe(false);
    expect(slow.isVerified('u', 'pw')).toBe(true);
    expect(slow.isVerified('u', 'pw2')).toBe(false);
  });
});

describe('parseBasicAuth', () => {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  it('parses Basic credentials; the password may contain colons', () => {
    expect(parseBasicAuth(`Basic ${b64('alice:s3:cret')}`)).toEqual({ user: 'alice', password: 's3:cret' });
    expect(parseBasicAuth(`basic ${b64('a:')}`)).toEqual({ user: 'a', password: '' });
  });
  it('ignores anything else', () => {
    for (const h of [
      undefined,
      '',
      'Bearer abc',
      `Basic ${b64('nocolon')}`,
      `Basic ${b64(':pw')}`,
      'Basic !!!',
      `Basic ${b64('a:b')} extra`,
    ]) {
      expect(parseBasicAuth(h), String(h)).toBeUndefined();
    }
  });
});

describe('FailureThrottle', () => {
  it('refuses an address after max failures until the window ends', () => {
    let now = 1_000_000;
    const t = new FailureThrottle(3, 60_000, () => now);
    for (let i = 0; i < 3; i++) {
      expect(t.retryAfter('10.0.0.1')).toBe(0);
      t.fail('10.0.0.1');
    }
    expect(t.retryAfter('10.0.0.1')).toBe(60);
    expect(t.retryAfter('10.0.0.2')).toBe(0);
    now += 30_000;
    expect(t.retryAfter('10.0.0.1')).toBe(30);
    now += 30_001;
    expect(t.retryAfter('10.0.0.1')).toBe(0);
  });

  it('forgets failures after a success', () => {
    const t = new FailureThrottle(2, 60_000);
    t.fail('a');
    t.succeed('a');
    t.fail('a');
    expect(t.retryAfter('a')).toBe(0);
  });
});
