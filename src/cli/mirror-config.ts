/** `ferry mirror-config`: flags → options → mirrorConfig(); the files on stdout, or the list of files written. */
import type { Argv } from 'yargs';
import { formatForStdout, mirrorConfig } from '../commands/mirror-config.js';
import { FORMATS, type MirrorFormat } from '../mirrorconfig/model.js';
import { writeErr, writeOut } from './terminal.js';

interface MirrorConfigArgs {
  sources: string[];
  registry: string;
  format: MirrorFormat;
  scoped?: boolean;
  insecure?: boolean;
  'ca-file'?: string;
  for?: string[];
  output?: string;
}

export function mirrorConfigCommand<T>(y: Argv<T>): Argv<T> {
  return y.command<MirrorConfigArgs>(
    'mirror-config [sources..]',
    'Write the runtime configuration (containerd, CRI-O/podman, k3s/RKE2, Docker, OpenShift) that pulls the original image names from the mirror',
    (cmd) =>
      cmd
        .positional('sources', {
          type: 'string',
          array: true,
          default: [],
          describe: 'bundles, stores (oci:DIR or DIR), profiles or lock files whose images the mirror holds',
        })
        .option('registry', {
          type: 'string',
          demandOption: true,
          describe: 'the mirror: [http://|https://]HOST[:PORT][/PREFIX], as given to ferry load --to docker:// (default https)',
        })
        .option('format', { type: 'string', choices: FORMATS, demandOption: true, describe: 'the runtime to configure' })
        .option('scoped', { type: 'boolean', describe: 'the images were loaded with --scoped (upstream host as the first path component)' })
        .option('insecure', { type: 'boolean', describe: 'do not verify the mirror certificate (runtimes that allow it: plain HTTP too)' })
        .option('ca-file', { type: 'string', describe: 'CA file that signed the mirror certificate, as its path on the nodes' })
        .option('for', {
          type: 'string',
          array: true,
          nargs: 1,
          describe: "upstream registries to configure besides the sources', comma-separated (docker.io,ghcr.io)",
        })
        .option('output', { alias: 'o', type: 'string', describe: 'write the files under this directory (default: print them)' })
        .example(
          '$0 mirror-config site-a.ferry --registry registry.local:5000/mirror --format containerd -o certs',
          'containerd hosts.toml files for every registry the bundle names',
        )
        .example(
          '$0 mirror-config --for docker.io,ghcr.io --registry http://10.0.0.5:5000 --format registries-conf',
          'podman/CRI-O, plain HTTP',
        )
        .example('$0 mirror-config profiles/site-a.yaml --registry reg.local/mirror --scoped --format k3s', 'k3s/RKE2 registries.yaml'),
    async (args) => {
      const result = await mirrorConfig({
        registry: args.registry,
        format: args.format,
        sources: args.sources,
        ...(args.scoped ? { scoped: true } : {}),
        ...(args.insecure ? { insecure: true } : {}),
        ...(args['ca-file'] !== undefined ? { caFile: args['ca-file'] } : {}),
        ...(args.for ? { for: args.for } : {}),
        ...(args.output !== undefined ? { output: args.output } : {}),
      });
      if (args.output === undefined) writeOut(formatForStdout(result.files));
      else for (const f of result.written) writeOut(`wrote ${f}\n`);
      for (const n of result.notes) writeErr(`note: ${n}\n`);
      process.exitCode = 0;
    },
  );
}
