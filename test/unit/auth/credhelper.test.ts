import { existsSync, readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CredentialHelper } from '../../../src/auth/credhelper.js';
import { loadDockerConfig, type DockerConfigCredentials } from '../../../src/auth/dockerconfig.js';
import { CredentialsError } from '../../../src/util/errors.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';

afterAll(cleanupHarness);

// The fake helpers are POSIX shell scripts.
const posix = process.platform !== 'win32';
if (!posix) console.warn('skipping credential helper tests: they use POSIX shell scripts as fake helpers');

import { FIXTURES } from '../../helpers/fixtures.js';
const REGCLIENT_CONFIG = join(FIXTURES, 'regclient/config/testdata/config.json');
const REGCLIENT_HELPERS = join(FIXTURES, 'regclient/derived/credential-helpers.json');
const CI_CONFIG = join(FIXTURES, 'containers-image/pkg/docker/config/testdata/config.json');
const ORAS_DIR = join(FIXTURES, 'oras-go/registry/remote/internal/configuration/testdata');
const haveRegclient = existsSync(REGCLIENT_CONFIG) && existsSync(REGCLIENT_HELPERS);
const haveCI = existsSync(CI_CONFIG);
const haveOras = existsSync(ORAS_DIR);
if (!haveRegclient) console.warn(`skipping regclient credential fixtures: ${REGCLIENT_CONFIG} or ${REGCLIENT_HELPERS} not found`);
if (!haveCI) console.warn(`skipping containers/image credHelpers fixture: ${CI_CONFIG} not found`);
if (!haveOras) console.warn(`skipping oras-go credHelpers/credsStore fixtures: ${ORAS_DIR} not found`);

const SECRET = 'hunter2-Sup3rS3cret';

// -------------------------------------------------------------------------------------------
// Fake docker-credential-* helpers

interface HelperReply {
  ServerURL?: string;
  Username: string;
  Secret: string;
}
interface FakeHelper {
  /** Canned `get` replies by server URL; anything else gets the standard "not found". */
  get?: Record<string, HelperReply>;
  /** Canned `list` reply. */
  list?: Record<string, string>;
  /** Replaces the generated body (after the stdin read and call log). */
  body?: string;
  /** Do not read stdin at all. */
  ignoreStdin?: boolean;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A directory of fake helpers. Each call is logged as "<action> <stdin>" to calls.log. */
class HelperDir {
  readonly dir = createTempDir('helpers');
  readonly log = join(this.dir, 'calls.log');

  async add(name: string, spec: FakeHelper): Promise<this> {
    const lines = ['#!/bin/sh'];
    if (spec.ignoreStdin) lines.push('server=');
    else lines.push('IFS= read -r server');
    lines.push(`printf '%s %s %s\\n' ${shQuote(name)} "$1" "$server" >> ${shQuote(this.log)}`);
    if (spec.body !== undefined) {
      lines.push(spec.body);
    } else {
      lines.push('case "$1" in', 'get)', '  case "$server" in');
      for (const [url, reply] of Object.entries(spec.get ?? {})) {
        lines.push(`    ${shQuote(url)}) printf '%s\\n' ${shQuote(JSON.stringify(reply))}; exit 0 ;;`);
      }
      lines.push('  esac', "  echo 'credentials not found in native keychain'", '  exit 1 ;;');
      lines.push(`list) printf '%s\\n' ${shQuote(JSON.stringify(spec.list ?? {}))}; exit 0 ;;`);
      lines.push('esac', 'echo "unsupported action $1" >&2', 'exit 2');
    }
    await writeFile(join(this.dir, `docker-credential-${name}`), `${lines.join('\n')}\n`, { mode: 0o755 });
    return this;
  }

  /** "<helper> <action> <server>" lines, in call order. */
  async calls(): Promise<string[]> {
    const text = await readFile(this.log, 'utf8').catch(() => '');
    return text.split('\n').filter((l) => l !== '');
  }
}

async function loadWith(helpers: HelperDir, config: string | object, opts: { helperTimeoutMs?: number } = {}) {
  let path: string;
  if (typeof config === 'string') {
    path = config;
  } else {
    path = join(createTempDir('config'), 'config.json');
    await writeFile(path, JSON.stringify(config));
  }
  return loadDockerConfig({ path, env: { PATH: '/usr/bin:/bin' }, helperDir: helpers.dir, ...opts });
}

async function rejection(p: Promise<unknown>): Promise<CredentialsError> {
  const err: unknown = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CredentialsError);
  return err as CredentialsError;
}

// -------------------------------------------------------------------------------------------
// regclient config/testdata/config.json + derived/credential-helpers.json (SOURCES.md §3d)

describe.skipIf(!posix || !haveRegclient)('regclient config/testdata/config.json with its helpers', () => {
  interface Derived {
    helpers: Record<string, { get: Record<string, HelperReply>; list: Record<string, string> }>;
  }
  const derived: Derived | undefined = haveRegclient ? (JSON.parse(readFileSync(REGCLIENT_HELPERS, 'utf8')) as Derived) : undefined;

  async function setup(): Promise<{ helpers: HelperDir; src: DockerConfigCredentials }> {
    const helpers = new HelperDir();
    for (const [name, canned] of Object.entries(derived!.helpers)) {
      await helpers.add(name, { get: canned.get, list: canned.list });
    }
    return { helpers, src: await loadWith(helpers, REGCLIENT_CONFIG) };
  }

  it('testhost.example.com resolves through credHelpers -> docker-credential-test', async () => {
    const { helpers, src } = await setup();
    expect(await src.get('testhost.example.com')).toMatchObject({ kind: 'basic', username: 'hello', password: 'world' });
    expect(await helpers.calls()).toEqual(['test get testhost.example.com']);
  });

  it('localhost:5001 uses the base64 auth (hello/docker) when the store has nothing', async () => {
    const { src } = await setup();
    expect(await src.get('localhost:5001')).toMatchObject({ kind: 'basic', username: 'hello', password: 'docker' });
  });

  it('docker.io: credHelpers key https://index.docker.io/v1/ applies; the helper is asked for that URL', async () => {
    const { helpers, src } = await setup();
    const want = { kind: 'basic', username: 'hubuser', password: 'password123' };
    expect(await src.get('docker.io')).toMatchObject(want);
    expect(await src.get('registry-1.docker.io')).toMatchObject(want);
    expect(await src.get('index.docker.io')).toMatchObject(want);
    expect(new Set(await helpers.calls())).toEqual(new Set(['test get https://index.docker.io/v1/']));
  });

  it('http.example.com: credHelpers key http://http.example.com/ -> helper asked under that key', async () => {
    const { helpers, src } = await setup();
    expect(await src.get('http.example.com')).toMatchObject({ kind: 'basic', username: 'hello', password: 'universe' });
    expect(await helpers.calls()).toEqual(['test get http://http.example.com/']);
  });

  it('storehost.example.com: not in credHelpers -> credsStore teststore', async () => {
    const { helpers, src } = await setup();
    expect(await src.get('storehost.example.com')).toMatchObject({ kind: 'basic', username: 'hello', password: 'world' });
    expect(await helpers.calls()).toEqual(['teststore get storehost.example.com']);
  });

  it("storehttp.example.com: found through the store's list under http://storehttp.example.com/", async () => {
    const { helpers, src } = await setup();
    expect(await src.get('storehttp.example.com')).toMatchObject({ kind: 'basic', username: 'hello', password: 'universe' });
    expect(await helpers.calls()).toEqual([
      'teststore get storehttp.example.com',
      'teststore list ',
      'teststore get http://storehttp.example.com/',
    ]);
  });

  it('storetoken.example.com: Username <token> means an identity token', async () => {
    const { src } = await setup();
    const cred = await src.get('storetoken.example.com');
    expect(cred).toMatchObject({ kind: 'identityToken', token: 'deadbeefcafe' });
    expect(cred).not.toHaveProperty('username');
    expect(cred).not.toHaveProperty('password');
  });

  it('missing-from-repo.example.com: the auths key with a path is ignored', async () => {
    const { src } = await setup();
    expect(await src.get('missing-from-repo.example.com')).toBeUndefined();
  });

  it('https://index.docker.io/v1/helper-token is not a registry host', async () => {
    const { helpers, src } = await setup();
    expect(await src.get('https://index.docker.io/v1/helper-token')).toBeUndefined();
    expect(await helpers.calls()).toEqual([]);
  });

  it("Hub through credsStore alone: the store's helper-token entry is not Hub's credential", async () => {
    const { helpers } = await setup();
    const src = await loadWith(helpers, { credsStore: 'teststore' });
    expect(await src.get('docker.io')).toBeUndefined();
    expect(await helpers.calls()).toEqual(['teststore get https://index.docker.io/v1/', 'teststore list ']);
  });

  it("Docker Desktop's access-token / refresh-token keys are ignored for Hub", async () => {
    const { helpers } = await setup();
    const fixture = JSON.parse(readFileSync(REGCLIENT_CONFIG, 'utf8')) as { auths: Record<string, unknown> };
    // The fixture's auths alone: Hub's only entries are empty or Desktop-internal.
    const src = await loadWith(helpers, { auths: fixture.auths });
    expect(await src.get('index.docker.io')).toBeUndefined();
    expect(await src.get('docker.io')).toBeUndefined();
    // credHelpers keys under /v1/... (test-token, access-token) do not stand for Hub either.
    const helpersOnly = await loadWith(helpers, {
      credHelpers: { 'https://index.docker.io/v1/access-token': 'test', 'https://index.docker.io/v1/test-token': 'test' },
    });
    expect(await helpersOnly.get('docker.io')).toBeUndefined();
    expect(await helpers.calls()).toEqual([]);
  });

  it('testtoken.example.com through credHelpers: identity token', async () => {
    const { helpers } = await setup();
    const src = await loadWith(helpers, { credHelpers: { 'testtoken.example.com': 'test' } });
    expect(await src.get('testtoken.example.com')).toMatchObject({ kind: 'identityToken', token: 'deadbeefcafe' });
  });
});

// -------------------------------------------------------------------------------------------
// containers/image and oras-go helper fixtures (SOURCES.md §1e, §7)

describe.skipIf(!posix || !haveCI)('containers/image testdata/config.json (credHelpers)', () => {
  it('registry-no-creds.com: the helper has nothing -> no credentials', async () => {
    const helpers = await new HelperDir().add('helper-registry', {});
    const src = await loadWith(helpers, CI_CONFIG);
    expect(await src.get('registry-no-creds.com')).toBeUndefined();
    expect(await src.get('other.example.com')).toBeUndefined();
    expect(await helpers.calls()).toEqual(['helper-registry get registry-no-creds.com']);
  });

  it('the helper binary is missing -> CredentialsError with a hint', async () => {
    const src = await loadWith(new HelperDir(), CI_CONFIG);
    const err = await rejection(src.get('registry-no-creds.com'));
    expect(err.message).toContain('docker-credential-helper-registry');
    expect(err.message).toContain('not found');
    expect(err.hint).toContain('install docker-credential-helper-registry');
    expect(err.hint).toContain(`credHelpers["registry-no-creds.com"] in ${CI_CONFIG}`);
  });
});

describe.skipIf(!posix || !haveOras)('oras-go credHelpers_config.json / credsStore_config.json', () => {
  const reply = (u: string, p: string): HelperReply => ({ Username: u, Secret: p });

  it('credHelpers beat auths; an empty helper name falls back to auths', async () => {
    const helpers = new HelperDir();
    await helpers.add('registry1-helper', { get: { 'registry1.example.com': reply('h1', 'p1') } });
    await helpers.add('registry2-helper', { get: { 'registry2.example.com': reply('h2', 'p2') } });
    const src = await loadWith(helpers, join(ORAS_DIR, 'credHelpers_config.json'));
    expect(await src.get('registry1.example.com')).toMatchObject({ kind: 'basic', username: 'h1', password: 'p1' });
    expect(await src.get('registry2.example.com')).toMatchObject({ kind: 'basic', username: 'h2', password: 'p2' });
    expect(await src.get('registry3.example.com')).toMatchObject({ kind: 'basic', username: 'foo', password: 'bar' });
    expect(await helpers.calls()).toEqual(['registry1-helper get registry1.example.com', 'registry2-helper get registry2.example.com']);
  });

  it('a helper with nothing for the host falls back to the auths entry', async () => {
    const helpers = new HelperDir();
    await helpers.add('registry1-helper', {});
    const src = await loadWith(helpers, join(ORAS_DIR, 'credHelpers_config.json'));
    expect(await src.get('registry1.example.com')).toMatchObject({ kind: 'basic', username: 'username', password: 'password' });
  });

  it('credHelpers beat credsStore', async () => {
    const helpers = new HelperDir();
    await helpers.add('test-helper', { get: { 'test.example.com': reply('specific', 'x') } });
    await helpers.add('teststore', {
      get: { 'test.example.com': reply('store', 'y'), 'other.example.com': reply('store', 'z') },
    });
    const src = await loadWith(helpers, join(ORAS_DIR, 'credsStore_config.json'));
    expect(await src.get('test.example.com')).toMatchObject({ username: 'specific', password: 'x' });
    expect(await src.get('other.example.com')).toMatchObject({ username: 'store', password: 'z' });
    expect(await helpers.calls()).toEqual(['test-helper get test.example.com', 'teststore get other.example.com']);
  });
});

// -------------------------------------------------------------------------------------------
// Our own helper cases

describe.skipIf(!posix)('credential helpers: protocol and failures', () => {
  async function single(spec: FakeHelper, opts: { helperTimeoutMs?: number } = {}) {
    const helpers = await new HelperDir().add('fake', spec);
    const src = await loadWith(helpers, { credHelpers: { 'r.example.com': 'fake' } }, opts);
    return { helpers, src };
  }

  it('writes the server URL to stdin without a newline', async () => {
    const { helpers, src } = await single({ get: { 'r.example.com': { Username: 'u', Secret: 'p' } } });
    expect(await src.get('r.example.com')).toMatchObject({ kind: 'basic', username: 'u', password: 'p' });
    expect(await helpers.calls()).toEqual(['fake get r.example.com']);
  });

  it('runs the helper with the given environment', async () => {
    const helpers = await new HelperDir().add('fake', {
      body: `printf '{"Username":"%s","Secret":"%s"}' "$FAKE_USER" "$FAKE_SECRET"`,
    });
    const path = join(createTempDir('config'), 'config.json');
    await writeFile(path, JSON.stringify({ credsStore: 'fake' }));
    const src = await loadDockerConfig({
      path,
      env: { PATH: '/usr/bin:/bin', FAKE_USER: 'envuser', FAKE_SECRET: 'envsecret' },
      helperDir: helpers.dir,
    });
    expect(await src.get('r.example.com')).toMatchObject({ username: 'envuser', password: 'envsecret' });
  });

  it('shares one helper process between concurrent lookups', async () => {
    const { helpers, src } = await single({ get: { 'r.example.com': { Username: 'u', Secret: 'p' } } });
    const results = await Promise.all(Array.from({ length: 5 }, () => src.get('r.example.com')));
    for (const r of results) expect(r).toMatchObject({ username: 'u', password: 'p' });
    expect(await helpers.calls()).toHaveLength(1);
  });

  it('a helper that does not read stdin is fine', async () => {
    const { src } = await single({ ignoreStdin: true, body: `printf '{"Username":"u","Secret":"p"}'` });
    expect(await src.get('r.example.com')).toMatchObject({ username: 'u', password: 'p' });
  });

  it('exit 0 with an empty Secret means no credentials', async () => {
    const { src } = await single({ body: `printf '{"ServerURL":"","Username":"","Secret":""}'` });
    expect(await src.get('r.example.com')).toBeUndefined();
  });

  it('"credentials not found" on stderr counts as not found too', async () => {
    const { src } = await single({ body: `echo 'credentials not found in native keychain' >&2; exit 1` });
    expect(await src.get('r.example.com')).toBeUndefined();
  });

  it('a failure names the helper, exit status and message', async () => {
    const { src } = await single({ body: `echo 'keychain locked' >&2; exit 3` });
    const err = await rejection(src.get('r.example.com'));
    expect(err.code).toBe('CREDENTIALS');
    expect(err.message).toContain('docker-credential-fake');
    expect(err.message).toContain('credHelpers["r.example.com"]');
    expect(err.message).toContain('get for r.example.com failed: exit status 3: keychain locked');
  });

  it('a non-zero exit without "not found" is an error, not anonymous access', async () => {
    const { src } = await single({ body: 'exit 1' });
    const err = await rejection(src.get('r.example.com'));
    expect(err.message).toContain('exit status 1');
  });

  it('never quotes a failing reply that carries the secret', async () => {
    const { src } = await single({
      body: `printf '{"Username":"u","Secret":"${SECRET}"}\\n'; echo "${SECRET}" >&2; exit 1`,
    });
    const err = await rejection(src.get('r.example.com'));
    expect(err.message).toContain('(output withheld)');
    expect(err.message).not.toContain(SECRET);
  });

  it('a failing reply that names the secret field on an error line is withheld too', async () => {
    const { src } = await single({ body: `echo 'error: {"Username":"u","Secret":"${SECRET}"}'; exit 3` });
    const err = await rejection(src.get('r.example.com'));
    expect(err.message).toContain('(output withheld)');
    expect(err.message).not.toContain(SECRET);
  });

  it('a credsStore whose list fails does not break the lookup: auths, then anonymous', async () => {
    const helpers = await new HelperDir().add('nolist', {
      body: 'if [ "$1" = list ]; then echo "list is unimplemented" >&2; exit 1; fi; echo "credentials not found in native keychain"; exit 1',
    });
    const src = await loadWith(helpers, { credsStore: 'nolist', auths: { 'ghcr.io': { auth: Buffer.from('u:p').toString('base64') } } });
    expect(await src.get('ghcr.io')).toMatchObject({ kind: 'basic', username: 'u', password: 'p' });
    expect(await src.get('quay.io')).toBeUndefined();
  });

  it('malformed output is reported without its content', async () => {
    const { src } = await single({ body: `printf '{"Username":"u","Secret":"${SECRET}"'` });
    const err = await rejection(src.get('r.example.com'));
    expect(err.message).toContain('malformed output');
    expect(err.message).not.toContain(SECRET);
  });

  it('wrong field types are malformed output', async () => {
    const { src } = await single({ body: `printf '{"Username":1,"Secret":"${SECRET}"}'` });
    const err = await rejection(src.get('r.example.com'));
    expect(err.message).not.toContain(SECRET);
  });

  it('times out, kills the helper and says so', async () => {
    const { src } = await single({ body: 'exec sleep 30' }, { helperTimeoutMs: 300 });
    const started = Date.now();
    const err = await rejection(src.get('r.example.com'));
    expect(Date.now() - started).toBeLessThan(5000);
    expect(err.message).toContain('timed out after 300 ms');
    expect(err.retryable).toBe(true);
  });

  it('does not wait for a grandchild that keeps the pipes open', async () => {
    // The orphaned background sleep holds stdout for 3 s after the helper is killed.
    const { src } = await single({ body: 'sleep 3 & exec sleep 3' }, { helperTimeoutMs: 300 });
    const started = Date.now();
    await rejection(src.get('r.example.com'));
    expect(Date.now() - started).toBeLessThan(2500);
  });

  it('caps the output size', async () => {
    const helpers = await new HelperDir().add('chatty', {
      body: 'i=0; while [ $i -lt 200 ]; do printf "%0100d\\n" 0; i=$((i+1)); done',
    });
    const helper = new CredentialHelper('chatty', { searchPath: helpers.dir, maxOutputBytes: 4096 });
    const err = await rejection(helper.get('r.example.com'));
    expect(err.message).toContain('more than 4096 bytes');
  });

  it('a file that is not executable is not a helper', async () => {
    const helpers = new HelperDir();
    await writeFile(join(helpers.dir, 'docker-credential-noexec'), '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    const helper = new CredentialHelper('noexec', { searchPath: helpers.dir });
    const err = await rejection(helper.get('r.example.com'));
    expect(err.message).toContain('not found in PATH');
  });

  it('ignores relative PATH entries', async () => {
    const helper = new CredentialHelper('fake', { searchPath: `.${':'}relative/dir` });
    const err = await rejection(helper.get('r.example.com'));
    expect(err.message).toContain('not found in PATH');
  });

  it('refuses helper names that are paths', async () => {
    const helpers = new HelperDir();
    const src = await loadWith(helpers, { credsStore: '../../bin/sh' });
    const err = await rejection(src.get('r.example.com'));
    expect(err.message).toContain('invalid credential helper name');
    expect(await helpers.calls()).toEqual([]);
  });

  it('list: parses server URL -> username, rejects other shapes', async () => {
    const helpers = new HelperDir();
    await helpers.add('good', { list: { 'https://a.example.com/': 'alice', 'b.example.com': '<token>' } });
    await helpers.add('bad', { body: `printf '["${SECRET}"]'` });
    const good = new CredentialHelper('good', { searchPath: helpers.dir });
    expect(await good.list()).toEqual(
      new Map([
        ['https://a.example.com/', 'alice'],
        ['b.example.com', '<token>'],
      ]),
    );
    const err = await rejection(new CredentialHelper('bad', { searchPath: helpers.dir }).list());
    expect(err.message).toContain('malformed output');
    expect(err.message).not.toContain(SECRET);
  });

  it('origin names the helper and server, not the secret', async () => {
    const { src } = await single({ get: { 'r.example.com': { Username: 'u', Secret: SECRET } } });
    const cred = await src.get('r.example.com');
    expect(cred?.origin).toBe('docker-credential-fake (r.example.com)');
  });
});
