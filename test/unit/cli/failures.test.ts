import { describe, expect, it } from 'vitest';
import { formatFailures, groupFailures } from '../../../src/cli/failures.js';
import { causeOf, failedResult } from '../../../src/copy/execute.js';
import { collectFailures } from '../../../src/commands/report.js';
import { DigestMismatchError, NotFoundError, RegistryError, wrap } from '../../../src/util/errors.js';

const blob = `sha256:${'b'.repeat(64)}`;
const other = `sha256:${'c'.repeat(64)}`;
const base = (name: string) => ({
  name,
  source: `docker://r.example/${name}`,
  digest: `sha256:${'a'.repeat(64)}` as const,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  platforms: [],
  totalBytes: 1,
});

describe('failure causes', () => {
  it('one blob that failed its digest check gives every image it fails the same cause, and the report prints it once', () => {
    const err = new DigestMismatchError(blob, other, `blob ${blob} from r.example/app0:v0`);
    Object.assign(err, { hint: 'the source served content that does not match its digests' });
    const names = ['r.example/app0:v0', 'r.example/app1:v0', 'r.example/app12:v3', 'r.example/app2:v1'];
    const results = names.map((n) => failedResult(base(n), err, `pulling ${n}`));
    // Each record keeps its own context (--json: one record per image) and gains the key.
    expect(results.map((r) => r.cause)).toEqual(names.map(() => `DIGEST_MISMATCH ${blob}`));
    expect(results[1]!.error).toBe(`pulling r.example/app1:v0: ${err.message}`);
    // The error shared by all images is not modified.
    expect(err.message).toBe(`blob ${blob} from r.example/app0:v0: digest mismatch: expected ${blob}, got ${other}`);

    const own = failedResult(base('r.example/gone:1'), new NotFoundError('manifest unknown: r.example/gone:1'), 'pulling r.example/gone:1');
    expect(own.cause).toBeUndefined();
    const failures = collectFailures([], [...results, own]);
    expect(failures.map((f) => f.cause)).toEqual([...names.map(() => `DIGEST_MISMATCH ${blob}`), undefined]);

    const groups = groupFailures(failures);
    expect(groups).toHaveLength(2);
    expect(groups[0]).toEqual({
      cause: `DIGEST_MISMATCH ${blob}`,
      error: err.message,
      errorCode: 'DIGEST_MISMATCH',
      hint: 'the source served content that does not match its digests',
      names,
    });
    expect(groups[1]!.names).toEqual(['r.example/gone:1']);

    const text = formatFailures(failures).join('');
    // The digest-mismatch text and the hint appear once, every affected image is named.
    expect(text.split('digest mismatch').length - 1).toBe(1);
    expect(text.split('hint:').length - 1).toBe(1);
    for (const n of names) expect(text).toContain(`  ${n}\n`);
    expect(text).toContain(`failed: 4 images, one cause: ${err.message}\n`);
    expect(text).toContain('failed: r.example/gone:1: manifest unknown: r.example/gone:1\n');
  });

  it('a registry that refuses the credentials (401) is one cause for all of its images, another registry another', () => {
    const refused = (host: string, repo: string): RegistryError =>
      new RegistryError('UNAUTHORIZED', `${host}: authentication required`, 'GET', `https://${host}/v2/${repo}/manifests/1`, 401, [], {
        hint: 'log in with docker login, or give --username',
      });
    const names = ['r.example/a:1', 'r.example/b:1', 'r.example/c:1'];
    const results = names.map((n) => failedResult(base(n), wrap(refused('r.example', n.slice(10, 11)), `resolving ${n}`), `pulling ${n}`));
    expect(new Set(results.map((r) => r.cause))).toEqual(new Set(['UNAUTHORIZED r.example']));
    const elsewhere = failedResult(base('q.example/d:1'), refused('q.example', 'd'), 'pulling q.example/d:1');
    expect(elsewhere.cause).toBe('UNAUTHORIZED q.example');
    const text = formatFailures(collectFailures([], [...results, elsewhere])).join('');
    expect(text.split('hint: log in').length - 1).toBe(2);
    expect(text).toContain('failed: 3 images, one cause:');
  });

  it('keeps different causes apart: another code, another digest', () => {
    const a = causeOf(new DigestMismatchError(blob, other, `blob ${blob}`));
    const b = causeOf(new DigestMismatchError(other, blob, `blob ${other}`));
    const c = causeOf(Object.assign(new Error(`blob ${blob}: connection reset`), { code: 'REGISTRY_UNREACHABLE' }));
    expect(new Set([a, b, c]).size).toBe(3);
    expect(causeOf(new Error('no digest here'))).toBeUndefined();
    const groups = groupFailures([
      { name: 'x', error: 'pulling x: e1', cause: a! },
      { name: 'y', error: 'pulling y: e2', cause: b! },
      { name: 'z', error: 'pulling z: e1', cause: a! },
    ]);
    expect(groups.map((g) => g.names)).toEqual([['x', 'z'], ['y']]);
  });
});
