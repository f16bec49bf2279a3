/**
 * `ferry pull`: registry (or OCI layout) images into an OCI image-layout store.
 * Resolve every reference, plan one deduplicated blob set, fetch it with one scheduler,
 * and name each image in index.json only once all of its content is stored.
 */
import { readFile } from 'node:fs/promises';
import type { CredentialSource } from '../auth/index.js';
import { normalizeRegistry, registryKey, type Credential } from '../auth/index.js';
import type { PlatformSpec } from '../oci/platform.js';
import { LayoutSource } from '../transports/oci/source.js';
import { OciArchiveSource } from '../transports/oci-archive/source.js';
import { DockerArchiveSource } from '../transports/docker-archive/source.js';
import { CONTAINERD_NAME, REF_NAME } from '../transports/oci/layout.js';
import { OciLayoutDestination } from '../transports/oci/destination.js';
import type { Descriptor } from '../oci/manifest.js';
import { RegistryClient, type RegistryClientOptions } from '../transports/registry/client.js';
import { RegistrySource } from '../transports/registry/source.js';
import { formatLocation, parseLocation } from '../transports/location.js';
import type { ImageSource } from '../transports/types.js';
import { UsageError, errorMessage, wrap } from '../util/errors.js';
import { isStdin } from '../util/fsutil.js';
import type { EventSink } from './events.js';
import { executeCopy, type CopyReport, type ImageResult } from './execute.js';
import { planCopy, type CopyItem, type CopyPlan } from './plan.js';

export const DEFAULT_STORE = './ferry-store';
export const DEFAULT_CONCURRENCY = 8;

/** How to reach registries: credentials, TLS and retry settings (pull, load, mirror). */
export interface RegistryAccessOptions {
  credentials?: CredentialSource;
  /**
   * --username/--password-stdin: a credential for ONE registry: `staticCredentialRegistry`, or
   * else the only registry the run talks to (mirror: its destination). See bindStaticCredential.
   */
  staticCredential?: Credential;
  staticCredentialRegistry?: string;
  insecure?: boolean | string[];
  caFiles?: string[];
  certsDirs?: string[];
  retry?: RegistryClientOptions['retry'];
}

export interface PullOptions extends RegistryAccessOptions {
  refs: string[];
  store: string;
  platforms?: PlatformSpec[];
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
}

/**
 * The registry a --username credential belongs to. A password must never reach a registry it
 * was not given for (Docker Hub's token service, when the list also names Hub images), so:
 * the registry named with --auth-registry (which must be one the run talks to), else
 * `preferred` (mirror: the destination), else the one registry the run talks to; with several
 * and none named, a usage error before anything is sent.
 */
export function bindStaticCredential(
  opts: Pick<RegistryAccessOptions, 'staticCredential' | 'staticCredentialRegistry'>,
  registries: string[],
  preferred?: string,
): { registry: string; credential: Credential } | undefined {
  const credential = opts.staticCredential;
  if (!credential) return undefined;
  const talked = [...new Set(registries.map(registryKey))];
  if (opts.staticCredentialRegistry !== undefined) {
    const named = normalizeRegistry(opts.staticCredentialRegistry);
    if (!named) throw new UsageError(`--auth-registry ${JSON.stringify(opts.staticCredentialRegistry)} is not a registry host[:port]`);
    if (!talked.includes(named)) {
      throw new UsageError(
        `--auth-registry ${named}: this run does not talk to that registry${talked.length ? ` (it talks to ${talked.join(', ')})` : ''}`,
      );
    }
    return { registry: named, credential };
  }
  if (preferred !== undefined) return { registry: registryKey(preferred), credential };
  if (talked.length === 1) return { registry: talked[0]!, credential };
  if (talked.length === 0) throw new UsageError('--username is for a registry, and this run talks to none');
  throw new UsageError(`--username is for one registry, and this run talks to ${talked.length}: ${talked.join(', ')}`, {
    hint: 'name the one it is for with --auth-registry HOST; the others use docker config.json (docker login HOST)',
  });
}

/** RegistryClient options for a run: access settings, a pool sized for the concurrency, retries as events. */
export function registryClientOptions(
  opts: RegistryAccessOptions & { concurrency?: number; onEvent?: EventSink },
  staticCredential?: { registry: string; credential: Credential },
): RegistryClientOptions {
  return {
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    ...(staticCredential ? { staticCredential } : {}),
    ...(opts.insecure !== undefined ? { insecure: opts.insecure } : {}),
    ...(opts.caFiles ? { caFiles: opts.caFiles } : {}),
    ...(opts.certsDirs ? { certsDirs: opts.certsDirs } : {}),
    ...(opts.retry ? { retry: opts.retry } : {}),
    connections: Math.max(4, (opts.concurrency ?? DEFAULT_CONCURRENCY) * 2),
    onRetry: (info) =>
      opts.onEvent?.({ kind: 'retry', reason: `${info.method} ${info.url}: ${info.reason}`, attempt: info.attempt, delayMs: info.delayMs }),
  };
}

export interface PullReport extends CopyReport {
  store: string;
  failures: Array<{ name: string; error: string; errorCode?: string; hint?: string }>;
}

const INTEGRITY_CODES = new Set(['DIGEST_MISMATCH', 'SIZE_MISMATCH', 'DIFF_ID_MISMATCH', 'NOT_LOADED']);

/** True when every failure is content not matching its digest or size (exit 3, like verify). */
export function onlyIntegrityFailures(failures: PullReport['failures']): boolean {
  return failures.length > 0 && failures.every((f) => f.errorCode !== undefined && INTEGRITY_CODES.has(f.errorCode));
}

/** Read an image list: one reference per line; blank lines and # comments ignored. */
export async function readImageList(file: string): Promise<string[]> {
  let text: string;
  try {
    text = isStdin(file) ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read image list ${file}: ${(err as Error).message}`);
  }
  return parseImageList(text);
}

export function parseImageList(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.replace(/(^|\s)#.*$/, '').trim())
    .filter((l) => l !== '');
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The name a store records for an image read from another layout: the full name containerd
 * and Docker record (io.containerd.image.name), else the layout's ref.name, else the
 * reference asked for, else the digest.
 */
export function layoutImageName(desc: Descriptor, asked: string | undefined): string {
  return desc.annotations?.[CONTAINERD_NAME] ?? desc.annotations?.[REF_NAME] ?? asked ?? `@${desc.digest}`;
}

export type Failure = PullReport['failures'][number];

/** Every failure of a run, planning and execution, in one list. */
export function collectFailures(planFailures: CopyPlan['failures'], images: readonly ImageResult[]): Failure[] {
  return [
    ...planFailures.map((f) => {
      const code = (f.error as { code?: unknown }).code;
      const hint = (f.error as { hint?: unknown }).hint;
      return {
        name: f.name,
        error: errorMessage(f.error),
        ...(typeof code === 'string' ? { errorCode: code } : {}),
        ...(typeof hint === 'string' ? { hint } : {}),
      };
    }),
    ...images
      .filter((i) => i.status === 'failed')
      .map((i) => ({
        name: i.name,
        error: i.error ?? 'failed',
        ...(i.errorCode ? { errorCode: i.errorCode } : {}),
        ...(i.hint ? { hint: i.hint } : {}),
      })),
  ];
}

export async function pull(opts: PullOptions): Promise<PullReport> {
  if (opts.refs.length === 0) throw new UsageError('nothing to pull: give image references or -f LIST');
  const started = Date.now();
  const locations = opts.refs.map((r) => {
    try {
      return parseLocation(r);
    } catch (err) {
      throw wrap(err, `image list entry ${JSON.stringify(r)}`);
    }
  });
  // Reject duplicates up front: two entries naming one store name would race for it.
  const clients = new Map<string, RegistryClient>();
  const registries = locations.flatMap((l) => (l.transport === 'docker' ? [l.ref.domain] : []));
  const clientOpts = registryClientOptions(opts, bindStaticCredential(opts, registries));
  const items: CopyItem[] = [];
  const seen = new Map<string, { source: ImageSource; entry: string }>();
  const sources: ImageSource[] = [];
  try {
    for (const loc of locations) {
      let name: string;
      let source: ImageSource;
      if (loc.transport === 'docker') {
        name = loc.ref.toString();
        let client = clients.get(loc.ref.domain);
        if (!client) {
          client = new RegistryClient(loc.ref.domain, clientOpts);
          clients.set(loc.ref.domain, client);
        }
        source = new RegistrySource(client, loc.ref);
      } else if (loc.transport === 'oci') {
        const layoutSource = await LayoutSource.open(loc.path, loc.ref, opts.platforms ?? []);
        name = layoutImageName(await layoutSource.rootDescriptor(), loc.ref);
        source = layoutSource;
      } else if (loc.transport === 'oci-archive') {
        const archiveSource = await OciArchiveSource.open(loc.path, loc.ref, opts.platforms ?? []);
        name = layoutImageName(await archiveSource.rootDescriptor(), loc.ref);
        source = archiveSource;
      } else if (loc.transport === 'docker-archive') {
        const archiveSource = await DockerArchiveSource.open(loc.path, loc.ref);
        name = archiveSource.name ?? `@${(await archiveSource.getRootManifest()).digest}`;
        source = archiveSource;
      } else {
        throw new UsageError(`pull cannot read from ${loc.transport}: sources yet (use docker://, oci:, oci-archive: or docker-archive:)`);
      }
      // The same name twice: the same image listed twice is skipped; two different images
      // that would take one store name are a usage error (one would silently replace the other).
      const entry = formatLocation(loc);
      const earlier = seen.get(name);
      if (earlier !== undefined) {
        // Registry references name their image; other sources are compared by root digest
        // (read only now, so a broken source still fails as its own image, in planning).
        const rootOf = async (src: ImageSource): Promise<string | undefined> =>
          (await src.getRootManifest().catch(() => undefined))?.digest;
        const same =
          loc.transport === 'docker' ||
          entry === earlier.entry ||
          ((await rootOf(source)) ?? 'a') === ((await rootOf(earlier.source)) ?? 'b');
        await source.close();
        if (same) continue;
        throw new UsageError(`${earlier.entry} and ${entry} are different images that would both be stored as ${JSON.stringify(name)}`, {
          hint: 'name one of them explicitly (oci:DIR:REF with a full reference), or pull them into different stores',
        });
      }
      seen.set(name, { source, entry });
      sources.push(source);
      items.push({ source, name, ...(opts.platforms?.length ? { platforms: opts.platforms } : {}) });
    }
    const dest = await OciLayoutDestination.open(opts.store);
    const plan = await planCopy(items, {
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    const report = await executeCopy(plan, sources, dest, {
      concurrency: opts.concurrency ?? DEFAULT_CONCURRENCY,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    });
    const failures = collectFailures(plan.failures, report.images);
    return { ...report, durationMs: Date.now() - started, store: dest.store.dir, failures };
  } finally {
    await Promise.all([...clients.values()].map((c) => c.close()));
    await Promise.all(sources.map((s) => s.close()));
  }
}
