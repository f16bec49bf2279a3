/**
 * `--format k3s`: `/etc/rancher/k3s/registries.yaml` (RKE2: `/etc/rancher/rke2/registries.yaml`),
 * the file from which k3s and RKE2 write containerd's hosts.toml files at start-up
 * (docs.k3s.io, "Private Registry Configuration"). `mirrors.<upstream>.endpoint` is the mirror
 * host; a prefix or scoped host goes in `rewrite`, which k3s applies to the repository path
 * (`"^(.*)$": "PREFIX/$1"`); `configs.<HOST>.tls` carries TLS. Credentials (`configs.<HOST>.auth`)
 * are never written: the file is handed around, a comment says where they go. Pure.
 */
import { Document, isScalar, visit } from 'yaml';
import { comment, headerLines, mirrorPath, type Generated, type MirrorInput } from './model.js';

interface K3sMirror {
  endpoint: string[];
  rewrite?: Record<string, string>;
}

interface K3sTls {
  ca_file?: string;
  insecure_skip_verify?: boolean;
}

export function k3sConfig(input: MirrorInput): Generated {
  const { mirror } = input;
  const mirrors: Record<string, K3sMirror> = {};
  for (const upstream of input.upstreams) {
    const p = mirrorPath(mirror, upstream);
    mirrors[upstream] = {
      endpoint: [`${mirror.scheme}://${mirror.host}`],
      ...(p === '' ? {} : { rewrite: { '^(.*)$': `${p}/$1` } }),
    };
  }
  const tls: K3sTls = {};
  if (mirror.tls.kind === 'ca') tls.ca_file = mirror.tls.file;
  if (mirror.tls.kind === 'insecure' && mirror.scheme === 'https') tls.insecure_skip_verify = true;
  const doc: { mirrors: Record<string, K3sMirror>; configs?: Record<string, { tls: K3sTls }> } = { mirrors };
  if (Object.keys(tls).length > 0) doc.configs = { [mirror.host]: { tls } };
  const header = comment([
    ...headerLines(mirror, 'k3s and RKE2 pull the upstream names from the mirror'),
    'Install: /etc/rancher/k3s/registries.yaml (RKE2: /etc/rancher/rke2/registries.yaml) on every node,',
    'then restart the service (systemctl restart k3s, k3s-agent, rke2-server or rke2-agent).',
    'In a true air gap also start k3s/RKE2 with --disable-default-registry-endpoint (releases since January 2024),',
    'so that pulls never wait on the unreachable upstream.',
    `Credentials are not written here: if the mirror needs them, add configs."${mirror.host}".auth (username, password)`,
    'on each node yourself, in a file readable by root only.',
  ]);
  const yaml = new Document(doc);
  // Registry hosts with a port and the rewrite pattern are valid plain keys, but quoted (as the
  // k3s documentation writes them) nobody has to know YAML's plain-scalar rules to read them.
  visit(yaml, {
    Pair(_key, pair) {
      if (isScalar(pair.key) && typeof pair.key.value === 'string' && /[^a-z0-9._-]/i.test(pair.key.value)) pair.key.type = 'QUOTE_DOUBLE';
    },
  });
  const body = yaml.toString({ lineWidth: 0, defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' });
  return { files: [{ path: 'registries.yaml', text: `${header}\n${body}` }], notes: [] };
}
