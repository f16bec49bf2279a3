import { describe, expect, it } from 'vitest';
import { parseListen } from '../../../src/server/server.js';
import { parseServedLocation } from '../../../src/transports/table.js';
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

describe('parseServedLocation (ferry serve sources, through the transport table)', () => {
  it('reads oci:DIR and oci:DIR:REPO', () => {
    expect(parseServedLocation('oci:./store')).toEqual({ transport: 'oci', path: './store', repository: undefined });
    expect(parseServedLocation('oci:/srv/layout:team/app')).toEqual({ transport: 'oci', path: '/srv/layout', repository: 'team/app' });
  });
  it('reads oci-archive:FILE[:REPO] and bundle:FILE[:REPO]', () => {
    expect(parseServedLocation('oci-archive:/x/a.tar')).toEqual({ transport: 'oci-archive', path: '/x/a.tar', repository: undefined });
    expect(parseServedLocation('oci-archive:/x/a.tar:team/app')).toEqual({
      transport: 'oci-archive',
      path: '/x/a.tar',
      repository: 'team/app',
    });
    expect(parseServedLocation('bundle:/x/a.ferry:team/app')).toEqual({ transport: 'bundle', path: '/x/a.ferry', repository: 'team/app' });
  });
  it('refuses other transports, empty paths and invalid repositories', () => {
    expect(() => parseServedLocation('./store')).toThrow(/oci:DIR/);
    expect(() => parseServedLocation('docker://nginx')).toThrow(UsageError);
    expect(() => parseServedLocation('docker-archive:/x.tar')).toThrow(/cannot serve/);
    expect(() => parseServedLocation('oci:')).toThrow('"oci:": oci: needs a directory, e.g. oci:./ferry-store');
    expect(() => parseServedLocation('bundle:')).toThrow('"bundle:": bundle: needs a file, e.g. bundle:./images.ferry');
    expect(() => parseServedLocation('oci-archive:')).toThrow(/oci-archive: needs a file/);
    expect(() => parseServedLocation('oci:/x:Team/App')).toThrow(/not a valid repository name/);
    expect(() => parseServedLocation('oci:/x:app:1')).toThrow(/not a valid repository name/);
    expect(() => parseServedLocation('oci-archive:/x.tar:a b')).toThrow(/not a valid repository name/);
  });
});
