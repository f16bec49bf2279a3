/**
 * distribution/reference's own test tables (reference_test.go, normalize_test.go), run
 * against src/ref/reference.ts. The vectors live in the shared third-party fixtures; when
 * they are absent the suite is skipped, loudly.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  isReference,
  parseAnyReference,
  parseDockerRef,
  parseNamed,
  parseNormalizedNamed,
  parseStrict,
  splitHostname,
  withName,
  type Reference,
} from '../../../src/ref/reference.js';
import { InvalidReferenceError, type ReferenceErrorCode } from '../../../src/util/errors.js';

import { FIXTURES } from '../../helpers/fixtures.js';
const VECTORS = join(FIXTURES, 'distribution-reference/derived/reference-test-vectors.json');
const exists = existsSync(VECTORS);
if (!exists) console.warn(`skipping distribution/reference vectors: ${VECTORS} not found (set FERRY_FIXTURES)`);

/** Go error identifiers used in the vectors, mapped to ferry's error codes. */
const GO_ERRORS: Record<string, ReferenceErrorCode> = {
  ErrReferenceInvalidFormat: 'REFERENCE_INVALID_FORMAT',
  ErrTagInvalidFormat: 'REFERENCE_TAG_INVALID_FORMAT',
  ErrDigestInvalidFormat: 'REFERENCE_DIGEST_INVALID_FORMAT',
  ErrNameContainsUppercase: 'REFERENCE_NAME_CONTAINS_UPPERCASE',
  ErrNameEmpty: 'REFERENCE_NAME_EMPTY',
  ErrNameTooLong: 'REFERENCE_NAME_TOO_LONG',
  ErrNameNotCanonical: 'REFERENCE_NAME_NOT_CANONICAL',
  'digest.ErrDigestInvalidFormat': 'REFERENCE_DIGEST_INVALID_FORMAT',
  'digest.ErrDigestInvalidLength': 'REFERENCE_DIGEST_INVALID_LENGTH',
  'digest.ErrDigestUnsupported': 'REFERENCE_DIGEST_UNSUPPORTED',
};

function codeOf(goError: string): ReferenceErrorCode {
  const code = GO_ERRORS[goError];
  if (code === undefined) throw new Error(`vector uses unknown Go error ${goError}; map it in GO_ERRORS`);
  return code;
}

function expectError(fn: () => unknown, code: ReferenceErrorCode, input: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `expected ${code} for ${JSON.stringify(input)}`).toBeInstanceOf(InvalidReferenceError);
  const err = thrown as InvalidReferenceError;
  expect(err.code).toBe(code);
  expect(err.input).toBe(input);
  expect(err.message).toContain(JSON.stringify(input));
  expect(err.exitCode).toBe(2);
}

/** A short, unique-enough test name for inputs that run to hundreds of characters. */
function label(s: string): string {
  const shown = s.length > 60 ? `${s.slice(0, 40)}…(${s.length} chars)` : s;
  return JSON.stringify(shown);
}

const str = z.string();
const cases = <T extends z.ZodType>(item: T) => z.object({ doc: str.optional(), cases: z.array(item) }).strict();

const Suites = z
  .object({
    Parse: cases(
      z
        .object({
          input: str,
          repository: str.optional(),
          domain: str.optional(),
          tag: str.optional(),
          digest: str.optional(),
          err: str.optional(),
        })
        .strict(),
    ),
    WithName_failures: cases(z.object({ input: str, err: str }).strict()),
    WithName_domain_path: cases(z.object({ input: str, domain: str, path: str }).strict()),
    ParseNamed: cases(z.object({ input: str, domain: str.optional(), path: str.optional(), err: str.optional() }).strict()),
    ParseNormalizedNamed_valid: cases(str),
    ParseNormalizedNamed_invalid: cases(str),
    RepositoryInfo: cases(z.object({ RemoteName: str, FamiliarName: str, FullName: str, AmbiguousName: str, Domain: str }).strict()),
    ParseAnyReference: cases(z.object({ Reference: str, Equivalent: str, Expected: str.optional() }).strict()),
    NormalizedSplitHostname: cases(z.object({ input: str, domain: str, path: str }).strict()),
    ParseDockerRef: cases(z.object({ name: str, input: str, expected: str }).strict()),
    TagAndDigest: cases(z.object({ input: str, expected: str, familiar: str }).strict()),
  })
  // A suite added to the fixture must be wired up here, not silently ignored.
  .strict();

const File = z.object({ origin: str, commit: str, note: str, suites: Suites });

const vectors: z.infer<typeof Suites> | undefined = exists ? File.parse(JSON.parse(readFileSync(VECTORS, 'utf8'))).suites : undefined;

function expectFields(ref: Reference, want: { domain: string; path: string; tag?: string; digest?: string }): void {
  expect(ref.domain).toBe(want.domain);
  expect(ref.path).toBe(want.path);
  expect(ref.tag).toBe(want.tag);
  expect(ref.digest).toBe(want.digest);
  expect(ref.name).toBe(want.domain === '' ? want.path : `${want.domain}/${want.path}`);
}

describe.skipIf(!exists)('distribution/reference vectors', () => {
  // describe bodies run even when skipped; everything below needs the file.
  const v = vectors;
  if (v === undefined) {
    it(`needs ${VECTORS}`, () => {});
    return;
  }

  describe('Parse (strict grammar)', () => {
    it.each(v.Parse.cases.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
      if (c.err !== undefined) {
        expectError(() => parseStrict(c.input), codeOf(c.err), c.input);
        return;
      }
      const ref = parseStrict(c.input);
      const domain = c.domain ?? '';
      const repository = c.repository ?? '';
      expect(ref.name).toBe(repository);
      expectFields(ref, {
        domain,
        path: domain === '' ? repository : repository.slice(domain.length + 1),
        tag: c.tag,
        digest: c.digest,
      });
      expect(ref.toString()).toBe(c.input);
    });
  });

  describe('WithName failures', () => {
    it.each(v.WithName_failures.cases.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
      expectError(() => withName(c.input), codeOf(c.err), c.input);
    });
  });

  describe('WithName domain and path', () => {
    it.each(v.WithName_domain_path.cases.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
      const ref = withName(c.input);
      expectFields(ref, { domain: c.domain, path: c.path });
      expect(ref.toString()).toBe(c.input);
    });
  });

  describe('ParseNamed (canonical only)', () => {
    it.each(v.ParseNamed.cases.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
      if (c.err !== undefined) {
        expectError(() => parseNamed(c.input), codeOf(c.err), c.input);
        return;
      }
      const ref = parseNamed(c.input);
      expectFields(ref, { domain: c.domain ?? '', path: c.path ?? '' });
      expect(ref.toString()).toBe(c.input);
    });
  });

  describe('ParseNormalizedNamed valid', () => {
    it.each(v.ParseNormalizedNamed_valid.cases.map((c) => [label(c), c] as const))('%s', (_, input) => {
      const ref = parseNormalizedNamed(input);
      expect(ref.domain).not.toBe('');
      // The canonical and familiar forms both normalise back to the same reference.
      const canonical = ref.toString();
      expect(parseNormalizedNamed(canonical).toString()).toBe(canonical);
      expect(parseNamed(canonical).toString()).toBe(canonical);
      // Except when the familiar form is a bare 64-hex string ("docker.io/<hex>"), which reads
      // back as an image ID; upstream's FamiliarString has the same blind spot.
      const familiar = ref.familiar();
      if (!/^[a-f0-9]{64}$/.test(familiar)) expect(parseNormalizedNamed(familiar).toString()).toBe(canonical);
    });
  });

  describe('ParseNormalizedNamed invalid', () => {
    // The vectors name no error for these (upstream only asserts err != nil); the exact codes
    // are pinned in names.test.ts.
    it.each(v.ParseNormalizedNamed_invalid.cases.map((c) => [label(c), c] as const))('%s', (_, input) => {
      expect(() => parseNormalizedNamed(input)).toThrow(InvalidReferenceError);
      try {
        parseNormalizedNamed(input);
      } catch (err) {
        expect((err as InvalidReferenceError).code).toMatch(/^REFERENCE_/);
        expect((err as InvalidReferenceError).message).toContain(JSON.stringify(input));
      }
    });
  });

  describe('RepositoryInfo (familiar, full and ambiguous spellings)', () => {
    const rows = v.RepositoryInfo.cases.flatMap((c) =>
      [c.FamiliarName, c.FullName, c.AmbiguousName]
        .filter((input) => input !== '')
        .map((input) => [JSON.stringify(input), input, c] as const),
    );
    it.each(rows)('%s', (_, input, c) => {
      const ref = parseNormalizedNamed(input);
      expect(ref.familiar()).toBe(c.FamiliarName);
      expect(ref.toString()).toBe(c.FullName);
      expect(ref.domain).toBe(c.Domain);
      expect(ref.path).toBe(c.RemoteName);
      expect(ref.tag).toBeUndefined();
      expect(ref.digest).toBeUndefined();
    });
  });

  describe('ParseAnyReference', () => {
    it.each(v.ParseAnyReference.cases.map((c) => [label(c.Reference), c] as const))('%s', (_, c) => {
      const ref = parseAnyReference(c.Reference);
      expect(ref.toString()).toBe(c.Equivalent);
      if (c.Expected !== undefined) {
        // A digest reference: no name at all.
        expect(isReference(ref)).toBe(false);
        expect(ref.digest).toBe(c.Expected);
      } else {
        // Otherwise it must equal what the strict parser makes of the equivalent.
        expect(isReference(ref)).toBe(true);
        const want = parseStrict(c.Equivalent);
        const got = ref as Reference;
        expectFields(got, { domain: want.domain, path: want.path, tag: want.tag, digest: want.digest });
      }
    });
  });

  describe('NormalizedSplitHostname', () => {
    it.each(v.NormalizedSplitHostname.cases.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
      expect(splitHostname(c.input)).toEqual({ domain: c.domain, path: c.path });
      expect(splitHostname(parseNormalizedNamed(c.input))).toEqual({ domain: c.domain, path: c.path });
    });
  });

  describe('ParseDockerRef', () => {
    it.each(v.ParseDockerRef.cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
      const ref = parseDockerRef(c.input);
      expect(ref.toString()).toBe(c.expected);
      // Exactly one of tag and digest survives.
      expect(ref.tag === undefined).not.toBe(ref.digest === undefined);
    });
  });

  describe('tag and digest together', () => {
    it.each(v.TagAndDigest.cases.map((c) => [label(c.input), c] as const))('%s', (_, c) => {
      const ref = parseNormalizedNamed(c.input);
      expect(ref.toString()).toBe(c.expected);
      expect(ref.familiar()).toBe(c.familiar);
      expect(ref.tag).toBeDefined();
      expect(ref.digest).toBeDefined();
    });
  });
});
