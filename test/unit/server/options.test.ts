import { describe, expect, it } from 'vitest';
import { parseServeSource } from '../../../src/cli/serve.js';
import { parseListen } from '../../../src/server/server.js';
import { UsageError } from '../../../src/util/errors.js';

describe('parseListen', () => {
  it('parses HOST:PORT, [IPv6]:PORT and :PORT', () => {
    expect(parseListen('127.0.0.1:5000')).toEqual({ host: '127.0.0.1', port: 5000 });
    expect(parseListen('localhost:0')).toEqual({ host: 'localhost', port: 0 });
    expect(parseListen('[::1]:443')).toEqual({ host: '::1', port: 443 });
    expect(parseListen(':5000')).toEqual({ host: '0.0.0.0', port: 5000 });
  });
  it('refuses anything else as a usage error', () => {
    for (const s of ['5000', '127.0.0.1', '::1:5000', 'host:65536', 'host:-1', 'host:abc', '[::1]', 'a b:1', '']) {
      expect(() => parseListen(s), s).toThrow(UsageError);
    }
  });
});

describe('parseServeSource', () => {
  it('reads oci:DIR and oci:DIR:REPO', () => {
    expect(parseServeSource('oci:./store')).toEqual({ dir: './store', repository: undefined });
    expect(parseServeSource('oci:/srv/layout:team/app')).toEqual({ dir: '/srv/layout', repository: 'team/app' });
  });
  it('refuses other transports, empty paths and invalid repositories', () => {
    expect(() => parseServeSource('./store')).toThrow(/oci:DIR/);
    expect(() => parseServeSource('docker://nginx')).toThrow(UsageError);
    expect(() => parseServeSource('oci:')).toThrow(/needs a directory/);
    expect(() => parseServeSource('oci:/x:Team/App')).toThrow(/not a valid repository name/);
    expect(() => parseServeSource('oci:/x:app:1')).toThrow(/not a valid repository name/);
  });
});
