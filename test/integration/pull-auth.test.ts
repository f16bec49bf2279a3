/**
 * Every way ferry authenticates, against the real registry: htpasswd basic auth, token auth
 * (anonymous, basic, identity/refresh token, registry token, expiry), TLS with a private CA,
 * docker config.json and credential helpers. Secrets never reach messages.
 */
import { chmod, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../scripts/corpus/generate.js';
import { loadDockerConfig } from '../../src/auth/index.js';
import { pull } from '../../src/commands/pull.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { pushSmallCorpus } from './corpus-registry.js';

afterAll(cleanupHarness);

const USER = 'ferry';
const PASS = 'ferry-secret';

function storeDir(): string {
  return path.join(createTempDir('auth-store'), 'store');
}

async function writeConfig(entries: Record<string, unknown>): Promise<string> {
  const dir = createTempDir('docker-config');
  const file = path.join(dir, 'config.json');
  await writeFile(file, JSON.stringify(entries));
  return file;
}

function b64(s: string): string {
  return Buffer.from(s).toString('base64');
}

describe('htpasswd basic auth', () => {
  let reg: RunningRegistry;
  let corpus: CorpusManifest;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'htpasswd', users: { [USER]: PASS } });
    ({ corpus } = await pushSmallCorpus(reg));
  });

  it('pulls with --username/--password-stdin credentials', async () => {
    const img = corpus.images.find((i) => i.kind === 'oci-index')!;
    const r = await pull({
      refs: [`${reg.host}/${img.repo}:${img.tag}`],
      store: storeDir(),
      staticCredential: { kind: 'basic', username: USER, password: PASS },
    });
    expect(r.failures).toEqual([]);
    expect(r.images[0]!.digest).toBe(img.digest);
  });

  it('pulls with credentials from a docker config.json', async () => {
    const img = corpus.images[0]!;
    const credentials = await loadDockerConfig({ path: await writeConfig({ auths: { [reg.host]: { auth: b64(`${USER}:${PASS}`) } } }) });
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), credentials });
    expect(r.failures).toEqual([]);
  });

  it('pulls with credentials from a credential helper', async () => {
    const bin = createTempDir('helper-bin');
    const helper = path.join(bin, 'docker-credential-ferrytest');
    await writeFile(
      helper,
      `#!/bin/sh\nread server\nif [ "$1" = get ] && [ "$server" = "${reg.host}" ]; then printf '{"ServerURL":"%s","Username":"${USER}","Secret":"${PASS}"}' "$server"; exit 0; fi\necho "credentials not found in native keychain"; exit 1\n`,
    );
    await chmod(helper, 0o755);
    const credentials = await loadDockerConfig({ path: await writeConfig({ credHelpers: { [reg.host]: 'ferrytest' } }), helperDir: bin });
    const img = corpus.images[0]!;
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), credentials });
    expect(r.failures).toEqual([]);
  });

  it('without credentials: UNAUTHORIZED, nothing stored', async () => {
    const img = corpus.images[0]!;
    const r = await pull({
      refs: [`${reg.host}/${img.repo}:${img.tag}`],
      store: storeDir(),
      credentials: await loadDockerConfig({ path: await writeConfig({}) }),
    });
    expect(r.failures).toEqual([expect.objectContaining({ errorCode: 'UNAUTHORIZED' })]);
    expect(r.images).toEqual([]);
  });

  it('wrong password: UNAUTHORIZED, and the password is in no message', async () => {
    const img = corpus.images[0]!;
    const r = await pull({
      refs: [`${reg.host}/${img.repo}:${img.tag}`],
      store: storeDir(),
      staticCredential: { kind: 'basic', username: USER, password: 'hunter2-wrong' },
    });
    expect(r.failures).toEqual([expect.objectContaining({ errorCode: 'UNAUTHORIZED' })]);
    expect(JSON.stringify(r)).not.toContain('hunter2-wrong');
    expect(JSON.stringify(r)).not.toContain(b64(`${USER}:hunter2-wrong`));
  });
});

describe('token auth (Docker-Hub-like token service, JWT with x5c)', () => {
  let reg: RunningRegistry;
  let corpus: CorpusManifest;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token', users: { [USER]: PASS }, token: { anonymousPull: false } });
    ({ corpus } = await pushSmallCorpus(reg));
  });

  it('basic credentials → scoped bearer tokens', async () => {
    reg.tokenServer!.clearRequests();
    const imgs = corpus.images.slice(0, 3);
    const r = await pull({
      refs: imgs.map((i) => `${reg.host}/${i.repo}:${i.tag}`),
      store: storeDir(),
      staticCredential: { kind: 'basic', username: USER, password: PASS },
    });
    expect(r.failures).toEqual([]);
    const scopes = new Set(reg.tokenServer!.requests.flatMap((q) => q.scopes));
    for (const i of imgs) expect(scopes).toContain(`repository:${i.repo}:pull`);
    expect(reg.tokenServer!.requests.every((q) => q.authenticatedAs === USER)).toBe(true);
    // One token per repository, reused for every request in it.
    const repos = new Set(imgs.map((i) => i.repo));
    expect(reg.tokenServer!.requests.length).toBe(repos.size);
  });

  it('anonymous when the service grants nothing: UNAUTHORIZED with a hint', async () => {
    const img = corpus.images[0]!;
    const r = await pull({
      refs: [`${reg.host}/${img.repo}:${img.tag}`],
      store: storeDir(),
      credentials: await loadDockerConfig({ path: await writeConfig({}) }),
    });
    expect(r.failures).toEqual([expect.objectContaining({ errorCode: 'UNAUTHORIZED' })]);
  });

  it('anonymous pull when the service allows it', async () => {
    reg.tokenServer!.configure({ anonymousPull: true });
    try {
      const img = corpus.images[0]!;
      const r = await pull({
        refs: [`${reg.host}/${img.repo}:${img.tag}`],
        store: storeDir(),
        credentials: await loadDockerConfig({ path: await writeConfig({}) }),
      });
      expect(r.failures).toEqual([]);
      expect(reg.tokenServer!.requests.at(-1)!.credential).toBe('none');
    } finally {
      reg.tokenServer!.configure({ anonymousPull: false });
    }
  });

  it('an identity token from config.json is used as an OAuth2 refresh token', async () => {
    reg.tokenServer!.clearRequests();
    const refresh = reg.tokenServer!.issueRefreshToken(USER);
    const credentials = await loadDockerConfig({
      path: await writeConfig({ auths: { [reg.host]: { auth: b64('00000000-0000-0000-0000-000000000000:'), identitytoken: refresh } } }),
    });
    const img = corpus.images[0]!;
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), credentials });
    expect(r.failures).toEqual([]);
    expect(reg.tokenServer!.requests.map((q) => [q.method, q.grantType])).toContainEqual(['POST', 'refresh_token']);
  });

  it('a registry token from config.json is sent as the bearer token directly', async () => {
    reg.tokenServer!.clearRequests();
    const img = corpus.images[0]!;
    const token = reg.tokenServer!.mintToken([{ type: 'repository', name: img.repo, actions: ['pull'] }]);
    const credentials = await loadDockerConfig({ path: await writeConfig({ auths: { [reg.host]: { registrytoken: token } } }) });
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), credentials });
    expect(r.failures).toEqual([]);
    expect(reg.tokenServer!.requests).toEqual([]);
  });

  it('the reply may carry access_token only', async () => {
    reg.tokenServer!.configure({ replyField: 'access_token' });
    try {
      const img = corpus.images[0]!;
      const r = await pull({
        refs: [`${reg.host}/${img.repo}:${img.tag}`],
        store: storeDir(),
        staticCredential: { kind: 'basic', username: USER, password: PASS },
      });
      expect(r.failures).toEqual([]);
    } finally {
      reg.tokenServer!.configure({ replyField: 'both' });
    }
  });

  it('an expired token is replaced: the registry 401s and ferry fetches a new one', async () => {
    // Tokens the registry rejects at once, but which the reply claims last 5 minutes.
    reg.tokenServer!.configure({ tokenTtlSeconds: -120, reportedExpiresIn: 300 });
    const img = corpus.images[0]!;
    const r1 = pull({
      refs: [`${reg.host}/${img.repo}:${img.tag}`],
      store: storeDir(),
      staticCredential: { kind: 'basic', username: USER, password: PASS },
    });
    // With only bad tokens on offer the pull must fail, after one renewal attempt, as UNAUTHORIZED.
    const res1 = await r1;
    expect(res1.failures).toEqual([expect.objectContaining({ errorCode: 'UNAUTHORIZED' })]);
    reg.tokenServer!.clearRequests();
    reg.tokenServer!.configure({ tokenTtlSeconds: 300, reportedExpiresIn: 300 });
    const res2 = await pull({
      refs: [`${reg.host}/${img.repo}:${img.tag}`],
      store: storeDir(),
      staticCredential: { kind: 'basic', username: USER, password: PASS },
    });
    expect(res2.failures).toEqual([]);
  });
});

describe('TLS with a private CA', () => {
  let reg: RunningRegistry;
  let corpus: CorpusManifest;
  beforeAll(async () => {
    reg = await startRegistry({ tls: true });
    ({ corpus } = await pushSmallCorpus(reg));
  });

  it('verifies the registry with --ca-file', async () => {
    const img = corpus.images.find((i) => i.kind === 'docker-list')!;
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), caFiles: [reg.caFile!] });
    expect(r.failures).toEqual([]);
    expect(r.images[0]!.digest).toBe(img.digest);
  });

  it('finds the CA in a certs.d directory (HOST:PORT/ca.crt), as Docker does', async () => {
    const certsd = createTempDir('certs.d');
    const { mkdir, copyFile } = await import('node:fs/promises');
    await mkdir(path.join(certsd, reg.host), { recursive: true });
    await copyFile(reg.caFile!, path.join(certsd, reg.host, 'ca.crt'));
    const img = corpus.images[0]!;
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), certsDirs: [certsd] });
    expect(r.failures).toEqual([]);
  });

  it('an unknown CA is refused, never silently downgraded to plain HTTP', async () => {
    const img = corpus.images[0]!;
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), certsDirs: [], retry: { maxAttempts: 1 } });
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.errorCode).toBe('TLS_VERIFY_FAILED');
    expect(r.failures[0]!.error).toMatch(/certificate|self.signed|unable to verify/i);
  });

  it('--insecure-registry HOST skips verification for that host only', async () => {
    const img = corpus.images[0]!;
    const r = await pull({ refs: [`${reg.host}/${img.repo}:${img.tag}`], store: storeDir(), certsDirs: [], insecure: [reg.host] });
    expect(r.failures).toEqual([]);
    expect(r.images[0]!.digest).toBe(img.digest);
  });
});
