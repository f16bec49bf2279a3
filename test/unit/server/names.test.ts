import { describe, expect, it } from 'vitest';
import { isDockerHub, isNamespace, isRepositoryName, isTag, normalizeRegistry, originKey, servedName } from '../../../src/server/names.js';

const D = `sha256:${'b'.repeat(64)}`;

describe('servedName', () => {
  it('drops the registry host by default, as skopeo sync does', () => {
    expect(servedName('docker.io/library/nginx:1.25')).toMatchObject({
      kind: 'served',
      name: { repository: 'library/nginx', tag: '1.25' },
    });
    expect(servedName('127.0.0.1:5000/team/app:1')).toMatchObject({ kind: 'served', name: { repository: 'team/app', tag: '1' } });
    expect(servedName('ghcr.io/org/tool:v2.0.1')).toMatchObject({ kind: 'served', name: { repository: 'org/tool', tag: 'v2.0.1' } });
  });

  it('keeps the host with scoped', () => {
    expect(servedName('docker.io/library/nginx:1.25', { scoped: true })).toMatchObject({
      kind: 'served',
      name: { repository: 'docker.io/library/nginx', tag: '1.25' },
    });
    expect(servedName('Registry.Example.com/app:1', { scoped: true })).toMatchObject({
      kind: 'served',
      name: { repository: 'registry.example.com/app', tag: '1' },
    });
  });

  it('writes a scoped port after _, and refuses IPv6 hosts (not part of a repository name)', () => {
    expect(servedName('127.0.0.1:5000/team/app:1', { scoped: true })).toMatchObject({
      kind: 'served',
      name: { repository: '127.0.0.1_5000/team/app', tag: '1' },
    });
    const r = servedName('[::1]:5000/app:1', { scoped: true });
    expect(r.kind).toBe('invalid');
    expect(r.kind === 'invalid' && r.reason).toMatch(/--scoped.*IPv6/);
  });

  it('serves digest-only names without a tag, and name:tag@digest by its tag', () => {
    expect(servedName(`docker.io/library/nginx@${D}`)).toMatchObject({
      kind: 'served',
      name: { repository: 'library/nginx', tag: undefined },
    });
    expect(servedName(`docker.io/library/nginx:1.25@${D}`)).toMatchObject({
      kind: 'served',
      name: { repository: 'library/nginx', tag: '1.25' },
    });
  });

  it('normalises familiar names', () => {
    expect(servedName('nginx:1.25')).toMatchObject({ kind: 'served', name: { repository: 'library/nginx', tag: '1.25' } });
  });

  it('reports bare tags for the caller to place', () => {
    expect(servedName('v1')).toEqual({ kind: 'bare-tag', tag: 'v1' });
    expect(servedName('latest')).toEqual({ kind: 'bare-tag', tag: 'latest' });
    expect(servedName(`sha256-${'c'.repeat(64)}.sig`)).toEqual({ kind: 'bare-tag', tag: `sha256-${'c'.repeat(64)}.sig` });
  });

  it('reports what it cannot use', () => {
    expect(servedName('docker.io/library/nginx').kind).toBe('invalid');
    expect(servedName('library/UPPER:1').kind).toBe('invalid');
    expect(servedName('a b').kind).toBe('invalid');
    expect(servedName('').kind).toBe('invalid');
  });
});

describe('isRepositoryName / isTag', () => {
  it('follows the distribution grammar', () => {
    for (const ok of ['a', 'library/nginx', 'a.b_c__d---e/f', 'docker.io/library/nginx', '0/1/2'])
      expect(isRepositoryName(ok), ok).toBe(true);
    for (const bad of ['', 'A', 'a/', '/a', 'a//b', 'a:1', '..', 'a/./b', 'a_', 'a%2fb', 'x'.repeat(256)])
      expect(isRepositoryName(bad), bad).toBe(false);
    expect(isTag('v1.0_rc-1')).toBe(true);
    expect(isTag('.v1')).toBe(false);
    expect(isTag('a'.repeat(129))).toBe(false);
  });

  it('stays fast on adversarial input', () => {
    const started = performance.now();
    isRepositoryName(`${'a-'.repeat(127)}!`);
    isRepositoryName(`${'a'.repeat(100_000)}!`);
    expect(performance.now() - started).toBeLessThan(100);
  });
});

describe('origins and ns hosts', () => {
  it('records where a full reference came from, keyed by its scoped name', () => {
    const r = servedName('127.0.0.1:5000/team/app:1');
    expect(r.kind === 'served' && r.origin).toEqual({ registry: '127.0.0.1:5000', path: 'team/app' });
    expect(originKey({ registry: '127.0.0.1:5000', path: 'team/app' })).toBe('127.0.0.1_5000/team/app');
    const hub = servedName('nginx:1');
    expect(hub.kind === 'served' && hub.origin).toEqual({ registry: 'docker.io', path: 'library/nginx' });
    // index.docker.io is normalised by the reference parser.
    const legacy = servedName('index.docker.io/library/nginx:1');
    expect(legacy.kind === 'served' && originKey(legacy.origin)).toBe('docker.io/library/nginx');
  });

  it("treats Docker Hub's host names as one, and keeps ports", () => {
    for (const h of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'Docker.IO']) expect(isDockerHub(h), h).toBe(true);
    expect(normalizeRegistry('GHCR.io')).toBe('ghcr.io');
    expect(normalizeRegistry('ghcr.io:443')).toBe('ghcr.io:443');
    expect(isDockerHub('docker.io:443')).toBe(false);
  });

  it('accepts registry hosts as ns and nothing else', () => {
    for (const ok of ['docker.io', 'ghcr.io', '127.0.0.1:5000', 'localhost', '[::1]:5000', 'a-b.example.com:443'])
      expect(isNamespace(ok), ok).toBe(true);
    for (const bad of ['', 'a/b', 'a b', '-a.io', 'a.io:', 'a.io:123456', 'ghcr.io/', 'x'.repeat(300), '%2e', 'a.io?x'])
      expect(isNamespace(bad), bad).toBe(false);
    const started = performance.now();
    isNamespace(`${'a-'.repeat(120)}!`);
    expect(performance.now() - started).toBeLessThan(50);
  });
});
