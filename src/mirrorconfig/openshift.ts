/**
 * `--format openshift`: an `ImageDigestMirrorSet` and an `ImageTagMirrorSet`
 * (config.openshift.io/v1), one entry per upstream: `source` the upstream registry, `mirrors`
 * the mirror location (`HOST/PREFIX[/SCOPEDHOST]`, no scheme, as the CRD wants). Only the
 * documented fields: `spec.imageDigestMirrors[]` / `spec.imageTagMirrors[]` with `source`,
 * `mirrors` and `mirrorSourcePolicy`, which is left out (its default, AllowContactingSource:
 * pulls try the mirror first; the admin may switch to NeverContactSource). Pure.
 */
import { stringify } from 'yaml';
import { comment, headerLines, mirrorLocation, type Generated, type MirrorInput } from './model.js';

export const MIRROR_SET_NAME = 'ferry-mirror';

export function openshiftConfig(input: MirrorInput): Generated {
  const { mirror } = input;
  const entries = input.upstreams.map((upstream) => ({ source: upstream, mirrors: [mirrorLocation(mirror, upstream)] }));
  const tlsNotes =
    mirror.scheme === 'http' || mirror.tls.kind === 'insecure'
      ? [
          `The mirror is ${mirror.scheme === 'http' ? 'plain HTTP' : 'not verified'}: add ${mirror.host} to spec.registrySources.insecureRegistries`,
          'of image.config.openshift.io/cluster (oc edit image.config.openshift.io cluster).',
        ]
      : mirror.tls.kind === 'ca'
        ? [
            `TLS: trust ${mirror.tls.file} through a ConfigMap in openshift-config whose key is the host with ".." for ":"`,
            '(oc create configmap registry-ca -n openshift-config --from-file=HOST..PORT=ca.crt) named in',
            'spec.additionalTrustedCA of image.config.openshift.io/cluster.',
          ]
        : [];
  const file = (kind: string, field: string, name: string, what: string) => {
    const header = comment([
      ...headerLines(mirror, what),
      `Install: oc apply -f ${name}   (the Machine Config Operator then updates the nodes' registries.conf).`,
      ...tlsNotes,
      'mirrorSourcePolicy is left at its default (AllowContactingSource: the mirror first, then the source). Where the',
      'sources can never be reached, NeverContactSource under each entry fails a missing image at once instead of after a timeout.',
      'Pull secrets stay in the cluster (the global pull secret); nothing secret is written here.',
    ]);
    const body = stringify(
      { apiVersion: 'config.openshift.io/v1', kind, metadata: { name: MIRROR_SET_NAME }, spec: { [field]: entries } },
      { lineWidth: 0 },
    );
    return { path: name, text: `${header}\n${body}` };
  };
  return {
    files: [
      file('ImageDigestMirrorSet', 'imageDigestMirrors', 'imagedigestmirrorset.yaml', 'OpenShift pulls by digest from the mirror'),
      file('ImageTagMirrorSet', 'imageTagMirrors', 'imagetagmirrorset.yaml', 'OpenShift pulls by tag from the mirror'),
    ],
    notes: [],
  };
}
