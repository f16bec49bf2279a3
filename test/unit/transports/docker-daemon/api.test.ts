// The pure parts of the Docker Engine API client: DOCKER_HOST parsing, endpoint resolution,
// API version negotiation, and the JSON message stream the daemon answers a load with.
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_DOCKER_SOCKET,
  JsonMessageParser,
  MAX_API_VERSION,
  MIN_API_VERSION,
  compareApiVersions,
  formatEndpoint,
  imagePathSegment,
  messageError,
  negotiateApiVersion,
  parseDockerHost,
  parseJsonMessages,
  resolveDockerEndpoint,
} from '../../../../src/transports/docker-daemon/api.js';

describe('parseDockerHost', () => {
  it.each([
    ['unix:///var/run/docker.sock', { kind: 'unix', socketPath: '/var/run/docker.sock' }],
    ['unix:///run/user/1000/docker.sock', { kind: 'unix', socketPath: '/run/user/1000/docker.sock' }],
    ['/tmp/d.sock', { kind: 'unix', socketPath: '/tmp/d.sock' }],
    ['tcp://127.0.0.1:2375', { kind: 'tcp', host: '127.0.0.1', port: 2375 }],
    ['tcp://docker.internal:12375', { kind: 'tcp', host: 'docker.internal', port: 12375 }],
    ['tcp://docker.internal', { kind: 'tcp', host: 'docker.internal', port: 2375 }],
    ['tcp://[::1]:2375', { kind: 'tcp', host: '::1', port: 2375 }],
    ['  unix:///x.sock\n', { kind: 'unix', socketPath: '/x.sock' }],
  ])('%s', (input, want) => {
    expect(parseDockerHost(input)).toEqual(want);
  });

  it.each([
    ['ssh://me@host', /ssh:\/\/ scheme is not supported/],
    ['npipe:////./pipe/docker_engine', /npipe:\/\/ scheme is not supported/],
    ['fd://', /fd:\/\/ scheme is not supported/],
    ['unix://relative.sock', /absolute/],
    ['tcp://host:2375/path', /without a path/],
    ['docker.sock', /want unix/],
  ])('refuses %s', (input, message) => {
    expect(() => parseDockerHost(input)).toThrow(message);
    try {
      parseDockerHost(input);
    } catch (e) {
      expect((e as { code: string }).code).toBe('DOCKER_HOST_INVALID');
    }
  });

  it('formats endpoints back', () => {
    expect(formatEndpoint(parseDockerHost('unix:///a/b.sock'))).toBe('unix:///a/b.sock');
    expect(formatEndpoint(parseDockerHost('tcp://[::1]:1'))).toBe('tcp://[::1]:1');
    expect(formatEndpoint(parseDockerHost('tcp://h:2'))).toBe('tcp://h:2');
  });
});

describe('resolveDockerEndpoint', () => {
  it('an explicit socket wins over DOCKER_HOST', () => {
    expect(resolveDockerEndpoint('/my/docker.sock', { DOCKER_HOST: 'tcp://h:1' })).toEqual({ kind: 'unix', socketPath: '/my/docker.sock' });
    expect(resolveDockerEndpoint('unix:///my/docker.sock', {})).toEqual({ kind: 'unix', socketPath: '/my/docker.sock' });
    // A relative socket path is used as given (node resolves it against the cwd).
    expect(resolveDockerEndpoint('run/docker.sock', {})).toEqual({ kind: 'unix', socketPath: 'run/docker.sock' });
  });

  it('DOCKER_HOST, else the default socket', () => {
    expect(resolveDockerEndpoint(undefined, { DOCKER_HOST: 'unix:///x.sock' })).toEqual({ kind: 'unix', socketPath: '/x.sock' });
    expect(resolveDockerEndpoint(undefined, { DOCKER_HOST: 'tcp://h:3' })).toEqual({ kind: 'tcp', host: 'h', port: 3 });
    expect(resolveDockerEndpoint(undefined, {})).toEqual({ kind: 'unix', socketPath: DEFAULT_DOCKER_SOCKET });
    expect(resolveDockerEndpoint('', { DOCKER_HOST: '' })).toEqual({ kind: 'unix', socketPath: DEFAULT_DOCKER_SOCKET });
  });

  it('refuses TLS rather than silently speaking plain HTTP', () => {
    expect(() => resolveDockerEndpoint(undefined, { DOCKER_HOST: 'tcp://h:2376', DOCKER_TLS_VERIFY: '1' })).toThrow(/TLS/);
  });
});

describe('API versions', () => {
  it('compares numerically', () => {
    expect(compareApiVersions('1.41', '1.9')).toBeGreaterThan(0);
    expect(compareApiVersions('1.41', '1.41')).toBe(0);
    expect(compareApiVersions('1.24', '1.41')).toBeLessThan(0);
  });

  it('speaks the daemon version, capped at ours', () => {
    expect(negotiateApiVersion('1.41')).toBe('1.41');
    expect(negotiateApiVersion('1.99')).toBe(MAX_API_VERSION);
    expect(negotiateApiVersion(undefined)).toBe(MIN_API_VERSION);
    expect(negotiateApiVersion('garbage')).toBe(MIN_API_VERSION);
    expect(() => negotiateApiVersion('1.12')).toThrow(/at least 1\.24/);
  });

  it("ferry's maximum is one Docker Engine 29 accepts (it refuses below 1.44)", () => {
    expect(compareApiVersions(MAX_API_VERSION, '1.44')).toBeGreaterThanOrEqual(0);
    expect(negotiateApiVersion('1.52')).toBe(MAX_API_VERSION);
  });

  it("uses the daemon's minimum when it is above the version otherwise chosen", () => {
    expect(negotiateApiVersion('1.51', '1.44')).toBe('1.51');
    expect(negotiateApiVersion('1.41', '1.12')).toBe('1.41');
    expect(negotiateApiVersion('1.70', '1.60')).toBe('1.60');
    expect(negotiateApiVersion(undefined, '1.44')).toBe('1.44');
    // A minimum above the daemon's own maximum is nonsense and ignored; so is garbage.
    expect(negotiateApiVersion('1.41', '1.44')).toBe('1.41');
    expect(negotiateApiVersion('1.41', 'x')).toBe('1.41');
  });
});

describe('JSON message stream', () => {
  it('parses dockerd load output, one message per line', () => {
    const text = '{"stream":"Loaded image: ferry-test/base:1\\n"}\r\n{"stream":"Loaded image ID: sha256:abc\\n"}\r\n';
    expect(parseJsonMessages(text)).toEqual([{ stream: 'Loaded image: ferry-test/base:1\n' }, { stream: 'Loaded image ID: sha256:abc\n' }]);
  });

  it('reassembles messages split across chunks, anywhere, and concatenated ones', () => {
    const text = '{"status":"a {\\"}","progressDetail":{"current":1,"total":[2]}}{"stream":"b"}\n{"id":"c"}';
    for (let cut = 0; cut <= text.length; cut++) {
      const p = new JsonMessageParser();
      const got = [...p.push(text.slice(0, cut)), ...p.push(text.slice(cut))];
      p.end();
      expect(got.map((m) => m.status ?? m.stream ?? m.id)).toEqual(['a {"}', 'b', 'c']);
    }
  });

  it('finds the error of an error message: errorDetail.message first, then error', () => {
    const [m] = parseJsonMessages('{"errorDetail":{"message":"open /var/lib/docker/tmp/x: no such file"},"error":"short"}');
    expect(messageError(m!)).toBe('open /var/lib/docker/tmp/x: no such file');
    expect(messageError(parseJsonMessages('{"error":"only this"}')[0]!)).toBe('only this');
    expect(messageError(parseJsonMessages('{"errorDetail":{}}')[0]!)).toBe('unknown error');
    expect(messageError(parseJsonMessages('{"stream":"ok"}')[0]!)).toBeUndefined();
  });

  it('refuses malformed streams with DAEMON_BAD_RESPONSE', () => {
    for (const bad of ['not json', '{"stream": 5}', '{"a":1', '{"a":tru}', '[1]']) {
      let err: unknown;
      try {
        parseJsonMessages(bad);
      } catch (e) {
        err = e;
      }
      expect((err as { code?: string } | undefined)?.code, bad).toBe('DAEMON_BAD_RESPONSE');
    }
  });
});

it('imagePathSegment keeps the characters of names and digests, escapes the rest', () => {
  expect(imagePathSegment('docker.io/ferry-test/base:1')).toBe('docker.io/ferry-test/base:1');
  expect(imagePathSegment('localhost:5000/a@sha256:00')).toBe('localhost:5000/a@sha256:00');
  expect(imagePathSegment('a?b#c d')).toBe('a%3Fb%23c%20d');
});
