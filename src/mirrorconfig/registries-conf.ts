/**
 * `--format registries-conf`: a containers-registries.conf(5) file, version 2, for everything
 * built on containers/image (CRI-O, podman, buildah, skopeo): one `[[registry]]` per upstream
 * with the mirror as its `[[registry.mirror]]`. Pure.
 *
 * `pull-from-mirror = "all"` (containers/image's default, written out so that it is visible):
 * in an air gap the mirror must answer pulls by tag too, or nothing resolves. It costs no
 * honesty about digests: containers/image checks what a mirror returns for `@sha256:…` against
 * that digest, and a tag resolves to the digest the bundle carried, since ferry copies
 * manifests byte for byte. ("digest-only" would send tag pulls to the unreachable upstream.)
 */
import { comment, headerLines, mirrorLocation, tomlString, type Generated, type MirrorInput } from './model.js';

export function registriesConf(input: MirrorInput): Generated {
  const { mirror } = input;
  // containers/image's `insecure` allows both an unverified certificate and plain HTTP.
  const insecure = mirror.scheme === 'http' || mirror.tls.kind === 'insecure';
  const out: string[] = [
    comment([
      ...headerLines(mirror, 'CRI-O, podman, buildah and skopeo pull the upstream names from the mirror'),
      'Install as a drop-in: /etc/containers/registries.conf.d/50-ferry-mirror.conf (podman, buildah, skopeo read it',
      'at their next run; CRI-O: systemctl restart crio), or point CONTAINERS_REGISTRIES_CONF at this file.',
      'pull-from-mirror = "all": in an air gap tags must resolve on the mirror too; pulls by digest are checked',
      'against the digest whichever registry answers, and ferry keeps manifests byte for byte, so the digests',
      'stay those of the bundle.',
      ...(mirror.tls.kind === 'ca'
        ? [`TLS: registries.conf has no CA setting; copy ${mirror.tls.file} to /etc/containers/certs.d/${mirror.host}/ca.crt.`]
        : []),
      'Credentials are never written here: they come from the auth file (podman login, $XDG_RUNTIME_DIR/containers/auth.json).',
    ]),
  ];
  for (const upstream of input.upstreams) {
    out.push(
      '',
      '[[registry]]',
      `prefix = ${tomlString(upstream)}`,
      `location = ${tomlString(upstream)}`,
      '',
      '[[registry.mirror]]',
      `location = ${tomlString(mirrorLocation(mirror, upstream))}`,
      ...(insecure ? ['insecure = true'] : []),
      'pull-from-mirror = "all"',
    );
  }
  return { files: [{ path: 'registries.conf', text: `${out.join('\n')}\n` }], notes: [] };
}
