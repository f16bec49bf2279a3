import { describe, expect, it } from 'vitest';
import {
  DigestMismatchError,
  FerryError,
  IntegrityError,
  NotFoundError,
  RegistryError,
  UsageError,
  wrap,
} from '../../../src/util/errors.js';

describe('wrap', () => {
  it('returns a new error and leaves the original unchanged', () => {
    const original = new NotFoundError('blob sha256:aa not found', { hint: 'pull it again', retryable: true });
    const before = { message: original.message, stack: original.stack, cause: original.cause };
    const wrapped = wrap(original, 'pushing a');
    expect(wrapped).not.toBe(original);
    expect(wrapped.message).toBe('pushing a: blob sha256:aa not found');
    expect(original.message).toBe(before.message);
    expect(original.stack).toBe(before.stack);
    expect(original.cause).toBe(before.cause);
    expect(wrapped.cause).toBe(original);
  });

  it('keeps class, code, exit code, hint, retryable and class-specific fields', () => {
    const digest = new DigestMismatchError('sha256:aa', 'sha256:bb', 'blob');
    const wrappedDigest = wrap(digest, 'loading img');
    expect(wrappedDigest).toBeInstanceOf(DigestMismatchError);
    expect(wrappedDigest).toBeInstanceOf(IntegrityError);
    expect(wrappedDigest).toBeInstanceOf(FerryError);
    expect(wrappedDigest.code).toBe('DIGEST_MISMATCH');
    expect(wrappedDigest.exitCode).toBe(3);
    expect(wrappedDigest.expected).toBe('sha256:aa');
    expect(wrappedDigest.actual).toBe('sha256:bb');
    expect(wrappedDigest.name).toBe('DigestMismatchError');

    const usage = wrap(new UsageError('bad flag', { hint: 'see --help' }), 'parsing');
    expect(usage).toBeInstanceOf(UsageError);
    expect(usage.exitCode).toBe(2);
    expect(usage.hint).toBe('see --help');
    expect(usage.code).toBe('USAGE');

    const reg = new RegistryError('TOOMANYREQUESTS', 'slow down', 'GET', 'https://r/v2/', 429, [{ code: 'TOOMANYREQUESTS' }], {
      retryable: true,
    });
    reg.retryAfterMs = 2000;
    const wrappedReg = wrap(reg, 'pulling x');
    expect(wrappedReg).toBeInstanceOf(RegistryError);
    expect(wrappedReg.retryable).toBe(true);
    expect(wrappedReg.status).toBe(429);
    expect(wrappedReg.retryAfterMs).toBe(2000);
    expect(wrappedReg.errors).toEqual([{ code: 'TOOMANYREQUESTS' }]);
  });

  it('keeps a system error code (callers branch on ENOENT)', () => {
    const sys = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', errno: -2, path: '/x' });
    const wrapped = wrap(sys, 'reading /x');
    expect(wrapped.code).toBe('ENOENT');
    expect(wrapped.errno).toBe(-2);
    expect(wrapped.message).toBe('reading /x: ENOENT: no such file');
    expect(sys.message).toBe('ENOENT: no such file');
  });

  it('does not repeat a context already given', () => {
    const err = new FerryError('X', 'boom');
    const once = wrap(err, 'pushing a');
    const twice = wrap(once, 'pushing a');
    expect(twice.message).toBe('pushing a: boom');
    expect(twice).toBe(once);
  });

  it('a shared error wrapped for two images reads right for each', () => {
    const shared = new DigestMismatchError('sha256:aa', 'sha256:bb', 'blob sha256:aa');
    const forA = wrap(shared, 'pushing A');
    const forB = wrap(shared, 'pushing B');
    expect(forA.message).toBe('pushing A: blob sha256:aa: digest mismatch: expected sha256:aa, got sha256:bb');
    expect(forB.message).toBe('pushing B: blob sha256:aa: digest mismatch: expected sha256:aa, got sha256:bb');
    expect(shared.message).toBe('blob sha256:aa: digest mismatch: expected sha256:aa, got sha256:bb');
  });

  it('puts the new message on the stack and keeps the frames', () => {
    const err = new FerryError('X', 'boom');
    const wrapped = wrap(err, 'ctx');
    expect(wrapped.stack?.split('\n')[0]).toBe('FerryError: ctx: boom');
    expect(wrapped.stack?.split('\n').slice(1)).toEqual(err.stack?.split('\n').slice(1));
  });

  it('returns a thrown non-Error unchanged', () => {
    expect(wrap('text', 'ctx')).toBe('text');
    expect(wrap(undefined, 'ctx')).toBeUndefined();
  });
});
