// Proves the integration harness against real components: every registry mode accepts a push
// from skopeo (and refuses one it should refuse), the token server's JWTs satisfy distribution
// 2.8, and each fault the proxy injects reaches the client exactly as described.
import { createHash, X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type RunningFaultProxy } from '../harness/fault-proxy.js';
import { createPki, pemToDerBase64, type TestPki } from '../harness/pki.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir, trackedResources } from '../harness/temp.js';
import { parseScope } from '../harness/token-server.js';
import { describeCommand, MissingToolError, requireTool, runSkopeo, runTool, sampleImage, type RunResult } from '../harness/tools.js';

afterAll(cleanupHarness);

const MANIFEST_ACCEPT = ['application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.distribution.manifest.v2+json'].join(', ');

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function push(dest: string, extraArgs: string[] = [], allowFailure = false): Promise<RunResult> {
  const { ref } = await sampleImage();
  return runSkopeo(['copy', '--retry-times', '0', ...extraArgs, ref, `docker://${dest}`], { allowFailure });
}

interface PushedImage {
  manifest: { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
  manifestDigest: string;
}

/** Reads back a manifest with plain HTTP, proving the registry really stored it. */
async function readManifest(url: string, repo: string, tag: string, authorization?: string): Promise<PushedImage> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, {
    headers: { Accept: MANIFEST_ACCEPT, ...(authorization ? { Authorization: authorization } : {}) },
  });
  expect(res.status).toBe(200);
  const raw = new Uint8Array(await res.arrayBuffer());
  expect(res.headers.get('docker-content-digest')).toBe(sha256(raw));
  return { manifest: JSON.parse(Buffer.from(raw).toString('utf8')), manifestDigest: sha256(raw) };
}

describe('tools', () => {
  it('requireTool fails loudly, naming the Debian package, when a binary is missing', () => {
    const savedPath = process.env.PATH;
    process.env.PATH = createTempDir('empty-path');
    try {
      expect(() => requireTool('ctr')).toThrow(MissingToolError);
      expect(() => requireTool('ctr')).toThrow(/'ctr'.*package 'containerd'.*scripts\/test-env\.sh/s);
    } finally {
      process.env.PATH = savedPath;
    }
    expect(requireTool('skopeo')).toMatch(/\/skopeo$/);
  });

  it('describeCommand masks credentials in command lines', () => {
    expect(describeCommand('skopeo', ['copy', '--dest-creds', 'u:secret', '--src-creds=u:other', 'a b'])).toBe(
      'skopeo copy --dest-creds *** --src-creds=*** "a b"',
    );
  });

  it('parseScope handles classes, host:port names and catalog scopes', () => {
    expect(parseScope('repository:library/busybox:pull,push')).toEqual({
      type: 'repository',
      name: 'library/busybox',
      actions: ['pull', 'push'],
    });
    expect(parseScope('repository(plugin):vieux/sshfs:pull')).toEqual({
      type: 'repository',
      class: 'plugin',
      name: 'vieux/sshfs',
      actions: ['pull'],
    });
    expect(parseScope('repository:127.0.0.1:5000/a/b:pull')?.name).toBe('127.0.0.1:5000/a/b');
    expect(parseScope('registry:catalog:*')).toEqual({ type: 'registry', name: 'catalog', actions: ['*'] });
    expect(parseScope('nonsense')).toBeUndefined();
  });
});

describe('pki', () => {
  let pki: TestPki;
  beforeAll(async () => {
    pki = await createPki();
  });

  it('issues a server cert for the loopback names, chained to the CA', async () => {
    const ca = new X509Certificate(pki.ca.certPem);
    const server = new X509Certificate(pki.server.certPem);
    expect(ca.ca).toBe(true);
    expect(server.ca).toBe(false);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(server.checkIP('::1')).toBeDefined();
    expect(server.checkHost('localhost')).toBe('localhost');
    expect(server.checkHost('example.com')).toBeUndefined();
    expect(server.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    await runTool('openssl', ['verify', '-CAfile', pki.ca.certFile, '-purpose', 'sslserver', pki.server.certFile]);
    expect(existsSync(`${pki.certDir}/ca.crt`)).toBe(true);
  });

  it('issues a token-signing leaf whose x5c chain verifies against the CA', () => {
    const ca = new X509Certificate(pki.ca.certPem);
    const signer = new X509Certificate(pki.tokenSigner.certPem);
    expect(signer.ca).toBe(false);
    expect(signer.checkIssued(ca)).toBe(true);
    expect(signer.verify(ca.publicKey)).toBe(true);
    const x5c = pki.tokenSigner.chainPems.flatMap(pemToDerBase64);
    expect(x5c).toHaveLength(1);
    expect(Buffer.from(x5c[0] as string, 'base64').equals(signer.raw)).toBe(true);
  });
});

describe('registry without auth', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });

  it('accepts a push from skopeo and serves it back', async () => {
    await push(`${registry.host}/harness/plain:v1`, ['--dest-tls-verify=false']);
    const { manifest } = await readManifest(registry.url, 'harness/plain', 'v1');
    expect(manifest.layers.length).toBeGreaterThan(0);
    const tags = await (await fetch(`${registry.url}/v2/harness/plain/tags/list`)).json();
    expect(tags).toEqual({ name: 'harness/plain', tags: ['v1'] });
    expect(registry.logs()).toMatch(/listening on 127\.0\.0\.1:\d+/);
  });

  it('stop() kills the process and removes its temp dir; start-up failures carry the log', async () => {
    const other = await startRegistry();
    expect(isAlive(other.pid)).toBe(true);
    expect(trackedResources()).toContain(`registry ${other.url}`);
    await other.stop();
    expect(isAlive(other.pid)).toBe(false);
    expect(existsSync(other.configFile)).toBe(false);
    expect(existsSync(other.storageDir)).toBe(false);
    expect(trackedResources()).not.toContain(`registry ${other.url}`);
    await other.stop(); // idempotent

    await expect(startRegistry({ extraConfig: { storage: { filesystem: null, nosuchdriver: {} } } })).rejects.toThrow(
      /exited during start-up[\s\S]*--- registry log ---[\s\S]*nosuchdriver/,
    );
  });
});

describe('registry with htpasswd auth', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'htpasswd', users: { alice: 'wonderland', bob: 'builder' } });
  });

  it('challenges with Basic and accepts a push with credentials', async () => {
    const challenge = await fetch(`${registry.url}/v2/`);
    expect(challenge.status).toBe(401);
    expect(challenge.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect(registry.username).toBe('alice');

    await push(`${registry.host}/harness/htpasswd:v1`, ['--dest-tls-verify=false', '--dest-creds', 'bob:builder']);
    await readManifest(registry.url, 'harness/htpasswd', 'v1', basic('alice', 'wonderland'));
  });

  it('refuses a push without or with wrong credentials', async () => {
    const anonymous = await push(`${registry.host}/harness/htpasswd:anon`, ['--dest-tls-verify=false'], true);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/unauthorized|authentication required/i);

    const wrong = await push(`${registry.host}/harness/htpasswd:wrong`, ['--dest-tls-verify=false', '--dest-creds', 'alice:nope'], true);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unauthorized|authentication required/i);
  });
});

describe('registry with TLS', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ tls: true });
  });

  it('accepts a push from skopeo trusting the test CA', async () => {
    expect(registry.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    await push(`${registry.host}/harness/tls:v1`, ['--dest-cert-dir', registry.certDir as string]);
    const dispatcher = new Agent({ connect: { ca: registry.caPem as string } });
    try {
      const res = await undiciFetch(`${registry.url}/v2/harness/tls/tags/list`, { dispatcher });
      expect(await res.json()).toEqual({ name: 'harness/tls', tags: ['v1'] });
    } finally {
      await dispatcher.close();
    }
  });

  it('can sit behind the fault proxy (proxy trusts the CA, serves plain HTTP)', async () => {
    const proxy = await startFaultProxy(registry.url, { targetCaPem: registry.caPem as string });
    const res = await fetch(`${proxy.url}/v2/harness/tls/tags/list`);
    expect(await res.json()).toEqual({ name: 'harness/tls', tags: ['v1'] });
    await proxy.stop();
  });

  it('is refused by a client that does not trust the CA', async () => {
    const result = await push(`${registry.host}/harness/tls:untrusted`, [], true);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/certificate signed by unknown authority/);
  });
});

describe('registry with token auth', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry({ auth: 'token', users: { ferry: 'ferry-secret' } });
  });

  it('challenges with the token server realm and accepts a push with credentials', async () => {
    const server = registry.tokenServer!;
    const challenge = await fetch(`${registry.url}/v2/`);
    expect(challenge.status).toBe(401);
    expect(challenge.headers.get('www-authenticate')).toBe(`Bearer realm="${server.realm}",service="${server.service}"`);

    server.clearRequests();
    await push(`${registry.host}/harness/token:v1`, ['--dest-tls-verify=false', '--dest-creds', 'ferry:ferry-secret']);
    const asked = server.requests.filter((r) => r.status === 200);
    expect(asked.length).toBeGreaterThan(0);
    expect(asked.every((r) => r.authenticatedAs === 'ferry' && r.credential === 'basic' && r.service === server.service)).toBe(true);
    expect(asked.flatMap((r) => r.scopes)).toContain('repository:harness/token:pull,push');
    expect(asked.flatMap((r) => r.granted)).toContainEqual({ type: 'repository', name: 'harness/token', actions: ['pull', 'push'] });
  });

  it('refuses anonymous pushes and pulls unless anonymous pull is enabled', async () => {
    const server = registry.tokenServer!;
    const anonymous = await push(`${registry.host}/harness/token:anon`, ['--dest-tls-verify=false'], true);
    expect(anonymous.code).not.toBe(0);
    expect(anonymous.stderr).toMatch(/requested access to the resource is denied|unauthorized/i);
    expect(server.requests.some((r) => r.credential === 'none' && r.granted.length === 0)).toBe(true);

    const inspect = (): Promise<RunResult> =>
      runSkopeo(['inspect', '--tls-verify=false', '--raw', `docker://${registry.host}/harness/token:v1`], { allowFailure: true });
    expect((await inspect()).code).not.toBe(0);
    server.configure({ anonymousPull: true });
    try {
      const allowed = await inspect();
      expect(allowed.code).toBe(0);
      expect(JSON.parse(allowed.stdout).schemaVersion).toBe(2);
    } finally {
      server.configure({ anonymousPull: false });
    }
  });

  it('a pull-only user cannot push', async () => {
    const server = registry.tokenServer!;
    server.configure({ permissions: { ferry: ['pull'] } });
    try {
      const result = await push(
        `${registry.host}/harness/token:pullonly`,
        ['--dest-tls-verify=false', '--dest-creds', 'ferry:ferry-secret'],
        true,
      );
      expect(result.code).not.toBe(0);
      expect(result.stderr).toMatch(/denied|unauthorized|authentication required/i);
    } finally {
      server.configure({ permissions: {} });
    }
  });

  it('distribution verifies the JWT: audience, expiry and access are all enforced', async () => {
    const server = registry.tokenServer!;
    const manifestUrl = `${registry.url}/v2/harness/token/manifests/v1`;
    const get = (token: string): Promise<Response> =>
      fetch(manifestUrl, { headers: { Accept: MANIFEST_ACCEPT, Authorization: `Bearer ${token}` } });
    const pull = [{ type: 'repository', name: 'harness/token', actions: ['pull'] }];

    expect((await get(server.mintToken(pull))).status).toBe(200);
    expect((await get(server.mintToken(pull, { audience: 'someone-else' }))).status).toBe(401);
    expect((await get(server.mintToken(pull, { issuer: 'mallory' }))).status).toBe(401);
    // distribution allows 60 s of clock skew past exp, so "expired" must be older than that.
    expect((await get(server.mintToken(pull, { ttlSeconds: -120 }))).status).toBe(401);
    const wrongRepo = await get(server.mintToken([{ type: 'repository', name: 'other/repo', actions: ['pull'] }]));
    expect(wrongRepo.status).toBe(401);
    expect(wrongRepo.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
  });

  it('speaks OAuth2: password and refresh_token grants, access_token-only replies', async () => {
    const server = registry.tokenServer!;
    server.configure({ replyField: 'access_token', tokenTtlSeconds: 5 });
    try {
      const form = (fields: Record<string, string>): Promise<Response> =>
        fetch(server.realm, { method: 'POST', body: new URLSearchParams(fields) });
      const passwordGrant = await form({
        grant_type: 'password',
        username: 'ferry',
        password: 'ferry-secret',
        service: server.service,
        client_id: 'ferry-tests',
        access_type: 'offline',
        scope: 'repository:harness/token:pull',
      });
      expect(passwordGrant.status).toBe(200);
      const granted = (await passwordGrant.json()) as Record<string, unknown>;
      expect(granted.token).toBeUndefined();
      expect(granted.expires_in).toBe(5);
      expect(typeof granted.refresh_token).toBe('string');

      const refreshed = await form({
        grant_type: 'refresh_token',
        refresh_token: granted.refresh_token as string,
        service: server.service,
        client_id: 'ferry-tests',
        scope: 'repository:harness/token:pull',
      });
      expect(refreshed.status).toBe(200);
      const { access_token: accessToken } = (await refreshed.json()) as { access_token: string };
      const manifest = await fetch(`${registry.url}/v2/harness/token/manifests/v1`, {
        headers: { Accept: MANIFEST_ACCEPT, Authorization: `Bearer ${accessToken}` },
      });
      expect(manifest.status).toBe(200);

      server.revokeRefreshTokens();
      const revoked = await form({
        grant_type: 'refresh_token',
        refresh_token: granted.refresh_token as string,
        service: server.service,
        client_id: 'ferry-tests',
      });
      expect(revoked.status).toBe(401);
      const badPassword = await fetch(`${server.realm}?service=${server.service}&scope=repository:x:pull`, {
        headers: { Authorization: basic('ferry', 'wrong') },
      });
      expect(badPassword.status).toBe(401);
      const wrongService = await fetch(`${server.realm}?service=elsewhere&scope=repository:x:pull`);
      expect(wrongService.status).toBe(400);
    } finally {
      server.configure({ replyField: 'both', tokenTtlSeconds: 300 });
    }
  });

  it('can route token requests through a fault proxy of their own', async () => {
    const server = registry.tokenServer!;
    const tokenProxy = await startFaultProxy(server.url, {
      rules: [{ path: /^\/token\?/, times: 1, fault: { kind: 'status', status: 500 } }],
    });
    const registryProxy = await startFaultProxy(registry.url, {
      extraRewrites: [{ from: server.url, to: tokenProxy.url }],
    });
    const challenge = (await fetch(`${registryProxy.url}/v2/`)).headers.get('www-authenticate') ?? '';
    const realm = /realm="([^"]+)"/.exec(challenge)?.[1];
    expect(realm).toBe(`${tokenProxy.url}/token`);
    const tokenUrl = `${realm}?service=${server.service}&scope=repository:harness/token:pull`;
    const headers = { Authorization: basic('ferry', 'ferry-secret') };
    expect((await fetch(tokenUrl, { headers })).status).toBe(500);
    const { token } = (await (await fetch(tokenUrl, { headers })).json()) as { token: string };
    const manifest = await fetch(`${registryProxy.url}/v2/harness/token/manifests/v1`, {
      headers: { Accept: MANIFEST_ACCEPT, Authorization: `Bearer ${token}` },
    });
    expect(manifest.status).toBe(200);
    await Promise.all([tokenProxy.stop(), registryProxy.stop()]);
  });

  it('works over TLS end to end (registry and token server both HTTPS)', async () => {
    const secure = await startRegistry({ auth: 'token', tls: true });
    expect(secure.tokenServer?.realm).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/token$/);
    await push(`${secure.host}/harness/secure:v1`, [
      '--dest-cert-dir',
      secure.certDir as string,
      '--dest-creds',
      `${secure.username}:${secure.password}`,
    ]);
    expect(secure.tokenServer?.requests.some((r) => r.status === 200 && r.granted.length > 0)).toBe(true);
    await secure.stop();
  });
});

describe('fault proxy', () => {
  let registry: RunningRegistry;
  let proxy: RunningFaultProxy;
  let image: PushedImage;
  const repo = 'harness/proxied';
  const auth = basic('ferry', 'ferry-secret');
  // The proxy forwards Authorization untouched, so an htpasswd registry proves it.
  const get = (path: string, headers: Record<string, string> = {}): Promise<Response> =>
    fetch(`${proxy.url}${path}`, { headers: { Authorization: auth, ...headers } });

  beforeAll(async () => {
    registry = await startRegistry({ auth: 'htpasswd' });
    await push(`${registry.host}/${repo}:v1`, ['--dest-tls-verify=false', '--dest-creds', 'ferry:ferry-secret']);
    image = await readManifest(registry.url, repo, 'v1', auth);
    proxy = await startFaultProxy(registry.url);
  });

  const configBlob = (): string => `/v2/${repo}/blobs/${image.manifest.config.digest}`;

  it('is transparent without rules, forwarding credentials and rewriting Location', async () => {
    proxy.setRules([]);
    expect((await fetch(`${proxy.url}/v2/`)).status).toBe(401);
    const res = await get(`/v2/${repo}/manifests/v1`, { Accept: MANIFEST_ACCEPT });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(image.manifestDigest);

    const body = Buffer.from('blob pushed through the fault proxy\n');
    const start = await fetch(`${proxy.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { Authorization: auth } });
    expect(start.status).toBe(202);
    const location = start.headers.get('location') ?? '';
    expect(location.startsWith(`${proxy.url}/v2/${repo}/blobs/uploads/`)).toBe(true);
    const finish = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${sha256(body)}`, {
      method: 'PUT',
      headers: { Authorization: auth, 'Content-Type': 'application/octet-stream' },
      body,
    });
    expect(finish.status).toBe(201);
    expect(finish.headers.get('location')?.startsWith(proxy.url)).toBe(true);
    const readBack = await fetch(`${registry.url}/v2/${repo}/blobs/${sha256(body)}`, { headers: { Authorization: auth } });
    expect(Buffer.from(await readBack.arrayBuffer()).equals(body)).toBe(true);
    const put = proxy.requests.find((r) => r.method === 'PUT');
    expect(put?.requestBytes).toBe(body.length);
    expect(put?.headers.authorization).toBe(auth);
  });

  it('injects error statuses on the nth matching request only', async () => {
    proxy.setRules([
      { method: 'GET', path: /\/blobs\//, times: 2, fault: { kind: 'status', status: 503 } },
      { method: 'GET', path: /\/manifests\//, skip: 1, times: 1, fault: { kind: 'status', status: 429, retryAfter: 2 } },
    ]);
    const blobStatuses = [];
    for (let i = 0; i < 3; i++) blobStatuses.push((await get(configBlob())).status);
    expect(blobStatuses).toEqual([503, 503, 200]);

    const manifestPath = `/v2/${repo}/manifests/v1`;
    expect((await get(manifestPath, { Accept: MANIFEST_ACCEPT })).status).toBe(200);
    const limited = await get(manifestPath, { Accept: MANIFEST_ACCEPT });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('2');
    expect(await limited.json()).toMatchObject({ errors: [{ code: 'TOOMANYREQUESTS' }] });
    expect((await get(manifestPath, { Accept: MANIFEST_ACCEPT })).status).toBe(200);
    expect(proxy.ruleStats().map((s) => [s.matched, s.injected])).toEqual([
      [3, 2],
      [3, 1],
    ]);
  });

  it('resets the connection before or during the response', async () => {
    proxy.setRules([{ path: /\/blobs\//, times: 1, fault: { kind: 'reset' } }]);
    await expect(get(configBlob())).rejects.toThrow(/fetch failed/);
    expect(proxy.requests.at(-1)?.outcome).toBe('reset');

    proxy.setRules([{ path: /\/blobs\//, times: 1, fault: { kind: 'reset', afterBytes: 100 } }]);
    await expect(get(configBlob()).then((r) => r.arrayBuffer())).rejects.toThrow();
    expect(proxy.requests.at(-1)).toMatchObject({ outcome: 'reset', status: 200, responseBytes: 100 });
  });

  it('truncates a body that still promises its full Content-Length', async () => {
    proxy.setRules([{ path: /\/blobs\//, times: 1, fault: { kind: 'truncate', afterBytes: 10 } }]);
    const res = await get(configBlob());
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBe(image.manifest.config.size);
    await expect(res.arrayBuffer()).rejects.toThrow();
    expect(proxy.requests.at(-1)).toMatchObject({ outcome: 'truncated', responseBytes: 10 });
  });

  it('corrupts exactly one byte at the given offset, keeping the length', async () => {
    const intact = Buffer.from(await (await get(configBlob())).arrayBuffer());
    proxy.setRules([{ path: /\/blobs\//, times: 1, fault: { kind: 'corrupt', offset: 7 } }]);
    const corrupted = Buffer.from(await (await get(configBlob())).arrayBuffer());
    expect(corrupted.length).toBe(intact.length);
    expect(sha256(corrupted)).not.toBe(image.manifest.config.digest);
    const differing = [...corrupted].flatMap((byte, i) => (byte !== intact[i] ? [i] : []));
    expect(differing).toEqual([7]);
  });

  it('delays requests without losing their bodies', async () => {
    proxy.setRules([{ method: ['POST', 'PUT'], path: /\/blobs\/uploads\//, fault: { kind: 'delay', ms: 150 } }]);
    const body = Buffer.from('delayed upload body\n');
    const started = Date.now();
    const start = await fetch(`${proxy.url}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers: { Authorization: auth } });
    const location = start.headers.get('location') ?? '';
    const finish = await fetch(`${location}${location.includes('?') ? '&' : '?'}digest=${sha256(body)}`, {
      method: 'PUT',
      headers: { Authorization: auth, 'Content-Type': 'application/octet-stream' },
      body,
    });
    expect(finish.status).toBe(201);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    expect(proxy.ruleStats()[0]?.injected).toBe(2);
  });

  it('throttles the body and can take Range support away', async () => {
    const size = image.manifest.config.size;
    proxy.setRules([{ path: /\/blobs\//, times: 1, fault: { kind: 'throttle', bytesPerSecond: size * 4 } }]);
    const started = Date.now();
    const slow = Buffer.from(await (await get(configBlob())).arrayBuffer());
    expect(Date.now() - started).toBeGreaterThanOrEqual(200);
    expect(sha256(slow)).toBe(image.manifest.config.digest);

    proxy.setRules([]);
    const ranged = await get(configBlob(), { Range: 'bytes=0-9' });
    expect(ranged.status).toBe(206);
    expect((await ranged.arrayBuffer()).byteLength).toBe(10);
    proxy.setRules([{ path: /\/blobs\//, fault: { kind: 'noRange' } }]);
    const whole = await get(configBlob(), { Range: 'bytes=0-9' });
    expect(whole.status).toBe(200);
    expect(whole.headers.get('accept-ranges')).toBeNull();
    expect((await whole.arrayBuffer()).byteLength).toBe(size);
  });

  it('skopeo rides out a 429 and a connection reset with its retries', async () => {
    // skopeo 1.9.3 retries 429 and network errors (after ~1 s each), but gives up at once on 503.
    proxy.setRules([
      { method: 'GET', path: /\/manifests\//, times: 1, fault: { kind: 'status', status: 429, retryAfter: 0 } },
      { method: 'GET', path: /\/blobs\//, times: 1, fault: { kind: 'reset' } },
    ]);
    proxy.clearRequests();
    const dest = `oci:${createTempDir('proxy-pull')}/layout:v1`;
    await runSkopeo([
      'copy',
      '--retry-times',
      '3',
      '--src-tls-verify=false',
      '--src-creds',
      'ferry:ferry-secret',
      `docker://${proxy.host}/${repo}:v1`,
      dest,
    ]);
    const outcomes = proxy.requests
      .filter((r) => r.method === 'GET' && /\/(manifests|blobs)\//.test(r.url))
      .map((r) => r.status ?? r.outcome);
    expect(outcomes.slice(0, 2)).toEqual([429, 200]);
    expect(outcomes).toContain('reset');
    expect(proxy.ruleStats().map((s) => s.injected)).toEqual([1, 1]);
    // Copying into an OCI layout rewrites the manifest's media types, but the blobs are the same.
    const { stdout } = await runSkopeo(['inspect', dest]);
    expect(JSON.parse(stdout).Layers).toEqual(image.manifest.layers.map((l) => l.digest));
  });

  it('refuses targets off the loopback interface', async () => {
    await expect(startFaultProxy('http://registry.example.invalid:5000')).rejects.toThrow(/loopback only/);
  });
});
