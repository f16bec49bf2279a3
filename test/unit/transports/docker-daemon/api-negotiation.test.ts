// Engine API version negotiation against a scripted daemon on a unix socket: `_ping` answers
// with a chosen API-Version header, the unversioned `GET /version` with a chosen ApiVersion and
// MinAPIVersion, and every versioned request outside [min, max] is refused the way dockerd
// refuses it ("client version 1.43 is too old. Minimum supported API version is 1.44").
// What is checked is the version ferry ends up speaking, and that a versioned request with it
// is accepted.
import type http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DockerClient, MAX_API_VERSION, compareApiVersions } from '../../../../src/transports/docker-daemon/api.js';
import { UnixHttpServer } from '../../../helpers/unix-http.js';

interface Script {
  /** `_ping`'s API-Version header; undefined: no header. */
  ping: string | undefined;
  /** Highest version the daemon serves (default: the ping header). */
  max?: string;
  /** Lowest version the daemon serves, and MinAPIVersion of `GET /version`; undefined: omitted there, and nothing is refused below. */
  min: string | undefined;
  /** The unversioned `GET /version` is refused (an engine that dropped unversioned paths). */
  noUnversioned?: boolean;
}

class ScriptedDaemon extends UnixHttpServer {
  readonly requests: string[] = [];
  script: Script = { ping: '1.41', min: undefined };

  constructor() {
    super('ferry-scripted-dockerd-');
  }

  protected handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url!, 'http://docker');
    this.requests.push(`${req.method} ${url.pathname}`);
    const { ping, min, noUnversioned } = this.script;
    const max = this.script.max ?? ping ?? '1.24';
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const version = {
      Os: 'linux',
      Arch: 'amd64',
      Version: 'scripted',
      ApiVersion: max,
      ...(min !== undefined ? { MinAPIVersion: min } : {}),
    };
    if (url.pathname === '/_ping') {
      res.writeHead(200, ping !== undefined ? { 'API-Version': ping } : {});
      res.end('OK');
      return;
    }
    const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(url.pathname);
    if (!m) {
      if (url.pathname === '/version' && !noUnversioned) return json(200, version);
      return json(400, { message: 'unversioned requests are not supported' });
    }
    const [, v, p] = m as unknown as [string, string, string];
    if (min !== undefined && compareApiVersions(v, min) < 0) {
      return json(400, {
        message: `client version ${v} is too old. Minimum supported API version is ${min}, please upgrade your client to a newer version`,
      });
    }
    if (compareApiVersions(v, max) > 0) {
      return json(400, { message: `client version ${v} is too new. Maximum supported API version is ${max}` });
    }
    if (p === '/version') return json(200, version);
    json(404, { message: `page not found: ${p}` });
  }
}

const daemon = new ScriptedDaemon();
beforeAll(() => daemon.listen());
afterAll(() => daemon.close());
afterEach(() => {
  daemon.requests.length = 0;
});

/** Connect with the script, then make one versioned request with the negotiated version. */
async function negotiate(script: Script): Promise<{ client: DockerClient; requests: string[] }> {
  daemon.script = script;
  const client = await DockerClient.connect({ kind: 'unix', socketPath: daemon.socket });
  const v = await client.version();
  expect(v.Os).toBe('linux');
  return { client, requests: [...daemon.requests] };
}

describe('Engine API version negotiation against a daemon', () => {
  it('Docker Engine 28/29 (API 1.51, minimum 1.44): a version the daemon accepts, at least 1.44', async () => {
    const { client, requests } = await negotiate({ ping: '1.51', min: '1.44' });
    expect(compareApiVersions(client.apiVersion, '1.44')).toBeGreaterThanOrEqual(0);
    expect(client.apiVersion).toBe('1.51');
    expect(client.supportsZstd).toBe(true);
    expect(requests).toEqual(['GET /_ping', `GET /v${client.apiVersion}/version`]);
  });

  it("Docker Engine 29.0 (API 1.52, minimum 1.44): min(daemon, ferry) is ferry's maximum, which it accepts", async () => {
    const { client } = await negotiate({ ping: '1.52', min: '1.44' });
    expect(client.apiVersion).toBe(MAX_API_VERSION);
    expect(compareApiVersions(client.apiVersion, '1.44')).toBeGreaterThanOrEqual(0);
  });

  it("a daemon whose minimum is above ferry's maximum: its minimum, learnt from the unversioned GET /version", async () => {
    const { client, requests } = await negotiate({ ping: '1.70', min: '1.60' });
    expect(client.apiVersion).toBe('1.60');
    expect(requests).toEqual(['GET /_ping', 'GET /version', 'GET /v1.60/version']);
  });

  it("Debian's dockerd 20.10 (API 1.41, minimum 1.12): 1.41, without asking for the range; zstd refused", async () => {
    const { client, requests } = await negotiate({ ping: '1.41', min: '1.12' });
    expect(client.apiVersion).toBe('1.41');
    expect(client.supportsZstd).toBe(false);
    expect(requests).toEqual(['GET /_ping', 'GET /v1.41/version']);
  });

  it("a daemon without MinAPIVersion: as before, the daemon's version capped at ferry's", async () => {
    expect((await negotiate({ ping: '1.43', min: undefined })).client.apiVersion).toBe('1.43');
    expect((await negotiate({ ping: '1.99', min: undefined })).client.apiVersion).toBe(MAX_API_VERSION);
  });

  it('no API-Version header: the unversioned GET /version gives the range; without it, the oldest version ferry speaks', async () => {
    expect((await negotiate({ ping: undefined, max: '1.47', min: '1.44' })).client.apiVersion).toBe('1.47');
    expect((await negotiate({ ping: undefined, max: '1.60', min: '1.44' })).client.apiVersion).toBe(MAX_API_VERSION);
    daemon.script = { ping: undefined, max: '1.41', min: undefined, noUnversioned: true };
    expect((await DockerClient.connect({ kind: 'unix', socketPath: daemon.socket })).apiVersion).toBe('1.24');
  });

  it("a daemon above ferry's maximum that refuses unversioned requests: ferry's maximum, as the Docker CLI would", async () => {
    daemon.script = { ping: '1.60', min: '1.44', noUnversioned: true };
    const client = await DockerClient.connect({ kind: 'unix', socketPath: daemon.socket });
    expect(client.apiVersion).toBe(MAX_API_VERSION);
    await expect(client.version()).resolves.toMatchObject({ Os: 'linux' });
  });
});
