import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CONTAINERD_ADDRESS,
  blobEntryName,
  buildImportIndex,
  checkArgv,
  clientDefaultAddress,
  describeAddress,
  hostPlatform,
  importArgv,
  listArgv,
  parseImageCheck,
  parseImageList,
  resolveTarget,
  splitCommandLine,
  summariseCtrStderr,
  unpackBlocker,
  versionArgv,
} from '../../../../src/transports/containerd/ctr.js';
import { MediaType } from '../../../../src/oci/mediatypes.js';

const D1 = `sha256:${'a'.repeat(64)}` as const;
const D2 = `sha256:${'b'.repeat(64)}` as const;

describe('resolveTarget', () => {
  it('defaults: ctr, CONTAINERD_ADDRESS else none (the client default), namespace k8s.io', () => {
    expect(resolveTarget({}, {})).toEqual({ ctr: ['ctr'], address: undefined, namespace: 'k8s.io' });
    expect(resolveTarget({}, { CONTAINERD_ADDRESS: '/run/k3s/containerd/containerd.sock' }).address).toBe(
      '/run/k3s/containerd/containerd.sock',
    );
    expect(resolveTarget({}, { CONTAINERD_ADDRESS: '' }).address).toBeUndefined();
  });

  it('the client default, where known, names the address in messages', () => {
    expect(clientDefaultAddress(['ctr'])).toBe(DEFAULT_CONTAINERD_ADDRESS);
    expect(clientDefaultAddress(['/usr/bin/ctr'])).toBe(DEFAULT_CONTAINERD_ADDRESS);
    expect(clientDefaultAddress(['k3s', 'ctr'])).toBe('/run/k3s/containerd/containerd.sock');
    expect(clientDefaultAddress(['nerdctl'])).toBeUndefined();
    expect(describeAddress({ ctr: ['k3s', 'ctr'], address: undefined, namespace: 'x' })).toBe(
      '/run/k3s/containerd/containerd.sock (the default of k3s ctr)',
    );
    expect(describeAddress({ ctr: ['my-ctr'], address: undefined, namespace: 'x' })).toBe('the default address of my-ctr');
    expect(describeAddress({ ctr: ['ctr'], address: '/x.sock', namespace: 'x' })).toBe('/x.sock');
  });

  it('options win over the environment', () => {
    const t = resolveTarget({ ctr: ['k3s', 'ctr'], address: '/x.sock', namespace: 'test' }, { CONTAINERD_ADDRESS: '/y.sock' });
    expect(t).toEqual({ ctr: ['k3s', 'ctr'], address: '/x.sock', namespace: 'test' });
    expect(resolveTarget({ ctr: [] }, {}).ctr).toEqual(['ctr']);
  });
});

describe('ctr argv', () => {
  const t = { ctr: ['k3s', 'ctr'], address: '/run/k3s/containerd/containerd.sock', namespace: 'k8s.io' };

  it('version probe has a connect timeout; ls is namespaced', () => {
    expect(versionArgv(t)).toEqual(['k3s', 'ctr', '--address', t.address, '--connect-timeout', '5s', 'version']);
    expect(listArgv(t)).toEqual(['k3s', 'ctr', '--address', t.address, '-n', 'k8s.io', 'images', 'ls']);
  });

  it('no address: no --address at all, so `k3s ctr` uses its own socket', () => {
    const k3s = { ctr: ['k3s', 'ctr'], address: undefined, namespace: 'k8s.io' };
    expect(versionArgv(k3s)).toEqual(['k3s', 'ctr', '--connect-timeout', '5s', 'version']);
    expect(listArgv(k3s)).toEqual(['k3s', 'ctr', '-n', 'k8s.io', 'images', 'ls']);
    expect(importArgv(k3s, { unpack: false })).toEqual([
      'k3s',
      'ctr',
      '-n',
      'k8s.io',
      'images',
      'import',
      '--all-platforms',
      '--no-unpack',
      '-',
    ]);
    expect(checkArgv(k3s, ['a'])).toEqual(['k3s', 'ctr', '-n', 'k8s.io', 'images', 'check', 'name=="a"']);
  });

  it('ls and check ask for the given names only (filters are OR-ed)', () => {
    expect(listArgv(t, ['docker.io/library/a:1', `docker.io/library/b@${D1}`])).toEqual([
      'k3s',
      'ctr',
      '--address',
      t.address,
      '-n',
      'k8s.io',
      'images',
      'ls',
      'name=="docker.io/library/a:1"',
      `name=="docker.io/library/b@${D1}"`,
    ]);
    expect(checkArgv(t, ['x:1'], 'native')).toEqual([
      'k3s',
      'ctr',
      '--address',
      t.address,
      '-n',
      'k8s.io',
      'images',
      'check',
      '--snapshotter',
      'native',
      'name=="x:1"',
    ]);
  });

  it.each([
    [{ unpack: true }, ['--all-platforms', '-']],
    [{ unpack: true, snapshotter: 'native' }, ['--all-platforms', '--snapshotter', 'native', '-']],
    [{ unpack: false, snapshotter: 'native' }, ['--all-platforms', '--no-unpack', '-']],
  ])('import %j', (flags, tail) => {
    expect(importArgv(t, flags)).toEqual(['k3s', 'ctr', '--address', t.address, '-n', 'k8s.io', 'images', 'import', ...tail]);
  });
});

describe('parseImageList', () => {
  it('reads name, type and digest; SIZE with a space does not matter', () => {
    const out = [
      'REF                               TYPE                                                      DIGEST                                                                  SIZE      PLATFORMS                            LABELS ',
      `docker.io/ferry-test/app:1.0      application/vnd.oci.image.manifest.v1+json                ${D1} 547.3 KiB linux/amd64                          -      `,
      `docker.io/ferry-test/multi@${D2}  application/vnd.oci.image.index.v1+json                   ${D2} 146.9 KiB linux/amd64,linux/arm/v7,linux/arm64 io.cri-containerd.image=managed`,
      '',
    ].join('\n');
    const rows = parseImageList(out);
    expect([...rows.keys()]).toEqual(['docker.io/ferry-test/app:1.0', `docker.io/ferry-test/multi@${D2}`]);
    expect(rows.get('docker.io/ferry-test/app:1.0')).toEqual({
      name: 'docker.io/ferry-test/app:1.0',
      mediaType: MediaType.OciManifest,
      digest: D1,
    });
  });

  it('an empty store prints only the header', () => {
    expect(parseImageList('REF TYPE DIGEST SIZE PLATFORMS LABELS \n').size).toBe(0);
    expect(parseImageList('').size).toBe(0);
  });

  it('ignores lines that are not rows', () => {
    expect(parseImageList('WARN[0000] something odd happened\nREF TYPE DIGEST\n').size).toBe(0);
  });
});

describe('parseImageCheck', () => {
  it('reads status (complete only when n/n) and UNPACKED, with spaces in STATUS and SIZE', () => {
    const out = [
      'REF                         TYPE                                       DIGEST      STATUS            SIZE            UNPACKED ',
      `docker.io/library/aaa:1     ${MediaType.OciManifest} ${D1} complete (2/2)    287.0 B/287.0 B true`,
      `docker.io/library/bbb:1     ${MediaType.OciManifest} ${D2} incomplete (1/2)  100.0 B/287.0 B false`,
      `docker.io/library/armonly:1 ${MediaType.OciIndex}    ${D2} unavailable (0/?) 0.0 B/?         false`,
      'ctr: unable to check unpack for docker.io/library/armonly:1',
    ].join('\n');
    const rows = parseImageCheck(out);
    expect(rows.get('docker.io/library/aaa:1')).toEqual({ name: 'docker.io/library/aaa:1', digest: D1, complete: true, unpacked: true });
    expect(rows.get('docker.io/library/bbb:1')).toMatchObject({ complete: false, unpacked: false });
    expect(rows.get('docker.io/library/armonly:1')).toMatchObject({ complete: false });
    expect(rows.size).toBe(3);
  });
});

describe('splitCommandLine (--ctr)', () => {
  it.each([
    ['ctr', ['ctr']],
    ['  k3s   ctr ', ['k3s', 'ctr']],
    ['"/opt/my bin/ctr"', ['/opt/my bin/ctr']],
    ["'/opt/my bin/ctr' --debug", ['/opt/my bin/ctr', '--debug']],
    ['/opt/my\\ bin/ctr', ['/opt/my bin/ctr']],
    ['"a\\"b" c\'d\'e', ['a"b', 'cde']],
    ['"a\\nb"', ['a\\nb']],
    ["''", ['']],
    ['', []],
  ])('%j', (input, argv) => {
    expect(splitCommandLine(input)).toEqual(argv);
  });

  it.each(['"k3s ctr', "k3s 'ctr", 'ctr\\'])('%j is an error', (input) => {
    expect(() => splitCommandLine(input)).toThrow(/unterminated|trailing backslash/);
  });
});

describe('summariseCtrStderr', () => {
  it('prefers the final ctr: line', () => {
    const stderr = 'time="..." level=info msg="unpacking"\nctr: mismatched image rootfs and manifest layers\n';
    expect(summariseCtrStderr(stderr)).toBe('ctr: mismatched image rootfs and manifest layers');
  });

  it('falls back to the last lines, capped', () => {
    expect(summariseCtrStderr('a\n\nb\nc\nd\n')).toBe('b / c / d');
    expect(summariseCtrStderr('x'.repeat(2000), 10)).toHaveLength(10);
    expect(summariseCtrStderr('')).toBe('');
  });
});

describe('buildImportIndex', () => {
  it('one entry per image, named for containerd and for OCI tools', () => {
    const doc = JSON.parse(
      buildImportIndex([
        { name: 'docker.io/ferry-test/base:1', root: { digest: D1, mediaType: MediaType.OciManifest, size: 403 } },
        { name: `docker.io/ferry-test/multi@${D2}`, root: { digest: D2, mediaType: MediaType.OciIndex, size: 706 } },
      ]).toString('utf8'),
    ) as unknown;
    expect(doc).toEqual({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          digest: D1,
          size: 403,
          annotations: {
            'io.containerd.image.name': 'docker.io/ferry-test/base:1',
            'org.opencontainers.image.ref.name': 'docker.io/ferry-test/base:1',
          },
        },
        {
          mediaType: MediaType.OciIndex,
          digest: D2,
          size: 706,
          annotations: {
            'io.containerd.image.name': `docker.io/ferry-test/multi@${D2}`,
            'org.opencontainers.image.ref.name': `docker.io/ferry-test/multi@${D2}`,
          },
        },
      ],
    });
  });

  it('blob paths', () => {
    expect(blobEntryName(D1)).toBe(`blobs/sha256/${'a'.repeat(64)}`);
  });
});

describe('unpackBlocker', () => {
  it('maps Node arches to containerd platforms', () => {
    expect(hostPlatform('x64')).toBe('linux/amd64');
    expect(hostPlatform('arm64')).toBe('linux/arm64');
    expect(hostPlatform('arm')).toBe('linux/arm');
  });

  const index = (platforms: string[]) => ({ root: { mediaType: MediaType.OciIndex }, platforms });
  it.each([
    ['an index with the host platform', index(['linux/amd64', 'linux/arm64']), 'linux/amd64', false],
    ['an index with a variant of the host arch', index(['linux/arm/v7']), 'linux/arm', false],
    ['an index without the host platform', index(['linux/arm64']), 'linux/amd64', true],
    [
      'a Docker list without the host platform',
      { root: { mediaType: MediaType.DockerManifestList }, platforms: ['linux/s390x'] },
      'linux/amd64',
      true,
    ],
    [
      'an image of any platform',
      { root: { mediaType: MediaType.OciManifest }, platforms: [], configMediaType: MediaType.OciConfig },
      'linux/amd64',
      false,
    ],
    [
      'a Docker image',
      { root: { mediaType: MediaType.DockerManifest }, platforms: [], configMediaType: MediaType.DockerConfig },
      'linux/amd64',
      false,
    ],
    [
      'an artifact',
      { root: { mediaType: MediaType.OciManifest }, platforms: [], configMediaType: 'application/vnd.example.config.v1+json' },
      'linux/amd64',
      true,
    ],
  ])('%s', (_what, img, host, blocked) => {
    expect(unpackBlocker(img, host) !== undefined).toBe(blocked);
  });
});
