/**
 * Where the third-party fixtures live: `../shared/fixtures` beside the project root (CI lays
 * them there), or $FERRY_FIXTURES. Suites that need them are skipped, saying why, when absent.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FIXTURES = process.env.FERRY_FIXTURES ?? path.resolve(PROJECT_ROOT, '../shared/fixtures');
export const HAVE_FIXTURES = existsSync(path.join(FIXTURES, 'SOURCES.md'));

if (!HAVE_FIXTURES) {
  console.warn(
    `[ferry tests] third-party fixtures not found at ${FIXTURES}: fixture-based suites are skipped (set FERRY_FIXTURES or place shared/ beside the project)`,
  );
}

export function fixture(...parts: string[]): string {
  return path.join(FIXTURES, ...parts);
}
