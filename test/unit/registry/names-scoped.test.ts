/**
 * `--scoped` names for registry destinations: the source registry host is the first path
 * component, lower-cased, a port written after `_` (`127.0.0.1:5000` → `127.0.0.1_5000`), which
 * `load`, `mirror` and `serve` share (server/names.ts scopedHost). Collisions are still refused.
 */
import { describe, expect, it } from 'vitest';
import type { Digest } from '../../../src/oci/digest.js';
import { scopedHost, servedName } from '../../../src/server/names.js';
import { parseRegistryDestination, registryTargets } from '../../../src/transports/registry/names.js';

const D = `sha256:${'a'.repeat(64)}` as Digest;
const E = `sha256:${'b'.repeat(64)}` as Digest;

describe('scopedHost', () => {
  it.each([
    ['docker.io', 'docker.io'],
    ['127.0.0.1:5000', '127.0.0.1_5000'],
    ['localhost:5000', 'localhost_5000'],
    ['Registry.Example.com:443', 'registry.example.com_443'],
    ['my-reg.local:65535', 'my-reg.local_65535'],
    ['[::1]:5000', '[::1]:5000'],
  ])('%s → %s', (domain, component) => {
    expect(scopedHost(domain)).toBe(component);
  });
});

describe('registryTargets with scoped', () => {
  const dest = parseRegistryDestination('reg.local:5000/mirror');
  const target = (name: string) => registryTargets([{ name, digest: D }], dest, { scoped: true })[0]!;

  it('maps host:port to a valid path component', () => {
    expect(target('127.0.0.1:5000/acme/web:1')).toEqual({
      repo: 'mirror/127.0.0.1_5000/acme/web',
      tag: '1',
      destination: 'reg.local:5000/mirror/127.0.0.1_5000/acme/web:1',
    });
    expect(target('localhost:5000/app:v2').destination).toBe('reg.local:5000/mirror/localhost_5000/app:v2');
    expect(target(`localhost:5000/app@${E}`).destination).toBe(`reg.local:5000/mirror/localhost_5000/app@${D}`);
    expect(
      registryTargets([{ name: '127.0.0.1:5000/acme/web:1', digest: D }], parseRegistryDestination('reg.local'), { scoped: true })[0]!.repo,
    ).toBe('127.0.0.1_5000/acme/web');
    // Without --scoped the host is dropped, port and all.
    expect(registryTargets([{ name: '127.0.0.1:5000/acme/web:1', digest: D }], dest)[0]!.destination).toBe(
      'reg.local:5000/mirror/acme/web:1',
    );
  });

  it('keeps different ports, and a port from no port, apart', () => {
    const t = registryTargets(
      [
        { name: 'localhost:5000/app:1', digest: D },
        { name: 'localhost:5001/app:1', digest: E },
        { name: 'localhost/app:1', digest: E },
        // Not a registry host (no dot, no port, not localhost): a path under docker.io.
        { name: 'localhost_5000/app:1', digest: E },
      ],
      dest,
      { scoped: true },
    );
    expect(t.map((x) => x.destination)).toEqual([
      'reg.local:5000/mirror/localhost_5000/app:1',
      'reg.local:5000/mirror/localhost_5001/app:1',
      'reg.local:5000/mirror/localhost/app:1',
      'reg.local:5000/mirror/docker.io/localhost_5000/app:1',
    ]);
  });

  it('still refuses two images that land on one name, naming both', () => {
    expect(() =>
      registryTargets(
        [
          { name: '127.0.0.1:5000/acme/web:1', digest: D },
          { name: '127.0.0.1:5000/acme/web:1', digest: E },
        ],
        dest,
        { scoped: true },
      ),
    ).toThrow(
      /127\.0\.0\.1:5000\/acme\/web:1 and 127\.0\.0\.1:5000\/acme\/web:1 would both be pushed as reg\.local:5000\/mirror\/127\.0\.0\.1_5000\/acme\/web:1/,
    );
    // Host case does not make two names: REG.example:5000 and reg.example:5000 are one registry.
    expect(() =>
      registryTargets(
        [
          { name: 'REG.example:5000/app:1', digest: D },
          { name: 'reg.example:5000/app:1', digest: E },
        ],
        dest,
        { scoped: true },
      ),
    ).toThrow(/would both be pushed as reg\.local:5000\/mirror\/reg\.example_5000\/app:1/);
  });

  it('refuses an IPv6 host, and a name that grows past the repository length limit', () => {
    expect(() => target('[::1]:5000/app:1')).toThrow(/--scoped.*IPv6/);
    const long = `registry.example.com:5000/${'a'.repeat(240)}:1`;
    expect(() => target(long)).toThrow(/not a valid repository name/);
  });

  it('serve uses the same rule', () => {
    expect(servedName('127.0.0.1:5000/acme/web:1', { scoped: true })).toMatchObject({
      kind: 'served',
      name: { repository: '127.0.0.1_5000/acme/web', tag: '1' },
    });
  });
});
