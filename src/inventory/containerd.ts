/**
 * Inventory of containerd (`containerd[:SOCKET][?namespace=NS]`), read only, through `ctr` as
 * `ferry load` runs it: the namespace's images (`ctr images ls`: names and target digests) and
 * its content store (`ctr content ls -q`: every committed blob, which containerd wrote only
 * after checking its digest). The argv builders and parsers are pure and tested without ctr.
 */
import { isDigest, type Digest } from '../oci/digest.js';
import { listArgv, parseImageList, resolveTarget, summariseCtrStderr, type CtrTarget } from '../transports/containerd/ctr.js';
import { checkContainerd, CtrFailedError, runCtr } from '../transports/containerd/destination.js';
import type { Collected, CollectOptions } from './collect.js';

/** `ctr [--address A] -n NS content ls -q`: one digest a line. */
export function contentListArgv(t: CtrTarget): string[] {
  return [...t.ctr, ...(t.address ? ['--address', t.address] : []), '-n', t.namespace, 'content', 'ls', '-q'];
}

/** The sha256 digests of `ctr content ls -q`, each once; any other line (a warning) is skipped. */
export function parseContentList(stdout: string): Digest[] {
  const out = new Set<Digest>();
  for (const line of stdout.split('\n')) {
    const d = line.trim();
    if (isDigest(d)) out.add(d);
  }
  return [...out];
}

export interface ContainerdInventoryOptions extends CollectOptions {
  address: string | undefined;
  namespace: string;
  /** The client command, argv form (default ['ctr']). */
  ctr?: string[];
}

async function listing(argv: string[], what: string, signal: AbortSignal | undefined): Promise<string> {
  const r = await runCtr(argv, signal, true);
  if (r.code !== 0) throw new CtrFailedError('CTR_FAILED', `${what} failed: ${summariseCtrStderr(r.stderr) || `exit ${r.code}`}`);
  if (r.stdoutOverflow) throw new CtrFailedError('CTR_FAILED', `${what} printed more than ferry reads of a listing`);
  return r.stdout;
}

export async function collectContainerd(opts: ContainerdInventoryOptions): Promise<Collected> {
  const t = resolveTarget({ ctr: opts.ctr, address: opts.address, namespace: opts.namespace });
  await checkContainerd(t, opts.signal);
  const images: Collected['images'] = [];
  let other = 0;
  const rows = parseImageList(await listing(listArgv(t), `ctr -n ${t.namespace} images ls`, opts.signal));
  for (const row of rows.values()) {
    if (isDigest(row.digest)) images.push({ name: row.name, digest: row.digest });
    else other++;
  }
  const blobs = parseContentList(await listing(contentListArgv(t), `ctr -n ${t.namespace} content ls`, opts.signal));
  const notes = [
    `containerd namespace ${t.namespace}: the content store's committed blobs; containerd's garbage collector may remove ` +
      'content that no image or lease references',
  ];
  if (other) notes.push(`${other} images with a digest other than sha256: not inventoried`);
  return { images, blobs, notes };
}
