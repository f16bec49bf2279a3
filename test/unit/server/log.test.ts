import { describe, expect, it } from 'vitest';
import { clfTime, escapeField, formatCommonLog, formatJsonLog, type AccessRecord } from '../../../src/server/log.js';

const record: AccessRecord = {
  remote: '10.1.2.3',
  user: 'alice',
  time: new Date(Date.UTC(2024, 9, 5, 13, 55, 36)),
  method: 'GET',
  target: '/v2/library/nginx/manifests/1.25',
  protocol: 'HTTP/1.1',
  status: 200,
  bytes: 1234,
  durationMs: 3.456,
  userAgent: 'skopeo/1.13',
};

describe('access log', () => {
  it('formats common log format with the duration appended', () => {
    expect(formatCommonLog(record)).toBe(
      '10.1.2.3 - alice [05/Oct/2024:13:55:36 +0000] "GET /v2/library/nginx/manifests/1.25 HTTP/1.1" 200 1234 3.5ms',
    );
    expect(formatCommonLog({ ...record, user: undefined, bytes: 0, status: 404 })).toBe(
      '10.1.2.3 - - [05/Oct/2024:13:55:36 +0000] "GET /v2/library/nginx/manifests/1.25 HTTP/1.1" 404 - 3.5ms',
    );
  });

  it('logs connections that never made a request as "-"', () => {
    expect(formatCommonLog({ ...record, method: '', target: '', protocol: '', user: undefined, status: 400, bytes: 0 })).toMatch(
      /"-" 400 -/,
    );
  });

  it('escapes attacker-controlled fields: no forged lines, quotes or terminal escapes', () => {
    const line = formatCommonLog({ ...record, target: '/v2/x"\n127.0.0.1 - admin [x] "GET /\x1b[31m', user: 'ev il"' });
    expect(line).not.toMatch(/[\n\x1b]/);
    expect(line).toContain('\\"\\x0a127.0.0.1');
    expect(line).toContain('\\x1b[31m');
    expect(line).toContain(' ev\\x20il\\" ');
    expect(escapeField('é')).toBe('\\xe9');
    expect(escapeField('x'.repeat(5000)).length).toBeLessThan(1100);
  });

  it('formats JSON lines', () => {
    expect(JSON.parse(formatJsonLog(record))).toEqual({
      type: 'request',
      time: '2024-10-05T13:55:36.000Z',
      remote: '10.1.2.3',
      user: 'alice',
      method: 'GET',
      target: '/v2/library/nginx/manifests/1.25',
      protocol: 'HTTP/1.1',
      status: 200,
      bytes: 1234,
      durationMs: 3.5,
      userAgent: 'skopeo/1.13',
    });
    expect(formatJsonLog({ ...record, target: '/\n' })).not.toContain('\n');
  });

  it('pads dates', () => {
    expect(clfTime(new Date(Date.UTC(2025, 0, 2, 3, 4, 5)))).toBe('02/Jan/2025:03:04:05 +0000');
  });
});
