/**
 * `--format containerd`: one `certs.d/<upstream>/hosts.toml` per upstream registry (containerd's
 * registry host configuration, read from the directory `config_path` names, by `ctr
 * --hosts-dir` and by nerdctl) and a README with the one line of containerd configuration
 * that turns it on. Pure.
 *
 * containerd asks `<host>/v2/<repo>/…` of a mirror with no path, and `<url>/<repo>/…` with
 * `override_path = true`, which is how a prefix (and the scoped host) is put in front of the
 * repository. To a mirror it also sends `?ns=<upstream>`, which `ferry serve` reads and a
 * plain registry ignores.
 */
import {
  comment,
  headerLines,
  mirrorPath,
  tomlString,
  upstreamEndpoint,
  type Generated,
  type GeneratedFile,
  type MirrorInput,
} from './model.js';

export const CONTAINERD_CERTS_DIR = '/etc/containerd/certs.d';

export function containerdConfig(input: MirrorInput): Generated {
  const { mirror } = input;
  const files: GeneratedFile[] = [];
  for (const upstream of input.upstreams) {
    const p = mirrorPath(mirror, upstream);
    const url = p === '' ? `${mirror.scheme}://${mirror.host}` : `${mirror.scheme}://${mirror.host}/v2/${p}`;
    const lines = [
      comment([
        ...headerLines(mirror, `containerd pulls ${upstream}/… from the mirror`),
        `Install: copy to ${CONTAINERD_CERTS_DIR}/${upstream}/hosts.toml on every node and set config_path (README.md);`,
        'hosts files are read at each pull, no restart needed once config_path is set.',
        'Credentials are not written here: containerd takes them from its CRI auth config or the client (ctr --user).',
      ]),
      `server = ${tomlString(upstreamEndpoint(upstream))}`,
      '',
      `[host.${tomlString(url)}]`,
      '  capabilities = ["pull", "resolve"]',
    ];
    if (p !== '') lines.push('  override_path = true');
    if (mirror.tls.kind === 'insecure' && mirror.scheme === 'https') lines.push('  skip_verify = true');
    if (mirror.tls.kind === 'ca') lines.push(`  ca = ${tomlString(mirror.tls.file)}`);
    files.push({ path: `certs.d/${upstream}/hosts.toml`, text: `${lines.join('\n')}\n` });
  }
  files.push({ path: 'README.md', text: readme(input) });
  return { files, notes: [] };
}

function readme(input: MirrorInput): string {
  const list = input.upstreams.map((u) => `- \`${u}\` → \`certs.d/${u}/hosts.toml\``).join('\n');
  const example = input.upstreams[0] ?? 'docker.io';
  return `# containerd registry mirror configuration

${headerLines(input.mirror, 'containerd hosts.toml files').join('\n')}

${list}

## Install

1. Copy the \`certs.d\` directory to \`${CONTAINERD_CERTS_DIR}\` on every node:
   \`cp -r certs.d/. ${CONTAINERD_CERTS_DIR}/\`
2. Point containerd's CRI registry configuration at it, in \`/etc/containerd/config.toml\`
   (skip if it already does), then \`systemctl restart containerd\`:

   containerd 1.6 and 1.7 (config \`version = 2\`):

   \`\`\`toml
   [plugins."io.containerd.grpc.v1.cri".registry]
     config_path = "${CONTAINERD_CERTS_DIR}"
   \`\`\`

   containerd 2.x (config \`version = 3\`):

   \`\`\`toml
   [plugins."io.containerd.cri.v1.images".registry]
     config_path = "${CONTAINERD_CERTS_DIR}"
   \`\`\`

   Remove any \`registry.mirrors\` or \`registry.configs\` tables from that file: containerd
   ignores \`config_path\` while they are set.
3. Check from the node: \`ctr images pull --hosts-dir ${CONTAINERD_CERTS_DIR} ${example}/REPO:TAG\`
   (nerdctl and crictl use the CRI configuration above).

k3s and RKE2 write containerd's configuration themselves: use \`--format k3s\` there.
`;
}
