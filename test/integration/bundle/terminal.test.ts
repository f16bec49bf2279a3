/**
 * Untrusted strings from a bundle reach the terminal only made harmless: a reference and a
 * platform carrying ESC/OSC sequences (which would set the window title, write the clipboard
 * with OSC 52, or wipe earlier lines) are printed as visible escapes by inspect, verify and
 * load, and --json carries them unchanged as JSON escapes.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { ferry } from '../../helpers/cli.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { makeStore, manOf, readMembers, setMan, tarOf } from './craft.js';

const OSC_TITLE = '\x1b]0;pwned\x07';
const OSC_CLIPBOARD = '\x1b]52;c;cm0gLXJmIH4K\x07';
const WIPE = '\x1b[2J\x1b[H';
/** Anything a terminal acts on (C0 but newline, DEL, C1). */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

let work: string;
let hostile: string;

beforeAll(async () => {
  work = createTempDir('terminal');
  const st = makeStore(path.join(work, 'store'), 64 * 1024);
  const key = makeKeyPair(work, 'key', 'ed25519');
  const bundle = path.join(work, 'b.ferry');
  await writeBundle({ store: await OciLayout.open(st.dir), output: bundle, compression: 'auto', signKey: key.key });
  const ms = await readMembers(bundle);
  const man = manOf(ms);
  man.images[0]!.ref = `example.com/app:v1${OSC_TITLE}${OSC_CLIPBOARD}`;
  man.images[0]!.platforms = [`linux/amd64${WIPE}`];
  hostile = path.join(work, 'hostile.ferry');
  await writeFile(hostile, tarOf(setMan(ms, man, key.key)));
});
afterAll(cleanupHarness);

function expectHarmless(text: string): void {
  expect(text).not.toMatch(RAW_CONTROL);
}

describe('hostile strings in a bundle reach the terminal harmlessly', () => {
  it('inspect prints the reference and platform with visible escapes', async () => {
    const r = await ferry(['inspect', hostile]);
    expectHarmless(r.stdout);
    expectHarmless(r.stderr);
    expect(r.stdout).toContain('example.com/app:v1\\x1b]0;pwned\\x07\\x1b]52;c;');
    expect(r.stdout).toContain('linux/amd64\\x1b[2J');
  });

  it('inspect --json keeps the value (JSON escapes) and prints no raw control', async () => {
    const r = await ferry(['inspect', '--json', hostile]);
    expectHarmless(r.stdout);
    const doc = JSON.parse(r.stdout.trim().split('\n').pop()!) as { images: Array<{ ref: string }> };
    expect(doc.images.map((i) => i.ref)).toContain(`example.com/app:v1${OSC_TITLE}${OSC_CLIPBOARD}`);
  });

  it('verify and load report it without raw controls, and load names nothing', async () => {
    const v = await ferry(['verify', hostile]);
    expectHarmless(v.stdout);
    expectHarmless(v.stderr);
    const dest = path.join(work, 'out');
    const l = await ferry(['load', hostile, '--to', `oci:${dest}`]);
    expectHarmless(l.stdout);
    expectHarmless(l.stderr);
    expect(l.code).not.toBe(0);
    expect(l.stderr).toContain('\\x1b');
    // The bundle is one unit: its hostile entry fails the load, and no image of it is named.
    const index = await readFile(path.join(dest, 'index.json'), 'utf8').catch(() => '{"manifests":[]}');
    expect((JSON.parse(index) as { manifests: unknown[] }).manifests).toEqual([]);
  });
});
