/**
 * Crafting hostile bundles for tests: a small store written by hand (an index of two OCI
 * manifests (only the amd64 one has the raw-tar layer), a docker schema2 image, a gzip-typed random layer and an uncompressed-tar layer
 * that ferry stores as a zstd member), bundled by writeBundle, then rebuilt member by member
 * (the approach of the review's reproductions: edit members and ferry-bundle.json, keep
 * SHA256SUMS and totals consistent, re-sign with whatever key).
 */
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, randomBytes, sign } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { headerFor, tarPadding, TAR_TRAILER_SIZE } from '../../../src/tar/format.js';
import { indexTarFile, openTarEntry } from '../../../src/tar/reader.js';
import { MEMBER, rawBlobPath, type BundleManifest, type BundleMember } from '../../../src/bundle/format.js';
import { verifyBundle } from '../../../src/bundle/verify.js';
import { load } from '../../../src/commands/load.js';
import { onlyIntegrityFailures } from '../../../src/commands/report.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { createTempDir } from '../../harness/temp.js';

export const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

export interface Blob {
  digest: string;
  size: number;
  mediaType?: string;
}

export interface Store {
  dir: string;
  /** Random (incompressible) layer, typed as uncompressed tar: a large zstd member. */
  rawLayer: Blob;
  gzLayer: Blob;
  amd: Blob;
  arm: Blob;
  idx: Blob;
  dock: Blob;
}

/** An OCI layout with: example.com/app:v1 (an index of amd64/arm64), example.com/app:docker. */
export function makeStore(dir: string, rawLayerBytes = 4 * 1024 * 1024): Store {
  mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const put = (buf: Buffer, mediaType?: string): Blob => {
    const h = sha(buf);
    writeFileSync(path.join(dir, 'blobs', 'sha256', h), buf);
    return { digest: `sha256:${h}`, size: buf.length, ...(mediaType ? { mediaType } : {}) };
  };
  const js = (o: unknown): Buffer => Buffer.from(JSON.stringify(o));
  const gzLayer = put(randomBytes(100_000), 'application/vnd.oci.image.layer.v1.tar+gzip');
  const rawLayer = put(randomBytes(rawLayerBytes), 'application/vnd.oci.image.layer.v1.tar');
  // Only amd64 has the raw-tar layer: dropping it leaves amd64 (alone) incomplete.
  const mk = (arch: string): Blob => {
    const cfg = put(js({ architecture: arch, os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} }));
    const m = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg },
      layers: arch === 'amd64' ? [gzLayer, rawLayer] : [gzLayer],
    };
    return put(js(m), m.mediaType);
  };
  const amd = mk('amd64');
  const arm = mk('arm64');
  const idxDoc = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [
      { ...amd, platform: { os: 'linux', architecture: 'amd64' } },
      { ...arm, platform: { os: 'linux', architecture: 'arm64' } },
    ],
  };
  const idx = put(js(idxDoc), idxDoc.mediaType);
  const dcfg = put(js({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const dockDoc = {
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', ...dcfg },
    layers: [{ ...gzLayer, mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }],
  };
  const dock = put(js(dockDoc), dockDoc.mediaType);
  const ann = (n: string) => ({ annotations: { 'org.opencontainers.image.ref.name': n } });
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...idx, ...ann('example.com/app:v1') },
        { ...dock, ...ann('example.com/app:docker') },
      ],
    }),
  );
  writeFileSync(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  return { dir, rawLayer, gzLayer, amd, arm, idx, dock };
}

export interface Member {
  name: string;
  data: Buffer;
  /** Bytes written as they are instead of a header + data (hand-made headers). */
  raw?: Buffer;
}

export async function readMembers(file: string): Promise<Member[]> {
  const out: Member[] = [];
  for (const e of await indexTarFile(file)) {
    const chunks: Buffer[] = [];
    for await (const c of openTarEntry(file, e)) chunks.push(c as Buffer);
    out.push({ name: e.rawName, data: Buffer.concat(chunks) });
  }
  return out;
}

export function tarOf(members: Member[], trailer?: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (const m of members) {
    if (m.raw) {
      parts.push(m.raw);
      continue;
    }
    parts.push(
      headerFor({ name: m.name, type: 'file', size: m.data.length, mtime: 946684800 }),
      m.data,
      Buffer.alloc(tarPadding(m.data.length)),
    );
  }
  parts.push(Buffer.alloc(TAR_TRAILER_SIZE));
  if (trailer) parts.push(trailer);
  return Buffer.concat(parts);
}

export function manOf(ms: Member[]): BundleManifest {
  return JSON.parse(ms.find((m) => m.name === MEMBER.manifest)!.data.toString('utf8')) as BundleManifest;
}

/**
 * Write ferry-bundle.json back after `man` was edited: SHA256SUMS and totals follow, and the
 * signature member is re-made with `keyFile` (or dropped when keyFile is undefined).
 */
export function setMan(ms: Member[], man: BundleManifest, keyFile?: string): Member[] {
  const sums = ms.find((m) => m.name === MEMBER.checksums)!;
  sums.data = Buffer.from(
    man.members
      .filter((m) => m.path !== MEMBER.checksums)
      .map((m) => `${m.sha256}  ${m.path}\n`)
      .join(''),
  );
  const se = man.members.find((m) => m.path === MEMBER.checksums)!;
  se.size = sums.data.length;
  se.sha256 = sha(sums.data);
  man.totals.storedBytes = man.members.reduce((n, m) => n + m.size, 0);
  const manifest = ms.find((m) => m.name === MEMBER.manifest)!;
  manifest.data = Buffer.from(`${JSON.stringify(man, null, 2)}\n`);
  const sig = ms.find((m) => m.name === MEMBER.signature);
  if (keyFile === undefined) return ms.filter((m) => m.name !== MEMBER.signature);
  const s = sign(null, manifest.data, createPrivateKey(readFileSync(keyFile)));
  if (sig) sig.data = s;
  else ms.splice(ms.indexOf(manifest) + 1, 0, { name: MEMBER.signature, data: s });
  return ms;
}

/** Replace a member's stored bytes (and its size and sha256 in the manifest). */
export function replaceData(ms: Member[], man: BundleManifest, p: string, data: Buffer): BundleMember {
  ms.find((m) => m.name === p)!.data = data;
  const entry = man.members.find((m) => m.path === p)!;
  entry.size = data.length;
  entry.sha256 = sha(data);
  return entry;
}

export function zstdCompress(data: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c', '-1'], { input: data, maxBuffer: 1 << 30 });
}

/** A tar header block with any typeflag (the checksum fixed up). */
export function headerWithFlag(name: string, flag: string, size: number): Buffer {
  const h = headerFor({ name, type: 'file', size, mtime: 0 });
  h.write(flag, 156, 'latin1');
  h.fill(0x20, 148, 156);
  let s = 0;
  for (const b of h) s += b;
  h.write(`${s.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

/** A pax extended header ('x' or 'g') holding `records`, followed by nothing. */
export function paxHeader(records: Array<[string, string]>, flag: 'x' | 'g' = 'x'): Buffer {
  const body = Buffer.from(
    records
      .map(([k, v]) => {
        const rest = ` ${k}=${v}\n`;
        let len = rest.length + 1;
        while (String(len).length + rest.length !== len) len++;
        return `${len}${rest}`;
      })
      .join(''),
  );
  return Buffer.concat([headerWithFlag('PaxHeaders/x', flag, body.length), body, Buffer.alloc(tarPadding(body.length))]);
}

// For the hostile-* and property tests: rewrite a manifest member with every reference to it kept
// consistent, and run a bundle through verify and load --to oci: in-process.

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

/** A valid bundle of a fresh makeStore, and a way to write edited copies of it. */
export interface BaseBundle {
  work: string;
  st: Store;
  bundle: string;
  /** A copy of the bundle with `edit` applied to its members and ferry-bundle.json (hashes kept consistent, unsigned). */
  craft(edit: (ms: Member[], man: BundleManifest) => void): Promise<string>;
  /** A copy of the bundle's members as `edit` leaves or returns them (nothing kept consistent). */
  craftMembers(edit: (ms: Member[]) => Member[] | void): Promise<string>;
}

export async function baseBundle(name: string, rawLayerBytes?: number): Promise<BaseBundle> {
  const work = createTempDir(name);
  const st = makeStore(path.join(work, 'store'), rawLayerBytes);
  const bundle = path.join(work, 'b.ferry');
  await writeBundle({ store: await OciLayout.open(st.dir), output: bundle, compression: 'auto' });
  let n = 0;
  return {
    work,
    st,
    bundle,
    async craft(edit) {
      const ms = await readMembers(bundle);
      const man = manOf(ms);
      edit(ms, man);
      const file = path.join(work, `crafted-${n++}.ferry`);
      writeFileSync(file, tarOf(setMan(ms, man)));
      return file;
    },
    async craftMembers(edit) {
      const ms = await readMembers(bundle);
      const file = path.join(work, `crafted-${n++}.ferry`);
      writeFileSync(file, tarOf(edit(ms) ?? ms));
      return file;
    },
  };
}
