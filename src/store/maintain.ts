/**
 * `ferry store gc` and `ferry store verify` over an OCI layout store.
 *
 * gc holds the gc lease (store/leases.ts) from before it looks until its last removal, so no
 * writer has blobs in flight that no name reaches yet. It decides what to remove under the
 * layout lock (names cannot change while it walks), then unlinks blob files one by one: a gc
 * killed half way has only removed blobs no name reaches, so every name stays whole and a
 * rerun removes the rest.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Digest } from '../oci/digest.js';
import { withLayoutLock } from '../transports/oci/lock.js';
import type { OciLayout } from '../transports/oci/layout.js';
import { FerryError } from '../util/errors.js';
import { deadTemps, fsyncDir, type DeadTemp } from '../util/fsutil.js';
import { analyzeStore, type StoreGraph } from './graph.js';
import { acquireGcLease } from './leases.js';

export interface GcOptions {
  dryRun?: boolean;
  /** How long to wait for running writers (pull, load, copy) to finish; default 0: fail at once. */
  waitMs?: number;
  /** Called before each blob is removed (tests stop a gc here). */
  onRemove?: (digest: Digest) => void;
}

export interface GcResult {
  dryRun: boolean;
  /** Blobs no name reaches: removed (or, with dryRun, to be removed). */
  blobs: Array<{ digest: Digest; size: number }>;
  bytesFreed: number;
  /** Temp files of writers that are gone. */
  temps: Array<{ file: string; size: number }>;
  /** Blobs kept (some name reaches them). */
  kept: number;
}

/** gc cannot tell what a name needs: it removes nothing. */
export class StoreDamagedError extends FerryError {
  constructor(message: string, hint: string) {
    super('STORE_DAMAGED', message, { hint });
  }
}

const isBlobHex = (base: string): boolean => /^[a-f0-9]{64}$/.test(base);
const isLayoutFile = (base: string): boolean => base === 'index.json' || base === 'oci-layout';

export async function gcStore(layout: OciLayout, opts: GcOptions = {}): Promise<GcResult> {
  const lease = opts.dryRun ? undefined : await acquireGcLease(layout.dir, { waitMs: opts.waitMs ?? 0 });
  try {
    const { graph, temps } = await withLayoutLock(layout.dir, async () => {
      const graph = await analyzeStore(layout);
      const broken = graph.entries.filter((e) => e.incomplete);
      if (broken.length > 0) {
        const names = broken.map((e) => e.name ?? e.desc.digest);
        throw new StoreDamagedError(
          `cannot collect garbage: ${broken.length} name${broken.length === 1 ? '' : 's'} reach${broken.length === 1 ? 'es' : ''} ` +
            `a manifest that is missing or unreadable, so what they need is unknown: ${names.slice(0, 10).join(', ')}${names.length > 10 ? ', …' : ''}`,
          'run ferry store verify; remove those names (ferry store rm) or pull them again, then run gc',
        );
      }
      const temps: DeadTemp[] = [
        ...(await deadTemps(path.join(layout.dir, 'blobs', 'sha256'), isBlobHex)),
        ...(await deadTemps(layout.dir, isLayoutFile)),
      ];
      return { graph, temps };
    });
    const dead = unreachable(graph);
    const result: GcResult = {
      dryRun: !!opts.dryRun,
      blobs: dead,
      bytesFreed: dead.reduce((n, b) => n + b.size, 0) + temps.reduce((n, t) => n + t.size, 0),
      temps: temps.map((t) => ({ file: t.file, size: t.size })),
      kept: graph.blobs.size - dead.length,
    };
    if (opts.dryRun) return result;
    for (const b of dead) {
      opts.onRemove?.(b.digest);
      await rm(layout.blobPath(b.digest), { force: true });
    }
    for (const t of temps) await rm(t.file, { force: true });
    if (dead.length > 0) await fsyncDir(path.join(layout.dir, 'blobs', 'sha256'));
    return result;
  } finally {
    await lease?.release();
  }
}

/** Blob files no entry reaches, largest first. */
export function unreachable(graph: StoreGraph): Array<{ digest: Digest; size: number }> {
  const dead: Array<{ digest: Digest; size: number }> = [];
  for (const [digest, size] of graph.blobs) if (!graph.reachable.has(digest)) dead.push({ digest, size });
  return dead.sort((a, b) => b.size - a.size || a.digest.localeCompare(b.digest));
}

export interface VerifyResult {
  blobs: number;
  bytes: number;
  /** Blob files whose content is not their name's digest, or not the size their descriptors declare. */
  damaged: Array<{ digest: Digest; problem: string; names: string[] }>;
  /** Names reaching blobs that are not there. */
  missing: Array<{ name: string; digests: Digest[] }>;
  /** Names reaching manifests that cannot be read (damaged or invalid). */
  unreadable: Array<{ name: string; digest: string; message: string }>;
}

export const verifyOk = (r: VerifyResult): boolean => r.damaged.length === 0 && r.missing.length === 0 && r.unreadable.length === 0;

/** Hash a file, streaming. Undefined when it vanished (a gc removed an unreferenced blob). */
async function hashFile(file: string): Promise<{ digest: Digest; size: number } | undefined> {
  const h = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
      h.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  return { digest: `sha256:${h.digest('hex')}`, size };
}

/** Rehash every blob file; check sizes against descriptors; list names with missing or unreadable content. */
export async function verifyStore(layout: OciLayout, opts: { concurrency?: number } = {}): Promise<VerifyResult> {
  const graph = await analyzeStore(layout);
  const label = (e: StoreGraph['entries'][number]): string => e.name ?? e.desc.digest;
  const namesOf = (d: Digest): string[] => graph.entries.filter((e) => e.reach.has(d)).map(label);
  const declared = new Map<Digest, number>();
  for (const e of graph.entries) for (const [d, s] of e.declared) if (!declared.has(d)) declared.set(d, s);
  const result: VerifyResult = { blobs: 0, bytes: 0, damaged: [], missing: [], unreadable: [] };
  const queue = [...graph.blobs.keys()].sort();
  const worker = async (): Promise<void> => {
    for (let d = queue.shift(); d !== undefined; d = queue.shift()) {
      const got = await hashFile(layout.blobPath(d));
      if (got === undefined) continue;
      result.blobs++;
      result.bytes += got.size;
      const want = declared.get(d);
      if (got.digest !== d) result.damaged.push({ digest: d, problem: `content hashes to ${got.digest}`, names: namesOf(d) });
      else if (want !== undefined && want !== got.size) {
        result.damaged.push({ digest: d, problem: `${got.size} bytes, descriptors say ${want}`, names: namesOf(d) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 2) }, worker));
  result.damaged.sort((a, b) => a.digest.localeCompare(b.digest));
  for (const e of graph.entries) {
    if (e.missing.length > 0) result.missing.push({ name: label(e), digests: [...e.missing].sort() });
    for (const p of e.problems) result.unreadable.push({ name: label(e), digest: p.digest, message: p.message });
  }
  return result;
}
