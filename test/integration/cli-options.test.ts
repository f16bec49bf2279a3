/**
 * Every repeatable option takes exactly one value per use: `--insecure-registry HOST REF…`
 * must not swallow the references after it (it used to say "nothing to pull").
 */
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ferry } from '../helpers/cli.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';

afterAll(cleanupHarness);

/** A loopback port nothing listens on: the run fails reaching it, after parsing. */
const NOWHERE = '127.0.0.1:9';

describe('repeatable options take one value per use', () => {
  it.each([
    ['--insecure-registry', NOWHERE],
    ['--platform', 'linux/amd64'],
    ['--ca-file', '/dev/null'],
    ['--certs-dir', '/nonexistent'],
  ])('%s VALUE REF: REF is an image, not a second value', async (flag, value) => {
    const store = path.join(createTempDir('opts'), 'store');
    const r = await ferry(['pull', '--store', store, flag, value, `${NOWHERE}/a/b:1`, `${NOWHERE}/c/d:2`]);
    expect(r.stderr).not.toContain('nothing to pull');
    // Both references were taken as images: each is named in its failure.
    expect(r.stderr).toContain(`${NOWHERE}/a/b:1`);
    expect(r.stderr).toContain(`${NOWHERE}/c/d:2`);
    expect(r.stdout).toMatch(/0 of 2 images/);
    expect(r.code).toBe(1);
  });
});
