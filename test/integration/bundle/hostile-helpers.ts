/**
 * Shared by the hostile-* and property tests: rewrite a manifest member (its name, digest and
 * every reference to it kept consistent), and run a bundle through verify, load --to oci: and
 * inspect in-process, reporting exit codes as the CLI would and what load named.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { MEMBER, rawBlobPath, type BundleManifest } from '../../../src/bundle/format.js';
import { verifyBundle } from '../../../src/bundle/verify.js';
import { load } from '../../../src/commands/load.js';
import { onlyIntegrityFailures } from '../../../src/commands/report.js';
import { sha, type Member } from './craft.js';

/** The exit code the CLI boundary gives an error (1 for anything that is not a FerryError: a crash). */
export function exitOf(err: unknown): number {
  const code = (err as { exitCode?: unknown }).exitCode;
  return typeof code === 'number' ? code : 1;
}

/** index.json of a member list, parsed. */
export function indexOf(ms: Member[]): { manifests: Array<Record<string, unknown>> } & Record<string, unknown> {
  return JSON.parse(ms.find((m) => m.name === MEMBER.index)!.data.toString('utf8'));
}

/** Replace index.json's bytes (size and sha256 in the manifest follow). */
export function setIndex(ms: Member[], man: BundleManifest, doc: unknown): void {
  const data = Buffer.from(JSON.stringify(doc));
  ms.find((m) => m.name === MEMBER.index)!.data = data;
  const e = man.members.find((m) => m.path === MEMBER.index)!;
  e.size = data.length;
  e.sha256 = sha(data);
}

/**
 * Replace the raw manifest member `digest` by `bytes`: the member is renamed to the new digest,
 * and index.json entries and ferry-bundle.json images that named the old one name the new one
 * (digest and size). Returns the new digest.
 */
export function rewriteManifest(ms: Member[], man: BundleManifest, digest: string, bytes: Buffer): string {
  const hex = sha(bytes);
  const nd = `sha256:${hex}`;
  const old = rawBlobPath(digest.slice(7));
  const mem = ms.find((m) => m.name === old)!;
  mem.name = rawBlobPath(hex);
  mem.data = bytes;
  const e = man.members.find((m) => m.path === old)!;
  Object.assign(e, { path: rawBlobPath(hex), digest: nd, sha256: hex, size: bytes.length });
  for (const i of man.images) if (i.digest === digest) Object.assign(i, { digest: nd, size: bytes.length });
  const idx = indexOf(ms);
  for (const d of idx.manifests) if (d && d.digest === digest) Object.assign(d, { digest: nd, size: bytes.length });
  setIndex(ms, man, idx);
  return nd;
}

/** A raw member's JSON, parsed. */
export function jsonOf(ms: Member[], digest: string): Record<string, unknown> & { manifests?: Array<Record<string, unknown>> } {
  return JSON.parse(ms.find((m) => m.name === rawBlobPath(digest.slice(7)))!.data.toString('utf8'));
}

export interface Outcome {
  verify: number;
  load: number;
  /** index.json entries in the load target afterwards. */
  named: number;
  loadError?: string;
}

/** index.json entries of an OCI layout directory (0 when there is none). */
export function namedIn(dir: string): number {
  const f = path.join(dir, 'index.json');
  if (!existsSync(f)) return 0;
  return (JSON.parse(readFileSync(f, 'utf8')) as { manifests?: unknown[] }).manifests?.length ?? 0;
}

/** verify's exit code (0 or 3; a throw is its error's), load --to oci:dir's, and what load named. */
export async function verifyAndLoad(file: string, dir: string, opts: { platform?: boolean; parallel?: boolean } = {}): Promise<Outcome> {
  let verify: number;
  try {
    verify = (await verifyBundle(file, opts.parallel === false ? { parallel: false } : {})).ok ? 0 : 3;
  } catch (err) {
    verify = exitOf(err);
  }
  let code: number;
  let loadError: string | undefined;
  try {
    const r = await load({
      source: file,
      to: `oci:${dir}`,
      concurrency: 2,
      ...(opts.platform ? { platforms: [{ os: 'linux', architecture: 'amd64', variant: undefined }] } : {}),
    });
    code = r.failures.length === 0 ? 0 : onlyIntegrityFailures(r.failures) ? 3 : 1;
    if (code !== 0) loadError = r.failures.map((f) => `${f.errorCode}: ${f.error}`).join('; ');
  } catch (err) {
    code = exitOf(err);
    loadError = `${(err as { code?: string }).code}: ${(err as Error).message}`;
  }
  return { verify, load: code, named: namedIn(dir), ...(loadError ? { loadError } : {}) };
}
