import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InvalidChallengeError, parseWWWAuthenticate, type Challenge } from '../../../src/auth/challenge.js';
import { FerryError } from '../../../src/util/errors.js';

import { FIXTURES } from '../../helpers/fixtures.js';
const VECTORS = join(FIXTURES, 'auth-vectors', 'www-authenticate.json');
const haveVectors = existsSync(VECTORS);
if (!haveVectors) console.warn(`skipping WWW-Authenticate fixture vectors: ${VECTORS} not found`);

interface Vector {
  name: string;
  in: string;
  want?: Challenge[];
  error?: boolean;
  note?: string;
}

function expectInvalid(header: string): InvalidChallengeError {
  let caught: unknown;
  try {
    parseWWWAuthenticate(header);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InvalidChallengeError);
  expect(caught).toBeInstanceOf(FerryError);
  expect((caught as FerryError).code).toBe('AUTH_CHALLENGE_INVALID');
  return caught as InvalidChallengeError;
}

describe.skipIf(!haveVectors)('parseWWWAuthenticate: auth-vectors/www-authenticate.json', () => {
  const vectors: Vector[] = haveVectors ? (JSON.parse(readFileSync(VECTORS, 'utf8')) as { cases: Vector[] }).cases : [];

  it('has the 13 documented vectors', () => {
    expect(vectors).toHaveLength(13);
  });

  // Quoted scheme and parameter names are regclient leniency, not RFC 7235 syntax; the vector's
  // own note allows a strict parser to reject them, and this one does.
  const strictRejects = (v: Vector): boolean => v.note?.includes('strict parser may reject') ?? false;

  for (const v of vectors) {
    if (v.error) {
      it(`rejects: ${v.name}`, () => {
        expectInvalid(v.in);
      });
    } else if (strictRejects(v)) {
      it(`rejects (strict RFC 7235): ${v.name}`, () => {
        expectInvalid(v.in);
      });
    } else {
      it(`parses: ${v.name}`, () => {
        expect(parseWWWAuthenticate(v.in)).toEqual(v.want);
      });
    }
  }
});

describe('parseWWWAuthenticate', () => {
  it('returns [] for a blank header', () => {
    expect(parseWWWAuthenticate('')).toEqual([]);
    expect(parseWWWAuthenticate('  \t ')).toEqual([]);
  });

  it('parses a bare scheme and several bare schemes', () => {
    expect(parseWWWAuthenticate('Basic')).toEqual([{ scheme: 'basic', params: {} }]);
    expect(parseWWWAuthenticate('Negotiate, NTLM')).toEqual([
      { scheme: 'negotiate', params: {} },
      { scheme: 'ntlm', params: {} },
    ]);
  });

  it('parses token68, alone and followed by another challenge', () => {
    expect(
      parseWWWAuthenticate('Negotiate YIIBhgYGKwYBBQUCoIIBejCCAXagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYKKwYBBAGCNwICCg=='),
    ).toEqual([
      {
        scheme: 'negotiate',
        params: {},
        token68: 'YIIBhgYGKwYBBQUCoIIBejCCAXagMDAuBgkqhkiC9xIBAgIGCSqGSIb3EgECAgYKKwYBBAGCNwICHgYKKwYBBAGCNwICCg==',
      },
    ]);
    expect(parseWWWAuthenticate('Foo abc=, Bearer realm="r"')).toEqual([
      { scheme: 'foo', params: {}, token68: 'abc=' },
      { scheme: 'bearer', params: { realm: 'r' } },
    ]);
  });

  it('reads "name=" right after the scheme as token68, per the grammar', () => {
    expect(parseWWWAuthenticate('Basic realm=')).toEqual([{ scheme: 'basic', params: {}, token68: 'realm=' }]);
  });

  it('handles the RFC 7235 §4.1 example with an empty list element and BWS', () => {
    const header = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", , Basic realm = "simple"';
    expect(parseWWWAuthenticate(header)).toEqual([
      { scheme: 'newauth', params: { realm: 'apps', type: '1', title: 'Login to "apps"' } },
      { scheme: 'basic', params: { realm: 'simple' } },
    ]);
  });

  it('accepts an unquoted URL realm, trailing commas and tabs', () => {
    expect(parseWWWAuthenticate('Bearer\trealm=https://auth.example.com/token,service=reg,')).toEqual([
      { scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'reg' } },
    ]);
  });

  it('keeps value case and empty quoted values; lower-cases names', () => {
    expect(parseWWWAuthenticate('BEARER Realm="MiXeD", Error=""')).toEqual([{ scheme: 'bearer', params: { realm: 'MiXeD', error: '' } }]);
  });

  it('keeps commas inside quoted values (scope lists)', () => {
    const [c] = parseWWWAuthenticate('Bearer scope="repository:a/b:pull,push repository:c:pull", realm="x"');
    expect(c?.params.scope).toBe('repository:a/b:pull,push repository:c:pull');
    expect(c?.params.realm).toBe('x');
  });

  it('gives null-prototype params, so a "__proto__" parameter is just data', () => {
    const [c] = parseWWWAuthenticate('Bearer __proto__="x", realm="r"');
    expect(Object.getPrototypeOf(c!.params)).toBeNull();
    expect(c!.params.__proto__).toBe('x');
  });

  it.each([
    ['dangling backslash', 'Basic realm="abc\\'],
    ['missing close quote', 'Basic realm="abc'],
    ['missing comma between params', 'Basic realm="a" charset="b"'],
    ['missing comma after unquoted value', 'Basic realm=a charset=b'],
    ['missing value', 'Basic charset=x, realm='],
    ['missing value before comma', 'Basic realm=, charset="x"'],
    ['repeated parameter', 'Bearer realm="a", Realm="b"'],
    ['no space after scheme', 'Basic"realm"'],
    ['quoted scheme', '"Basic" realm="x"'],
    ['parameter without "="', 'Bearer realm="a", service "x"'],
    ['control character in quoted-string', 'Basic realm="a\u0001b"'],
    ['leading "="', '=Basic'],
  ])('rejects %s', (_name, header) => {
    expectInvalid(header);
  });

  it('says where parsing failed', () => {
    const err = expectInvalid('Basic realm="Dev" charset="UTF-8"');
    expect(err.offset).toBe(18);
    expect(err.header).toBe('Basic realm="Dev" charset="UTF-8"');
    expect(err.message).toContain('offset 18');
  });
});
