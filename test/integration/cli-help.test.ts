/**
 * `ferry <command> --help`: every example command is printed whole, on a line of its own
 * (yargs' example table used to hard-wrap commands in the middle, so a pasted example ran
 * something else), at COLUMNS=80, at 40, and at the default width of piped output. The rest of
 * the help text still fits the width. The built CLI is run.
 */
import { existsSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, ferry } from '../helpers/cli.js';

/** The examples each command's help gives, as a user would paste them. */
const EXAMPLES: Record<string, string[]> = {
  plan: ['ferry plan -p profiles/site-a.yaml', 'ferry plan -p profiles/site-a.yaml -o site-a.lock.json'],
  pull: [
    'ferry pull nginx:1.27 ghcr.io/org/app:2.1',
    'ferry pull -p profiles/site-a.yaml',
    'ferry pull --lock site-a.lock.json',
    'ferry pull -f images.txt --platform linux/amd64 --store /media/usb/store',
  ],
  serve: [
    'ferry serve oci:./ferry-store',
    'ferry serve oci:/media/usb/store --listen 0.0.0.0:443 --tls-cert reg.crt --tls-key reg.key --htpasswd users',
    'ferry serve images.ferry --key pub.pem --require-signature',
    'ferry serve oci:./layout:team/app',
  ],
  bundle: [
    'ferry bundle -p profiles/site-a.yaml --sign-key key.pem',
    'ferry bundle --lock site-a.lock.json -o site-a.ferry',
    'ferry bundle nginx:1.27 redis:7 -o images.ferry --sign-key key.pem',
    'ferry bundle --from-store --store /srv/store -o all.ferry',
    'ferry bundle --lock site-a.lock.json -o dvd.ferry --volume-size 4.7G',
    'ferry bundle --lock site-a.lock.json --base site-a.inventory.json -o update.ferry',
  ],
  verify: ['ferry verify images.ferry --key pub.pem --require-signature'],
  load: [
    'ferry load images.ferry --to docker://registry.local:5000/mirror',
    'ferry load images.ferry --key pub.pem --to containerd',
    'ferry load dvd.*.ferry --to oci:/srv/store',
    'cat images.ferry | ferry load - --to docker-daemon',
  ],
  mirror: [
    'ferry mirror -f images.txt --to docker://registry.local:5000/mirror',
    'ferry mirror -p profiles/site-a.yaml --to docker://registry.local:5000',
  ],
  copy: ['ferry copy docker://ghcr.io/org/app:1 oci:./store', 'ferry copy --all bundle:images.ferry docker://registry.local:5000/mirror'],
  'mirror-config': [
    'ferry mirror-config site-a.ferry --registry registry.local:5000/mirror --format containerd -o certs',
    'ferry mirror-config --for docker.io,ghcr.io --registry http://10.0.0.5:5000 --format registries-conf',
    'ferry mirror-config profiles/site-a.yaml --registry reg.local/mirror --scoped --format k3s',
  ],
};

/** The lines after "Examples:" (up to the end of the help). */
function examplesSection(help: string): string[] {
  const lines = help.split('\n');
  const at = lines.indexOf('Examples:');
  return at === -1 ? [] : lines.slice(at + 1);
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first`);
});

describe.each([
  ['COLUMNS=80', { COLUMNS: '80' }, 80],
  ['COLUMNS=40', { COLUMNS: '40' }, 40],
  ['the default width (piped, no COLUMNS)', { COLUMNS: undefined }, 100],
])('ferry <command> --help at %s', (_label, env, width) => {
  it.each(Object.keys(EXAMPLES))('%s: each example command on one line of its own', async (command) => {
    const r = await ferry([command, '--help'], { env });
    expect(r.code, r.stderr).toBe(0);
    const section = examplesSection(r.stdout);
    // Only comments (the descriptions), blank lines and whole commands: no fragment of a command.
    const commands = section.filter((l) => l.trim() !== '' && !l.trimStart().startsWith('#')).map((l) => l.trim());
    expect(commands).toEqual(EXAMPLES[command]);
    // Each description is there, as a comment line above its command.
    for (const [i, line] of section.entries()) {
      if (commands.includes(line.trim())) expect(section[i - 1], `above ${line}`).toMatch(/^ {2}# \S/);
    }
    // Everything else fits the width (the options table, the descriptions).
    const overlong = r.stdout.split('\n').filter((l) => l.length > width && !commands.includes(l.trim()));
    expect(overlong).toEqual([]);
  });
});
