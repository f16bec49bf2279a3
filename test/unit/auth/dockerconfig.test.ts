import { existsSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadDockerConfig, normalizeRegistry, type Credential, type DockerConfigCredentials } from '../../../src/auth/dockerconfig.js';
import { CredentialsError } from '../../../src/util/errors.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';

afterAll(cleanupHarness);

import { FIXTURES } from '../../helpers/fixtures.js';
const CI_DIR = join(FIXTURES, 'containers-image/pkg/docker/config/testdata');
const ORAS_DIR = join(FIXTURES, 'oras-go/registry/remote/internal/configuration/testdata');
const haveCI = existsSync(CI_DIR);
const haveOras = existsSync(ORAS_DIR);
if (!haveCI) console.warn(`skipping containers/image auth-file fixtures: ${CI_DIR} not found`);
if (!haveOras) console.warn(`skipping oras-go config fixtures: ${ORAS_DIR} not found`);

/** Loads a config file with no credential helpers reachable. */
function load(path: string): Promise<DockerConfigCredentials> {
  return loadDockerConfig({ path, env: { PATH: '' }, helperDir: '' });
}

async function writeConfig(content: string | object, name = 'config.json'): Promise<string> {
  const dir = createTempDir('dockerconfig');
  const path = join(dir, name);
  await writeFile(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
}

function basic(username: string, password: string): Partial<Credential> {
  return { kind: 'basic', username, password };
}

async function loadError(path: string): Promise<CredentialsError> {
  const err: unknown = await load(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CredentialsError);
  return err as CredentialsError;
}

async function getError(source: DockerConfigCredentials, registry: string): Promise<CredentialsError> {
  const err: unknown = await source.get(registry).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CredentialsError);
  return err as CredentialsError;
}

function b64(text: string): string {
  return Buffer.from(text).toString('base64');
}

// -------------------------------------------------------------------------------------------
// Fixture expectations (SOURCES.md §1e and §7)

describe.skipIf(!haveCI)('containers/image pkg/docker/config/testdata', () => {
  const file = (name: string) => join(CI_DIR, name);

  it('example.json: example.org -> example/org; registry.example.org -> none', async () => {
    const src = await load(file('example.json'));
    expect(await src.get('example.org')).toMatchObject(basic('example', 'org'));
    expect(await src.get('registry.example.org')).toBeUndefined();
  });

  it('full.json: exact keys win, ports and IPs are distinct hosts, URL keys are normalised', async () => {
    const src = await load(file('full.json'));
    expect(await src.get('docker.io')).toMatchObject(basic('docker', 'io'));
    // Any Hub spelling asks for docker.io, where the exact key beats "index.docker.io".
    expect(await src.get('index.docker.io')).toMatchObject(basic('docker', 'io'));
    expect(await src.get('localhost')).toMatchObject(basic('local', 'host'));
    expect(await src.get('localhost:5000')).toMatchObject(basic('local', 'host-5000'));
    expect(await src.get('10.10.30.45')).toMatchObject(basic('10.10', '30.45'));
    expect(await src.get('10.10.30.45:5000')).toMatchObject(basic('10.10', '30.45-5000'));
    expect(await src.get('normalize.example.org')).toMatchObject(basic('normalize', 'example'));
    expect(await src.get('example.org')).toMatchObject(basic('example', 'org'));
    expect(await src.get('10.10.30.45:5001')).toBeUndefined();
  });

  it('abnormal.json: Hub through https://index.docker.io/v1, URL keys with ports', async () => {
    const src = await load(file('abnormal.json'));
    expect(await src.get('docker.io')).toMatchObject(basic('index', 'docker.io'));
    expect(await src.get('localhost:5000')).toMatchObject(basic('local', 'host-5000'));
    expect(await src.get('localhost:5001')).toMatchObject(basic('local', 'host-5001'));
    expect(await src.get('localhost')).toMatchObject(basic('local', 'host'));
    expect(await src.get('127.0.0.1:5000')).toMatchObject(basic('127.0', '0.1-5000'));
  });

  it('refpath.json: per-repository keys, most specific namespace first', async () => {
    const src = await load(file('refpath.json'));
    expect(await src.get('docker.io', 'library/busybox')).toMatchObject(basic('library', 'busybox'));
    expect(await src.get('docker.io', 'library/notbusybox')).toMatchObject(basic('library', 'other'));
    expect(await src.get('docker.io', 'vendor/product')).toMatchObject(basic('first', 'level'));
    expect(await src.get('docker.io', 'other-vendor/x')).toMatchObject(basic('top', 'level'));
    expect(await src.get('example.org', 'repo')).toMatchObject(basic('example', 'org'));
    // Namespaces match whole path segments only.
    expect(await src.get('example.org', 'repository')).toMatchObject(basic('local', 'host'));
    // Host-only lookups (Docker's own behaviour) ignore the namespaced keys.
    expect(await src.get('docker.io')).toMatchObject(basic('top', 'level'));
    expect(await src.get('example.org')).toMatchObject(basic('local', 'host'));
  });

  it('legacy.json: the ~/.dockercfg format without the auths wrapper', async () => {
    const src = await load(file('legacy.json'));
    expect(src.legacy).toBe(true);
    expect(await src.get('localhost')).toMatchObject(basic('local', 'host-legacy'));
    expect(await src.get('docker.io')).toMatchObject(basic('docker', 'io-legacy'));
  });

  it('example_identitytoken.json: identity token, never a password', async () => {
    const src = await load(file('example_identitytoken.json'));
    const cred = await src.get('example.org');
    expect(cred).toMatchObject({
      kind: 'identityToken',
      username: '00000000-0000-0000-0000-000000000000',
      token: 'some very long identity token',
    });
    expect(cred).not.toHaveProperty('password');
  });

  it('empty.json ({}): no credentials and no error', async () => {
    const src = await load(file('empty.json'));
    expect(await src.get('docker.io')).toBeUndefined();
    expect(await src.get('example.org')).toBeUndefined();
  });
  // config.json (credHelpers) is exercised with a fake helper in credhelper.test.ts.
});

describe.skipIf(!haveOras)('oras-go registry/remote/internal/configuration/testdata', () => {
  const file = (name: string) => join(ORAS_DIR, name);

  it('bad_config: unparsable -> CredentialsError naming the file', async () => {
    const err = await loadError(file('bad_config'));
    expect(err.message).toContain(file('bad_config'));
    expect(err.code).toBe('CREDENTIALS');
  });

  it('invalid_auths_config.json: "auths" is a string -> CredentialsError', async () => {
    const err = await loadError(file('invalid_auths_config.json'));
    expect(err.message).toContain(file('invalid_auths_config.json'));
    expect(err.message).toContain('auths');
    expect(err.message).not.toContain('whaterver');
  });

  it.each(['no_auths_config.json', 'empty.json', 'whitespace.json'])('%s: no credentials and no error', async (name) => {
    const src = await load(file(name));
    expect(await src.get('registry.example.com')).toBeUndefined();
    expect(await src.get('docker.io')).toBeUndefined();
  });

  it('valid_auths_config.json: every entry kind', async () => {
    const src = await load(file('valid_auths_config.json'));
    expect(await src.get('registry1.example.com')).toMatchObject(basic('username', 'password'));
    expect(await src.get('registry2.example.com')).toEqual({
      kind: 'identityToken',
      token: 'identity_token',
      origin: expect.stringContaining('registry2.example.com'),
    });
    expect(await src.get('registry3.example.com')).toMatchObject({ kind: 'registryToken', token: 'registry_token' });
    // registrytoken (ready to send) > identitytoken (needs an exchange) > basic.
    expect(await src.get('registry4.example.com')).toMatchObject({ kind: 'registryToken', token: 'registry_token' });
    expect(await src.get('registry5.example.com')).toBeUndefined();
    expect(await src.get('registry6.example.com')).toMatchObject(basic('username', 'password'));
    // base64 auth beats username/password.
    expect(await src.get('registry7.example.com')).toMatchObject(basic('username', 'password'));
    expect(await src.get('foo.example.com')).toBeUndefined();
    expect(await src.get('registry999.example.com')).toBeUndefined();
  });

  it('legacy_auths_config.json: exact key wins, then scheme and path are stripped', async () => {
    const src = await load(file('legacy_auths_config.json'));
    // "registry1.example.com" (username1) beats "https://registry1.example.com/" (foo:bar).
    expect(await src.get('registry1.example.com')).toMatchObject(basic('username1', 'password1'));
    for (const n of [2, 3, 4, 5, 6]) {
      expect(await src.get(`registry${n}.example.com`)).toMatchObject(basic(`username${n}`, `password${n}`));
    }
  });

  it('invalid_auths_entry_config.json: a non-object entry or non-string token fails the load', async () => {
    const path = file('invalid_auths_entry_config.json');
    const err = await loadError(path);
    expect(err.message).toContain(path);
    expect(err.message).toContain('auths["registry2.example.com"]');
    expect(err.message).toContain('auths["registry3.example.com"].identitytoken');
    expect(err.message).not.toContain('whatever');
  });

  it('invalid_auths_entry_config.json: "auth" that is not base64 loads, and fails when used', async () => {
    // The fixture's registry1 entry on its own (its siblings fail the whole load, see above).
    const fixture = JSON.parse(readFileSync(file('invalid_auths_entry_config.json'), 'utf8')) as {
      auths: Record<string, unknown>;
    };
    const src = await load(await writeConfig({ auths: { 'registry1.example.com': fixture.auths['registry1.example.com'] } }));
    const err = await getError(src, 'registry1.example.com');
    expect(err.message).toContain('auths["registry1.example.com"]');
    expect(err.message).not.toContain('username:password');
    expect(err.message).not.toContain('password');
  });
  // credHelpers_config.json and credsStore_config.json are exercised in credhelper.test.ts.
});

// -------------------------------------------------------------------------------------------
// Our own cases

describe('loadDockerConfig: locating the file', () => {
  it('missing file: no credentials, no error, no path', async () => {
    const dir = createTempDir('nofile');
    const src = await load(join(dir, 'config.json'));
    expect(src.path).toBeUndefined();
    expect(await src.get('docker.io')).toBeUndefined();
  });

  it('uses $DOCKER_CONFIG/config.json', async () => {
    const dir = createTempDir('docker-config-env');
    await writeFile(join(dir, 'config.json'), JSON.stringify({ auths: { 'r.example.com': { auth: b64('env:var') } } }));
    const src = await loadDockerConfig({ env: { DOCKER_CONFIG: dir, HOME: createTempDir('home') } });
    expect(src.path).toBe(join(dir, 'config.json'));
    expect(await src.get('r.example.com')).toMatchObject(basic('env', 'var'));
  });

  it('defaults to $HOME/.docker/config.json', async () => {
    const home = createTempDir('home');
    await mkdir(join(home, '.docker'));
    await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: { 'r.example.com': { auth: b64('home:dir') } } }));
    const src = await loadDockerConfig({ env: { HOME: home } });
    expect(await src.get('r.example.com')).toMatchObject(basic('home', 'dir'));
  });

  it('falls back to $HOME/.dockercfg when config.json does not exist', async () => {
    const home = createTempDir('home');
    await writeFile(join(home, '.dockercfg'), JSON.stringify({ 'https://r.example.com': { auth: b64('old:cfg'), email: 'x@y' } }));
    const src = await loadDockerConfig({ env: { HOME: home } });
    expect(src.path).toBe(join(home, '.dockercfg'));
    expect(src.legacy).toBe(true);
    expect(await src.get('r.example.com')).toMatchObject(basic('old', 'cfg'));
  });

  it('an explicit path does not fall back to .dockercfg', async () => {
    const home = createTempDir('home');
    await writeFile(join(home, '.dockercfg'), JSON.stringify({ 'r.example.com': { auth: b64('old:cfg') } }));
    const src = await loadDockerConfig({ path: join(home, 'absent.json'), env: { HOME: home } });
    expect(await src.get('r.example.com')).toBeUndefined();
  });

  it('a directory in place of the file is an error', async () => {
    const dir = createTempDir('isdir');
    const err = await loadError(dir);
    expect(err.message).toContain(dir);
  });

  it('tolerates a UTF-8 byte order mark', async () => {
    const src = await load(await writeConfig(`\uFEFF${JSON.stringify({ auths: { 'r.example.com': { auth: b64('a:b') } } })}`));
    expect(await src.get('r.example.com')).toMatchObject(basic('a', 'b'));
  });

  it('does not take a modern config without "auths" for the legacy format', async () => {
    const src = await load(await writeConfig({ proxies: { default: { httpProxy: 'http://proxy:3128' } }, psFormat: 'x' }));
    expect(src.legacy).toBe(false);
    expect(await src.get('default')).toBeUndefined();
  });

  it('rejects a top level that is not an object', async () => {
    const err = await loadError(await writeConfig('["auths"]'));
    expect(err.message).toContain('top level');
  });
});

describe('loadDockerConfig: secrets stay out of errors', () => {
  const SECRET = 'hunter2-Sup3rS3cret';

  it('truncated JSON', async () => {
    const text = JSON.stringify({ auths: { 'r.example.com': { username: 'u', password: SECRET, auth: b64(`u:${SECRET}`) } } });
    const path = await writeConfig(text.slice(0, text.length - 3));
    const err = await loadError(path);
    expect(err.message).toContain(path);
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain(b64(`u:${SECRET}`).slice(0, 12));
    expect(String(err.cause ?? '')).not.toContain(SECRET);
  });

  it('JSON syntax error next to a secret', async () => {
    const path = await writeConfig(`{"auths":{"r":{"password":"${SECRET}" "x":1}}}`);
    const err = await loadError(path);
    expect(err.message).toMatch(/line 1, column \d+|not valid JSON/);
    expect(err.message).not.toContain(SECRET);
    expect(err.cause).toBeUndefined();
  });

  it('wrong types next to a secret', async () => {
    const path = await writeConfig({ auths: { 'r.example.com': { username: 'u', password: SECRET, identitytoken: 42 } } });
    const err = await loadError(path);
    expect(err.message).toContain('auths["r.example.com"].identitytoken');
    expect(err.message).not.toContain(SECRET);
  });

  it('an entry whose secret is in the wrong place', async () => {
    const path = await writeConfig({ auths: { 'r.example.com': { auth: { nested: SECRET } } } });
    const err = await loadError(path);
    expect(err.message).not.toContain(SECRET);
  });

  it.each([
    ['not base64', `u:${SECRET}`],
    ['base64 without a colon', b64(SECRET)],
    ['base64 of invalid UTF-8', Buffer.from([0xff, 0xfe, 0x3a, 0x41]).toString('base64')],
    ['bad padding', `${b64(`u:${SECRET}`)}==`],
  ])('"auth" %s: error when used, without the value', async (_name, auth) => {
    const src = await load(await writeConfig({ auths: { 'r.example.com': { auth } } }));
    const err = await getError(src, 'r.example.com');
    expect(err.code).toBe('CREDENTIALS');
    expect(err.message).toContain('auths["r.example.com"]');
    expect(err.message).not.toContain(SECRET);
    expect(err.message).not.toContain(auth);
    expect(err.hint).toBeDefined();
  });

  it('origin names the entry, not the secret', async () => {
    const path = await writeConfig({ auths: { 'r.example.com': { auth: b64(`u:${SECRET}`) } } });
    const cred = await (await load(path)).get('r.example.com');
    expect(cred?.origin).toBe(`auths["r.example.com"] in ${path}`);
  });
});

describe('DockerConfigCredentials.get: entries', () => {
  it('accepts unpadded base64 and keeps colons in the password', async () => {
    const src = await load(await writeConfig({ auths: { 'r.example.com': { auth: b64('user:pa:ss1').replace(/=+$/, '') } } }));
    expect(await src.get('r.example.com')).toMatchObject(basic('user', 'pa:ss1'));
  });

  it('trims NULs around the decoded password, as Docker does', async () => {
    const src = await load(await writeConfig({ auths: { 'r.example.com': { auth: b64('user:pass\0\0') } } }));
    expect(await src.get('r.example.com')).toMatchObject(basic('user', 'pass'));
  });

  it('an empty "auth" defers to username/password; null fields are absent', async () => {
    const src = await load(
      await writeConfig({ auths: { 'r.example.com': { auth: '', username: 'u', password: 'p', identitytoken: null } } }),
    );
    expect(await src.get('r.example.com')).toMatchObject(basic('u', 'p'));
  });

  it('identitytoken keeps a username from the entry', async () => {
    const src = await load(await writeConfig({ auths: { 'r.example.com': { username: 'robot', identitytoken: 'rt' } } }));
    expect(await src.get('r.example.com')).toMatchObject({ kind: 'identityToken', username: 'robot', token: 'rt' });
  });

  it('skips an empty entry in favour of a later matching key', async () => {
    const src = await load(await writeConfig({ auths: { 'r.example.com': {}, 'https://r.example.com/': { auth: b64('a:b') } } }));
    expect(await src.get('r.example.com')).toMatchObject(basic('a', 'b'));
  });

  it('ignores unknown fields (email, serveraddress, ...)', async () => {
    const src = await load(
      await writeConfig({ auths: { 'r.example.com': { auth: b64('a:b'), email: 'a@b', serveraddress: 'r' } }, currentContext: 'x' }),
    );
    expect(await src.get('r.example.com')).toMatchObject(basic('a', 'b'));
  });
});

describe('DockerConfigCredentials.get: key matching', () => {
  it('Docker Hub: every alias finds https://index.docker.io/v1/', async () => {
    const src = await load(await writeConfig({ auths: { 'https://index.docker.io/v1/': { auth: b64('hub:user') } } }));
    for (const name of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'DOCKER.IO', 'https://index.docker.io/v1/']) {
      expect(await src.get(name), name).toMatchObject(basic('hub', 'user'));
    }
  });

  it('Docker Hub: the key docker login writes beats other spellings', async () => {
    const src = await load(
      await writeConfig({ auths: { 'index.docker.io': { auth: b64('old:x') }, 'https://index.docker.io/v1/': { auth: b64('new:y') } } }),
    );
    expect(await src.get('docker.io')).toMatchObject(basic('new', 'y'));
  });

  it("ignores Docker Desktop's access-token / refresh-token keys", async () => {
    const src = await load(
      await writeConfig({
        auths: {
          'https://index.docker.io/v1/access-token': { auth: b64('desk:access') },
          'https://index.docker.io/v1/refresh-token': { identitytoken: 'desk-refresh' },
        },
      }),
    );
    expect(await src.get('docker.io')).toBeUndefined();
    expect(await src.get('index.docker.io')).toBeUndefined();
  });

  it('ignores URL keys that name a repository, keeps directory URLs', async () => {
    const src = await load(
      await writeConfig({
        auths: {
          'http://repo.example.com/foo': { auth: b64('repo:only') },
          'https://dir.example.com/some/path/': { auth: b64('dir:ok') },
        },
      }),
    );
    expect(await src.get('repo.example.com')).toBeUndefined();
    expect(await src.get('dir.example.com')).toMatchObject(basic('dir', 'ok'));
  });

  it('does not depend on key order: schemeless, then https, then http', async () => {
    const entries: [string, string][] = [
      ['http://r.example.com', b64('http:x')],
      ['https://r.example.com/', b64('https:x')],
    ];
    for (const order of [entries, [...entries].reverse()]) {
      const auths = Object.fromEntries(order.map(([k, auth]) => [k, { auth }]));
      const src = await load(await writeConfig({ auths }));
      expect(await src.get('r.example.com')).toMatchObject(basic('https', 'x'));
    }
  });

  it('matches hosts case-insensitively; ports must match', async () => {
    const src = await load(await writeConfig({ auths: { 'Registry.Example.COM:5000': { auth: b64('a:b') } } }));
    expect(await src.get('registry.example.com:5000')).toMatchObject(basic('a', 'b'));
    expect(await src.get('registry.example.com')).toBeUndefined();
    expect(await src.get('registry.example.com:5001')).toBeUndefined();
  });

  it('no suffix or prefix matching between hosts', async () => {
    const src = await load(await writeConfig({ auths: { 'example.com': { auth: b64('a:b') } } }));
    expect(await src.get('registry.example.com')).toBeUndefined();
    expect(await src.get('example.co')).toBeUndefined();
  });

  it('an argument that is not a registry gets nothing', async () => {
    const src = await load(await writeConfig({ auths: { 'r.example.com': { auth: b64('a:b') } } }));
    expect(await src.get('r.example.com/some/repo')).toBeUndefined();
    expect(await src.get('https://index.docker.io/v1/helper-token')).toBeUndefined();
    expect(await src.get('')).toBeUndefined();
  });
});

describe('normalizeRegistry', () => {
  it.each([
    ['docker.io', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['https://index.docker.io/v1/', 'docker.io'],
    ['http://index.docker.io/v1', 'docker.io'],
    ['Quay.IO', 'quay.io'],
    ['localhost:5000', 'localhost:5000'],
    ['https://localhost:5001', 'localhost:5001'],
    ['https://r.example.com/path/', 'r.example.com'],
    ['[::1]:5000', '[::1]:5000'],
  ])('%s -> %s', (input, want) => {
    expect(normalizeRegistry(input)).toBe(want);
  });

  it.each(['', 'r.example.com/ns', 'http://r.example.com/foo', 'https://index.docker.io/v1/access-token', 'https:///x'])(
    '%j is not a registry',
    (input) => {
      expect(normalizeRegistry(input)).toBeUndefined();
    },
  );
});
