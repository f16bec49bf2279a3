import { describe, expect, it } from 'vitest';
import { MirrorNames, type NamedRepository } from '../../../src/server/mirror-names.js';
import { originKey } from '../../../src/server/names.js';

const repo = (registry: string, path: string): NamedRepository => {
  const origin = { registry, path };
  return { repository: originKey(origin), origin };
};

const REPOS: NamedRepository[] = [
  repo('docker.io', 'library/nginx'),
  repo('ghcr.io', 'library/nginx'),
  repo('ghcr.io', 'org/x'),
  repo('quay.io', 'org/x'),
  repo('127.0.0.1:5000', 'team/app'),
  repo('[::1]:5000', 'v6/app'),
  { repository: 'mine/app', origin: undefined },
];

describe('MirrorNames', () => {
  const names = new MirrorNames(REPOS, { scoped: false });

  it('answers a unique unscoped path without ns, and every scoped path', () => {
    expect(names.resolve('team/app', undefined)).toEqual({ kind: 'found', repository: '127.0.0.1_5000/team/app' });
    expect(names.resolve('127.0.0.1_5000/team/app', undefined)).toEqual({ kind: 'found', repository: '127.0.0.1_5000/team/app' });
    expect(names.resolve('ghcr.io/library/nginx', undefined)).toEqual({ kind: 'found', repository: 'ghcr.io/library/nginx' });
    expect(names.resolve('mine/app', undefined)).toEqual({ kind: 'found', repository: 'mine/app' });
    expect(names.resolve('v6/app', undefined)).toEqual({ kind: 'found', repository: '[::1]:5000/v6/app' });
  });

  it('selects by ns among registries sharing a path, Docker Hub by any of its names', () => {
    expect(names.resolve('library/nginx', 'ghcr.io')).toEqual({ kind: 'found', repository: 'ghcr.io/library/nginx' });
    for (const hub of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'DOCKER.IO'])
      expect(names.resolve('library/nginx', hub), hub).toEqual({ kind: 'found', repository: 'docker.io/library/nginx' });
    expect(names.resolve('org/x', 'quay.io')).toEqual({ kind: 'found', repository: 'quay.io/org/x' });
    expect(names.resolve('team/app', '127.0.0.1:5000')).toEqual({ kind: 'found', repository: '127.0.0.1_5000/team/app' });
    expect(names.resolve('v6/app', '[::1]:5000')).toEqual({ kind: 'found', repository: '[::1]:5000/v6/app' });
  });

  it('gives a shared path without ns to Docker Hub, else calls it ambiguous', () => {
    expect(names.resolve('library/nginx', undefined)).toEqual({ kind: 'found', repository: 'docker.io/library/nginx' });
    expect(names.resolve('org/x', undefined)).toEqual({ kind: 'ambiguous', registries: ['ghcr.io', 'quay.io'] });
    expect(names.shared()).toEqual([
      { path: 'library/nginx', registries: ['docker.io', 'ghcr.io'], withoutNs: 'docker.io' },
      { path: 'org/x', registries: ['ghcr.io', 'quay.io'], withoutNs: undefined },
    ]);
  });

  it("accepts a scoped path with its own ns (override_path) but not with another registry's", () => {
    expect(names.resolve('ghcr.io/org/x', 'ghcr.io')).toEqual({ kind: 'found', repository: 'ghcr.io/org/x' });
    expect(names.resolve('ghcr.io/org/x', 'quay.io').kind).toBe('unknown');
  });

  it('refuses an ns it holds nothing for, and a path of another registry', () => {
    const none = names.resolve('library/nginx', 'registry.k8s.io');
    expect(none.kind).toBe('unknown');
    expect(none.kind === 'unknown' && none.message).toMatch(/nothing from registry\.k8s\.io/);
    expect(names.resolve('team/app', 'ghcr.io').kind).toBe('unknown');
    expect(names.resolve('team/app', '127.0.0.1:5001').kind).toBe('unknown');
    expect(names.resolve('nope/nope', undefined).kind).toBe('unknown');
    // A name given with its source is served whatever registry the client mirrors.
    expect(names.resolve('mine/app', 'ghcr.io')).toEqual({ kind: 'found', repository: 'mine/app' });
  });

  it('lists unscoped and scoped names in the catalog (an IPv6 key only by its path)', () => {
    expect(names.catalog()).toEqual([
      '127.0.0.1_5000/team/app',
      'docker.io/library/nginx',
      'ghcr.io/library/nginx',
      'ghcr.io/org/x',
      'library/nginx',
      'mine/app',
      'org/x',
      'quay.io/org/x',
      'team/app',
      'v6/app',
    ]);
  });

  it('says how each registry is served', () => {
    const { mirrored, local } = names.registries();
    expect(mirrored.find((m) => m.registry === 'docker.io')?.paths).toEqual(['/v2/REPO (ns=docker.io)', '/v2/docker.io/REPO']);
    expect(mirrored.find((m) => m.registry === '[::1]:5000')?.paths).toEqual(['/v2/REPO (ns=[::1]:5000)']);
    expect(mirrored.find((m) => m.registry === 'ghcr.io')?.repositories).toEqual([
      { repository: 'ghcr.io/library/nginx', path: 'library/nginx' },
      { repository: 'ghcr.io/org/x', path: 'org/x' },
    ]);
    expect(local).toEqual(['mine/app']);
  });

  it('with scoped, answers at scoped paths only', () => {
    const scoped = new MirrorNames(
      REPOS.filter((r) => !r.repository.startsWith('[')),
      { scoped: true },
    );
    expect(scoped.resolve('library/nginx', undefined).kind).toBe('unknown');
    expect(scoped.resolve('library/nginx', 'docker.io').kind).toBe('unknown');
    expect(scoped.resolve('docker.io/library/nginx', undefined)).toEqual({ kind: 'found', repository: 'docker.io/library/nginx' });
    expect(scoped.resolve('docker.io/library/nginx', 'docker.io')).toEqual({ kind: 'found', repository: 'docker.io/library/nginx' });
    expect(scoped.catalog()).not.toContain('org/x');
    expect(scoped.shared()).toEqual([]);
    expect(scoped.registries().mirrored.find((m) => m.registry === 'ghcr.io')?.paths).toEqual(['/v2/ghcr.io/REPO']);
  });
});
