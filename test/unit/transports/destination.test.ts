import { describe, expect, it } from 'vitest';
import { formatLoadDestination, parseLoadDestination } from '../../../src/transports/table.js';
import { registryTargets } from '../../../src/transports/registry/names.js';
import { rangeEnd } from '../../../src/transports/registry/upload.js';
import type { Digest } from '../../../src/oci/digest.js';

const D = `sha256:${'a'.repeat(64)}` as Digest;
const E = `sha256:${'b'.repeat(64)}` as Digest;

describe('parseLoadDestination', () => {
  it.each([
    ['oci:./store', { kind: 'oci', dir: './store' }],
    ['docker://localhost:5000', { kind: 'registry', host: 'localhost:5000', prefix: '' }],
    ['docker://registry.local:5000/mirror/team/', { kind: 'registry', host: 'registry.local:5000', prefix: 'mirror/team' }],
    ['docker://[::1]:5000/m', { kind: 'registry', host: '[::1]:5000', prefix: 'm' }],
    ['docker-daemon', { kind: 'docker-daemon', socket: undefined }],
    ['docker-daemon:/run/docker.sock', { kind: 'docker-daemon', socket: '/run/docker.sock' }],
    ['docker-daemon:unix:///run/docker.sock', { kind: 'docker-daemon', socket: '/run/docker.sock' }],
    ['containerd', { kind: 'containerd', address: undefined, namespace: 'k8s.io' }],
    ['containerd?namespace=default', { kind: 'containerd', address: undefined, namespace: 'default' }],
    [
      'containerd:/run/k3s/containerd/containerd.sock?namespace=k8s.io',
      { kind: 'containerd', address: '/run/k3s/containerd/containerd.sock', namespace: 'k8s.io' },
    ],
  ])('%s', (input, want) => {
    const d = parseLoadDestination(input);
    expect(d).toEqual(want);
    expect(parseLoadDestination(formatLoadDestination(d))).toEqual(d);
  });

  it.each([
    ['oci:', /needs a directory/],
    ['oci:./store:ref', /keep the names they have/],
    ['docker://', /expected docker:\/\/HOST/],
    ['docker://host/Upper', /invalid repository prefix/],
    ['docker://host/x:tag', /tags and digests come from the source/],
    ['containerd?namespace=', /invalid containerd namespace/],
    ['containerd?foo=bar', /unknown parameter "foo"/],
    ['docker-daemon:tcp://1.2.3.4:2375', /unix socket path/],
    ['oci-archive:x.tar', /cannot write to oci-archive/],
    ['somewhere', /invalid destination/],
  ])('refuses %s', (input, msg) => {
    expect(() => parseLoadDestination(input)).toThrow(msg);
    try {
      parseLoadDestination(input);
    } catch (err) {
      expect((err as { exitCode?: number }).exitCode).toBe(2);
    }
  });
});

describe('registryTargets', () => {
  const dest = { host: 'reg:5000', prefix: 'mirror' };
  it('drops the source registry, keeps tags, pushes digest-only names by digest', () => {
    expect(
      registryTargets(
        [
          { name: 'docker.io/library/nginx:1.25', digest: D },
          { name: `ghcr.io/org/app@${E}`, digest: E },
          { name: `quay.io/a/b:1@${D}`, digest: D },
        ],
        dest,
      ),
    ).toEqual([
      { repo: 'mirror/library/nginx', tag: '1.25', destination: 'reg:5000/mirror/library/nginx:1.25' },
      { repo: 'mirror/org/app', tag: undefined, destination: `reg:5000/mirror/org/app@${E}` },
      { repo: 'mirror/a/b', tag: '1', destination: 'reg:5000/mirror/a/b:1' },
    ]);
  });

  it('--scoped keeps the registry host', () => {
    expect(registryTargets([{ name: 'docker.io/library/nginx:1.25', digest: D }], dest, { scoped: true })[0]!.destination).toBe(
      'reg:5000/mirror/docker.io/library/nginx:1.25',
    );
  });

  it('refuses two sources that land on one name, before anything is pushed, naming both', () => {
    expect(() =>
      registryTargets(
        [
          { name: 'docker.io/x/a:1', digest: D },
          { name: 'quay.io/x/a:1', digest: E },
        ],
        dest,
      ),
    ).toThrow(/docker\.io\/x\/a:1 and quay\.io\/x\/a:1 would both be pushed as reg:5000\/mirror\/x\/a:1 \(use --scoped/);
    // With --scoped they are distinct.
    expect(
      registryTargets(
        [
          { name: 'docker.io/x/a:1', digest: D },
          { name: 'quay.io/x/a:1', digest: E },
        ],
        dest,
        { scoped: true },
      ),
    ).toHaveLength(2);
  });

  it('--scoped writes a source registry port after _ (a valid path component); IPv6 hosts are refused', () => {
    expect(registryTargets([{ name: 'localhost:5000/a:1', digest: D }], dest, { scoped: true })[0]!.destination).toBe(
      'reg:5000/mirror/localhost_5000/a:1',
    );
    expect(() => registryTargets([{ name: '[::1]:5000/a:1', digest: D }], dest, { scoped: true })).toThrow(/--scoped/);
  });
});

describe('rangeEnd (upload session Range header)', () => {
  it.each([
    [undefined, 0],
    ['0-0', 1],
    ['0-1048575', 1048576],
    ['bytes=0-99', 100],
    ['garbage', 0],
  ])('%s → %s', (h, n) => expect(rangeEnd(h)).toBe(n));
});
