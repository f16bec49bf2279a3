/**
 * listTags against real registries: distribution (plain and behind token auth), the same
 * distribution behind a small paginating proxy (distribution answers with every tag at once, so
 * the proxy cuts its real list into pages of 7 and can break the paging on purpose), and
 * `ferry serve`, which paginates natively.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { layoutContent } from '../../src/server/layout-content.js';
import { startServer, type RunningServer } from '../../src/server/server.js';
import { RegistryClient } from '../../src/transports/registry/client.js';
import { listTags } from '../../src/transports/registry/tags.js';
import { AuthError, RegistryError } from '../../src/util/errors.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import {
  OCI_MANIFEST,
  pushTagged,
  sha256,
  startPagingProxy,
  tinyImage,
  type PagingMode,
  type PagingProxy,
} from '../helpers/tagged-registry.js';

afterAll(cleanupHarness);

const REPO = 'team/app';
const USER = 'ferry';
const PASS = 'ferry-secret';

/** Semver, v-prefixed, pre-release, words, dates, upper case (sorts first in byte order), the longest tag the grammar allows. */
const TAGS = [
  '0.9.0',
  '1',
  '1.0',
  '1.0.0',
  '1.0.1',
  '1.2.0',
  '1.10.0',
  '2.0.0',
  '2.0.0-beta.2',
  '1.0.0-rc.1',
  '1.0.0-rc.2',
  '3.0.0-alpha',
  'v1.0.0',
  'v1.1.0',
  'v2.1.3',
  'v2.1.3-rc1',
  'v10.0.0',
  'latest',
  'stable',
  'edge',
  'nightly-20260101',
  'nightly-20260102',
  'nightly-20251231',
  'main',
  'sha-0123abc',
  'RELEASE',
  'Z9',
  '_private',
  'x.y_z--1',
  `t${'a'.repeat(127)}`,
];
const SORTED = [...TAGS].sort();

/** The error `promise` rejects with (failing the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection, got a result');
}

describe('distribution registry', () => {
  let reg: RunningRegistry;
  let client: RegistryClient;
  beforeAll(async () => {
    reg = await startRegistry();
    client = new RegistryClient(reg.host);
    await pushTagged(client, REPO, TAGS);
    await pushTagged(client, 'team/other', ['only']);
  });
  afterAll(async () => {
    await client.close();
  });

  it('lists exactly the pushed tags, once each, in byte order', async () => {
    const tags = await listTags(client, REPO);
    expect(tags).toEqual(SORTED);
    expect(tags).toHaveLength(30);
    // Byte order, not locale order: upper case first, `_` between upper and lower case.
    expect(tags.slice(0, 3)).toEqual(['0.9.0', '1', '1.0']);
    expect(tags.indexOf('RELEASE')).toBeLessThan(tags.indexOf('_private'));
    expect(tags.indexOf('_private')).toBeLessThan(tags.indexOf('edge'));
    expect(await listTags(client, 'team/other')).toEqual(['only']);
  });

  it('a repository whose only manifest was deleted: no tags (distribution answers `tags: null`)', async () => {
    await pushTagged(client, 'team/emptied', ['gone']);
    const digest = sha256(tinyImage().manifest);
    const del = await client.send({
      method: 'DELETE',
      path: `/v2/team/emptied/manifests/${digest}`,
      scope: 'repository:team/emptied:pull,push,delete',
      expect: [202],
      what: 'test delete',
    });
    del.body.resume();
    const raw = await fetch(`${reg.url}/v2/team/emptied/tags/list`);
    expect(await raw.json()).toEqual({ name: 'team/emptied', tags: null });
    expect(await listTags(client, 'team/emptied')).toEqual([]);
  });

  it('a small page size changes nothing (distribution 2.8 ignores n and answers with every tag, without Link)', async () => {
    expect(await listTags(client, REPO, { pageSize: 5 })).toEqual(SORTED);
  });

  it('more tags than maxTags: TAG_LIMIT, not a truncated list', async () => {
    const err = await rejection(listTags(client, REPO, { maxTags: 29 }));
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'TAG_LIMIT', status: 200 });
    expect((err as Error).message).toBe(
      `listing tags of ${reg.host}/${REPO}: the repository has more than 29 tags (the limit of one listing)`,
    );
    expect(await listTags(client, REPO, { maxTags: 30 })).toEqual(SORTED);
  });

  it('an unknown repository: the registry 404 NAME_UNKNOWN, naming registry and repository', async () => {
    const err = await rejection(listTags(client, 'team/never-pushed'));
    expect(err).toBeInstanceOf(RegistryError);
    expect(err).toMatchObject({ code: 'NAME_UNKNOWN', status: 404, method: 'GET' });
    expect((err as Error).message).toMatch(
      new RegExp(
        `^listing tags of ${reg.host}/team/never-pushed: GET http://${reg.host}/v2/team/never-pushed/tags/list\\?n=1000: HTTP 404: NAME_UNKNOWN`,
      ),
    );
    expect((err as RegistryError).hint).toBe(`check the repository name and tag on ${reg.host}`);
  });

  describe('behind a paginating proxy (pages of 7)', () => {
    let proxy: PagingProxy;
    let proxied: RegistryClient;
    beforeAll(async () => {
      proxy = await startPagingProxy(reg.url);
      proxied = new RegistryClient(proxy.host);
    });
    afterAll(async () => {
      await proxied.close();
      await proxy.stop();
    });
    const fresh = (mode: PagingMode): void => {
      proxy.mode = mode;
      proxy.tagRequests.length = 0;
    };

    it('follows every relative Link: every tag exactly once, five pages', async () => {
      fresh('pages');
      expect(await listTags(proxied, REPO)).toEqual(SORTED);
      // 30 tags in pages of 7: 7+7+7+7+2. The first page is the one ferry asked for; every
      // later one is exactly the Link the page before named.
      expect(proxy.tagRequests).toEqual([
        `/v2/${REPO}/tags/list?n=1000`,
        ...[6, 13, 20, 27].map((i) => `/v2/${REPO}/tags/list?n=7&last=${encodeURIComponent(SORTED[i]!)}`),
      ]);
    });

    it('a Link naming a page already fetched: a pagination loop error, after two requests', async () => {
      fresh('loop');
      const err = await rejection(listTags(proxied, REPO));
      expect(err).toBeInstanceOf(RegistryError);
      expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL' });
      expect((err as Error).message).toMatch(
        new RegExp(
          `^listing tags of ${proxy.host}/${REPO}: the registry's next page http://${proxy.host}/v2/${REPO}/tags/list\\?n=7&last=[^ ]+ was fetched before \\(a pagination loop\\)$`,
        ),
      );
      expect(proxy.tagRequests).toHaveLength(2);
    });

    it('a Link to a new URL that answers a page already seen: refused for bringing no new tag', async () => {
      fresh('stall');
      const err = await rejection(listTags(proxied, REPO));
      expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL' });
      expect((err as Error).message).toMatch(
        /: a page with no new tag names a next page http:\/\/127\.0\.0\.1:\d+\/v2\/team\/app\/tags\/list\?n=7&last=/,
      );
      expect(proxy.tagRequests).toHaveLength(3);
    });

    it('a Link to another origin is refused and never requested', async () => {
      fresh('foreign');
      const err = await rejection(listTags(proxied, REPO));
      expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL' });
      expect((err as Error).message).toBe(
        `listing tags of ${proxy.host}/${REPO}: the next page http://127.0.0.2:1/v2/${REPO}/tags/list?n=7&last=${encodeURIComponent(SORTED[6]!)} is not on the registry (http://${proxy.host}); it is not fetched`,
      );
      expect(proxy.tagRequests).toHaveLength(1);
    });

    it('a tag outside the grammar: an error naming registry, repository and the tag', async () => {
      fresh('invalid-tag');
      const err = await rejection(listTags(proxied, REPO));
      expect(err).toMatchObject({ code: 'REGISTRY_PROTOCOL', status: 200 });
      expect((err as Error).message).toBe(
        `listing tags of ${proxy.host}/${REPO}: the registry listed "not a tag", which is not a valid tag`,
      );
    });
  });
});

describe('ferry serve of an OCI layout (native n/last pagination)', () => {
  const SERVED = Array.from({ length: 23 }, (_, i) => `1.${i}.0`).concat(['latest', 'nightly-20260101']);
  let server: RunningServer;
  let client: RegistryClient;
  const access: string[] = [];
  beforeAll(async () => {
    const dir = createTempDir('tags-layout');
    const blobs = path.join(dir, 'blobs', 'sha256');
    mkdirSync(blobs, { recursive: true });
    writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    const img = tinyImage();
    for (const b of [img.config, img.layer, img.manifest]) writeFileSync(path.join(blobs, sha256(b).slice(7)), b);
    const desc = { mediaType: OCI_MANIFEST, digest: sha256(img.manifest), size: img.manifest.length };
    const manifests = SERVED.map((tag) => ({
      ...desc,
      annotations: { 'org.opencontainers.image.ref.name': `example.com/${REPO}:${tag}` },
    }));
    writeFileSync(
      path.join(dir, 'index.json'),
      JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }),
    );
    server = await startServer({ sources: [await layoutContent(dir)], listen: '127.0.0.1:0', log: (l) => access.push(l) });
    client = new RegistryClient(`127.0.0.1:${server.port}`);
  });
  afterAll(async () => {
    await client.close();
    await server.close();
  });

  it('pageSize 5: every tag once, over five Link-chained pages', async () => {
    access.length = 0;
    expect(await listTags(client, REPO, { pageSize: 5 })).toEqual([...SERVED].sort());
    const pages = access.filter((l) => l.includes('/tags/list'));
    expect(pages).toHaveLength(5);
    expect(pages.every((l) => / 200 /.test(l))).toBe(true);
  });

  it('an unknown repository: NAME_UNKNOWN naming the server and repository', async () => {
    const err = await rejection(listTags(client, 'team/nope'));
    expect(err).toMatchObject({ code: 'NAME_UNKNOWN', status: 404 });
    expect((err as Error).message).toMatch(new RegExp(`^listing tags of 127.0.0.1:${server.port}/team/nope: GET `));
  });
});

describe('distribution behind token auth', () => {
  let reg: RunningRegistry;
  let client: RegistryClient;
  beforeAll(async () => {
    reg = await startRegistry({ auth: 'token', users: { [USER]: PASS }, token: { anonymousPull: false } });
    client = new RegistryClient(reg.host, {
      staticCredential: { registry: reg.host, credential: { kind: 'basic', username: USER, password: PASS } },
    });
    await pushTagged(client, REPO, TAGS.slice(0, 12));
  });
  afterAll(async () => {
    await client.close();
  });

  it('lists with a token for repository:<repo>:pull', async () => {
    const reader = new RegistryClient(reg.host, {
      staticCredential: { registry: reg.host, credential: { kind: 'basic', username: USER, password: PASS } },
    });
    try {
      reg.tokenServer!.clearRequests();
      expect(await listTags(reader, REPO)).toEqual(TAGS.slice(0, 12).sort());
      expect(reg.tokenServer!.requests.map((r) => [r.scopes, r.authenticatedAs])).toEqual([[[`repository:${REPO}:pull`], USER]]);
    } finally {
      await reader.close();
    }
  });

  it('anonymous, where the token service grants nothing: UNAUTHORIZED', async () => {
    const anonymous = new RegistryClient(reg.host);
    try {
      const err = await rejection(listTags(anonymous, REPO));
      expect(err).toBeInstanceOf(AuthError);
      expect(err).toMatchObject({ code: 'UNAUTHORIZED' });
      expect((err as Error).message).toMatch(new RegExp(`^listing tags of ${reg.host}/${REPO}: GET `));
    } finally {
      await anonymous.close();
    }
  });
});
