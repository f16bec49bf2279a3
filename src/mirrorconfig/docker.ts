/**
 * `--format docker`: the keys of Docker Engine's `daemon.json` that make it pull Docker Hub
 * images from the mirror, and a README (JSON holds no comments). Pure.
 *
 * Docker Engine asks `registry-mirrors` only for Docker Hub images, and asks them for the
 * repository path as it is (`/v2/library/nginx/…`): a mirror URL with a path is refused by
 * dockerd. So the mirror must hold Hub images at its root, unscoped (`ferry load --to
 * docker://HOST`, or `ferry serve`); with a PREFIX or --scoped no daemon.json can work, and the
 * command says so (exit 2) instead of writing one. Images from other registries keep being
 * pulled by their own name, which cannot reach the mirror: the README and the notes list them
 * by the name they have on the mirror.
 */
import { UsageError } from '../util/errors.js';
import { fullName, headerLines, mirrorName, type Generated, type MirrorInput } from './model.js';

/**
 * The jq command that merges the generated keys into an existing daemon.json. jq's `*` alone
 * would replace the arrays (an operator's other mirrors lost): they are joined, ours first
 * (Docker tries mirrors in order), without duplicates. Exported for the test that runs it.
 */
export function mergeCommand(insecure: boolean): string {
  const join = (key: string): string => `."${key}" = $new."${key}" + (($old."${key}" // []) - $new."${key}")`;
  const program = [
    '.[0] as $old | .[1] as $new | $old * $new',
    join('registry-mirrors'),
    ...(insecure ? [join('insecure-registries')] : []),
  ].join(' | ');
  return `jq -s '${program}' /etc/docker/daemon.json daemon.json > /tmp/daemon.json && mv /tmp/daemon.json /etc/docker/daemon.json`;
}

export function dockerConfig(input: MirrorInput): Generated {
  const { mirror } = input;
  if (mirror.prefix !== '' || mirror.scoped) {
    throw new UsageError(
      `Docker Engine cannot use ${mirror.host}/${[mirror.prefix, mirror.scoped ? '<upstream>' : ''].filter(Boolean).join('/')} as a mirror: ` +
        'registry-mirrors are asked for Docker Hub paths as they are (library/nginx), so the mirror must hold them at its root',
      {
        hint: `load the Docker Hub images with ferry load BUNDLE --to docker://${mirror.host} (no prefix, no --scoped) or serve them with ferry serve, or pull them by their mirror names (HOST/PREFIX/…)`,
      },
    );
  }
  if (!input.upstreams.includes('docker.io')) {
    throw new UsageError('Docker Engine uses registry mirrors only for Docker Hub, and no image here comes from docker.io', {
      hint: `pull the images by their mirror names instead (${mirror.host}/REPO:TAG), or add --for docker.io`,
    });
  }
  const url = `${mirror.scheme}://${mirror.host}`;
  const insecure = mirror.scheme === 'http' || mirror.tls.kind === 'insecure';
  const daemon: Record<string, string[]> = { 'registry-mirrors': [url] };
  if (insecure) daemon['insecure-registries'] = [mirror.host];
  const elsewhere = input.images.filter((i) => i.upstream !== 'docker.io');
  const otherUpstreams = input.upstreams.filter((u) => u !== 'docker.io');
  const notes: string[] = [];
  if (otherUpstreams.length > 0) {
    notes.push(
      `Docker Engine uses the mirror for Docker Hub images only; images from ${otherUpstreams.join(', ')} must be pulled by their mirror names` +
        (elsewhere.length > 0 ? ` (${elsewhere.length} listed in README.md)` : ''),
    );
  }
  const readme = `# Docker Engine registry mirror

${headerLines(mirror, 'Docker Engine pulls Docker Hub images from the mirror').join('\n')}

## Install

1. Without an \`/etc/docker/daemon.json\`, copy \`daemon.json\` there. With one, merge the keys
   into it: this mirror first, the mirrors${insecure ? ' and insecure registries' : ''} and every other setting already there kept:

   \`\`\`sh
   ${mergeCommand(insecure)}
   \`\`\`

   (or start dockerd with \`--registry-mirror ${url}\`${insecure ? ` \`--insecure-registry ${mirror.host}\`` : ''}).
2. \`systemctl reload docker\` (both keys are reloadable; restart works too).
3. Check: \`docker info\` lists the mirror under "Registry Mirrors"; \`docker pull nginx:TAG\` then comes from it.
${mirror.tls.kind === 'ca' ? `\nTLS: daemon.json has no CA setting; copy ${mirror.tls.file} to \`/etc/docker/certs.d/${mirror.host}/ca.crt\`.\n` : ''}
Credentials are not written here: \`docker login ${mirror.host}\` stores them in the client's config.json.

## What Docker will not take from the mirror by the original name

Docker Engine honours registry-mirrors only for Docker Hub (docker.io), and only for a mirror
URL without a path. ${
    otherUpstreams.length === 0
      ? 'Every image here comes from Docker Hub.'
      : `Images from ${otherUpstreams.join(', ')} must be pulled (and referenced in compose files) by their mirror name:

${elsewhere.length > 0 ? elsewhere.map((i) => `- \`${fullName(i)}\` → \`${mirrorName(mirror, i)}\``).join('\n') : otherUpstreams.map((u) => `- \`${u}/REPO:TAG\` → \`${mirror.host}/REPO:TAG\``).join('\n')}`
  }
`;
  return {
    files: [
      { path: 'daemon.json', text: `${JSON.stringify(daemon, null, 2)}\n` },
      { path: 'README.md', text: readme },
    ],
    notes,
  };
}
