/**
 * `ferry mirror-config`: collect the upstream registries the sources name (mirrorconfig/
 * upstreams.ts), check that every image has a name on the mirror, run the format's pure
 * generator and either return the files (stdout) or write them under a directory, each
 * atomically.
 */
import path from 'node:path';
import { containerdConfig } from '../mirrorconfig/containerd.js';
import { dockerConfig } from '../mirrorconfig/docker.js';
import { k3sConfig } from '../mirrorconfig/k3s.js';
import {
  checkNames,
  parseMirror,
  parseUpstream,
  type Generated,
  type GeneratedFile,
  type MirrorFormat,
  type MirrorInput,
} from '../mirrorconfig/model.js';
import { openshiftConfig } from '../mirrorconfig/openshift.js';
import { registriesConf } from '../mirrorconfig/registries-conf.js';
import { collectUpstreams } from '../mirrorconfig/upstreams.js';
import { UsageError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsutil.js';

export interface MirrorConfigOptions {
  /** `--registry [http://|https://]HOST[:PORT][/PREFIX]`. */
  registry: string;
  format: MirrorFormat;
  scoped?: boolean;
  insecure?: boolean;
  caFile?: string;
  /** Upstream registries named with --for, in addition to the sources'. */
  for?: readonly string[];
  sources: readonly string[];
  /** Write the files under this directory; without it they are only returned. */
  output?: string;
}

export interface MirrorConfigResult {
  format: MirrorFormat;
  upstreams: string[];
  images: number;
  files: GeneratedFile[];
  /** Absolute paths written, with --output. */
  written: string[];
  notes: string[];
}

const GENERATORS: Record<MirrorFormat, (input: MirrorInput) => Generated> = {
  containerd: containerdConfig,
  'registries-conf': registriesConf,
  k3s: k3sConfig,
  docker: dockerConfig,
  openshift: openshiftConfig,
};

export async function mirrorConfig(opts: MirrorConfigOptions): Promise<MirrorConfigResult> {
  const generate = Object.hasOwn(GENERATORS, opts.format) ? GENERATORS[opts.format] : undefined;
  if (!generate) throw new UsageError(`unknown --format ${JSON.stringify(opts.format)}: ${Object.keys(GENERATORS).join(', ')}`);
  // Flags first: a bad --registry is reported before any source is read.
  const mirror = parseMirror(opts.registry, {
    ...(opts.scoped ? { scoped: true } : {}),
    ...(opts.insecure ? { insecure: true } : {}),
    ...(opts.caFile !== undefined ? { caFile: opts.caFile } : {}),
  });
  const extra = (opts.for ?? [])
    .flatMap((f) => f.split(','))
    .filter((f) => f.trim() !== '')
    .map(parseUpstream);
  const collected = await collectUpstreams(opts.sources, extra);
  const notes: string[] = [];
  for (const s of collected.sources) {
    if (s.skipped.length > 0)
      notes.push(`${s.source}: ${s.skipped.length} name(s) that are not image references skipped (${s.skipped.slice(0, 3).join(', ')})`);
  }
  if (collected.upstreams.length === 0) {
    throw new UsageError(
      opts.sources.length === 0
        ? 'no upstream registry to configure: give the bundles, stores, profiles or lock files to be mirrored, or --for docker.io,ghcr.io,…'
        : `no upstream registry found in ${opts.sources.join(', ')} (no named images)`,
      { hint: 'name the registries with --for docker.io,ghcr.io,…' },
    );
  }
  const input: MirrorInput = { mirror, upstreams: collected.upstreams, images: collected.images };
  checkNames(input);
  const generated = generate(input);
  notes.push(...generated.notes);
  const written: string[] = [];
  if (opts.output !== undefined) {
    const root = path.resolve(opts.output);
    for (const f of generated.files) {
      const target = path.join(root, ...f.path.split('/'));
      // Paths come from checked host names; this guards the guarantee, not the input.
      if (!target.startsWith(root + path.sep)) throw new Error(`generated path ${f.path} leaves ${root}`);
      await writeFileAtomic(target, f.text);
      written.push(target);
    }
  }
  return {
    format: opts.format,
    upstreams: collected.upstreams,
    images: collected.images.length,
    files: generated.files,
    written,
    notes,
  };
}

/** The files as one text for stdout: one file as it is; several, each after a `# file: PATH` line. */
export function formatForStdout(files: readonly GeneratedFile[]): string {
  if (files.length === 1) return files[0]!.text;
  return files.map((f) => `# file: ${f.path}\n${f.text}`).join('\n');
}
