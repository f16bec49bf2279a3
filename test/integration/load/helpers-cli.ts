/**
 * Helpers for the `ferry load` / `ferry mirror` CLI tests: run the built CLI, watch its --json
 * event stream (to SIGKILL it mid-blob), build a store with one big incompressible layer, find
 * and patch members of a bundle tar, read manifests back from a registry.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { OciLayout, REF_NAME } from '../../../src/transports/oci/layout.js';
import type { Digest } from '../../../src/oci/digest.js';

import { CLI, type Run } from '../../helpers/cli.js';

export { CLI, ferry, type FerryRunOptions, type Run } from '../../helpers/cli.js';

export interface JsonLine {
  type: string;
  [k: string]: unknown;
}

export interface ReportLine extends JsonLine {
  type: 'report';
  source: string;
  destination: string;
  images: Array<{
    name: string;
    status: string;
    digest: string;
    destination?: string;
    destinationDigest?: string;
    skipped?: boolean;
    error?: string;
    errorCode?: string;
  }>;
  failures: Array<{ name: string; error: string; code?: string }>;
  blobs: { total: number; fetched: number; skipped: number; failed: number; bytesFetched: number; bytesSkipped: number; mounted?: number };
  mapping: Record<string, { destination: string; digest: string }>;
}

export function jsonLines(stdout: string): JsonLine[] {
  return stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as JsonLine);
}

/** The final `report` line of a --json run. */
export function reportOf(run: Run): ReportLine {
  const last = jsonLines(run.stdout).at(-1);
  if (last?.type !== 'report')
    throw new Error(`no report line; exit ${run.code}\nstdout:\n${run.stdout.slice(-4000)}\nstderr:\n${run.stderr.slice(-4000)}`);
  return last as ReportLine;
}

export interface BlobEvent {
  kind: 'blob';
  state: string;
  digest: string;
  bytes: number;
  total: number;
}

export interface KilledRun {
  /** Every JSON line seen before the kill. */
  lines: JsonLine[];
  /** The event that armed the kill (undefined if the run ended first). */
  trigger: BlobEvent | undefined;
  /** Whether the witness confirmed a partial transfer before the kill. */
  witnessed: boolean;
  exit: { code: number | null; signal: NodeJS.Signals | null };
  stderr: string;
}

export interface KillPlan {
  /** Arms the kill when it accepts a blob event (given every line so far). */
  armed: (e: BlobEvent, seen: JsonLine[]) => boolean;
  /**
   * Once armed: asked, while ferry is stopped, whether a partial transfer is visible at the
   * destination; ferry runs `stepMs` between two looks; SIGKILL once it says yes. Without it,
   * kill `delayMs` after arming.
   */
  witness?: () => Promise<boolean>;
  /** How long ferry runs between two looks of the witness (ms, default 5). */
  stepMs?: number;
  delayMs?: number;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/**
 * Start `ferry ARGS` (with --json among them), SIGKILL it once `plan.armed` accepts an event of
 * the --json stream (which carries blob start/done/skipped, not progress) and the witness
 * confirms a partial transfer, and wait for it to die.
 */
export async function killWhen(args: string[], plan: KillPlan): Promise<KilledRun> {
  const child: ChildProcess = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, CI: '1', ...plan.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: JsonLine[] = [];
  let trigger: BlobEvent | undefined;
  let witnessed = false;
  let exited = false;
  let buf = '';
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    }),
  );
  // Once armed, ferry runs in small steps (SIGSTOP / SIGCONT) and the witness looks at the
  // destination while it is stopped: what the witness saw is what the kill interrupts.
  const fire = async (): Promise<void> => {
    const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    if (!plan.witness) {
      await sleep(plan.delayMs ?? 0);
      witnessed = !exited;
      child.kill('SIGKILL');
      return;
    }
    child.kill('SIGSTOP');
    while (!exited) {
      if (await plan.witness().catch(() => false)) {
        witnessed = true;
        break;
      }
      child.kill('SIGCONT');
      await sleep(plan.stepMs ?? 5);
      child.kill('SIGSTOP');
    }
    child.kill('SIGKILL');
  };
  child.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.trim() === '') continue;
      const j = JSON.parse(line) as JsonLine;
      lines.push(j);
      const e = j as unknown as BlobEvent;
      if (!trigger && j.type === 'event' && e.kind === 'blob' && plan.armed(e, lines)) {
        trigger = e;
        void fire();
      }
    }
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), plan.timeoutMs ?? 60_000);
  const exit = await closed;
  clearTimeout(timer);
  return { lines, trigger, witnessed, exit, stderr };
}

/** Blob events of one digest among the lines of a --json run. */
export function blobStates(lines: JsonLine[], digest: string): string[] {
  return lines.filter((l) => l.type === 'event' && l.kind === 'blob' && l.digest === digest).map((l) => l.state as string);
}

// ---------------------------------------------------------------------------------------------
// A store with one big incompressible layer

function tarHeader(name: string, size: number): Buffer {
  const h = Buffer.alloc(512, 0);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 8, 'ascii');
  h.write('0000000\0', 108, 8, 'ascii');
  h.write('0000000\0', 116, 8, 'ascii');
  h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  h.write(`${(946_684_800).toString(8).padStart(11, '0')}\0`, 136, 12, 'ascii');
  h.write('        ', 148, 8, 'ascii');
  h.write('0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

/** A tar holding one file of `size` random bytes, gzipped at level 0 (stored: stays incompressible). */
function randomGzipLayer(file: string, size: number): { gz: Buffer; diffId: Digest } {
  const data = randomBytes(size);
  const pad = (512 - (size % 512)) % 512;
  const tar = Buffer.concat([tarHeader(file, size), data, Buffer.alloc(pad), Buffer.alloc(1024)]);
  const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}` as Digest;
  return { gz: gzipSync(tar, { level: 0 }), diffId };
}

export interface BigImage {
  /** Full reference, as the bundle and the report name it. */
  name: string;
  /** Short name stored as ref.name in the store. */
  refName: string;
  manifestDigest: Digest;
  configDigest: Digest;
  big: { digest: Digest; size: number };
  small: { digest: Digest; size: number };
  totalBlobBytes: number;
}

/**
 * An OCI layout at `dir` with one image `ferry-test/big:1`: a `smallMiB` layer, a `bigMiB`
 * layer (random bytes, gzip level 0) and a config for the host platform.
 */
export async function makeBigStore(dir: string, bigMiB: number, smallMiB: number): Promise<BigImage> {
  const store = await OciLayout.open(dir, { create: true });
  const small = randomGzipLayer('small.bin', smallMiB * 1024 * 1024);
  const big = randomGzipLayer('big.bin', bigMiB * 1024 * 1024);
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
  const config = Buffer.from(
    JSON.stringify({
      architecture: arch,
      os: 'linux',
      config: { Cmd: ['/big.bin'] },
      rootfs: { type: 'layers', diff_ids: [small.diffId, big.diffId] },
    }),
  );
  const configDigest = await store.putBytes(config);
  const smallDigest = await store.putBytes(small.gz);
  const bigDigest = await store.putBytes(big.gz);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: smallDigest, size: small.gz.length },
        { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: bigDigest, size: big.gz.length },
      ],
    }),
  );
  const manifestDigest = await store.putBytes(manifest);
  const refName = 'ferry-test/big:1';
  await store.putIndexEntries([
    {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest: manifestDigest,
      size: manifest.length,
      annotations: { [REF_NAME]: refName },
    },
  ]);
  return {
    name: `docker.io/${refName}`,
    refName,
    manifestDigest,
    configDigest,
    big: { digest: bigDigest, size: big.gz.length },
    small: { digest: smallDigest, size: small.gz.length },
    totalBlobBytes: config.length + small.gz.length + big.gz.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Bundle tar members

export interface TarMember {
  name: string;
  /** Offset of the member's data in the file. */
  offset: number;
  size: number;
}

/** The members of a (ustar, short names) tar in memory. */
export function tarMembers(tar: Buffer): TarMember[] {
  const out: TarMember[] = [];
  let pos = 0;
  let paxName: string | undefined;
  while (pos + 512 <= tar.length) {
    const h = tar.subarray(pos, pos + 512);
    if (h.every((b) => b === 0)) break;
    const name = h.subarray(0, 100).toString('utf8').replace(/\0.*$/s, '');
    const prefix = h.subarray(345, 500).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim() || '0', 8);
    const type = String.fromCharCode(h[156]!);
    const offset = pos + 512;
    if (type === 'x') {
      const pax = tar.subarray(offset, offset + size).toString('utf8');
      const m = /\d+ path=([^\n]*)\n/.exec(pax);
      paxName = m?.[1];
    } else {
      out.push({ name: paxName ?? (prefix ? `${prefix}/${name}` : name), offset, size });
      paxName = undefined;
    }
    pos = offset + Math.ceil(size / 512) * 512;
  }
  return out;
}

export async function bundleManifest(file: string): Promise<{ images: Array<{ ref: string; digest: string }> }> {
  const tar = await readFile(file);
  const m = tarMembers(tar).find((x) => x.name === 'ferry-bundle.json');
  if (!m) throw new Error(`${file} has no ferry-bundle.json`);
  return JSON.parse(tar.subarray(m.offset, m.offset + m.size).toString('utf8')) as { images: Array<{ ref: string; digest: string }> };
}

// ---------------------------------------------------------------------------------------------
// Registry reads

const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

/** The digest of the manifest bytes a registry serves for repo:ref, or undefined on 404. */
export async function registryManifestDigest(url: string, repo: string, ref: string): Promise<string | undefined> {
  const res = await fetch(`${url}/v2/${repo}/manifests/${ref}`, { headers: { accept: MANIFEST_ACCEPT } });
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET ${repo}/manifests/${ref}: HTTP ${res.status}`);
  const bytes = Buffer.from(await res.arrayBuffer());
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Tags a registry lists for a repository: undefined when the repository is unknown (404). */
export async function registryTags(url: string, repo: string): Promise<string[] | undefined> {
  const res = await fetch(`${url}/v2/${repo}/tags/list`);
  if (res.status === 404) return undefined;
  if (!res.ok) throw new Error(`GET ${repo}/tags/list: HTTP ${res.status}`);
  const body = (await res.json()) as { tags?: string[] | null };
  return body.tags ?? [];
}
