import { describe, expect, it } from 'vitest';
import { BUNDLE_MANIFEST_MEDIA_TYPE, parseBundleManifest } from '../../../src/bundle/format.js';
import { IntegrityError } from '../../../src/util/errors.js';

const D = `sha256:${'a'.repeat(64)}`;

function manifest(extra: Record<string, unknown>): Uint8Array {
  return Buffer.from(
    JSON.stringify({
      mediaType: BUNDLE_MANIFEST_MEDIA_TYPE,
      formatVersion: 1,
      tool: { name: 'ferry', version: '0.1.0' },
      created: '2026-12-05T00:00:00Z',
      images: [],
      members: [],
      totals: { images: 0, blobs: 0, referencedBytes: 0, uniqueBytes: 0, storedBytes: 0 },
      ...extra,
    }),
  );
}

function refusal(bytes: Uint8Array): IntegrityError {
  try {
    parseBundleManifest(bytes, 'b.ferry');
  } catch (err) {
    expect(err).toBeInstanceOf(IntegrityError);
    return err as IntegrityError;
  }
  throw new Error('expected a refusal');
}

describe('ferry-bundle.json versions', () => {
  const imageSet = { profiles: [{ name: 'site-a', digest: D }], lock: { digest: D } };

  it('reads version 1, and version 2 with the image set it adds', () => {
    expect(parseBundleManifest(manifest({}), 'b').formatVersion).toBe(1);
    const v2 = parseBundleManifest(manifest({ formatVersion: 2, imageSet }), 'b');
    expect(v2.imageSet).toEqual(imageSet);
    expect(parseBundleManifest(manifest({ formatVersion: 2 }), 'b').imageSet).toBeUndefined();
  });

  it('takes each version exactly: imageSet in version 1 is an unknown field', () => {
    const e = refusal(manifest({ imageSet }));
    expect(e.code).toBe('MANIFEST_INVALID');
    expect(e.message).toContain('format v1 schema: imageSet: unknown field');
  });

  it('refuses versions it does not know, and a malformed image set', () => {
    expect(refusal(manifest({ formatVersion: 3 })).code).toBe('FORMAT_VERSION_UNSUPPORTED');
    expect(refusal(manifest({ formatVersion: '2' })).code).toBe('FORMAT_VERSION_UNSUPPORTED');
    expect(refusal(manifest({ formatVersion: 2, imageSet: { profiles: [{ name: 'x', digest: 'md5:1' }] } })).code).toBe('MANIFEST_INVALID');
    expect(refusal(manifest({ formatVersion: 2, imageSet: { profiles: [], extra: 1 } })).code).toBe('MANIFEST_INVALID');
  });
});
