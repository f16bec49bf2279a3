/**
 * The registry destination of `ferry load`, `ferry copy` and `ferry mirror`: an ImageDestination
 * (transports/types.ts) that the one executor (copy/execute.ts) drives, pushing into one
 * registry under the names names.ts gives.
 *
 * What it adds to the executor's order, as a careful pusher does it:
 * 1. prepare: an image whose root manifest the repository already holds is complete (a registry
 *    only accepts a manifest whose blobs and children it has): nothing of it is sent; its tag
 *    is set if it points elsewhere (`name`).
 * 2. putBlob, per repository that needs the blob: HEAD; absent → mounted from a repository
 *    known to hold it (the mirror's source repository, or one of this run), else uploaded
 *    (upload.ts: verified while it streams, chunked and resumable when large).
 * 3. putManifest: the children by digest; the root only in setName, under its tag (or by digest
 *    when there is none), so no tag ever points at incomplete content and the root goes up once.
 */
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { EventSink } from '../../copy/events.js';
import type { CopyPlan, PlannedBlob, PlannedImage } from '../../copy/plan.js';
import { eachLimit } from '../../copy/scheduler.js';
import { DigestVerifier } from '../../oci/digest.js';
import type { Descriptor } from '../../oci/manifest.js';
import type { Reference } from '../../ref/reference.js';
import { FerryError, IntegrityError, UsageError, errorMessage, wrap } from '../../util/errors.js';
import type {
  BlobOpener,
  DestinationCapabilities,
  DestinationName,
  ImageDestination,
  ManifestBytes,
  PrepareContext,
  PreparedImage,
  PutBlobOptions,
  PutBlobResult,
} from '../types.js';
import { RegistryClient, type RegistryClientOptions } from './client.js';
import { registryTargets, type RegistryDestination as RegistryLocation, type RegistryTarget } from './names.js';
import { blobSize, manifestDigest, putManifest, uploadBlob } from './upload.js';

/** Probes (manifest HEADs) at once in prepare, unless the run says otherwise. */
const DEFAULT_PROBE_CONCURRENCY = 8;

/**
 * Context and a hint for what a registry answers to a push. `context` is prefixed unless the
 * message already starts with it; the error given is never changed (one blob's error is
 * reported for every image that needs it).
 */
function pushError(err: unknown, context: string, repo: string, client: RegistryClient): FerryError {
  const wrapped = wrap(err, context);
  const e =
    wrapped instanceof FerryError ? wrapped : new FerryError('PUSH_FAILED', `${context}: ${errorMessage(wrapped)}`, { cause: wrapped });
  const status = (err as { status?: unknown } | null)?.status;
  let hint: string | undefined;
  if (status === 413)
    hint = `the registry ${client.registry} (or a proxy in front of it) refused a request as too large; raise its body size limit (e.g. nginx client_max_body_size), or send smaller requests with --chunk-size (in MiB)`;
  else if (e.code === 'MANIFEST_INVALID' || e.code === 'MANIFEST_UNVERIFIED')
    hint = `${client.registry} rejected the manifest as invalid; it may not support this media type (OCI indexes and artifacts need a recent registry)`;
  else if (e.code === 'MANIFEST_BLOB_UNKNOWN' || e.code === 'BLOB_UNKNOWN')
    hint = 'the registry lost a blob during the push; rerun the command';
  else if (e.code === 'DENIED' || status === 403) hint = `the account may not push to ${repo} on ${client.registry}`;
  else if (e.code === 'NAME_INVALID') hint = 'the registry refuses this repository name; choose another prefix';
  // A push-specific hint replaces the generic one the client gave (which speaks of reading).
  // An integrity failure stays what it is: the executor and the scheduler recognise it by class.
  if (!hint || e instanceof IntegrityError) return e;
  return new FerryError(e.code, e.message, { cause: e, hint, retryable: e.retryable });
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

export interface RegistryDestinationConfig {
  /** `docker://HOST[/PREFIX]` (each image under its own name, names.ts), or one image's name. */
  location: RegistryLocation & { image?: Reference };
  /** Keep the source registry host as the first path component (a prefix destination). */
  scoped?: boolean;
  /** PATCH chunk size (and the largest blob sent in one PUT). */
  chunkSize?: number;
  /** Manifest HEADs at once in prepare (the run's --concurrency). */
  concurrency?: number;
  /**
   * A repository of the destination registry that already holds this blob (mirroring within
   * one registry): the first repository that needs it mounts it from there instead of uploading.
   */
  mountSource?: (blob: PlannedBlob) => string | undefined;
}

export class RegistryDestination implements ImageDestination {
  /**
   * knowsBlobs false: hasBlob cannot answer for a blob without naming repositories, and the
   * per-repository HEADs are putBlob's (one HEAD per repository, not two).
   */
  readonly capabilities: DestinationCapabilities = { parallelBlobs: true, mount: true, orderedStream: false, knowsBlobs: false };
  readonly description: string;
  /** Manifest HEADs at once in prepare (the run's --concurrency when prepare is told it). */
  private readonly probeConcurrency: number;
  private plan: CopyPlan | undefined;
  private targets: RegistryTarget[] = [];
  private byDigest = new Map<string, PlannedBlob>();
  private byName = new Map<string, RegistryTarget>();
  private emit: EventSink = () => {};

  constructor(
    readonly client: RegistryClient,
    private readonly config: RegistryDestinationConfig,
  ) {
    const loc = config.location;
    this.description = loc.image ? `docker://${loc.image.toString()}` : `docker://${loc.host}${loc.prefix ? `/${loc.prefix}` : ''}`;
    this.probeConcurrency = Math.max(1, config.concurrency ?? DEFAULT_PROBE_CONCURRENCY);
  }

  /** The targets, then per image what the registry already holds (one or two manifest HEADs). */
  async prepare(plan: CopyPlan, ctx: PrepareContext): Promise<PreparedImage[]> {
    const { signal } = ctx;
    const loc = this.config.location;
    // Thrown for the run, not per image: the destination itself does not fit the plan.
    this.targets = loc.image
      ? imageTarget(plan, loc.image)
      : registryTargets(
          plan.images.map((i) => ({ name: i.name, digest: i.root.digest })),
          loc,
          { scoped: !!this.config.scoped },
        );
    this.plan = plan;
    this.byName = new Map(plan.images.map((img, i) => [img.name, this.targets[i]!]));
    this.byDigest = new Map(plan.blobs.map((b) => [b.desc.digest, b]));
    if (ctx.onEvent) this.emit = ctx.onEvent;
    const client = this.client;
    const prepared: PreparedImage[] = new Array(plan.images.length);
    await eachLimit(plan.images, ctx.concurrency ?? this.probeConcurrency, async (img, i) => {
      const t = this.targets[i]!;
      const where = { destination: t.destination, destinationDigest: img.root.digest };
      try {
        // The usual rerun: the tag already names this digest, one HEAD settles it.
        if (t.tag !== undefined && (await manifestDigest(client, t.repo, t.tag, `checking ${t.destination}`, signal)) === img.root.digest) {
          prepared[i] = { ...where, state: 'done' };
          return;
        }
        const have = await manifestDigest(client, t.repo, img.root.digest, `checking ${t.destination}`, signal);
        prepared[i] = { ...where, state: have === undefined ? 'copy' : t.tag === undefined ? 'done' : 'name' };
      } catch (err) {
        if (signal?.aborted) throw err;
        prepared[i] = { ...where, state: 'failed', error: this.imageError(err, img, t) };
      }
    });
    return prepared;
  }

  /** Always false: putBlob HEADs in each repository that needs the blob (see capabilities). */
  async hasBlob(): Promise<boolean> {
    return false;
  }

  /** A HEAD in the image's repository: the size the registry holds, undefined when absent. */
  async storedBlobSize(digest: string, image: number, signal?: AbortSignal): Promise<number | undefined> {
    const t = this.target(image);
    return blobSize(this.client, t.repo, digest, `blob ${digest} in ${this.client.registry}/${t.repo}`, signal);
  }

  async putBlob(desc: Descriptor, open: BlobOpener, opts: PutBlobOptions): Promise<PutBlobResult> {
    const { signal } = opts;
    const client = this.client;
    // Each repository once, in the order the images come (a Set: a base layer shared by
    // thousands of images in a few repositories is not a list scanned per image).
    const repos = new Set<string>();
    for (const i of opts.images) repos.add(this.target(i).repo);
    const planned = this.byDigest.get(desc.digest);
    let home = planned ? this.config.mountSource?.(planned) : undefined;
    // Images declare different sizes (desc.size -1): the size is learnt from a repository that
    // holds the blob, or by reading it, checked by digest; the executor then checks each
    // image's declared size against storedBlobSize.
    let size = desc.size;
    let sent = false;
    let mounts = 0;
    for (const repo of repos) {
      const what = `blob ${desc.digest} to ${client.registry}/${repo}`;
      try {
        const have = await blobSize(client, repo, desc.digest, what, signal);
        if (have !== undefined) {
          if (size < 0 && have >= 0) size = have;
          home ??= repo;
          continue;
        }
        if (size < 0) size = await measure(desc, open, what);
        const outcome = await uploadBlob(client, repo, { ...desc, size }, open, {
          what,
          ...(home ? { mountFrom: home } : {}),
          ...(this.config.chunkSize ? { chunkSize: this.config.chunkSize } : {}),
          ...(signal ? { signal } : {}),
          ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
          onRetry: (reason, attempt, delayMs) => this.emit({ kind: 'retry', digest: desc.digest, reason, attempt, delayMs }),
        });
        if (outcome === 'mounted') mounts++;
        else sent = true;
        home = repo;
      } catch (err) {
        if (signal?.aborted) throw err;
        throw pushError(err, what, repo, client);
      }
    }
    return { bytes: Math.max(0, size), sent, mounts };
  }

  /** Manifests other than the root, by digest; the root goes up once, in setName. */
  async putManifest(m: ManifestBytes, ctx: { image: number; signal?: AbortSignal }): Promise<void> {
    const img = this.image(ctx.image);
    if (m.digest === img.root.digest) return;
    const t = this.target(ctx.image);
    try {
      await putManifest(
        this.client,
        t.repo,
        m.digest,
        { bytes: m.bytes, mediaType: m.mediaType ?? img.root.mediaType, digest: m.digest },
        `pushing manifest ${m.digest} of ${img.name}`,
        ctx.signal,
      );
    } catch (err) {
      if (ctx.signal?.aborted) throw err;
      throw this.imageError(err, img, t);
    }
  }

  /** The root under the tag (or by digest when there is none): a new image, or a retag. */
  async setName(image: DestinationName, signal?: AbortSignal): Promise<boolean> {
    const img = this.image(image.index);
    const t = this.target(image.index);
    const root = img.manifests.at(-1);
    try {
      if (!root || root.digest !== img.root.digest)
        throw new FerryError('PLAN_INVALID', `${img.name}: the plan's last manifest is not the root ${img.root.digest}`);
      await putManifest(
        this.client,
        t.repo,
        t.tag ?? root.digest,
        { bytes: root.bytes, mediaType: root.mediaType ?? img.root.mediaType, digest: root.digest },
        `pushing ${t.destination}`,
        signal,
      );
    } catch (err) {
      if (signal?.aborted) throw err;
      throw this.imageError(err, img, t);
    }
    return true;
  }

  /** Where prepare put the image (`HOST/REPO:TAG`); prepare also gives it to the executor. */
  nameOf(image: Pick<DestinationName, 'name'>): string {
    return this.byName.get(image.name)?.destination ?? image.name;
  }

  async commit(): Promise<undefined> {
    return undefined;
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  private imageError(err: unknown, img: PlannedImage, t: RegistryTarget): FerryError {
    return pushError(err, `pushing ${img.name} to ${t.destination}`, t.repo, this.client);
  }

  private image(i: number): PlannedImage {
    const img = this.plan?.images[i];
    if (!img) throw new FerryError('INTERNAL', `${this.description}: image #${i} was not prepared`);
    return img;
  }

  private target(i: number): RegistryTarget {
    const t = this.targets[i];
    if (!t) throw new FerryError('INTERNAL', `${this.description}: image #${i} was not prepared`);
    return t;
  }
}

/** The size of a blob whose images disagree about it: read once, checked by digest. */
async function measure(desc: Descriptor, open: BlobOpener, what: string): Promise<number> {
  let n = 0;
  await pipeline(
    open(0),
    new DigestVerifier({ digest: desc.digest, size: -1, what }),
    new Writable({
      write: (c: Buffer, _e, cb) => {
        n += c.length;
        cb();
      },
    }),
  );
  return n;
}

export interface RegistryDestinationOptions {
  clientOptions: RegistryClientOptions;
  /** Keep the source registry host as the first path component (a prefix destination). */
  scoped?: boolean;
  chunkSize?: number;
}

/**
 * `docker://HOST[/PREFIX]` (each image under its own name, names.ts) or, for a
 * single image, `docker://HOST/REPO[:TAG]` as a destination.
 */
export function openRegistryDestination(
  location: RegistryLocation & { image?: Reference },
  opts: RegistryDestinationOptions,
): RegistryDestination {
  return new RegistryDestination(new RegistryClient(location.host, opts.clientOptions), {
    location,
    ...(opts.scoped ? { scoped: true } : {}),
    ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
  });
}
