/**
 * A `docker save` file holding several images, given to `pull` and `bundle` without :TAG or
 * :@N: every image is taken, under the names `load` gives them, as `docker load` does (they used
 * to refuse with "choose one with :TAG"). The fixture is go-containerregistry's test_bundle.tar
 * (two images, RepoTags test_image_2 and test_image_1). The built CLI is run.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { CLI, ferry } from '../helpers/cli.js';
import { HAVE_FIXTURES, fixture } from '../helpers/fixtures.js';

const ARCHIVE = fixture('go-containerregistry', 'pkg', 'v1', 'tarball', 'testdata', 'test_bundle.tar');
const NAMES = ['docker.io/library/test_image_1:latest', 'docker.io/library/test_image_2:latest'];
const REF_NAME = 'org.opencontainers.image.ref.name';

/** name → digest of a store's index.json. */
async function storeNames(dir: string): Promise<Map<string, string>> {
  const index = JSON.parse(await readFile(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return new Map(index.manifests.map((m) => [m.annotations?.[REF_NAME] ?? '', m.digest]));
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
});
afterAll(cleanupHarness);

describe.skipIf(!HAVE_FIXTURES)('a multi-image docker-archive without :TAG', () => {
  it('load, pull and bundle all take both images, under the same names and digests', async () => {
    const dir = createTempDir('da-multi');
    const loaded = await ferry(['load', `docker-archive:${ARCHIVE}`, '--to', `oci:${path.join(dir, 'loaded')}`]);
    expect(loaded.code, loaded.stderr).toBe(0);
    const byLoad = await storeNames(path.join(dir, 'loaded'));
    expect([...byLoad.keys()].sort()).toEqual(NAMES);

    const pulled = await ferry(['pull', `docker-archive:${ARCHIVE}`, '--store', path.join(dir, 'pulled')]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(pulled.stderr).not.toMatch(/choose one/);
    expect(await storeNames(path.join(dir, 'pulled'))).toEqual(byLoad);

    const out = path.join(dir, 'both.ferry');
    const bundled = await ferry(['bundle', `docker-archive:${ARCHIVE}`, '--store', path.join(dir, 'bstore'), '-o', out]);
    expect(bundled.code, bundled.stderr).toBe(0);
    expect(bundled.stdout).toMatch(/Wrote .*: 2 images/);
    const verified = await ferry(['verify', out]);
    expect(verified.code, verified.stderr + verified.stdout).toBe(0);
    // What the bundle holds loads back to the same two names and digests.
    const back = await ferry(['load', out, '--to', `oci:${path.join(dir, 'back')}`]);
    expect(back.code, back.stderr).toBe(0);
    expect(await storeNames(path.join(dir, 'back'))).toEqual(byLoad);
  });

  it('the archive listed twice, or with one of its images named too, stores each image once', async () => {
    const dir = createTempDir('da-multi-twice');
    const r = await ferry([
      'pull',
      `docker-archive:${ARCHIVE}`,
      `docker-archive:${ARCHIVE}:test_image_1`,
      `docker-archive:${ARCHIVE}`,
      '--store',
      path.join(dir, 'store'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect([...(await storeNames(path.join(dir, 'store'))).keys()].sort()).toEqual(NAMES);
  });

  it(':TAG and :@N still pick one image', async () => {
    const dir = createTempDir('da-multi-one');
    const tag = await ferry(['pull', `docker-archive:${ARCHIVE}:test_image_2`, '--store', path.join(dir, 'a')]);
    expect(tag.code, tag.stderr).toBe(0);
    expect([...(await storeNames(path.join(dir, 'a'))).keys()]).toEqual(['docker.io/library/test_image_2:latest']);
    const index = await ferry(['pull', `docker-archive:${ARCHIVE}:@1`, '--store', path.join(dir, 'b')]);
    expect(index.code, index.stderr).toBe(0);
    expect([...(await storeNames(path.join(dir, 'b'))).keys()]).toEqual(['docker.io/library/test_image_1:latest']);
  });
});
