/**
 * The registry destination of `ferry load` and `ferry mirror`: push a CopyPlan into one
 * registry under the names names.ts gives.
 *
 * Order and skipping, as a careful pusher does it:
 * 1. An image whose root manifest the repository already holds is complete (a registry only
 *    accepts a manifest whose blobs and children it has): nothing of it is sent; its tag is
 *    set if it points elsewhere (with `allOrNothing`, only once every blob of the run passed).
 * 2. One blob scheduler for the whole run (largest first, N at a time). Per blob and
 *    repository: HEAD; absent → mounted from a repository of this run that has it, else
 *    uploaded (upload.ts: verified while it streams, chunked and resumable when large).
 * 3. Per image, once all of its blobs are in: its manifests children first, by digest; the
 *    root last, under its tag. So no tag ever points at incomplete content.
 */
import { failedResult, resultBase } from '../../copy/execute.js';
import { eachLimit, scheduleBlobs } from '../../copy/scheduler.js';
import type { CopyPlan, PlannedImage } from '../../copy/plan.js';
import type { ImageSource, PlanDestination } from '../types.js';
import { RegistryClient, type RegistryClientOptions } from './client.js';
import { blobSize, manifestDigest, putManifest, uploadBlob } from './upload.js';
import { FerryError, IntegrityError, NotLoadedError, SizeMismatchError, UsageError, errorMessage, wrap } from '../../util/errors.js';
import type { DestinationOptions, DestinationReport, LoadBlobStats, LoadedImage } from '../../copy/report.js';
import { registryTargets, type RegistryDestination, type RegistryTarget } from './names.js';
import type { Reference } from '../../ref/reference.js';

export interface RegistryPushOptions extends DestinationOptions {
  /** PATCH chunk size (and the largest blob sent in one PUT). */
  chunkSize?: number;
  /**
   * Name nothing if any blob fails its digest or size check (a bundle that fails verification
   * loads nothing). Without it, only the images that need a bad blob fail.
   */
  allOrNothing?: boolean;
  /**
   * A repository of the destination registry that already holds this blob (mirroring within
   * one registry): the first repository that needs it mounts it from there instead of uploading.
   */
  mountSource?: (blob: CopyPlan['blobs'][number]) => string | undefined;
}

type ImageState = 'complete' | 'retag' | 'push';

/** Context and a hint for what a registry answers to a push. */
function pushError(err: unknown, img: PlannedImage, target: RegistryTarget, client: RegistryClient): FerryError {
  const wrapped = wrap(err, `pushing ${img.name} to ${target.destination}`);
  const e =
    wrapped instanceof FerryError
      ? wrapped
      : new FerryError('PUSH_FAILED', `pushing ${img.name} to ${target.destination}: ${errorMessage(wrapped)}`, { cause: wrapped });
  const status = (err as { status?: unknown }).status;
  let hint: string | undefined;
  if (status === 413)
    hint = `the registry ${client.registry} (or a proxy in front of it) refused a request as too large; raise its body size limit (e.g. nginx client_max_body_size), or send smaller requests with --chunk-size (in MiB)`;
  else if (e.code === 'MANIFEST_INVALID' || e.code === 'MANIFEST_UNVERIFIED')
    hint = `${client.registry} rejected the manifest as invalid; it may not support this media type (OCI indexes and artifacts need a recent registry)`;
  else if (e.code === 'MANIFEST_BLOB_UNKNOWN' || e.code === 'BLOB_UNKNOWN')
    hint = 'the registry lost a blob during the push; rerun the command';
  else if (e.code === 'DENIED' || status === 403) hint = `the account may not push to ${target.repo} on ${client.registry}`;
  else if (e.code === 'NAME_INVALID') hint = 'the registry refuses this repository name; choose another prefix';
  // A push-specific hint replaces the generic one the client gave (which speaks of reading).
  if (!hint || e instanceof IntegrityError) return e;
  return new FerryError(e.code, e.message, { cause: e, hint, retryable: e.retryable });
}

export async function pushToRegistry(
  plan: CopyPlan,
  sources: ImageSource[],
  client: RegistryClient,
  targets: RegistryTarget[],
  opts: RegistryPushOptions = {},
): Promise<DestinationReport> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => {});
  const concurrency = Math.max(1, opts.concurrency ?? 8);
  const signal = opts.signal;
  const stats: LoadBlobStats = { total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0, mounted: 0 };

  // 1. What each repository already has.
  const states: ImageState[] = new Array(plan.images.length).fill('push');
  const probeErrors = new Map<number, unknown>();
  await eachLimit(plan.images, concurrency, async (img, i) => {
    const t = targets[i]!;
    try {
      // The usual rerun: the tag already names this digest, one HEAD settles it.
      if (t.tag !== undefined && (await manifestDigest(client, t.repo, t.tag, `checking ${t.destination}`, signal)) === img.root.digest) {
        states[i] = 'complete';
        return;
      }
      const have = await manifestDigest(client, t.repo, img.root.digest, `checking ${t.destination}`, signal);
      if (have === undefined) return;
      states[i] = t.tag === undefined ? 'complete' : 'retag';
    } catch (err) {
      if (signal?.aborted) throw err;
      probeErrors.set(i, err);
    }
  });

  // 2. The blobs to push, each with the repositories that need it.
  const needs = new Map<string, { blob: CopyPlan['blobs'][number]; repos: string[] }>();
  const byDigest = new Map(plan.blobs.map((b) => [b.desc.digest, b]));
  // A set per blob: a base layer shared by thousands of images must not be a list scanned per image.
  const repoSets = new Map<string, Set<string>>();
  plan.images.forEach((img, i) => {
    if (states[i] !== 'push' || probeErrors.has(i)) return;
    for (const b of img.blobs) {
      const planned = byDigest.get(b.digest)!;
      let n = needs.get(b.digest);
      let repos = repoSets.get(b.digest);
      if (!n || !repos) {
        n = { blob: planned, repos: [] };
        repos = new Set();
        needs.set(b.digest, n);
        repoSets.set(b.digest, repos);
      }
      const repo = targets[i]!.repo;
      if (!repos.has(repo)) {
        repos.add(repo);
        n.repos.push(repo);
      }
    }
  });
  stats.total = needs.size;

  async function pushBlob(n: { blob: CopyPlan['blobs'][number]; repos: string[] }): Promise<void> {
    const { desc, sourceIndex, sizeConflict } = n.blob;
    if (sizeConflict) throw new SizeMismatchError(desc.size, -1, `blob ${desc.digest}: the images that use it declare different sizes`);
    const source = sources[sourceIndex]!;
    let home: string | undefined = opts.mountSource?.(n.blob);
    let sent = false;
    for (const repo of n.repos) {
      const what = `blob ${desc.digest} to ${client.registry}/${repo}`;
      if ((await blobSize(client, repo, desc.digest, what, signal)) !== undefined) {
        home ??= repo;
        continue;
      }
      if (!sent && !home) emit({ kind: 'blob', state: 'start', digest: desc.digest, bytes: 0, total: desc.size });
      const outcome = await uploadBlob(
        client,
        repo,
        desc,
        (start) => source.openBlob(desc, { what: `blob ${desc.digest} from ${source.description}`, start, ...(signal ? { signal } : {}) }),
        {
          what,
          ...(home ? { mountFrom: home } : {}),
          ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
          ...(signal ? { signal } : {}),
          onProgress: (bytes) => emit({ kind: 'blob', state: 'progress', digest: desc.digest, bytes, total: desc.size }),
          onRetry: (reason, attempt, delayMs) => emit({ kind: 'retry', digest: desc.digest, reason, attempt, delayMs }),
        },
      );
      if (outcome === 'mounted') stats.mounted!++;
      else if (!sent) {
        sent = true;
        stats.fetched++;
        stats.bytesFetched += desc.size;
      }
      home = repo;
    }
    if (sent) emit({ kind: 'blob', state: 'done', digest: desc.digest, bytes: desc.size, total: desc.size });
    else {
      stats.skipped++;
      stats.bytesSkipped += desc.size;
      emit({ kind: 'blob', state: 'skipped', digest: desc.digest, bytes: desc.size, total: desc.size });
    }
  }

  const schedule = scheduleBlobs([...needs.values()], (n) => n.blob.desc, pushBlob, {
    concurrency,
    ...(signal ? { signal } : {}),
    onEvent: emit,
    stats,
  });

  async function finishImage(img: PlannedImage, i: number): Promise<LoadedImage> {
    const t = targets[i]!;
    const base: LoadedImage = { ...resultBase(img), status: 'done', destination: t.destination, destinationDigest: img.root.digest };
    const root = img.manifests[img.manifests.length - 1]!;
    try {
      if (probeErrors.has(i)) throw probeErrors.get(i);
      if (states[i] === 'complete') {
        emit({ kind: 'image', state: 'done', image: img.name, digest: img.root.digest });
        return { ...base, skipped: true };
      }
      if (states[i] === 'push') for (const b of img.blobs) await schedule.done(b.digest);
      if (opts.allOrNothing) {
        // Nothing is named, not even a tag moved onto content that is already there, until
        // every blob of the run has passed its check.
        await schedule.finished;
        if (schedule.integrityFailure()) throw new NotLoadedError(schedule.integrityFailure());
      }
      if (states[i] === 'push') {
        for (const m of img.manifests) {
          if (m === root) break;
          await putManifest(client, t.repo, m.digest, m, `pushing manifest ${m.digest} of ${img.name}`, signal);
        }
      }
      await putManifest(client, t.repo, t.tag ?? root.digest, root, `pushing ${t.destination}`, signal);
      emit({ kind: 'image', state: 'done', image: img.name, digest: img.root.digest });
      return base;
    } catch (err) {
      const e = pushError(err, img, t, client);
      emit({ kind: 'image', state: 'failed', image: img.name, error: errorMessage(e) });
      const { destination: _d, destinationDigest: _g, ...rest } = base;
      return failedResult(rest, e, `pushing ${img.name}`);
    }
  }

  const images = await Promise.all(plan.images.map(finishImage));
  await schedule.finished;
  return { images, blobs: stats, durationMs: Date.now() - started };
}

export interface RegistryDestinationOptions {
  clientOptions: RegistryClientOptions;
  /** Keep the source registry host as the first path component (a prefix destination). */
  scoped?: boolean;
  chunkSize?: number;
}

/** The target of the one image a `docker://HOST/REPO[:TAG|@DIGEST]` destination names. */
function imageTarget(plan: CopyPlan, image: Reference): RegistryTarget[] {
  if (plan.images.length !== 1) {
    throw new UsageError(`docker://${image.toString()} names one image, and there are ${plan.images.length}`, {
      hint: 'with --all, give a registry prefix (docker://HOST[/PREFIX])',
    });
  }
  const root = plan.images[0]!.root.digest;
  if (image.tag === undefined && image.digest !== undefined && image.digest !== root) {
    throw new UsageError(`docker://${image.toString()}: the image's digest is ${root}`, {
      hint: 'a destination named by digest must carry the digest of what is copied; give a tag instead',
    });
  }
  const host = image.domain;
  return [
    {
      repo: image.path,
      tag: image.tag,
      destination: image.tag !== undefined ? `${host}/${image.path}:${image.tag}` : `${host}/${image.path}@${root}`,
    },
  ];
}

/**
 * `docker://HOST[/PREFIX]` (each image under its own name, names.ts) or, for a
 * single image, `docker://HOST/REPO[:TAG]` as a destination.
 */
export function openRegistryDestination(
  dest: RegistryDestination & { image?: Reference },
  opts: RegistryDestinationOptions,
): PlanDestination {
  const client = new RegistryClient(dest.host, opts.clientOptions);
  return {
    description: dest.image ? `docker://${dest.image.toString()}` : `docker://${dest.host}${dest.prefix ? `/${dest.prefix}` : ''}`,
    write(plan, sources, w) {
      const targets = dest.image
        ? imageTarget(plan, dest.image)
        : registryTargets(
            plan.images.map((i) => ({ name: i.name, digest: i.root.digest })),
            dest,
            { scoped: !!opts.scoped },
          );
      return pushToRegistry(plan, sources, client, targets, {
        ...(w.concurrency !== undefined ? { concurrency: w.concurrency } : {}),
        ...(w.signal ? { signal: w.signal } : {}),
        ...(w.onEvent ? { onEvent: w.onEvent } : {}),
        ...(w.allOrNothing ? { allOrNothing: true } : {}),
        ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
      });
    },
    close: () => client.close(),
  };
}
