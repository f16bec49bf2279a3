// Golden files are stored as *.golden so that no formatter rewrites the bytes under test.
// The pure generators of `ferry mirror-config`: golden files for one full case per format, and
// every variant (prefix, --scoped, --insecure, --ca-file, http://) parsed back with a TOML or
// YAML parser and checked field by field. The k3s and OpenShift outputs are checked against
// strict schemas written from their documentation:
// - k3s/RKE2 registries.yaml, https://docs.k3s.io/installation/private-registry ("Mirrors":
//   `mirrors.<registry>.endpoint` (list of URLs) and `rewrite` (regex → replacement);
//   "Configs": `configs.<registry>.auth` {username, password, auth, identitytoken} and
//   `configs.<registry>.tls` {cert_file, key_file, ca_file, insecure_skip_verify}).
// - OpenShift config.openshift.io/v1 ImageDigestMirrorSet / ImageTagMirrorSet,
//   https://docs.okd.io/latest/rest_api/config_apis/imagedigestmirrorset-config-openshift-io-v1.html
//   (and imagetagmirrorset-…): `spec.imageDigestMirrors[]` / `spec.imageTagMirrors[]`, each
//   {source (required), mirrors ([]string), mirrorSourcePolicy (AllowContactingSource |
//   NeverContactSource)}; mirrors and source are host[:port][/namespace…] without a scheme.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { containerdConfig } from '../../../src/mirrorconfig/containerd.js';
import { dockerConfig } from '../../../src/mirrorconfig/docker.js';
import { k3sConfig } from '../../../src/mirrorconfig/k3s.js';
import { checkNames, type Generated, type MirrorInput, parseMirror, parseUpstream, tomlString } from '../../../src/mirrorconfig/model.js';
import { openshiftConfig } from '../../../src/mirrorconfig/openshift.js';
import { registriesConf } from '../../../src/mirrorconfig/registries-conf.js';
import { FerryError } from '../../../src/util/errors.js';

const IMAGES = [
  { upstream: 'docker.io', path: 'library/nginx', suffix: ':1.27' },
  { upstream: 'ghcr.io', path: 'org/app', suffix: ':2.1' },
  { upstream: 'reg.example:5000', path: 'team/tool', suffix: `@sha256:${'a'.repeat(64)}` },
];
const UPSTREAMS = ['docker.io', 'ghcr.io', 'reg.example:5000'];

function input(registry: string, opts: Parameters<typeof parseMirror>[1] = {}): MirrorInput {
  return { mirror: parseMirror(registry, opts), upstreams: UPSTREAMS, images: IMAGES };
}

function file(g: Generated, path: string): string {
  const f = g.files.find((x) => x.path === path);
  if (!f) throw new Error(`no ${path} among ${g.files.map((x) => x.path).join(', ')}`);
  return f.text;
}

function usage(fn: () => unknown): FerryError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(FerryError);
    expect((err as FerryError).exitCode).toBe(2);
    return err as FerryError;
  }
  throw new Error('expected a usage error');
}

const ALL = [containerdConfig, registriesConf, k3sConfig, openshiftConfig];

describe('golden files', () => {
  const cases: Array<[string, (i: MirrorInput) => Generated, MirrorInput]> = [
    ['containerd', containerdConfig, input('registry.local:5000/mirror', { caFile: '/etc/ferry/ca.pem' })],
    ['registries-conf', registriesConf, input('http://10.0.0.5:5000/mirror', { scoped: true })],
    ['k3s', k3sConfig, input('registry.local/mirror', { scoped: true, insecure: true })],
    ['docker', dockerConfig, input('http://registry.local:5000')],
    ['openshift', openshiftConfig, input('registry.local:5000/mirror')],
  ];
  it.each(cases)('%s', async (name, gen, inp) => {
    const g = gen(inp);
    for (const f of g.files) await expect(f.text).toMatchFileSnapshot(`./golden/${name}/${f.path}.golden`);
    // Same input, same bytes.
    expect(gen(inp)).toEqual(g);
  });
});

describe('parseMirror', () => {
  it.each([
    ['registry.local:5000/mirror', { scheme: 'https', host: 'registry.local:5000', prefix: 'mirror' }],
    ['http://10.0.0.5:5000', { scheme: 'http', host: '10.0.0.5:5000', prefix: '' }],
    ['HTTPS://reg.example/a/b/', { scheme: 'https', host: 'reg.example', prefix: 'a/b' }],
    ['localhost', { scheme: 'https', host: 'localhost', prefix: '' }],
  ])('%s', (s, want) => {
    expect(parseMirror(s)).toMatchObject({ ...want, scoped: false, tls: { kind: 'verify' } });
  });
  it.each([
    '',
    'ftp://reg.example',
    'http://https://reg.example',
    'reg.example/UPPER',
    'reg.example/app:1',
    'reg.example/app@sha256:00',
    'reg_example',
    'reg.example:port',
    'reg.example/a//b',
  ])('refuses %j', (s) => {
    expect(usage(() => parseMirror(s)).message).toContain('--registry');
  });
  it('--insecure with --ca-file, --ca-file over http, a ca-file with a newline', () => {
    expect(usage(() => parseMirror('r.example', { insecure: true, caFile: '/ca' })).message).toContain('cannot be used together');
    expect(usage(() => parseMirror('http://r.example', { caFile: '/ca' })).message).toContain('HTTPS');
    expect(usage(() => parseMirror('r.example', { caFile: '/ca\n[host."x"]' })).message).toContain('--ca-file');
    expect(usage(() => parseMirror('r.example', { caFile: '/ca\ud800' })).message).toContain('--ca-file');
  });
});

describe('parseUpstream', () => {
  it.each([
    ['docker.io', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['GHCR.IO', 'ghcr.io'],
    ['localhost:5000', 'localhost:5000'],
    ['10.1.2.3:443', '10.1.2.3:443'],
  ])('%s → %s', (s, want) => expect(parseUpstream(s)).toBe(want));
  it.each(['nginx', 'ghcr.io/org', '..', '../etc', 'a..b', '', 'reg.example:', '-bad.example'])('refuses %j', (s) => {
    expect(usage(() => parseUpstream(s)).message).toContain('--for');
  });
});

describe('containerd hosts.toml', () => {
  type Hosts = {
    server: string;
    host: Record<string, { capabilities: string[]; override_path?: boolean; skip_verify?: boolean; ca?: string }>;
  };
  const hosts = (g: Generated, upstream: string): Hosts => parseToml(file(g, `certs.d/${upstream}/hosts.toml`)) as unknown as Hosts;

  it('no prefix, unscoped: the mirror host itself, no path override', () => {
    const g = containerdConfig(input('reg.local:5000'));
    expect(hosts(g, 'docker.io')).toEqual({
      server: 'https://registry-1.docker.io',
      host: { 'https://reg.local:5000': { capabilities: ['pull', 'resolve'] } },
    });
    expect(hosts(g, 'reg.example:5000').server).toBe('https://reg.example:5000');
    expect(g.files.map((f) => f.path)).toEqual([
      'certs.d/docker.io/hosts.toml',
      'certs.d/ghcr.io/hosts.toml',
      'certs.d/reg.example:5000/hosts.toml',
      'README.md',
    ]);
  });
  it('prefix: /v2/PREFIX with override_path; scoped: the upstream host after it, port as _', () => {
    expect(hosts(containerdConfig(input('reg.local/mirror')), 'ghcr.io').host).toEqual({
      'https://reg.local/v2/mirror': { capabilities: ['pull', 'resolve'], override_path: true },
    });
    expect(hosts(containerdConfig(input('http://reg.local', { scoped: true })), 'reg.example:5000').host).toEqual({
      'http://reg.local/v2/reg.example_5000': { capabilities: ['pull', 'resolve'], override_path: true },
    });
  });
  it('--insecure is skip_verify over https only; --ca-file is ca', () => {
    expect(hosts(containerdConfig(input('reg.local', { insecure: true })), 'docker.io').host['https://reg.local']?.skip_verify).toBe(true);
    expect(
      hosts(containerdConfig(input('http://reg.local', { insecure: true })), 'docker.io').host['http://reg.local']?.skip_verify,
    ).toBeUndefined();
    expect(hosts(containerdConfig(input('reg.local', { caFile: '/etc/a "b"\\c.pem' })), 'docker.io').host['https://reg.local']?.ca).toBe(
      '/etc/a "b"\\c.pem',
    );
  });
  it('the README names config_path for containerd 1.6/1.7 and 2.x', () => {
    const readme = file(containerdConfig(input('reg.local')), 'README.md');
    expect(readme).toContain('[plugins."io.containerd.grpc.v1.cri".registry]');
    expect(readme).toContain('[plugins."io.containerd.cri.v1.images".registry]');
    expect(readme).toContain('config_path = "/etc/containerd/certs.d"');
  });
});

describe('registries.conf', () => {
  type Conf = { registry: Array<{ prefix: string; location: string; mirror: Array<Record<string, unknown>> }> };
  const conf = (g: Generated): Conf => parseToml(file(g, 'registries.conf')) as unknown as Conf;

  it('one [[registry]] per upstream, the mirror location under the prefix, pull-from-mirror all', () => {
    expect(conf(registriesConf(input('reg.local:5000/mirror')))).toEqual({
      registry: UPSTREAMS.map((u) => ({
        prefix: u,
        location: u,
        mirror: [{ location: 'reg.local:5000/mirror', 'pull-from-mirror': 'all' }],
      })),
    });
  });
  it('scoped, http (insecure = true), --insecure', () => {
    const c = conf(registriesConf(input('http://reg.local/m', { scoped: true })));
    expect(c.registry.map((r) => r.mirror[0])).toEqual([
      { location: 'reg.local/m/docker.io', insecure: true, 'pull-from-mirror': 'all' },
      { location: 'reg.local/m/ghcr.io', insecure: true, 'pull-from-mirror': 'all' },
      { location: 'reg.local/m/reg.example_5000', insecure: true, 'pull-from-mirror': 'all' },
    ]);
    expect(conf(registriesConf(input('reg.local', { insecure: true }))).registry[0]?.mirror[0]?.insecure).toBe(true);
  });
  it('a CA is named in a comment (registries.conf has no field for it)', () => {
    const text = file(registriesConf(input('reg.local', { caFile: '/etc/ca.pem' })), 'registries.conf');
    expect(text).toContain('/etc/containers/certs.d/reg.local/ca.crt');
    expect(conf(registriesConf(input('reg.local', { caFile: '/etc/ca.pem' }))).registry[0]?.mirror[0]?.insecure).toBeUndefined();
  });
});

// docs.k3s.io "Private Registry Configuration": the documented fields, nothing else.
const K3sSchema = z.strictObject({
  mirrors: z.record(
    z.string(),
    z.strictObject({ endpoint: z.array(z.string().url()).min(1), rewrite: z.record(z.string(), z.string()).optional() }),
  ),
  configs: z
    .record(
      z.string(),
      z.strictObject({
        auth: z
          .strictObject({
            username: z.string().optional(),
            password: z.string().optional(),
            auth: z.string().optional(),
            identitytoken: z.string().optional(),
          })
          .optional(),
        tls: z
          .strictObject({
            cert_file: z.string().optional(),
            key_file: z.string().optional(),
            ca_file: z.string().optional(),
            insecure_skip_verify: z.boolean().optional(),
          })
          .optional(),
      }),
    )
    .optional(),
});

describe('k3s registries.yaml', () => {
  const doc = (g: Generated) => K3sSchema.parse(parseYaml(file(g, 'registries.yaml')));

  it('no prefix: endpoint only, no rewrite, no configs', () => {
    expect(doc(k3sConfig(input('reg.local:5000')))).toEqual({
      mirrors: Object.fromEntries(UPSTREAMS.map((u) => [u, { endpoint: ['https://reg.local:5000'] }])),
    });
  });
  it('prefix and scoped: a rewrite of the whole repository path; a rewritten name is the mirror name', () => {
    const d = doc(k3sConfig(input('http://reg.local/m', { scoped: true })));
    expect(d.mirrors['reg.example:5000']).toEqual({ endpoint: ['http://reg.local'], rewrite: { '^(.*)$': 'm/reg.example_5000/$1' } });
    const [[re, to]] = Object.entries(d.mirrors['docker.io']!.rewrite!) as [[string, string]];
    // k3s applies the rewrite (Go regexp, $1) to the repository path.
    expect('library/nginx'.replace(new RegExp(re), to)).toBe('m/docker.io/library/nginx');
    expect(d.configs).toBeUndefined();
  });
  it('TLS under configs.<mirror host>; never any auth', () => {
    expect(doc(k3sConfig(input('reg.local:5000', { caFile: '/etc/ca.pem' }))).configs).toEqual({
      'reg.local:5000': { tls: { ca_file: '/etc/ca.pem' } },
    });
    expect(doc(k3sConfig(input('reg.local', { insecure: true }))).configs).toEqual({
      'reg.local': { tls: { insecure_skip_verify: true } },
    });
    for (const g of [k3sConfig(input('reg.local', { insecure: true })), k3sConfig(input('reg.local'))]) {
      expect(JSON.stringify(doc(g))).not.toContain('auth');
    }
  });
});

// The documented fields of the two CRDs (docs.okd.io config_apis), nothing else.
const MirrorEntry = z.strictObject({
  source: z.string().regex(/^[a-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._/-]+)?$/),
  mirrors: z.array(z.string().regex(/^[a-z0-9.-]+(?::\d+)?(?:\/[a-z0-9._/-]+)?$/)).min(1),
  mirrorSourcePolicy: z.enum(['AllowContactingSource', 'NeverContactSource']).optional(),
});
const Idms = z.strictObject({
  apiVersion: z.literal('config.openshift.io/v1'),
  kind: z.literal('ImageDigestMirrorSet'),
  metadata: z.strictObject({ name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/) }),
  spec: z.strictObject({ imageDigestMirrors: z.array(MirrorEntry) }),
});
const Itms = Idms.extend({ kind: z.literal('ImageTagMirrorSet'), spec: z.strictObject({ imageTagMirrors: z.array(MirrorEntry) }) });

describe('OpenShift ImageDigestMirrorSet and ImageTagMirrorSet', () => {
  it('one entry per upstream, same mirrors in both, valid against the CRD fields', () => {
    const g = openshiftConfig(input('reg.local:5000/mirror', { scoped: true }));
    const idms = Idms.parse(parseYaml(file(g, 'imagedigestmirrorset.yaml')));
    const itms = Itms.parse(parseYaml(file(g, 'imagetagmirrorset.yaml')));
    const want = [
      { source: 'docker.io', mirrors: ['reg.local:5000/mirror/docker.io'] },
      { source: 'ghcr.io', mirrors: ['reg.local:5000/mirror/ghcr.io'] },
      { source: 'reg.example:5000', mirrors: ['reg.local:5000/mirror/reg.example_5000'] },
    ];
    expect(idms.spec.imageDigestMirrors).toEqual(want);
    expect(itms.spec.imageTagMirrors).toEqual(want);
    expect(parseAllDocuments(file(g, 'imagedigestmirrorset.yaml'))).toHaveLength(1);
  });
  it('http or --insecure: insecureRegistries named in the header', () => {
    expect(file(openshiftConfig(input('http://reg.local')), 'imagetagmirrorset.yaml')).toContain('insecureRegistries');
    expect(file(openshiftConfig(input('reg.local')), 'imagetagmirrorset.yaml')).not.toContain('insecureRegistries');
  });
});

describe('Docker daemon.json', () => {
  it('registry-mirrors for Docker Hub; http adds insecure-registries; the other images listed by mirror name', () => {
    const g = dockerConfig(input('http://reg.local:5000'));
    expect(JSON.parse(file(g, 'daemon.json'))).toEqual({
      'registry-mirrors': ['http://reg.local:5000'],
      'insecure-registries': ['reg.local:5000'],
    });
    const readme = file(g, 'README.md');
    expect(readme).toContain('`ghcr.io/org/app:2.1` → `reg.local:5000/org/app:2.1`');
    expect(readme).toContain(
      `\`reg.example:5000/team/tool@sha256:${'a'.repeat(64)}\` → \`reg.local:5000/team/tool@sha256:${'a'.repeat(64)}\``,
    );
    expect(readme).not.toContain('`docker.io/library/nginx:1.27` →');
    expect(g.notes.join('\n')).toContain('ghcr.io, reg.example:5000');
    expect(JSON.parse(file(dockerConfig(input('reg.local')), 'daemon.json'))).toEqual({ 'registry-mirrors': ['https://reg.local'] });
  });
  it("the README's merge command (run with jq) keeps an existing daemon.json's mirrors and settings, ours first", () => {
    for (const registry of ['http://reg.local:5000', 'reg.local']) {
      const g = dockerConfig(input(registry));
      const readme = file(g, 'README.md');
      const command = readme.split('\n').find((l) => l.trim().startsWith('jq -s'));
      expect(command, readme).toBeDefined();
      const dir = mkdtempSync(path.join(tmpdir(), 'ferry-daemon-json-'));
      try {
        const existing = {
          'registry-mirrors': ['https://other.example', 'https://reg.local'],
          'insecure-registries': ['old:5000'],
          'log-driver': 'local',
        };
        writeFileSync(path.join(dir, 'etc.json'), JSON.stringify(existing));
        writeFileSync(path.join(dir, 'daemon.json'), file(g, 'daemon.json'));
        const script = command!
          .trim()
          .replaceAll('/etc/docker/daemon.json', path.join(dir, 'etc.json'))
          .replaceAll('/tmp/daemon.json', path.join(dir, 'tmp.json'));
        execFileSync('sh', ['-c', script], { cwd: dir });
        const merged = JSON.parse(readFileSync(path.join(dir, 'etc.json'), 'utf8')) as Record<string, unknown>;
        const ours = registry.startsWith('http://') ? 'http://reg.local:5000' : 'https://reg.local';
        expect(merged['log-driver']).toBe('local');
        expect(merged['registry-mirrors']).toEqual([
          ours,
          'https://other.example',
          ...(ours === 'https://reg.local' ? [] : ['https://reg.local']),
        ]);
        expect(merged['insecure-registries']).toEqual(registry.startsWith('http://') ? ['reg.local:5000', 'old:5000'] : ['old:5000']);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
  it('a prefix, --scoped, or no Docker Hub image: exit 2 with the reason, nothing generated', () => {
    expect(usage(() => dockerConfig(input('reg.local/mirror'))).message).toContain('registry-mirrors');
    expect(usage(() => dockerConfig(input('reg.local', { scoped: true }))).message).toContain('registry-mirrors');
    const noHub = { ...input('reg.local'), upstreams: ['ghcr.io'], images: [IMAGES[1]!] };
    expect(usage(() => dockerConfig(noHub)).message).toContain('only for Docker Hub');
  });
});

describe('names on the mirror', () => {
  it('two upstream repositories on one mirror repository are refused without --scoped, accepted with it', () => {
    const images = [
      { upstream: 'docker.io', path: 'org/app', suffix: ':1' },
      { upstream: 'ghcr.io', path: 'org/app', suffix: ':1' },
    ];
    const inp = { mirror: parseMirror('reg.local/m'), upstreams: ['docker.io', 'ghcr.io'], images };
    expect(usage(() => checkNames(inp)).message).toContain('--scoped');
    expect(() => checkNames({ ...inp, mirror: parseMirror('reg.local/m', { scoped: true }) })).not.toThrow();
  });
  it('an IPv6 upstream cannot be scoped', () => {
    const inp = { mirror: parseMirror('reg.local', { scoped: true }), upstreams: ['[::1]:5000'], images: [] };
    expect(usage(() => checkNames(inp)).message).toContain('[::1]:5000');
  });
});

describe('every format', () => {
  it('is deterministic and independent of nothing but its input; comments say how to install', () => {
    for (const gen of ALL) {
      const a = gen(input('reg.local/m', { scoped: true, insecure: true }));
      expect(gen(input('reg.local/m', { scoped: true, insecure: true }))).toEqual(a);
      for (const f of a.files) expect(f.text).toMatch(/Install/);
      for (const f of a.files) expect(f.text.endsWith('\n')).toBe(true);
    }
  });
  it('tomlString escapes what TOML needs', () => {
    expect(parseToml(`a = ${tomlString('x"\\\n\t\u0001\u007fé')}`)).toEqual({ a: 'x"\\\n\t\u0001\u007fé' });
  });
});
