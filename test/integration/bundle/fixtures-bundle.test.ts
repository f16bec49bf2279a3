/**
 * Every docker-archive and OCI layout fixture named in SOURCES.md bundles (and the bundle
 * verifies, with each image's digest as read), or fails with the named error SOURCES.md expects.
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { verifyBundle } from '../../../src/bundle/verify.js';
import { pull, type PullReport } from '../../../src/commands/pull.js';
import { parsePlatform } from '../../../src/oci/platform.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { HAVE_FIXTURES, fixture } from '../../helpers/fixtures.js';

afterAll(cleanupHarness);

async function bundleOf(
  sources: string[],
  platforms: string[] = [],
): Promise<{ pulled: PullReport; verified?: Awaited<ReturnType<typeof verifyBundle>> }> {
  const dir = createTempDir('fixture-bundle');
  const store = path.join(dir, 'store');
  const pulled = await pull({ refs: sources, store, platforms: platforms.map(parsePlatform) });
  const done = pulled.images.filter((i) => i.status === 'done');
  if (done.length === 0) return { pulled };
  const output = path.join(dir, 'out.ferry');
  await writeBundle({ store: await OciLayout.open(store), refs: done.map((i) => i.name), output, compression: 'auto' });
  const verified = await verifyBundle(output);
  expect(verified.problems).toEqual([]);
  expect(verified.manifest!.images.map((i) => [i.ref, i.digest]).sort()).toEqual(done.map((i) => [i.name, i.digest]).sort());
  return { pulled, verified };
}

const GGCR = (f: string): string => fixture('go-containerregistry', 'pkg', 'v1', 'tarball', 'testdata', f);
const CI = (...p: string[]): string => fixture('containers-image', ...p);

describe.skipIf(!HAVE_FIXTURES)('bundling the docker-archive fixtures', () => {
  it.each([
    [
      'almostempty.tar',
      `docker-archive:${CI('docker', 'archive', 'fixtures', 'almostempty.tar')}`,
      ['docker.io/library/emptyimage:latest'],
    ],
    ['test_image_1.tar', `docker-archive:${GGCR('test_image_1.tar')}`, ['docker.io/bazel/v1/tarball:test_image_1']],
    ['test_bundle.tar (two images)', `docker-archive:${GGCR('test_bundle.tar')}:test_image_2`, ['docker.io/library/test_image_2:latest']],
    [
      'test_bundle.tar without a choice (both images, as docker load)',
      `docker-archive:${GGCR('test_bundle.tar')}`,
      ['docker.io/library/test_image_2:latest', 'docker.io/library/test_image_1:latest'],
    ],
    ['test_link.tar (symlinked layer)', `docker-archive:${GGCR('test_link.tar')}:@1`, undefined],
    [
      'zarf scratch.tar (Docker 25+)',
      `docker-archive:${fixture('zarf', 'src', 'pkg', 'packager', 'testdata', 'find-images', 'image-archives', 'scratch.tar')}`,
      ['docker.io/library/scratch:latest'],
    ],
  ])('%s bundles and verifies', async (_label, source, names) => {
    const { pulled, verified } = await bundleOf([source]);
    expect(pulled.failures).toEqual([]);
    if (names) expect(pulled.images.map((i) => i.name)).toEqual(names);
    expect(verified?.ok).toBe(true);
  });

  it.each([
    [
      'skopeo docker-two-images.tar.xz',
      `docker-archive:${fixture('skopeo', 'systemtest', 'testdata', 'docker-two-images.tar.xz')}`,
      'UNSUPPORTED_COMPRESSION',
    ],
    [
      'moby emptyLayer.tar (v1, no manifest.json)',
      `docker-archive:${fixture('moby', 'integration-cli', 'testdata', 'emptyLayer.tar')}`,
      'LEGACY_ARCHIVE_UNSUPPORTED',
    ],
  ])('%s fails with %s', async (_label, source, code) => {
    await expect(bundleOf([source])).rejects.toMatchObject({ code });
  });
});

describe.skipIf(!HAVE_FIXTURES)('bundling the OCI layout fixtures', () => {
  it('regclient testrepo: all 26 refs, every blob once', async () => {
    const dir = fixture('regclient', 'testdata', 'testrepo');
    const index = await (await OciLayout.open(dir)).readIndex();
    const refs = index.manifests.map((d) => `oci:${dir}:${d.annotations?.['org.opencontainers.image.ref.name'] ?? d.digest}`);
    const { pulled, verified } = await bundleOf(refs);
    expect(pulled.failures).toEqual([]);
    expect(verified!.manifest!.totals.blobs).toBe(91);
  });

  it('containers/image delete_image_multiple_images: the six valid refs bundle; 1.0.0 fails SIZE_MISMATCH', async () => {
    const dir = CI('oci', 'layout', 'fixtures', 'delete_image_multiple_images');
    const { pulled, verified } = await bundleOf(
      ['latest', '3.18.3', '3', '3.18', '3.17.5', '3.16.7', '1.0.0'].map((r) => `oci:${dir}:${r}`),
    );
    expect(pulled.failures.map((f) => [f.name, f.errorCode])).toEqual([['1.0.0', 'SIZE_MISMATCH']]);
    expect(verified!.manifest!.images).toHaveLength(6);
  });

  it('oras hello-world.tar (sparse): the whole index is BLOB_MISSING, linux/amd64 bundles', async () => {
    const tar = fixture('oras-go', 'content', 'oci', 'testdata', 'hello-world.tar');
    const whole = await bundleOf([`oci-archive:${tar}:latest`]);
    expect(whole.pulled.failures.map((f) => f.errorCode)).toEqual(['BLOB_MISSING']);
    const amd64 = await bundleOf([`oci-archive:${tar}:latest`], ['linux/amd64']);
    expect(amd64.pulled.failures).toEqual([]);
    expect(amd64.verified!.ok).toBe(true);
  });

  it('zarf graph-driver store (uncompressed layers): bundled with zstd members, restored exactly on verify', async () => {
    const dir = fixture('zarf', 'src', 'pkg', 'images', 'testdata', 'docker-graph-driver-image-store');
    const { verified } = await bundleOf([`oci:${dir}:linux`]);
    const zstdMembers = verified!.manifest!.members.filter((m) => m.storage === 'zstd');
    expect(zstdMembers.length).toBeGreaterThan(0);
  });
});
