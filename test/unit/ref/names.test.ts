/**
 * ferry's own reference table: the names users actually type when mirroring images, the
 * exact error codes for bad ones, the with* helpers, immutability and hostile input.
 */
import { describe, expect, it } from 'vitest';
import {
  isReference,
  parseAnyReference,
  parseDockerRef,
  parseNamed,
  parseNormalizedNamed,
  parseReference,
  parseStrict,
  splitHostname,
  tagNameOnly,
  withDigest,
  withName,
  withTag,
  REFERENCE_MAX_LENGTH,
  type Reference,
} from '../../../src/ref/reference.js';
import { InvalidReferenceError, type ReferenceErrorCode } from '../../../src/util/errors.js';

const D = `sha256:${'a'.repeat(64)}`;
const D2 = `sha256:${'b'.repeat(64)}`;
const HEX = '1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a';

function thrown(fn: () => unknown): InvalidReferenceError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidReferenceError);
    return err as InvalidReferenceError;
  }
  throw new Error('expected an InvalidReferenceError, nothing was thrown');
}

function label(s: string): string {
  return JSON.stringify(s.length > 60 ? `${s.slice(0, 40)}…(${s.length} chars)` : s);
}

interface Good {
  input: string;
  full: string;
  familiar: string;
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
}

// parseReference: what `ferry pull <ref>` sees.
const GOOD: Good[] = [
  {
    input: 'nginx',
    full: 'docker.io/library/nginx:latest',
    familiar: 'nginx:latest',
    domain: 'docker.io',
    path: 'library/nginx',
    tag: 'latest',
  },
  {
    input: 'nginx:1.27-alpine',
    full: 'docker.io/library/nginx:1.27-alpine',
    familiar: 'nginx:1.27-alpine',
    domain: 'docker.io',
    path: 'library/nginx',
    tag: '1.27-alpine',
  },
  {
    input: 'library/nginx',
    full: 'docker.io/library/nginx:latest',
    familiar: 'nginx:latest',
    domain: 'docker.io',
    path: 'library/nginx',
    tag: 'latest',
  },
  {
    input: 'docker.io/nginx',
    full: 'docker.io/library/nginx:latest',
    familiar: 'nginx:latest',
    domain: 'docker.io',
    path: 'library/nginx',
    tag: 'latest',
  },
  {
    input: 'index.docker.io/library/nginx:1',
    full: 'docker.io/library/nginx:1',
    familiar: 'nginx:1',
    domain: 'docker.io',
    path: 'library/nginx',
    tag: '1',
  },
  {
    input: 'index.docker.io/nginx',
    full: 'docker.io/library/nginx:latest',
    familiar: 'nginx:latest',
    domain: 'docker.io',
    path: 'library/nginx',
    tag: 'latest',
  },
  { input: 'user/x:1', full: 'docker.io/user/x:1', familiar: 'user/x:1', domain: 'docker.io', path: 'user/x', tag: '1' },
  {
    input: 'docker.io/library/foo/bar',
    full: 'docker.io/library/foo/bar:latest',
    familiar: 'library/foo/bar:latest',
    domain: 'docker.io',
    path: 'library/foo/bar',
    tag: 'latest',
  },
  {
    input: 'localhost:5000/x:1',
    full: 'localhost:5000/x:1',
    familiar: 'localhost:5000/x:1',
    domain: 'localhost:5000',
    path: 'x',
    tag: '1',
  },
  { input: 'localhost/x', full: 'localhost/x:latest', familiar: 'localhost/x:latest', domain: 'localhost', path: 'x', tag: 'latest' },
  {
    input: '127.0.0.1:5000/a/b/c:v2',
    full: '127.0.0.1:5000/a/b/c:v2',
    familiar: '127.0.0.1:5000/a/b/c:v2',
    domain: '127.0.0.1:5000',
    path: 'a/b/c',
    tag: 'v2',
  },
  {
    input: '[::1]:5000/ferry/test:dev',
    full: '[::1]:5000/ferry/test:dev',
    familiar: '[::1]:5000/ferry/test:dev',
    domain: '[::1]:5000',
    path: 'ferry/test',
    tag: 'dev',
  },
  {
    input: '[fd00:1:2::3]/app',
    full: '[fd00:1:2::3]/app:latest',
    familiar: '[fd00:1:2::3]/app:latest',
    domain: '[fd00:1:2::3]',
    path: 'app',
    tag: 'latest',
  },
  {
    input: 'ghcr.io/org/app',
    full: 'ghcr.io/org/app:latest',
    familiar: 'ghcr.io/org/app:latest',
    domain: 'ghcr.io',
    path: 'org/app',
    tag: 'latest',
  },
  // A registry's own "library" namespace is not Docker Hub's: nothing is stripped.
  {
    input: 'quay.io/library/foo',
    full: 'quay.io/library/foo:latest',
    familiar: 'quay.io/library/foo:latest',
    domain: 'quay.io',
    path: 'library/foo',
    tag: 'latest',
  },
  {
    input: 'registry.example.com:443/team/sub/app:1.0.0_rc.1',
    full: 'registry.example.com:443/team/sub/app:1.0.0_rc.1',
    familiar: 'registry.example.com:443/team/sub/app:1.0.0_rc.1',
    domain: 'registry.example.com:443',
    path: 'team/sub/app',
    tag: '1.0.0_rc.1',
  },
  // Upper case is fine in a host (and makes the first component a host) and in a tag.
  {
    input: 'Registry.Example.com/app:V1',
    full: 'Registry.Example.com/app:V1',
    familiar: 'Registry.Example.com/app:V1',
    domain: 'Registry.Example.com',
    path: 'app',
    tag: 'V1',
  },
  {
    input: 'Docker/docker',
    full: 'Docker/docker:latest',
    familiar: 'Docker/docker:latest',
    domain: 'Docker',
    path: 'docker',
    tag: 'latest',
  },
  // A digest suppresses the default tag; a tag and a digest are both kept.
  {
    input: `ghcr.io/org/app@${D}`,
    full: `ghcr.io/org/app@${D}`,
    familiar: `ghcr.io/org/app@${D}`,
    domain: 'ghcr.io',
    path: 'org/app',
    digest: D,
  },
  {
    input: `ghcr.io/org/app:v1@${D}`,
    full: `ghcr.io/org/app:v1@${D}`,
    familiar: `ghcr.io/org/app:v1@${D}`,
    domain: 'ghcr.io',
    path: 'org/app',
    tag: 'v1',
    digest: D,
  },
  {
    input: `busybox@${D}`,
    full: `docker.io/library/busybox@${D}`,
    familiar: `busybox@${D}`,
    domain: 'docker.io',
    path: 'library/busybox',
    digest: D,
  },
  {
    input: `busybox:1.36@${D}`,
    full: `docker.io/library/busybox:1.36@${D}`,
    familiar: `busybox:1.36@${D}`,
    domain: 'docker.io',
    path: 'library/busybox',
    tag: '1.36',
    digest: D,
  },
  // Single components are always Docker Hub names, even when they look like hosts, and a
  // ":digits" suffix there is a tag, not a port.
  {
    input: 'localhost',
    full: 'docker.io/library/localhost:latest',
    familiar: 'localhost:latest',
    domain: 'docker.io',
    path: 'library/localhost',
    tag: 'latest',
  },
  {
    input: 'example.com',
    full: 'docker.io/library/example.com:latest',
    familiar: 'example.com:latest',
    domain: 'docker.io',
    path: 'library/example.com',
    tag: 'latest',
  },
  { input: 'foo:5000', full: 'docker.io/library/foo:5000', familiar: 'foo:5000', domain: 'docker.io', path: 'library/foo', tag: '5000' },
  // Separators: one ".", one "_", two "__", any number of "-".
  {
    input: 'a_b__c---d/f',
    full: 'docker.io/a_b__c---d/f:latest',
    familiar: 'a_b__c---d/f:latest',
    domain: 'docker.io',
    path: 'a_b__c---d/f',
    tag: 'latest',
  },
  // The 128-character tag limit, inclusive.
  {
    input: `x:${'t'.repeat(128)}`,
    full: `docker.io/library/x:${'t'.repeat(128)}`,
    familiar: `x:${'t'.repeat(128)}`,
    domain: 'docker.io',
    path: 'library/x',
    tag: 't'.repeat(128),
  },
  // The 255 limit is on the path: "library/" counts, the domain does not.
  {
    input: 'a'.repeat(247),
    full: `docker.io/library/${'a'.repeat(247)}:latest`,
    familiar: `${'a'.repeat(247)}:latest`,
    domain: 'docker.io',
    path: `library/${'a'.repeat(247)}`,
    tag: 'latest',
  },
  {
    input: `${'h'.repeat(60)}.example.com/${'p'.repeat(255)}`,
    full: `${'h'.repeat(60)}.example.com/${'p'.repeat(255)}:latest`,
    familiar: `${'h'.repeat(60)}.example.com/${'p'.repeat(255)}:latest`,
    domain: `${'h'.repeat(60)}.example.com`,
    path: 'p'.repeat(255),
    tag: 'latest',
  },
];

describe('parseReference: names ferry users type', () => {
  it.each(GOOD.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
    const ref = parseReference(c.input);
    expect(ref.domain).toBe(c.domain);
    expect(ref.path).toBe(c.path);
    expect(ref.tag).toBe(c.tag);
    expect(ref.digest).toBe(c.digest);
    expect(ref.name).toBe(`${c.domain}/${c.path}`);
    expect(ref.toString()).toBe(c.full);
    expect(String(ref)).toBe(c.full);
    expect(`${ref}`).toBe(c.full);
    expect(ref.familiar()).toBe(c.familiar);
    // Both printed forms read back as the same reference.
    expect(parseReference(ref.toString()).toString()).toBe(c.full);
    expect(parseReference(ref.familiar()).toString()).toBe(c.full);
    expect(parseNamed(ref.toString()).toString()).toBe(c.full);
  });
});

interface Bad {
  input: string;
  code: ReferenceErrorCode;
  /** A fragment the message must contain (besides the quoted input). */
  says?: string;
}

// parseReference (= ParseNormalizedNamed) failures, with the code upstream's error maps to.
const BAD: Bad[] = [
  { input: '', code: 'REFERENCE_INVALID_FORMAT', says: 'empty' },
  { input: 'Nginx', code: 'REFERENCE_NAME_CONTAINS_UPPERCASE', says: 'must be lowercase' },
  { input: 'docker/Docker', code: 'REFERENCE_NAME_CONTAINS_UPPERCASE', says: 'must be lowercase' },
  { input: 'docker.io/docker/Docker', code: 'REFERENCE_NAME_CONTAINS_UPPERCASE' },
  { input: 'ghcr.io/Org/app', code: 'REFERENCE_NAME_CONTAINS_UPPERCASE' },
  { input: 'localhost:5000/Foo:tag', code: 'REFERENCE_NAME_CONTAINS_UPPERCASE' },
  { input: HEX, code: 'REFERENCE_INVALID_FORMAT', says: 'image ID' },
  { input: 'https://github.com/docker/docker', code: 'REFERENCE_INVALID_FORMAT', says: 'URL scheme' },
  { input: ' nginx', code: 'REFERENCE_INVALID_FORMAT', says: 'whitespace' },
  { input: 'nginx:latest\n', code: 'REFERENCE_INVALID_FORMAT', says: 'whitespace' },
  { input: ':latest', code: 'REFERENCE_INVALID_FORMAT', says: 'name is missing' },
  { input: `@${D}`, code: 'REFERENCE_INVALID_FORMAT', says: 'name is missing' },
  { input: 'nginx:', code: 'REFERENCE_INVALID_FORMAT', says: 'invalid tag ""' },
  { input: 'nginx:-rc', code: 'REFERENCE_INVALID_FORMAT', says: 'invalid tag "-rc"' },
  { input: 'nginx:.hidden', code: 'REFERENCE_INVALID_FORMAT', says: 'invalid tag' },
  { input: 'a:b:c', code: 'REFERENCE_INVALID_FORMAT', says: 'invalid tag "b:c"' },
  { input: `x:${'t'.repeat(129)}`, code: 'REFERENCE_INVALID_FORMAT', says: '1 to 128 characters' },
  { input: 'nginx@', code: 'REFERENCE_INVALID_FORMAT', says: 'malformed digest ""' },
  { input: 'nginx@sha256:abc', code: 'REFERENCE_INVALID_FORMAT', says: 'malformed digest "sha256:abc"' },
  { input: `nginx@${D}@${D}`, code: 'REFERENCE_INVALID_FORMAT', says: 'malformed digest' },
  { input: `nginx@sha256:${'a'.repeat(63)}`, code: 'REFERENCE_DIGEST_INVALID_LENGTH', says: 'not 63' },
  { input: `nginx@sha256:${'a'.repeat(65)}`, code: 'REFERENCE_DIGEST_INVALID_LENGTH', says: 'not 65' },
  { input: `nginx@sha256:${'A'.repeat(64)}`, code: 'REFERENCE_DIGEST_INVALID_FORMAT', says: 'lower-case hex' },
  { input: `nginx@sha512:${'a'.repeat(128)}`, code: 'REFERENCE_DIGEST_UNSUPPORTED', says: '"sha512"' },
  { input: `nginx@md5:${'a'.repeat(32)}`, code: 'REFERENCE_DIGEST_UNSUPPORTED', says: '"md5"' },
  // Upstream checks for upper case up to the first ":" before anything else, so an upper-case
  // digest algorithm is reported as an upper-case name.
  { input: `nginx@SHA256:${'a'.repeat(64)}`, code: 'REFERENCE_NAME_CONTAINS_UPPERCASE' },
  { input: 'docker///docker', code: 'REFERENCE_INVALID_FORMAT', says: 'empty component' },
  { input: 'docker.io/docker///docker', code: 'REFERENCE_INVALID_FORMAT', says: 'empty component' },
  { input: 'docker/', code: 'REFERENCE_INVALID_FORMAT', says: 'empty component' },
  { input: '/nginx', code: 'REFERENCE_INVALID_FORMAT', says: 'empty component' },
  { input: '-docker', code: 'REFERENCE_INVALID_FORMAT' },
  { input: '-docker/docker', code: 'REFERENCE_INVALID_FORMAT' },
  { input: 'docker-/docker', code: 'REFERENCE_INVALID_FORMAT' },
  { input: '-docker.io/docker/docker', code: 'REFERENCE_INVALID_FORMAT' },
  { input: '____/____', code: 'REFERENCE_INVALID_FORMAT' },
  { input: 'dock..er/docker', code: 'REFERENCE_INVALID_FORMAT' },
  { input: 'dock_.er/docker', code: 'REFERENCE_INVALID_FORMAT' },
  { input: 'ghcr.io:/x', code: 'REFERENCE_INVALID_FORMAT' },
  // Taken for a host because of the ".", but "_" is not allowed in host names. Upstream returns
  // a reference with an empty domain here; ferry refuses it.
  { input: 'my_registry.local/app', code: 'REFERENCE_INVALID_FORMAT', says: 'not a valid registry host name' },
  { input: 'a.b_c/d:1', code: 'REFERENCE_INVALID_FORMAT', says: '"a.b_c" is not a valid registry host' },
  { input: 'ghcr.io:https/x', code: 'REFERENCE_INVALID_FORMAT' },
  { input: '[fc00::1]', code: 'REFERENCE_INVALID_FORMAT' },
  { input: '[fc00::1]:5000', code: 'REFERENCE_INVALID_FORMAT' },
  { input: 'fc00::1:5000/debian', code: 'REFERENCE_INVALID_FORMAT' },
  { input: '[fe80::1%eth0]:5000/debian', code: 'REFERENCE_INVALID_FORMAT', says: 'zone' },
  { input: '[2001:db8:3:4::192.0.2.33]:5000/debian', code: 'REFERENCE_INVALID_FORMAT' },
  { input: `${'n'.repeat(248)}`, code: 'REFERENCE_NAME_TOO_LONG', says: 'it has 256' },
  { input: `ghcr.io/${'p'.repeat(256)}`, code: 'REFERENCE_NAME_TOO_LONG', says: 'not be more than 255' },
  { input: `${'this_is_a_long_namespace_'.repeat(11)}x/docker`, code: 'REFERENCE_NAME_TOO_LONG' },
];

describe('parseReference: rejected names and their codes', () => {
  it.each(BAD.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
    const err = thrown(() => parseReference(c.input));
    expect(err.code).toBe(c.code);
    expect(err.input).toBe(c.input);
    expect(err.exitCode).toBe(2);
    expect(err.message.startsWith(`invalid reference ${JSON.stringify(c.input)}: `)).toBe(true);
    if (c.says !== undefined) expect(err.message).toContain(c.says);
    // Every entry point that normalises agrees.
    expect(thrown(() => parseNormalizedNamed(c.input)).code).toBe(c.code);
    expect(thrown(() => parseDockerRef(c.input)).code).toBe(c.code);
  });

  it('words the message plainly', () => {
    expect(thrown(() => parseReference('docker/Docker')).message).toBe(
      'invalid reference "docker/Docker": repository name must be lowercase',
    );
    expect(thrown(() => parseStrict('Uppercase:tag')).message).toBe('invalid reference "Uppercase:tag": repository name must be lowercase');
    expect(thrown(() => parseNamed('nginx')).message).toBe(
      'invalid reference "nginx": repository name must be canonical (the canonical form is "docker.io/library/nginx")',
    );
  });
});

describe('the parse variants', () => {
  const both = `busybox:1.36@${D}`;

  it('parseStrict does not normalise', () => {
    const ref = parseStrict('nginx');
    expect([ref.domain, ref.path, ref.name, ref.tag, ref.familiar()]).toEqual(['', 'nginx', 'nginx', undefined, 'nginx']);
    expect(parseStrict('docker.io/nginx').path).toBe('nginx');
    expect(thrown(() => parseStrict('')).code).toBe('REFERENCE_NAME_EMPTY');
    // Upper-case digest algorithms are malformed digests to the strict parser.
    expect(thrown(() => parseStrict(`nginx@SHA256:${'a'.repeat(64)}`)).code).toBe('REFERENCE_DIGEST_INVALID_FORMAT');
  });

  it('parseNormalizedNamed adds no tag; parseReference adds latest only to a bare name', () => {
    expect(parseNormalizedNamed('nginx').toString()).toBe('docker.io/library/nginx');
    expect(parseReference('nginx').toString()).toBe('docker.io/library/nginx:latest');
    expect(parseReference(`nginx@${D}`).tag).toBeUndefined();
    expect(parseReference(both).toString()).toBe(`docker.io/library/${both}`);
  });

  it('parseDockerRef drops the tag when a digest is present', () => {
    const ref = parseDockerRef(both);
    expect(ref.toString()).toBe(`docker.io/library/busybox@${D}`);
    expect(ref.tag).toBeUndefined();
    expect(ref.familiar()).toBe(`busybox@${D}`);
    expect(parseDockerRef('busybox').toString()).toBe('docker.io/library/busybox:latest');
  });

  it('parseNamed accepts only canonical input', () => {
    expect(parseNamed(`docker.io/library/${both}`).toString()).toBe(`docker.io/library/${both}`);
    for (const input of ['nginx', 'nginx:latest', 'library/nginx', 'docker.io/nginx', 'index.docker.io/library/nginx']) {
      expect(thrown(() => parseNamed(input)).code).toBe('REFERENCE_NAME_NOT_CANONICAL');
    }
    // Other errors pass through with their own code.
    expect(thrown(() => parseNamed('Nginx')).code).toBe('REFERENCE_NAME_CONTAINS_UPPERCASE');
  });

  it('parseAnyReference: image IDs and digests are digests, the rest names', () => {
    const id = parseAnyReference(HEX);
    expect(isReference(id)).toBe(false);
    expect(id.digest).toBe(`sha256:${HEX}`);
    expect(String(id)).toBe(`sha256:${HEX}`);
    expect(Object.isFrozen(id)).toBe(true);
    expect(parseAnyReference(D).digest).toBe(D);
    const named = parseAnyReference('nginx');
    expect(isReference(named)).toBe(true);
    expect(named.toString()).toBe('docker.io/library/nginx');
    // Not quite an ID: a name.
    expect(parseAnyReference(HEX.slice(1)).toString()).toBe(`docker.io/library/${HEX.slice(1)}`);
    expect(thrown(() => parseAnyReference(HEX.toUpperCase())).code).toBe('REFERENCE_NAME_CONTAINS_UPPERCASE');
  });

  it('parseAnyReference refuses sha384/sha512 digests instead of reading them as "library/sha512:<hex>"', () => {
    expect(thrown(() => parseAnyReference(`sha512:${'a'.repeat(128)}`)).code).toBe('REFERENCE_DIGEST_UNSUPPORTED');
    expect(thrown(() => parseAnyReference(`sha384:${'a'.repeat(96)}`)).code).toBe('REFERENCE_DIGEST_UNSUPPORTED');
    // Anything else shaped like name:tag is still a name, as upstream.
    expect(parseAnyReference('sha512:abc').toString()).toBe('docker.io/library/sha512:abc');
  });

  it('splitHostname normalises', () => {
    expect(splitHostname('nginx:1')).toEqual({ domain: 'docker.io', path: 'library/nginx' });
    expect(splitHostname('[::1]:5000/a/b')).toEqual({ domain: '[::1]:5000', path: 'a/b' });
    expect(splitHostname(parseStrict('a/b'))).toEqual({ domain: 'a', path: 'b' });
  });

  it('familiar() of a docker.io name that is 64 hex is the bare hex, as upstream', () => {
    const ref = parseNormalizedNamed(`docker.io/${HEX}`);
    expect(ref.toString()).toBe(`docker.io/library/${HEX}`);
    expect(ref.familiar()).toBe(HEX);
  });
});

describe('withName / withTag / withDigest / tagNameOnly', () => {
  it('withName validates without normalising', () => {
    const n = withName('ghcr.io/org/app');
    expect([n.domain, n.path, n.tag, n.digest, n.toString()]).toEqual(['ghcr.io', 'org/app', undefined, undefined, 'ghcr.io/org/app']);
    expect(withName('foo').domain).toBe('');
    for (const bad of ['', 'foo:tag', `foo@${D}`, 'Foo/Bar', 'foo/']) {
      const err = thrown(() => withName(bad));
      expect(err.code).toBe('REFERENCE_INVALID_FORMAT');
      expect(err.input).toBe(bad);
    }
  });

  it('withTag sets or replaces the tag and keeps the digest', () => {
    const base = parseNormalizedNamed('ghcr.io/org/app');
    expect(withTag(base, 'v1').toString()).toBe('ghcr.io/org/app:v1');
    expect(withTag(withTag(base, 'v1'), 'v2').toString()).toBe('ghcr.io/org/app:v2');
    expect(withTag(withDigest(base, D), 'TAG5').toString()).toBe(`ghcr.io/org/app:TAG5@${D}`);
    expect(withTag(parseStrict('foo'), 'tag2').toString()).toBe('foo:tag2');
    expect(withTag(base, 'v1')).not.toBe(base);
    expect(base.tag).toBeUndefined();
  });

  it('withTag rejects bad tags with REFERENCE_TAG_INVALID_FORMAT', () => {
    const base = parseReference('nginx');
    for (const bad of ['', '-foo', '.foo', 'a/b', 'a:b', 'a@b', 'ü', 't'.repeat(129)]) {
      const err = thrown(() => withTag(base, bad));
      expect(err.code).toBe('REFERENCE_TAG_INVALID_FORMAT');
      expect(err.input).toBe(bad);
      expect(err.message).toContain(`invalid tag ${JSON.stringify(bad)}`);
    }
    expect(withTag(base, 't'.repeat(128)).tag).toHaveLength(128);
    expect(withTag(base, '_').tag).toBe('_');
  });

  it('withDigest sets or replaces the digest and keeps the tag', () => {
    const tagged = parseReference('localhost:5000/x:1');
    expect(withDigest(tagged, D).toString()).toBe(`localhost:5000/x:1@${D}`);
    expect(withDigest(withDigest(tagged, D), D2).digest).toBe(D2);
    expect(withDigest(parseNormalizedNamed('nginx'), D).familiar()).toBe(`nginx@${D}`);
  });

  it('withDigest accepts only valid sha256 digests', () => {
    const base = parseReference('nginx');
    const cases: [string, ReferenceErrorCode][] = [
      ['foo', 'REFERENCE_DIGEST_INVALID_FORMAT'],
      ['sha256:abc', 'REFERENCE_DIGEST_INVALID_FORMAT'],
      // Upstream's WithDigest checks only the grammar and would take this one.
      ['sha256:1234567890098765432112345667890098765', 'REFERENCE_DIGEST_INVALID_LENGTH'],
      [`sha256:${'A'.repeat(64)}`, 'REFERENCE_DIGEST_INVALID_FORMAT'],
      [`SHA256:${'a'.repeat(64)}`, 'REFERENCE_DIGEST_INVALID_FORMAT'],
      [`sha512:${'a'.repeat(128)}`, 'REFERENCE_DIGEST_UNSUPPORTED'],
    ];
    for (const [digest, code] of cases) {
      const err = thrown(() => withDigest(base, digest));
      expect(err.code).toBe(code);
      expect(err.input).toBe(digest);
      expect(err.message.startsWith(`invalid digest ${JSON.stringify(digest)}: `)).toBe(true);
    }
  });

  it('tagNameOnly adds latest only to a bare name', () => {
    expect(tagNameOnly(parseNormalizedNamed('nginx')).tag).toBe('latest');
    expect(tagNameOnly(parseNormalizedNamed('nginx:1')).tag).toBe('1');
    expect(tagNameOnly(parseNormalizedNamed(`nginx@${D}`)).tag).toBeUndefined();
  });

  it('accepts a structurally compatible Reference from elsewhere', () => {
    const foreign: Reference = {
      domain: 'ghcr.io',
      path: 'org/app',
      tag: undefined,
      digest: undefined,
      name: 'ghcr.io/org/app',
      toString: () => 'ghcr.io/org/app',
      familiar: () => 'ghcr.io/org/app',
    };
    const ref = withTag(foreign, 'v1');
    expect(isReference(ref)).toBe(true);
    expect(ref.toString()).toBe('ghcr.io/org/app:v1');
  });
});

describe('immutability', () => {
  it('references are frozen', () => {
    const ref = parseReference(`nginx:1@${D}`);
    expect(Object.isFrozen(ref)).toBe(true);
    expect(() => {
      (ref as { tag: string | undefined }).tag = 'evil';
    }).toThrow(TypeError);
    expect(ref.tag).toBe('1');
    expect(() => {
      (ref as unknown as Record<string, unknown>).extra = 1;
    }).toThrow(TypeError);
  });

  it('exposes only data in JSON', () => {
    expect(JSON.parse(JSON.stringify(parseReference('nginx')))).toEqual({
      domain: 'docker.io',
      path: 'library/nginx',
      tag: 'latest',
      name: 'docker.io/library/nginx',
    });
  });
});

describe('hostile input', () => {
  const N = 100_000;
  const inputs: Record<string, string> = {
    'long alnum run': `${'a'.repeat(N)}!`,
    'dash separators': `${'a-'.repeat(N / 2)}!`,
    'one long dash run': `a${'-'.repeat(N)}!`,
    'dotted host without path': `${'a.'.repeat(N / 2)}!`,
    'dashed host components': `a${'a-'.repeat(N / 2)}.b!`,
    'host then bad path': `${'ab-cd.'.repeat(N / 6)}/x!`,
    'many path components': `${'a/'.repeat(N / 2)}A`,
    underscores: `${'a__'.repeat(N / 3)}.!`,
    'unterminated IPv6': `[${':'.repeat(N)}/`,
    'huge tag': `a:${'b'.repeat(N)}`,
    'many colons': 'a:'.repeat(N / 2),
    'many ats': 'a@'.repeat(N / 2),
    'huge digest algorithm': `a@${'A-'.repeat(N / 2)}:`,
    'huge digest hex': `a@sha256:${'f'.repeat(N)}g`,
    'long port': `${'a.'.repeat(N / 4)}a:${'1'.repeat(N / 2)}x`,
  };

  it.each(Object.entries(inputs))('%s is rejected quickly', (_, input) => {
    const start = performance.now();
    for (const parse of [parseStrict, parseReference, parseAnyReference, withName]) {
      expect(() => parse(input)).toThrow(InvalidReferenceError);
    }
    // Linear matching takes a few milliseconds here; catastrophic backtracking takes hours.
    expect(performance.now() - start).toBeLessThan(2_000);
  });
});

describe('length bound before matching (issue 11)', () => {
  it('a reference longer than any valid one is refused at once, and its message stays short', () => {
    const huge = `example.com/app:${'a'.repeat(50_000_000)}`;
    const t0 = performance.now();
    let err: unknown;
    try {
      parseReference(huge);
    } catch (e) {
      err = e;
    }
    expect(performance.now() - t0).toBeLessThan(2000); // generous: machines are shared; the code and message checks are the sharp ones
    expect(err).toMatchObject({ code: 'REFERENCE_NAME_TOO_LONG' });
    expect((err as Error).message.length).toBeLessThan(300);
    expect(() => parseStrict(huge)).toThrow(/must not be more than 716 characters/);
  });

  it('the longest valid reference is accepted', () => {
    const domain = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}:65535`;
    const ref = `${domain}/${'p'.repeat(255)}:${'t'.repeat(128)}@sha256:${'0'.repeat(64)}`;
    expect(ref.length).toBe(REFERENCE_MAX_LENGTH);
    expect(parseReference(ref).toString()).toBe(ref);
  });
});
