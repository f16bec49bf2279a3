import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { MAX_MANIFEST_BYTES, jsonDepthOver, parseManifest, requiredBlobs } from '../../../src/oci/manifest.js';
import { MediaType, declaredCompression } from '../../../src/oci/mediatypes.js';
import { formatPlatform, normalizePlatform, parsePlatform, platformMatches } from '../../../src/oci/platform.js';
import { HAVE_FIXTURES, fixture } from '../../helpers/fixtures.js';

const M = (name: string): Buffer => readFileSync(fixture('containers-image', 'manifest', 'fixtures', name));
const T = (name: string): Buffer => readFileSync(fixture('containers-image', 'internal', 'manifest', 'testdata', name));

describe.skipIf(!HAVE_FIXTURES)('manifest documents from containers/image', () => {
  it.each([
    ['v2s2.manifest.json', MediaType.DockerManifest, 'manifest'],
    ['v2s2nomime.manifest.json', MediaType.OciManifest, 'manifest'],
    ['v2list.manifest.json', MediaType.DockerManifestList, 'index'],
    ['ociv1.manifest.json', MediaType.OciManifest, 'manifest'],
    ['ociv1nomime.manifest.json', MediaType.OciManifest, 'manifest'],
    ['ociv1.image.index.json', MediaType.OciIndex, 'index'],
    ['ociv1nomime.image.index.json', MediaType.OciIndex, 'index'],
    ['ociv1.zstd.manifest.json', MediaType.OciManifest, 'manifest'],
    ['ociv1.uncompressed.manifest.json', MediaType.OciManifest, 'manifest'],
    ['ociv1.encrypted.manifest.json', MediaType.OciManifest, 'manifest'],
    ['ociv1.nondistributable.manifest.json', MediaType.OciManifest, 'manifest'],
    ['v2s2.nondistributable.manifest.json', MediaType.DockerManifest, 'manifest'],
    ['ociv1.invalid.mediatype.manifest.json', MediaType.OciManifest, 'manifest'],
  ])('%s parses as %s', (file, mt, kind) => {
    const doc = parseManifest(M(file), undefined, file);
    expect(doc.mediaType).toBe(mt);
    expect(doc.kind).toBe(kind);
  });

  it('a manifest without mediaType takes the type it was served with', () => {
    expect(parseManifest(M('v2s2nomime.manifest.json'), MediaType.DockerManifest, 'x').mediaType).toBe(MediaType.DockerManifest);
  });

  it('a document whose own type contradicts its descriptor kind is refused', () => {
    expect(() => parseManifest(M('v2s2.manifest.json'), MediaType.OciIndex, 'x')).toThrow(
      expect.objectContaining({ code: 'MANIFEST_INVALID' }),
    );
  });

  it.each(['v2s1.manifest.json', 'v2s1-unsigned.manifest.json', 'v2s1-invalid-signatures.manifest.json'])(
    '%s: schema1 is refused by name',
    (file) => {
      expect(() => parseManifest(M(file), undefined, file)).toThrow(expect.objectContaining({ code: 'SCHEMA1_UNSUPPORTED' }));
      expect(() => parseManifest(M(file), MediaType.DockerSchema1Signed, file)).toThrow(/schema1/);
    },
  );

  it('unknown schemaVersion is unsupported', () => {
    expect(() => parseManifest(M('unknown-version.manifest.json'), undefined, 'x')).toThrow(/unsupported schemaVersion 99999/);
  });

  it('gzip garbage is a parse error, not a crash', () => {
    expect(() => parseManifest(M('non-json.manifest.json'), undefined, 'x')).toThrow(
      expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringContaining('not valid JSON') }),
    );
  });

  it('artifacts: layers null and an empty placeholder config need no blobs', () => {
    const doc = parseManifest(T('ociv1.artifact.json'), undefined, 'x');
    expect(doc.kind === 'manifest' && requiredBlobs(doc)).toEqual([]);
    const nomime = parseManifest(T('ociv1nomime.artifact.json'), undefined, 'x');
    expect(nomime.kind).toBe('manifest');
  });

  it('platform variants in indexes are matched after normalisation', () => {
    const doc = parseManifest(T('ocilist-variants.json'), undefined, 'x');
    if (doc.kind !== 'index') throw new Error('want index');
    const v7 = doc.manifests.filter((d) => platformMatches(parsePlatform('linux/arm/v7'), d.platform));
    const v6 = doc.manifests.filter((d) => platformMatches(parsePlatform('linux/arm/v6'), d.platform));
    // arm without a variant means v7 (containerd's rule), so two entries serve v7.
    expect(v7.map((d) => d.digest.slice(7, 11))).toEqual(['eeee', 'c84b']);
    expect(v6.map((d) => d.digest.slice(7, 11))).toEqual(['dddd', 'f365']);
  });
});

describe('ambiguous documents (CVE-2021-41190)', () => {
  const desc = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${'a'.repeat(64)}`, size: 2 };
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'b'.repeat(64)}`, size: 2 };
  it('an index that also has config or layers, a manifest that also has manifests, and an untyped mix are refused', () => {
    const cases: Array<[object, string | undefined]> = [
      [{ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [desc], config, layers: [] }, undefined],
      [{ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [desc], layers: [config] }, undefined],
      [{ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [], manifests: [desc] }, undefined],
      [{ schemaVersion: 2, config, layers: [], manifests: [desc] }, 'application/vnd.oci.image.index.v1+json'],
      [{ schemaVersion: 2, config, layers: [], manifests: [desc] }, undefined],
    ];
    for (const [doc, declared] of cases) {
      expect(() => parseManifest(Buffer.from(JSON.stringify(doc)), declared, 'doc'), JSON.stringify(doc)).toThrow(/ambiguous document/);
    }
    // Each shape alone still parses.
    expect(
      parseManifest(
        Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [desc] })),
        undefined,
        'i',
      ).kind,
    ).toBe('index');
    expect(
      parseManifest(
        Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config, layers: [] })),
        undefined,
        'm',
      ).kind,
    ).toBe('manifest');
  });
});

describe('platform normalisation as containerd does it', () => {
  it('armhf/armel in any case force their variant; arm64 v8.0 is arm64', () => {
    expect(formatPlatform(normalizePlatform({ os: 'linux', architecture: 'ARMEL' }))).toBe('linux/arm/v6');
    expect(formatPlatform(normalizePlatform({ os: 'linux', architecture: 'armhf', variant: 'v6' }))).toBe('linux/arm/v7');
    expect(platformMatches(parsePlatform('linux/arm64/v8.0'), { os: 'linux', architecture: 'arm64' })).toBe(true);
  });
});

describe('manifest parsing limits', () => {
  it('refuses documents over the cap before parsing', () => {
    const big = Buffer.alloc(MAX_MANIFEST_BYTES + 1, 0x20);
    expect(() => parseManifest(big, undefined, 'big')).toThrow(/over the 4194304-byte limit/);
  });
  it('refuses JSON that is not an object', () => {
    expect(() => parseManifest(Buffer.from('[1,2]'), undefined, 'x')).toThrow(/not a JSON object/);
  });
  it('refuses a descriptor with a negative size', () => {
    const doc = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: 'a/b', digest: `sha256:${'a'.repeat(64)}`, size: -1 },
      layers: [],
    };
    expect(() => parseManifest(Buffer.from(JSON.stringify(doc)), undefined, 'x')).toThrow(
      expect.objectContaining({ code: 'MANIFEST_INVALID', message: expect.stringContaining('config.size') }),
    );
  });
});

describe('platforms', () => {
  it.each([
    ['linux/amd64', 'linux/amd64'],
    ['linux/x86_64', 'linux/amd64'],
    ['linux/aarch64', 'linux/arm64'],
    ['linux/arm64/v8', 'linux/arm64'],
    ['linux/arm', 'linux/arm/v7'],
    ['linux/arm/7', 'linux/arm/v7'],
    ['Linux/ARM/v6', 'linux/arm/v6'],
    ['windows/amd64', 'windows/amd64'],
  ])('%s normalises to %s', (input, want) => {
    expect(formatPlatform(parsePlatform(input))).toBe(want);
  });
  it.each(['linux', 'linux/', '/amd64', 'linux/arm/v7/extra', 'linux/am d64'])('%s is refused', (bad) => {
    expect(() => parsePlatform(bad)).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
  it('arm64 with and without v8 match each other', () => {
    expect(platformMatches(parsePlatform('linux/arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' })).toBe(true);
    expect(platformMatches(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v6' })).toBe(false);
    expect(platformMatches(parsePlatform('linux/amd64'), undefined)).toBe(false);
  });
});

describe('layer compression by media type', () => {
  it.each([
    [MediaType.OciLayerGzip, 'gzip'],
    [MediaType.OciLayerZstd, 'zstd'],
    [MediaType.OciLayer, 'none'],
    [MediaType.DockerLayerGzip, 'gzip'],
    [MediaType.DockerLayer, 'none'],
    ['application/vnd.oci.image.layer.v1.tar+unknown', 'unknown'],
  ])('%s → %s', (mt, want) => {
    expect(declaredCompression(mt)).toBe(want);
  });
});

describe('jsonDepthOver / parseManifest depth limit', () => {
  const bytes = (s: string): Buffer => Buffer.from(s);
  it('counts nesting outside strings only, escapes included', () => {
    expect(jsonDepthOver(bytes('{"a":[[1]]}'), 3)).toBeUndefined();
    expect(jsonDepthOver(bytes('{"a":[[[1]]]}'), 3)).toBe(4);
    expect(jsonDepthOver(bytes(`{"a":"${'['.repeat(100)}"}`), 3)).toBeUndefined();
    expect(jsonDepthOver(bytes(`{"a":"\\"${'{'.repeat(100)}"}`), 3)).toBeUndefined();
    expect(jsonDepthOver(bytes(`[${'[]'.repeat(1000)}]`), 3)).toBeUndefined();
  });
  it('refuses a 100,000-deep document before parsing it', () => {
    const deep = `{"schemaVersion":2,"manifests":[],"x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    expect(() => parseManifest(bytes(deep), 'application/vnd.oci.image.index.v1+json', 'deep')).toThrow(/nested more than 64 levels deep/);
  });
});
