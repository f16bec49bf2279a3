import { describe, expect, it } from 'vitest';
import {
  DEFAULT_RETRY,
  backoffDelay,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
} from '../../../src/transports/registry/retry.js';
import { redactUrl } from '../../../src/transports/registry/redact.js';
import { apiHost, isLoopbackHost } from '../../../src/transports/registry/client.js';

describe('retry policy', () => {
  it('Retry-After as seconds and as an HTTP date', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('soon')).toBeUndefined();
    expect(parseRetryAfter(undefined)).toBeUndefined();
  });
  it('backoff grows, is jittered and capped; Retry-After is honoured within a ceiling', () => {
    for (let a = 0; a < 10; a++) {
      const d = backoffDelay(DEFAULT_RETRY, a);
      const exp = Math.min(DEFAULT_RETRY.maxDelayMs, DEFAULT_RETRY.baseDelayMs * 2 ** a);
      expect(d).toBeGreaterThanOrEqual(exp / 2);
      expect(d).toBeLessThanOrEqual(exp);
    }
    expect(backoffDelay(DEFAULT_RETRY, 0, 7000)).toBe(7000);
    expect(backoffDelay(DEFAULT_RETRY, 0, 10 * 60_000)).toBe(DEFAULT_RETRY.maxDelayMs * 4);
  });
  it('which failures are worth another try', () => {
    expect([429, 500, 502, 503, 504].every(isRetryableStatus)).toBe(true);
    expect([400, 401, 403, 404, 413].some(isRetryableStatus)).toBe(false);
    expect(isRetryableNetworkError(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryableNetworkError(new Error('wrapped', { cause: Object.assign(new Error('y'), { code: 'UND_ERR_SOCKET' }) }))).toBe(true);
    expect(isRetryableNetworkError(Object.assign(new Error('x'), { code: 'DIGEST_MISMATCH' }))).toBe(false);
  });
});

describe('redaction and hosts', () => {
  it('removes userinfo and hides signed-URL query values', () => {
    const r = redactUrl('https://user:secret@s3.example.com/blob?X-Amz-Signature=abc&X-Amz-Credential=key&digest=sha256:1');
    expect(r).not.toContain('secret');
    expect(r).not.toContain('abc');
    expect(r).not.toContain('key');
    expect(r).toContain('digest=sha256%3A1');
  });
  it('Docker Hub API host, loopback detection', () => {
    expect(apiHost('docker.io')).toBe('registry-1.docker.io');
    expect(apiHost('ghcr.io')).toBe('ghcr.io');
    expect(['localhost:5000', '127.0.0.1:5000', '127.1.2.3', '[::1]:5000', 'foo.localhost'].every(isLoopbackHost)).toBe(true);
    expect(['10.0.0.1:5000', 'registry.local', 'example.com'].some(isLoopbackHost)).toBe(false);
  });
});
