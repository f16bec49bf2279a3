import { describe, expect, it } from 'vitest';
import { matchRoute, type Route } from '../../../src/server/routes.js';

const D = `sha256:${'a'.repeat(64)}`;

function route(path: string): Route {
  const r = matchRoute(path);
  if (!r.ok) throw new Error(`expected a route for ${path}, got ${r.error.status} ${r.error.code}`);
  return r.route;
}

function error(path: string): { status: number; code: string } {
  const r = matchRoute(path);
  if (r.ok) throw new Error(`expected an error for ${path}, got ${JSON.stringify(r.route)}`);
  return { status: r.error.status, code: r.error.code };
}

describe('matchRoute', () => {
  it('matches the base and catalog endpoints', () => {
    expect(route('/v2/')).toEqual({ kind: 'base' });
    expect(route('/v2')).toEqual({ kind: 'base' });
    expect(route('/v2/_catalog')).toEqual({ kind: 'catalog' });
  });

  it('matches repository endpoints, names with slashes included', () => {
    expect(route('/v2/library/nginx/tags/list')).toEqual({ kind: 'tags', name: 'library/nginx' });
    expect(route('/v2/a/b/c/manifests/1.25-alpine')).toEqual({ kind: 'manifest', name: 'a/b/c', tag: '1.25-alpine' });
    expect(route(`/v2/app/manifests/${D}`)).toEqual({ kind: 'manifest', name: 'app', digest: D });
    expect(route(`/v2/docker.io/library/nginx/blobs/${D}`)).toEqual({ kind: 'blob', name: 'docker.io/library/nginx', digest: D });
    expect(route(`/v2/app/referrers/${D}`)).toEqual({ kind: 'referrers', name: 'app', digest: D });
  });

  it('recognises the upload endpoints, so that writes can be refused', () => {
    expect(route('/v2/app/blobs/uploads/')).toEqual({ kind: 'upload', name: 'app' });
    expect(route('/v2/app/blobs/uploads')).toEqual({ kind: 'upload', name: 'app' });
    expect(route('/v2/app/blobs/uploads/0b2f-uuid')).toEqual({ kind: 'upload', name: 'app' });
  });

  it('splits at the last endpoint segment, as distribution does', () => {
    expect(route('/v2/a/manifests/b/manifests/c')).toEqual({ kind: 'manifest', name: 'a/manifests/b', tag: 'c' });
  });

  it('refuses invalid repository names with NAME_INVALID before anything else', () => {
    for (const name of ['Library/nginx', '..', 'a/../b', 'a//b', '/a', 'a/', '-a', 'a-', 'a..b', 'a___b', '_a', 'x'.repeat(256)]) {
      expect(error(`/v2/${name}/tags/list`), name).toEqual({ status: 400, code: 'NAME_INVALID' });
    }
    expect(route(`/v2/${'x'.repeat(255)}/tags/list`)).toEqual({ kind: 'tags', name: 'x'.repeat(255) });
    expect(route('/v2/a__b/c-_-d/e.f/tags/list'.replace('c-_-d', 'c--d'))).toEqual({ kind: 'tags', name: 'a__b/c--d/e.f' });
  });

  it('refuses percent-encoded traversal and any other encoding', () => {
    expect(error(`/v2/..%2f..%2fetc/blobs/${D}`)).toEqual({ status: 400, code: 'NAME_INVALID' });
    expect(error(`/v2/%2e%2e/blobs/${D}`)).toEqual({ status: 400, code: 'NAME_INVALID' });
    expect(error('/v2/app%2Fx/tags/list')).toEqual({ status: 400, code: 'NAME_INVALID' });
    expect(error('/v2/app/blobs/..%2f..%2f..%2fetc%2fpasswd')).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(error('/v2/app/manifests/..%2f..%2fetc')).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
  });

  it('validates digests: sha256 and 64 lower-case hex digits only', () => {
    expect(error(`/v2/app/blobs/sha256:${'A'.repeat(64)}`)).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(error(`/v2/app/blobs/sha256:${'a'.repeat(63)}`)).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(error(`/v2/app/blobs/sha512:${'a'.repeat(128)}`)).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(error(`/v2/app/manifests/sha512:${'a'.repeat(128)}`)).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    expect(error('/v2/app/referrers/latest')).toEqual({ status: 400, code: 'DIGEST_INVALID' });
    const m = matchRoute(`/v2/app/blobs/sha512:${'a'.repeat(128)}`);
    expect(!m.ok && m.error.message).toMatch(/unsupported digest algorithm/);
  });

  it('refuses tags outside the tag grammar', () => {
    expect(error('/v2/app/manifests/.hidden')).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect(error('/v2/app/manifests/-x')).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect(error(`/v2/app/manifests/${'t'.repeat(129)}`)).toEqual({ status: 404, code: 'MANIFEST_UNKNOWN' });
    expect(route(`/v2/app/manifests/${'t'.repeat(128)}`)).toMatchObject({ kind: 'manifest', tag: 't'.repeat(128) });
  });

  it('answers unknown paths with 404', () => {
    for (const p of ['/', '/v1/', '/v2/app', '/v2/app/tags', '/v2/app/blobs', '/v2/_catalog/', '/v3/app/tags/list']) {
      expect(error(p).status, p).toBe(404);
    }
  });

  it('does not echo unbounded hostile input', () => {
    const r = matchRoute(`/v2/${'%'.repeat(100_000)}/tags/list`);
    expect(r.ok).toBe(false);
    expect(JSON.stringify(r).length).toBeLessThan(2000);
  });
});

describe('namespaceOf', () => {
  it('takes one registry host, and refuses anything else with 400 NAME_INVALID', async () => {
    const { namespaceOf } = await import('../../../src/server/routes.js');
    expect(namespaceOf(new URLSearchParams(''))).toEqual({ ok: true, ns: undefined });
    expect(namespaceOf(new URLSearchParams('ns=docker.io'))).toEqual({ ok: true, ns: 'docker.io' });
    expect(namespaceOf(new URLSearchParams('ns=127.0.0.1%3A5000'))).toEqual({ ok: true, ns: '127.0.0.1:5000' });
    for (const q of ['ns=', 'ns=a%2Fb', 'ns=docker.io&ns=ghcr.io', `ns=${'a'.repeat(5000)}`, 'ns=..']) {
      const r = namespaceOf(new URLSearchParams(q));
      expect(r.ok, q).toBe(false);
      if (!r.ok) {
        expect(r.error.status).toBe(400);
        expect(r.error.code).toBe('NAME_INVALID');
        expect(r.error.message.length).toBeLessThan(600);
      }
    }
  });
});
