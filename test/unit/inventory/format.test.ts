// The inventory file format: deterministic bytes, the size of a large inventory, the limits and
// checks a read applies to a file that came back across the air gap, and its detached signature.
import { createHash } from 'node:crypto';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  INVENTORY_LIMITS,
  INVENTORY_MEDIA_TYPE,
  formatInventory,
  readInventory,
  writeInventory,
  type Inventory,
} from '../../../src/inventory/format.js';
import { type FerryError, IntegrityError, UsageError } from '../../../src/util/errors.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { makeKeyPair } from '../../helpers/keys.js';

/** A digest made from a number: distinct, valid, deterministic. */
function digest(n: number): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(String(n)).digest('hex')}`;
}

function inventory(extra: Partial<Inventory> = {}): Inventory {
  return {
    mediaType: INVENTORY_MEDIA_TYPE,
    formatVersion: 1,
    tool: { name: 'ferry', version: '0.1.0' },
    created: '2026-12-05T12:00:00.000Z',
    location: 'docker://registry.site-a:5000/mirror',
    kind: 'registry',
    images: [
      { name: 'registry.site-a:5000/mirror/b:1', digest: digest(2) },
      { name: 'registry.site-a:5000/mirror/a:1', digest: digest(1) },
    ],
    blobs: [digest(5), digest(3), digest(4), digest(3)],
    notes: ['a note'],
    ...extra,
  };
}

let dir: string;
let keys: { key: string; pub: string };
let other: { key: string; pub: string };

beforeAll(() => {
  dir = createTempDir('inventory-format');
  keys = makeKeyPair(dir, 'site', 'ed25519');
  other = makeKeyPair(dir, 'other', 'ec-p256');
});
afterAll(() => cleanupHarness());

describe('formatInventory', () => {
  it('gives the same bytes for the same content, whatever the order and duplicates', () => {
    const a = formatInventory(inventory());
    const b = formatInventory(
      inventory({
        images: [...inventory().images].reverse(),
        blobs: [digest(3), digest(4), digest(5), digest(5), digest(4)],
      }),
    );
    expect(b.equals(a)).toBe(true);
    const doc = JSON.parse(a.toString('utf8')) as Inventory;
    expect(doc.blobs).toEqual([digest(3), digest(4), digest(5)].sort());
    expect(doc.images.map((i) => i.name)).toEqual(['registry.site-a:5000/mirror/a:1', 'registry.site-a:5000/mirror/b:1']);
    expect(Object.keys(doc)).toEqual(['mediaType', 'formatVersion', 'tool', 'created', 'location', 'kind', 'images', 'blobs', 'notes']);
    expect(a.toString('utf8').endsWith('}\n')).toBe(true);
  });

  it('keeps a 10,000-blob inventory (with 1,000 named images) under 2 MB', () => {
    const blobs = Array.from({ length: 10_000 }, (_, i) => digest(i));
    const images = Array.from({ length: 1000 }, (_, i) => ({
      name: `registry.site-a.example.com:5000/mirror/team-${i % 50}/service-${i}:v1.${i}.0`,
      digest: digest(100_000 + i),
    }));
    const bytes = formatInventory(inventory({ blobs, images })).length;
    expect(bytes).toBeLessThan(2 * 1024 * 1024);
    // The digests are the size (a line each, 77 bytes), not the format around them.
    const blobsOnly = formatInventory(inventory({ blobs, images: [] })).length;
    expect(blobsOnly).toBeLessThan(10_000 * 77 + 1024);
  });
});

describe('writeInventory and readInventory', () => {
  it('round-trips, and the digest is the sha256 of the file', async () => {
    const file = path.join(dir, 'plain.json');
    const w = await writeInventory(file, inventory());
    expect(w.signature).toBeUndefined();
    const bytes = await readFile(file);
    expect(w.digest).toBe(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
    const r = await readInventory(file);
    expect(r.digest).toBe(w.digest);
    expect(r.signature).toBe('none');
    expect(r.inventory).toEqual(JSON.parse(formatInventory(inventory()).toString('utf8')));
  });

  it('signs with --sign-key: the signature verifies with the public key, and not with another', async () => {
    const file = path.join(dir, 'signed.json');
    const w = await writeInventory(file, inventory(), keys.key);
    expect(w.signature).toBe(`${file}.sig`);
    expect((await readInventory(file, { key: keys.pub })).signature).toBe('valid');
    const wrong = await readInventory(file, { key: other.pub }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(IntegrityError);
    expect((wrong as FerryError).code).toBe('SIGNATURE_INVALID');
    expect((wrong as FerryError).exitCode).toBe(3);
    // Without a key, a signature present is not checked.
    expect((await readInventory(file)).signature).toBe('none');
  });

  it('refuses a file changed after signing', async () => {
    const file = path.join(dir, 'tampered.json');
    await writeInventory(file, inventory(), keys.key);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('a note', 'b note'));
    const err = await readInventory(file, { key: keys.pub }).catch((e: unknown) => e);
    expect((err as FerryError).code).toBe('SIGNATURE_INVALID');
  });

  it('refuses a missing signature when a key is given', async () => {
    const file = path.join(dir, 'unsigned.json');
    await writeInventory(file, inventory());
    const err = await readInventory(file, { key: keys.pub }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IntegrityError);
    expect((err as FerryError).code).toBe('SIGNATURE_MISSING');
  });

  it('refuses bad JSON, a wrong format version, a bad digest and a wrong media type', async () => {
    const cases: Array<[string, string, string]> = [
      ['bad-json', '{"mediaType": ', 'INVENTORY_INVALID'],
      [
        'version-2',
        formatInventory(inventory()).toString('utf8').replace('"formatVersion": 1', '"formatVersion": 2'),
        'FORMAT_VERSION_UNSUPPORTED',
      ],
      ['no-version', JSON.stringify({ ...inventory(), formatVersion: undefined }), 'FORMAT_VERSION_UNSUPPORTED'],
      ['bad-digest', JSON.stringify({ ...inventory(), blobs: ['sha256:abc'] }), 'INVENTORY_INVALID'],
      ['bad-type', JSON.stringify({ ...inventory(), mediaType: 'application/json' }), 'INVENTORY_INVALID'],
      ['extra-field', JSON.stringify({ ...inventory(), extra: 1 }), 'INVENTORY_INVALID'],
      ['array', '[]', 'FORMAT_VERSION_UNSUPPORTED'],
    ];
    for (const [name, text, code] of cases) {
      const file = path.join(dir, `${name}.json`);
      await writeFile(file, text);
      const err = await readInventory(file).catch((e: unknown) => e);
      expect(err, name).toBeInstanceOf(IntegrityError);
      expect((err as FerryError).code, name).toBe(code);
    }
    const file = path.join(dir, 'bad-digest.json');
    expect(((await readInventory(file).catch((e: unknown) => e)) as Error).message).toContain('blobs.0');
  });

  it('refuses a file over the size limit before reading it, and says when there is no file', async () => {
    const big = path.join(dir, 'big.json');
    await writeFile(big, '');
    await truncate(big, INVENTORY_LIMITS.maxBytes + 1); // sparse: nothing is written
    const err = await readInventory(big).catch((e: unknown) => e);
    expect((err as FerryError).code).toBe('INVENTORY_INVALID');
    expect((err as Error).message).toContain('over the');
    const none = await readInventory(path.join(dir, 'nope.json')).catch((e: unknown) => e);
    expect(none).toBeInstanceOf(UsageError);
    expect((none as Error).message).toContain('no such file');
    const isDir = await readInventory(dir).catch((e: unknown) => e);
    expect(isDir).toBeInstanceOf(UsageError);
  });
});
