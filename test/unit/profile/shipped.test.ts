/** Every profile shipped in profiles/ validates, its references normalise, and schema.json is the schema ferry checks with. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadProfiles } from '../../../src/profile/load.js';
import { profileJsonSchema } from '../../../src/profile/schema.js';

const PROFILES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../profiles');
const shipped = readdirSync(PROFILES).filter((f) => f.endsWith('.yaml'));

describe('shipped profiles', () => {
  it('there are some, and schema.json is what npm run schema writes from src/profile/schema.ts', () => {
    expect(shipped.length).toBeGreaterThanOrEqual(5);
    const onDisk = JSON.parse(readFileSync(path.join(PROFILES, 'schema.json'), 'utf8')) as unknown;
    expect(onDisk).toEqual(profileJsonSchema());
  });

  it.each(shipped)('%s validates, names itself after its file, and every reference is a full one', async (file) => {
    const text = readFileSync(path.join(PROFILES, file), 'utf8');
    // Editors find the schema through the first line.
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./schema.json');
    const set = await loadProfiles([path.join(PROFILES, file)], { env: {} });
    expect(set.names).toEqual([file.replace(/\.yaml$/, '')]);
    expect(set.entries.length).toBeGreaterThan(0);
    for (const e of set.entries) {
      // A registry host first: a shipped profile never leans on docker.io being the default.
      expect(e.written.split('/')[0]).toMatch(/[.:]|^localhost$/);
      expect(e.ref.domain).not.toBe('');
    }
  });
});
