import { describe, expect, it } from 'vitest';
import {
  DEFAULT_CONTAINERD_ADDRESS,
  blobEntryName,
  buildImportIndex,
  hostPlatform,
  importArgv,
  listArgv,
  parseImageList,
  resolveTarget,
  summariseCtrStderr,
  unpackBlocker,
  versionArgv,
} from '../../../src/load/containerd-ctr.js';
import { MediaType } from '../../../src/oci/mediatypes.js';

const D1 = `sha256:${'a'.repeat(64)}` as const;
const D2 = `sha256:${'b'.repeat(64)}` as const;

describe('resolveTarget', () => {
  it('defaults: ctr, CONTAINERD_ADDRESS else the standard socket, namespace k8s.io', () => {
    expect(resolveTarget({}, {})).toEqual({ ctr: ['ctr'], address: DEFAULT_CONTAINERD_ADDRESS, namespace: 'k8s.io' });
    expect(resolveTarget({}, { CONTAINERD_ADDRESS: '/run/k3s/containerd/containerd.sock' }).address).toBe('/run/k3s/containerd/containerd.sock');
    expect(resolveTarget({}, { CONTAINERD_ADDRESS: '' }).address).toBe(DEFAULT_CONTAINERD_ADDRESS);
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
    expect(rows.get('docker.io/ferry-test/app:1.0')).toEqual({ name: 'docker.io/ferry-test/app:1.0', mediaType: MediaType.OciManifest, digest: D1 });
  });

  it('an empty store prints only the header', () => {
    expect(parseImageList('REF TYPE DIGEST SIZE PLATFORMS LABELS \n').size).toBe(0);
    expect(parseImageList('').size).toBe(0);
  });

  it('ignores lines that are not rows', () => {
    expect(parseImageList('WARN[0000] something odd happened\nREF TYPE DIGEST\n').size).toBe(0);
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
          annotations: { 'io.containerd.image.name': 'docker.io/ferry-test/base:1', 'org.opencontainers.image.ref.name': 'docker.io/ferry-test/base:1' },
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
    ['a Docker list without the host platform', { root: { mediaType: MediaType.DockerManifestList }, platforms: ['linux/s390x'] }, 'linux/amd64', true],
    ['an image of any platform', { root: { mediaType: MediaType.OciManifest }, platforms: [], configMediaType: MediaType.OciConfig }, 'linux/amd64', false],
    ['a Docker image', { root: { mediaType: MediaType.DockerManifest }, platforms: [], configMediaType: MediaType.DockerConfig }, 'linux/amd64', false],
    ['an artifact', { root: { mediaType: MediaType.OciManifest }, platforms: [], configMediaType: 'application/vnd.example.config.v1+json' }, 'linux/amd64', true],
  ])('%s', (_what, img, host, blocked) => {
    expect(unpackBlocker(img, host) !== undefined).toBe(blocked);
  });
});
