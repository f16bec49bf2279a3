// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in plain strings is the syntax under test
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { interpolate, loadProfiles, ProfileError } from '../../../src/profile/load.js';

afterAll(cleanupHarness);

const HEAD = 'apiVersion: ferry/v1\nkind: ImageSet\nmetadata: {name: site-a}\n';

async function profileAt(text: string, name = 'p.yaml'): Promise<string> {
  const dir = createTempDir('profile');
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

async function refusal(text: string): Promise<ProfileError> {
  const file = await profileAt(text);
  const err = await loadProfiles([file]).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ProfileError);
  const e = err as ProfileError;
  expect(e.exitCode).toBe(2);
  expect(e.code).toBe('PROFILE_INVALID');
  expect(e.file).toBe(file);
  return e;
}

describe('loadProfiles', () => {
  it('reads every field: tags, per-image platforms over the default, target, digests', async () => {
    const file = await profileAt(
      `${HEAD}platforms: [linux/amd64, linux/arm64]
images:
  - ref: nginx:1.27.3
  - ref: ghcr.io/org/app@sha256:${'a'.repeat(64)}
    platforms: [linux/arm/v7]
  - ref: docker.io/library/redis
    tags: {allow: ['7\\..*'], deny: ['.*-alpine'], semver: '>=7.2 <8', latest: 3}
    target: cache/redis
  - ref: docker://quay.io/x/y
`,
    );
    const set = await loadProfiles([file]);
    expect(set.names).toEqual(['site-a']);
    expect(set.files).toHaveLength(1);
    expect(set.files[0]!.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    const [a, b, c, d] = set.entries;
    expect(a!.kind).toBe('tag');
    expect(a!.ref.toString()).toBe('docker.io/library/nginx:1.27.3');
    expect(a!.platforms?.map((p) => `${p.os}/${p.architecture}`)).toEqual(['linux/amd64', 'linux/arm64']);
    expect(a!.where).toBe(`${file}:6:5`);
    expect(b!.kind).toBe('digest');
    expect(b!.platforms).toEqual([{ os: 'linux', architecture: 'arm', variant: 'v7' }]);
    expect(c!.kind).toBe('repository');
    expect(c!.ref.toString()).toBe('docker.io/library/redis');
    expect(c!.tags?.allow?.[0]?.test('7.2.4')).toBe(true);
    expect(c!.tags?.allow?.[0]?.test('17.2.4')).toBe(false);
    expect(c!.tags?.latest).toBe(3);
    expect(c!.target?.name).toBe('docker.io/cache/redis');
    // A repository alone, without tags:, is its latest tag (as docker pull and -f lists read it).
    expect(d!.kind).toBe('tag');
    expect(d!.ref.toString()).toBe('quay.io/x/y:latest');
  });

  it('follows includes relative to the including file, each file once, includes first', async () => {
    const dir = createTempDir('profile-inc');
    await mkdir(path.join(dir, 'sub'));
    await writeFile(path.join(dir, 'sub', 'base.yaml'), `${HEAD.replace('site-a', 'base')}images: [{ref: 'busybox:1.36'}]\n`);
    await writeFile(
      path.join(dir, 'sub', 'mid.yaml'),
      `${HEAD.replace('site-a', 'mid')}include: [base.yaml]\nimages: [{ref: 'alpine:3.20'}]\n`,
    );
    await writeFile(path.join(dir, 'top.yaml'), `${HEAD}include: [sub/mid.yaml, sub/base.yaml]\nimages: [{ref: 'nginx:1'}]\n`);
    const set = await loadProfiles([path.join(dir, 'top.yaml')]);
    expect(set.entries.map((e) => e.ref.familiar())).toEqual(['busybox:1.36', 'alpine:3.20', 'nginx:1']);
    expect(set.files.map((f) => f.name)).toEqual(['site-a', 'mid', 'base']);
    expect(set.names).toEqual(['site-a']);
  });

  it('refuses an include cycle, naming the chain and the include line', async () => {
    const dir = createTempDir('profile-cycle');
    await writeFile(path.join(dir, 'a.yaml'), `${HEAD}include: [b.yaml]\n`);
    await writeFile(path.join(dir, 'b.yaml'), `${HEAD.replace('site-a', 'b')}include:\n  - a.yaml\n`);
    const err = await loadProfiles([path.join(dir, 'a.yaml')]).then(
      () => undefined,
      (e: unknown) => e as ProfileError,
    );
    expect(err).toBeInstanceOf(ProfileError);
    expect(err!.file).toBe(path.join(dir, 'b.yaml'));
    expect(err!.line).toBe(5);
    expect(err!.field).toBe('include[0]');
    expect(err!.message).toContain('include cycle');
    expect(err!.message).toContain('a.yaml → ');
  });

  it('names a missing include at the line that includes it', async () => {
    const e = await refusal(`${HEAD}include: [nothere.yaml]\n`);
    expect(e.line).toBe(4);
    expect(e.message).toContain('nothere.yaml: no such file');
  });

  it.each([
    ['YAML syntax', `${HEAD}images: [\n  - ref: x\n`, undefined, 'not valid YAML'],
    ['an unknown field', `${HEAD}images:\n  - ref: nginx:1\n    tag: 2\n`, 'images[0].tag', 'unknown field "tag"'],
    ['an unknown top-level field', `${HEAD}imagez: []\n`, 'imagez', 'unknown field'],
    ['a wrong type', `${HEAD}images:\n  - ref: nginx:1\n    platforms: linux/amd64\n`, 'images[0].platforms', 'expected array'],
    ['latest: not a number', `${HEAD}images:\n  - ref: redis\n    tags: {latest: three}\n`, 'images[0].tags.latest', 'expected number'],
    [
      'an invalid regex',
      `${HEAD}images:\n  - ref: redis\n    tags:\n      allow: ['7\\\\.(']\n`,
      'images[0].tags.allow[0]',
      'invalid regular expression',
    ],
    [
      'an invalid range',
      `${HEAD}images:\n  - ref: redis\n    tags: {semver: '>=banana'}\n`,
      'images[0].tags.semver',
      'invalid semver range',
    ],
    ['a bad reference', `${HEAD}images:\n  - ref: Nginx:1\n`, 'images[0].ref', 'lowercase'],
    ['tags on a tagged ref', `${HEAD}images:\n  - ref: redis:7\n    tags: {latest: 1}\n`, 'images[0].tags', 'tag filters choose'],
    ['a bad platform', `${HEAD}images:\n  - ref: redis:7\n    platforms: [linux]\n`, 'images[0].platforms[0]', 'invalid platform'],
    ['a target with a tag', `${HEAD}images:\n  - ref: redis:7\n    target: cache/redis:7\n`, 'images[0].target', 'names a repository'],
    ['a wrong apiVersion', 'apiVersion: ferry/v2\nkind: ImageSet\nmetadata: {name: a}\n', 'apiVersion', ''],
    ['a missing name', 'apiVersion: ferry/v1\nkind: ImageSet\nmetadata: {}\n', 'metadata.name', 'missing'],
    ['a duplicate key', `${HEAD}images: []\nimages: []\n`, undefined, 'not valid YAML'],
  ])('refuses %s with exit 2, file:line:column and the field', async (_what, text, field, words) => {
    const e = await refusal(text);
    expect(e.line).toBeGreaterThan(0);
    expect(e.column).toBeGreaterThan(0);
    expect(e.message).toMatch(new RegExp(`^${e.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${e.line}:${e.column}: `));
    if (field !== undefined) expect(e.field).toBe(field);
    expect(e.message).toContain(words);
  });

  it('points at the offending line', async () => {
    const e = await refusal(`${HEAD}images:\n  - ref: nginx:1\n  - ref: redis\n    tags: {semver: 'nope nope'}\n`);
    expect(e.line).toBe(7);
  });

  it('refuses a billion-laughs document without expanding it', async () => {
    let text = `${HEAD}x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n`;
    for (let i = 1; i < 12; i++)
      text += `x${i}: &a${i} [${Array(10)
        .fill(`*a${i - 1}`)
        .join(', ')}]\n`;
    const e = await refusal(text);
    expect(e.message).toMatch(/alias|YAML/i);
  });
});

describe('interpolate', () => {
  it('replaces ${VAR}, ${VAR:-default} and $$', () => {
    expect(interpolate('${REG}/app:1', { REG: 'r.local:5000' })).toBe('r.local:5000/app:1');
    expect(interpolate('${REG:-127.0.0.1:5000}/app', {})).toBe('127.0.0.1:5000/app');
    expect(interpolate('${REG:-x}/app', { REG: '' })).toBe('x/app');
    expect(interpolate('a$$b', {})).toBe('a$b');
  });
  it('refuses an unset variable and a malformed one', () => {
    expect(() => interpolate('${NOPE}/x', {})).toThrow(/NOPE is not set/);
    expect(() => interpolate('${1X}/x', {})).toThrow(/not a variable reference/);
  });
  it('reports an unset variable at the ref it is in', async () => {
    const e = await refusal(`${HEAD}images:\n  - ref: \${FERRY_TEST_UNSET_VAR}/app:1\n`);
    expect(e.field).toBe('images[0].ref');
    expect(e.message).toContain('FERRY_TEST_UNSET_VAR is not set');
  });
});
