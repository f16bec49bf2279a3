import { describe, expect, it } from 'vitest';
import {
  MIN_VOLUME_SIZE,
  VolumeImageTooLargeError,
  VolumeLayerTooLargeError,
  parseVolumeSize,
  planVolumes,
  volumeCapacity,
  volumeFileName,
  volumeSetId,
  type VolumeImageInput,
} from '../../../src/bundle/volumes.js';
import { parseBundleManifest } from '../../../src/bundle/format.js';
import { mixedSetWarnings, parseVolumeFileName, volumeFileOf } from '../../../src/bundle/volume-files.js';
import type { BundleManifest } from '../../../src/bundle/format.js';

const d = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
const MiB = 1024 * 1024;
const img = (ref: string, blobs: Array<[number, number]>): VolumeImageInput => ({
  ref,
  digest: d(1000 + ref.length),
  blobs: new Map(blobs.map(([n, s]) => [d(n), s])),
});

describe('parseVolumeSize', () => {
  it('reads decimal and binary suffixes and plain bytes', () => {
    expect(parseVolumeSize('4.7G')).toBe(4_700_000_000);
    expect(parseVolumeSize('700M')).toBe(700_000_000);
    expect(parseVolumeSize('25GB')).toBe(25_000_000_000);
    expect(parseVolumeSize('4.7GiB')).toBe(Math.floor(4.7 * 2 ** 30));
    expect(parseVolumeSize('512MiB')).toBe(512 * MiB);
    expect(parseVolumeSize('512mib')).toBe(512 * MiB);
    expect(parseVolumeSize('3000000')).toBe(3_000_000);
    expect(parseVolumeSize('64GB')).toBe(64e9);
  });
  it('refuses junk and tiny sizes with a usage error (exit 2)', () => {
    for (const bad of ['', 'G', '4.7X', '-1G', '1e9', '4..7G', '12 34', '1K']) {
      let err: unknown;
      try {
        parseVolumeSize(bad);
      } catch (e) {
        err = e;
      }
      expect(err, bad).toMatchObject({ code: 'USAGE', exitCode: 2 });
    }
    expect(parseVolumeSize(String(MIN_VOLUME_SIZE))).toBe(MIN_VOLUME_SIZE);
  });
});

describe('planVolumes', () => {
  const size = 10 * MiB;
  it('keeps images whole, packs images sharing layers together and counts duplicated bytes exactly', () => {
    // a1, a2 share their big layer 1; b1, b2 share layer 2; c alone. Each pair fits one volume.
    const images = [
      img('c', [
        [30, 1000],
        [3, 4 * MiB],
      ]),
      img('a1', [
        [10, 1000],
        [1, 5 * MiB],
      ]),
      img('b1', [
        [20, 1000],
        [2, 5 * MiB],
      ]),
      img('a2', [
        [11, 1000],
        [1, 5 * MiB],
        [5, 100],
      ]),
      img('b2', [
        [21, 1000],
        [2, 5 * MiB],
        [5, 100],
      ]),
    ];
    const plan = planVolumes(images, size);
    // Sorted by largest-blob digest: layer 1 (a*), 2 (b*), 3 (c).
    expect(plan.volumes.map((v) => v.refs)).toEqual([['a1', 'a2'], ['b1', 'b2'], ['c']]);
    // Blob 5 (100 bytes) is in volumes 1 and 2: carried twice, once more than needed.
    expect(plan.duplicatedBytes).toBe(100);
    expect(plan.uniqueBytes).toBe(3 * 1000 + 2 * 1000 + 14 * MiB + 100);
    for (const v of plan.volumes) expect(v.estimate).toBeLessThanOrEqual(volumeCapacity(size));
  });
  it('is deterministic whatever the input order', () => {
    const images = [img('x', [[1, MiB]]), img('y', [[2, 3 * MiB]]), img('z', [[3, 5 * MiB]]), img('w', [[4, 2 * MiB]])];
    const a = planVolumes(images, size);
    const b = planVolumes([...images].reverse(), size);
    expect(b.volumes.map((v) => v.refs)).toEqual(a.volumes.map((v) => v.refs));
    expect(b.setId).toBe(a.setId);
    expect(a.duplicatedBytes).toBe(0);
  });
  it('first-fit fills earlier volumes with later small images', () => {
    // Capacity ~ 10 MiB - 1 MiB - 1% - 64 KiB ≈ 8.8 MiB.
    const images = [img('a', [[9, 6 * MiB]]), img('b', [[8, 6 * MiB]]), img('c', [[1, 2 * MiB]])];
    const plan = planVolumes(images, size);
    expect(plan.volumes.length).toBe(2);
    expect(plan.volumes.flatMap((v) => v.refs).sort()).toEqual(['a', 'b', 'c']);
    expect(plan.volumes.every((v) => v.refs.length <= 2)).toBe(true);
  });
  it('an image larger than a volume is an error naming it and its size (exit 2)', () => {
    let err: unknown;
    try {
      planVolumes([img('small', [[1, MiB]]), img('huge', [[2, 9 * MiB]])], size);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VolumeImageTooLargeError);
    expect(err).toMatchObject({ code: 'VOLUME_IMAGE_TOO_LARGE', exitCode: 2, ref: 'huge' });
    expect((err as Error).message).toContain('image huge needs about');
    expect((err as FerryErrorLike).hint).toContain('--allow-spanning');
  });
});

type FerryErrorLike = Error & { hint?: string };

describe('planVolumes with allowSpanning', () => {
  const size = 10 * MiB;
  /** A spanning image: a manifest and a config (carried by every span volume) and seven layers of 1-3 MiB. */
  const big = (): VolumeImageInput => {
    const blobs = new Map<string, number>([
      [d(900), 1500],
      [d(901), 3000],
    ]);
    const sizes = [3 * MiB, 2 * MiB, 3 * MiB, MiB, 2 * MiB + 17, 3 * MiB, MiB + 5];
    for (const [n, s] of sizes.entries()) blobs.set(d(100 + n), s);
    return { ref: 'huge', digest: d(999), blobs, shared: new Set([d(900), d(901)]) };
  };
  const small = img('small', [
    [1, 1000],
    [2, MiB],
  ]);

  it('spreads the image over consecutive volumes after the whole ones: every layer exactly once, manifests and config in each, each volume within SIZE', () => {
    const image = big();
    const plan = planVolumes([image, small], size, { allowSpanning: true });
    expect(plan.volumes[0]!.refs).toEqual(['small']);
    expect(plan.spans).toHaveLength(1);
    const span = plan.spans[0]!;
    expect(span.ref).toBe('huge');
    expect(span.volumes.length).toBeGreaterThanOrEqual(2);
    expect(span.volumes).toEqual(span.volumes.map((_, i) => 2 + i));
    const spanVolumes = plan.volumes.filter((v) => span.volumes.includes(v.number));
    expect(spanVolumes.map((v) => v.number)).toEqual(span.volumes);
    const layers = [...image.blobs.keys()].filter((k) => !image.shared!.has(k));
    for (const layer of layers) {
      const holders = spanVolumes.filter((v) => v.blobs.has(layer)).map((v) => v.number);
      expect(holders, layer).toEqual([span.home.get(layer)]);
    }
    expect([...span.home.keys()].sort()).toEqual(layers.sort());
    for (const v of spanVolumes) {
      expect(v.refs).toEqual(['huge']);
      expect(v.span).toEqual({ ref: 'huge', digest: d(999) });
      expect(v.blobs.get(d(900))).toBe(1500);
      expect(v.blobs.get(d(901))).toBe(3000);
      expect(v.estimate).toBeLessThanOrEqual(volumeCapacity(size));
      // What the estimate counts is what the volume carries.
      expect(v.bytes).toBe([...v.blobs.values()].reduce((n, x) => n + x, 0));
    }
    expect(plan.volumes.length).toBe(1 + span.volumes.length);
    // Only the manifest and config are carried more than once.
    expect(plan.duplicatedBytes).toBe((span.volumes.length - 1) * 4500);
  });

  it('without the flag the same image is VOLUME_IMAGE_TOO_LARGE', () => {
    expect(() => planVolumes([big()], size)).toThrow(VolumeImageTooLargeError);
  });

  it('a single layer larger than a volume cannot span: VOLUME_LAYER_TOO_LARGE (exit 2) naming it', () => {
    const image = big();
    const blobs = new Map(image.blobs);
    blobs.set(d(555), 9 * MiB);
    let err: unknown;
    try {
      planVolumes([{ ...image, blobs }], size, { allowSpanning: true });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VolumeLayerTooLargeError);
    expect(err).toMatchObject({ code: 'VOLUME_LAYER_TOO_LARGE', exitCode: 2 });
    expect((err as Error).message).toContain(`image huge: layer ${d(555)} needs about`);
  });

  it('images that fit are never spread', () => {
    const plan = planVolumes([small, img('other', [[3, 5 * MiB]])], size, { allowSpanning: true });
    expect(plan.spans).toEqual([]);
    expect(plan.volumes.every((v) => v.span === undefined)).toBe(true);
  });
});

describe('volume files', () => {
  it('parses NAME.NNN.ferry and names volumes', () => {
    expect(parseVolumeFileName('/m/dvd.003.ferry')).toEqual({ stem: '/m/dvd', number: 3 });
    expect(parseVolumeFileName('/m/dvd.1234.ferry')).toEqual({ stem: '/m/dvd', number: 1234 });
    expect(parseVolumeFileName('/m/dvd.03.ferry')).toBeUndefined();
    expect(parseVolumeFileName('/m/dvd.ferry')).toBeUndefined();
    expect(parseVolumeFileName('/m/.003.ferry')).toBeUndefined();
    expect(parseVolumeFileName('/m/dvd.000.ferry')).toBeUndefined();
    expect(volumeFileOf('/m/dvd', 4)).toBe('/m/dvd.004.ferry');
  });
  it('warns once per NAME holding volumes of more than one set', () => {
    const vol = (setId: string, number: number, count: number): BundleManifest =>
      ({ volume: { setId, number, count, images: [] } }) as unknown as BundleManifest;
    const w = mixedSetWarnings([
      { file: '/m/a.001.ferry', manifest: vol(d(1), 1, 2) },
      { file: '/m/a.002.ferry', manifest: vol(d(1), 2, 2) },
      { file: '/m/a.003.ferry', manifest: vol(d(2), 3, 3) },
      { file: '/m/b.001.ferry', manifest: vol(d(3), 1, 1) },
      { file: '/m/c.001.ferry', manifest: undefined },
    ]);
    expect(w).toEqual([
      `a.NNN.ferry holds volumes of 2 different sets: a.001.ferry, a.002.ferry of set ${d(1)} (2 volumes); a.003.ferry of set ${d(2)} (3 volumes)`,
    ]);
  });
});

describe('set id and names', () => {
  it('set id is the sha256 of the sorted ref@digest lines', () => {
    const a = volumeSetId([
      { ref: 'b', digest: d(2) },
      { ref: 'a', digest: d(1) },
    ]);
    expect(a).toBe(
      volumeSetId([
        { ref: 'a', digest: d(1) },
        { ref: 'b', digest: d(2) },
      ]),
    );
    expect(a).not.toBe(
      volumeSetId([
        { ref: 'a', digest: d(1) },
        { ref: 'b', digest: d(3) },
      ]),
    );
    expect(a).toMatch(/^sha256:[a-f0-9]{64}$/);
  });
  it('NAME.ferry → NAME.001.ferry', () => {
    expect(volumeFileName('/x/dvd.ferry', 1)).toBe('/x/dvd.001.ferry');
    expect(volumeFileName('dvd', 12)).toBe('dvd.012.ferry');
  });
});

describe('ferry-bundle.json volume field', () => {
  const manifest = (formatVersion: number, volume: unknown): Uint8Array =>
    Buffer.from(
      JSON.stringify({
        mediaType: 'application/vnd.ferry.bundle.manifest.v1+json',
        formatVersion,
        tool: { name: 'ferry', version: '0.1.0' },
        created: '2026-01-01T00:00:00Z',
        images: [],
        members: [],
        volume,
        totals: { images: 0, blobs: 0, referencedBytes: 0, uniqueBytes: 0, storedBytes: 0 },
      }),
    );
  const volume = { setId: d(7), number: 2, count: 3, images: [{ volume: 1, refs: ['a'] }] };
  it('is a version 2 field', () => {
    expect(parseBundleManifest(manifest(2, volume), 't').volume).toEqual(volume);
    expect(() => parseBundleManifest(manifest(1, volume), 't')).toThrow('format v1 schema: volume: unknown field');
  });
  it('refuses a number beyond the count', () => {
    expect(() => parseBundleManifest(manifest(2, { ...volume, number: 4 }), 't')).toThrow(/MANIFEST_INVALID|does not match/);
  });
  it('spans and spanBlobs: other volumes of the set, in consecutive runs', () => {
    const spanning = {
      ...volume,
      spans: [{ ref: 'big', digest: d(8), volumes: [2, 3] }],
      spanBlobs: [{ digest: d(9), size: 10, volume: 3 }],
    };
    expect(parseBundleManifest(manifest(2, spanning), 't').volume).toEqual(spanning);
    expect(() => parseBundleManifest(manifest(2, { ...spanning, spanBlobs: [{ digest: d(9), size: 10, volume: 2 }] }), 't')).toThrow(
      'spanBlobs must name other volumes',
    );
    expect(() => parseBundleManifest(manifest(2, { ...spanning, spanBlobs: [{ digest: d(9), size: 10, volume: 4 }] }), 't')).toThrow(
      'spanBlobs must name other volumes',
    );
    expect(() => parseBundleManifest(manifest(2, { ...spanning, spans: [{ ref: 'big', digest: d(8), volumes: [1, 3] }] }), 't')).toThrow(
      'consecutive',
    );
  });
});
