/**
 * The `docker-daemon` destination of `ferry load`: put a CopyPlan into a Docker Engine
 * through its API (`POST /images/load`), the way `docker load` does, without a temp file.
 *
 * What happens, in order:
 * 1. Connect (`GET /_ping`, API version negotiation) and learn the daemon's platform.
 * 2. Per image: pick the manifest for the platform from an index; refuse artifacts (no image
 *    config), and zstd layers on daemons that cannot decompress them (Engine < 23.0).
 * 3. Skip what is there: an image whose name already has the config digest as its ID is
 *    done; one whose ID is present under another name only gets tagged (nothing sent), after
 *    the load below, and (all-or-nothing) not at all if any blob of the load failed its check.
 * 4. Everything else goes into ONE load request whose body is a docker-archive tar built
 *    while it streams: `manifest.json` first (the plan says everything it needs), then each
 *    config and layer blob once, as stored (dockerd decompresses gzip, and zstd from 23.0).
 *    Every blob passes a DigestVerifier; its last chunk is held back until the check passes,
 *    so the daemon never receives a complete bad blob. A failure destroys the request: the
 *    daemon reads a truncated tar and loads nothing.
 * 5. Confirm each image by inspecting it: its ID must be the config digest.
 *
 * Docker Engine identifies an image by its config digest (the image ID), so that is what
 * `destinationDigest` reports; the manifest and index are not stored by the classic engine.
 */
import { failedResult, resultBase } from '../../copy/execute.js';
import type { CopyPlan, PlannedBlob, PlannedImage } from '../../copy/plan.js';
import { hex, isDigest, type Digest } from '../../oci/digest.js';
import { parseManifest, type Descriptor, type ImageManifest, type ManifestDocument } from '../../oci/manifest.js';
import { MediaType, declaredCompression } from '../../oci/mediatypes.js';
import { formatPlatform, normalizePlatform, platformMatches, type PlatformSpec } from '../../oci/platform.js';
import { parseReference } from '../../ref/reference.js';
import type { ImageSource, PlanDestination } from '../types.js';
import { AbortedError, FerryError, IntegrityError, NotFoundError, NotLoadedError, SizeMismatchError } from '../../util/errors.js';
import { TarWriter } from '../../tar/writer.js';
import { addVerifiedBlob } from '../archive-blob.js';
import { DockerClient, ZSTD_MIN_API_VERSION, resolveDockerEndpoint, type DockerEndpoint } from './api.js';
import type { DestinationOptions, DestinationReport, LoadBlobStats, LoadedImage } from '../../copy/report.js';

export interface DockerDaemonOptions extends DestinationOptions {
  /** unix socket path, or undefined = from DOCKER_HOST (unix:///path or tcp://host:port) else /var/run/docker.sock */
  socket?: string;
  /** platform to pick from multi-arch indexes; default: the daemon's own (GET /version Os/Arch, plus variant if known) */
  platform?: PlatformSpec;
  /**
   * Name nothing if any blob fails its digest or size check: an image that only needs a tag
   * (its content is there under another name) is not tagged either. Default true: the images
   * of the load request already fail together (the daemon gets a truncated archive), and a
   * bundle that fails verification must load nothing.
   */
  allOrNothing?: boolean;
}

/** Config media types of container images; anything else is an artifact the engine cannot run. */
export const IMAGE_CONFIG_TYPES: readonly string[] = [MediaType.OciConfig, MediaType.DockerConfig];

/** The manifest is not a container image (an artifact: Helm chart, SBOM, signature...). */
export class NotAContainerImageError extends FerryError {
  constructor(message: string) {
    super('NOT_A_CONTAINER_IMAGE', message, {
      hint: 'Docker Engine only holds container images; copy artifacts to a registry or an OCI layout instead',
    });
  }
}

// ---------------------------------------------------------------------------------------------
// Pure parts: names, platform choice, manifest.json

/** How an image is named in the engine: a repo:tag, or (digest-only names) its ID alone. */
export interface EngineName {
  /** `docker.io/library/nginx:1.25`; absent for a digest-only name. */
  repoTag: string | undefined;
  /** For the report: `docker-daemon:nginx:1.25`, or `docker-daemon:sha256:<id>` by ID. */
  destination(imageId: Digest): string;
  /** What `GET /images/{x}/json` is asked for before and after the load. */
  lookup(imageId: Digest): string;
}

/** The engine name of a plan name. A name with a tag and a digest is stored under its tag. */
export function engineName(name: string): EngineName {
  const ref = parseReference(name);
  if (ref.tag === undefined) {
    return { repoTag: undefined, destination: (id) => `docker-daemon:${id}`, lookup: (id) => id };
  }
  const tagged = `${ref.name}:${ref.tag}`;
  const familiar = ref.familiar().replace(/@.*$/, '');
  return { repoTag: tagged, destination: () => `docker-daemon:${familiar}`, lookup: () => tagged };
}

/** The platform of the daemon's host: `GET /version` Os/Arch, ARM variant from `uname -m` (`/info`). */
export function daemonPlatform(os: string, arch: string, machine?: string): PlatformSpec {
  let variant: string | undefined;
  if (arch === 'arm' && machine) {
    const m = /^armv(\d+)/.exec(machine);
    if (m) variant = `v${m[1]}`;
  }
  return normalizePlatform({ os, architecture: arch, variant });
}

export interface ChosenImage {
  /** The image manifest the engine gets (the root itself, or the index child for the platform). */
  digest: Digest;
  manifest: ImageManifest;
  /** "os/arch[/variant]" of the chosen child, when it came from an index. */
  platform: string | undefined;
}

/**
 * Pick the image manifest to load: the root when it is one; else the index child for
 * `platform` (exact match; on ARM, the nearest lower variant as containerd allows), through
 * nested indexes. No match → NotFoundError listing what the index has. A manifest without a
 * container image config → NotAContainerImageError.
 */
export function chooseImage(img: Pick<PlannedImage, 'name' | 'root' | 'manifests'>, platform: PlatformSpec): ChosenImage {
  const byDigest = new Map(img.manifests.map((m) => [m.digest as string, m]));
  const load = (digest: string, mediaType: string | undefined): ManifestDocument => {
    const m = byDigest.get(digest);
    if (!m) throw new FerryError('PLAN_INCOMPLETE', `${img.name}: the plan lacks manifest ${digest}`);
    return parseManifest(m.bytes, mediaType ?? m.mediaType, `manifest ${digest} of ${img.name}`);
  };
  let digest = img.root.digest;
  let doc = load(digest, img.root.mediaType);
  let chosenPlatform: string | undefined;
  for (let depth = 0; doc.kind === 'index'; depth++) {
    if (depth > 4) throw new FerryError('MANIFEST_INVALID', `${img.name}: indexes nested too deep`);
    const child = pickChild(doc.manifests, platform);
    if (!child) {
      const has = [...new Set(doc.manifests.filter((d) => d.platform).map((d) => formatPlatform(d.platform!)))];
      throw new NotFoundError(`${img.name} has no image for platform ${formatPlatform(platform)}`, {
        hint: has.length > 0 ? `it has: ${has.join(', ')}` : 'its index lists no platforms',
      });
    }
    if (!isDigest(child.digest)) throw new FerryError('MANIFEST_INVALID', `${img.name}: child digest ${child.digest} is not sha256`);
    digest = child.digest;
    chosenPlatform = formatPlatform(child.platform!);
    doc = load(digest, child.mediaType);
  }
  checkContainerImage(doc, img.name);
  return { digest, manifest: doc, platform: chosenPlatform };
}

function pickChild(children: Descriptor[], want: PlatformSpec): Descriptor | undefined {
  const exact = children.find((d) => platformMatches(want, d.platform));
  if (exact || want.architecture !== 'arm' || !want.variant) return exact;
  // An ARMv7 engine runs v6 and v5 images too; prefer the highest it can run.
  const n = Number(want.variant.slice(1));
  for (let v = n - 1; v >= 5; v--) {
    const lower = children.find((d) => platformMatches({ ...want, variant: `v${v}` }, d.platform));
    if (lower) return lower;
  }
  return undefined;
}

/** Refuses what the engine cannot hold: a non-image config, or layers that are not tars. */
export function checkContainerImage(m: ImageManifest, name: string): void {
  if (!IMAGE_CONFIG_TYPES.includes(m.config.mediaType)) {
    throw new NotAContainerImageError(
      `${name} is not a container image (config media type ${m.config.mediaType}${m.artifactType ? `, artifact type ${m.artifactType}` : ''})`,
    );
  }
  if (!isDigest(m.config.digest))
    throw new FerryError('MANIFEST_INVALID', `${name}: config digest ${JSON.stringify(m.config.digest)} is not sha256`);
  for (const l of m.layers) {
    if (declaredCompression(l.mediaType) === 'unknown') {
      throw new NotAContainerImageError(`${name} is not a container image (layer media type ${l.mediaType})`);
    }
    if (!isDigest(l.digest)) throw new FerryError('MANIFEST_INVALID', `${name}: layer digest ${JSON.stringify(l.digest)} is not sha256`);
  }
}

/** Where a blob goes in the archive: `blobs/sha256/<hex>`, the layout `docker save` writes since Engine 25. */
export function archivePath(digest: Digest): string {
  return `blobs/sha256/${hex(digest)}`;
}

export interface ArchiveEntry {
  config: Digest;
  repoTags: string[];
  layers: Digest[];
}

/** The docker-archive `manifest.json`: one object per image, paths into the archive. */
export function buildManifestJson(entries: readonly ArchiveEntry[]): Buffer {
  return Buffer.from(
    JSON.stringify(entries.map((e) => ({ Config: archivePath(e.config), RepoTags: e.repoTags, Layers: e.layers.map(archivePath) }))),
  );
}

// ---------------------------------------------------------------------------------------------
// The destination

type Base = Omit<LoadedImage, 'status'>;

interface Job {
  img: PlannedImage;
  base: Base;
  name?: EngineName;
  chosen?: ChosenImage;
  result?: LoadedImage;
}

export async function loadIntoDockerDaemon(plan: CopyPlan, sources: ImageSource[], opts: DockerDaemonOptions): Promise<DestinationReport> {
  const started = Date.now();
  const emit = opts.onEvent ?? (() => {});
  const signal = opts.signal;
  // 1. Connect; the platform to pick from indexes is the daemon's unless one was given.
  const endpoint: DockerEndpoint = resolveDockerEndpoint(opts.socket);
  const client = await DockerClient.connect(endpoint, signal);
  let platform = opts.platform;
  if (!platform) {
    const v = await client.version(signal);
    platform = daemonPlatform(v.Os, v.Arch, v.Arch === 'arm' ? await client.machine(signal) : undefined);
  }
  // Blob stats count the blobs of the chosen manifests only: other platforms of an index are
  // neither sent nor counted. `concurrency` does not apply: one request carries every blob, in order.
  const stats: LoadBlobStats = { total: 0, fetched: 0, skipped: 0, failed: 0, bytesFetched: 0, bytesSkipped: 0 };
  const blobInfo = new Map<string, PlannedBlob>(plan.blobs.map((b) => [b.desc.digest, b]));

  const finish = (job: Job, result: LoadedImage): void => {
    job.result = result;
    if (result.status === 'done') emit({ kind: 'image', state: 'done', image: job.img.name, digest: job.img.root.digest });
    else emit({ kind: 'image', state: 'failed', image: job.img.name, error: result.error ?? 'failed' });
  };
  const fail = (job: Job, err: unknown, context = `loading ${job.img.name} into ${client.description}`): void => {
    finish(job, failedResult(job.base, err, context));
  };

  // 2. Choose what each image loads; refuse what the engine cannot take.
  const jobs: Job[] = plan.images.map((img) => ({ img, base: resultBase(img) }));
  for (const job of jobs) {
    try {
      job.name = engineName(job.img.name);
      const chosen = chooseImage(job.img, platform);
      job.chosen = chosen;
      if (chosen.platform) job.base.platforms = [chosen.platform];
      if (!client.supportsZstd && chosen.manifest.layers.some((l) => declaredCompression(l.mediaType) === 'zstd')) {
        throw new FerryError(
          'ZSTD_UNSUPPORTED',
          `${job.img.name} has zstd-compressed layers, which this Docker Engine (API ${client.apiVersion}) cannot decompress`,
          { hint: `Docker Engine 23.0 (API ${ZSTD_MIN_API_VERSION}) or later loads zstd layers; or load a gzip variant of the image` },
        );
      }
      for (const d of [chosen.manifest.config, ...chosen.manifest.layers]) {
        const planned = blobInfo.get(d.digest);
        if (!planned) throw new FerryError('PLAN_INCOMPLETE', `${job.img.name}: the plan lacks blob ${d.digest}`);
        if (planned.desc.size !== d.size) {
          // Two manifests disagree about this blob's size and only one copy is sent.
          throw new SizeMismatchError(
            d.size,
            planned.desc.size,
            `blob ${d.digest} of ${job.img.name} (another image declares a different size)`,
          );
        }
      }
    } catch (err) {
      fail(job, err, job.img.name);
    }
  }

  // 3. Skip what the daemon already has.
  const pending = jobs.filter((j) => !j.result);
  const neededBlobs = new Map<string, Descriptor>();
  for (const job of pending) for (const d of [job.chosen!.manifest.config, ...job.chosen!.manifest.layers]) neededBlobs.set(d.digest, d);
  stats.total = neededBlobs.size;
  const toLoad: Job[] = [];
  /** Present under another name: only a tag is needed, given after the load. */
  const toTag: Job[] = [];
  for (const job of pending) {
    const id = job.chosen!.manifest.config.digest as Digest;
    const name = job.name!;
    const done: LoadedImage = { ...job.base, status: 'done', destination: name.destination(id), destinationDigest: id };
    try {
      const have = await client.inspectImage(name.lookup(id), signal);
      if (have?.Id === id) {
        finish(job, { ...done, skipped: true });
        continue;
      }
      if (name.repoTag !== undefined && (await client.inspectImage(id, signal))?.Id === id) {
        // The content is there under another name: naming it is all that is left.
        toTag.push(job);
        continue;
      }
      toLoad.push(job);
    } catch (err) {
      if (signal?.aborted) throw err;
      fail(job, err);
    }
  }

  // 4. One load request for everything else.
  const sendBlobs = new Map<string, Descriptor>();
  for (const job of toLoad) for (const d of [job.chosen!.manifest.config, ...job.chosen!.manifest.layers]) sendBlobs.set(d.digest, d);
  for (const [digest, d] of neededBlobs) {
    if (sendBlobs.has(digest)) continue;
    stats.skipped++;
    stats.bytesSkipped += d.size;
    emit({ kind: 'blob', state: 'skipped', digest, bytes: d.size, total: d.size });
  }
  /** The first blob of the load that failed its digest or size check. */
  let integrityFailure: unknown;
  if (toLoad.length > 0) {
    const entries: ArchiveEntry[] = toLoad.map((job) => ({
      config: job.chosen!.manifest.config.digest as Digest,
      repoTags: job.name!.repoTag !== undefined ? [job.name!.repoTag] : [],
      layers: job.chosen!.manifest.layers.map((l) => l.digest as Digest),
    }));
    const tar = new TarWriter();
    const loading = client.loadImages(tar.output, signal);
    // Which side failed first decides what is reported: a daemon that refused the request
    // also makes the producer fail (its output is closed), and vice versa.
    let loadFailedFirst = false;
    let producerDone = false;
    loading.catch(() => {
      if (!producerDone) loadFailedFirst = true;
    });
    const producing = (async () => {
      await tar.addFile('manifest.json', buildManifestJson(entries));
      await tar.addDir('blobs');
      await tar.addDir('blobs/sha256');
      for (const d of sendBlobs.values()) {
        await streamBlob(d, blobInfo.get(d.digest)!.sourceIndex);
      }
      await tar.finish();
    })();

    async function streamBlob(d: Descriptor, sourceIndex: number): Promise<void> {
      const source = sources[sourceIndex];
      if (!source) throw new FerryError('PLAN_INCOMPLETE', `no source #${sourceIndex} for blob ${d.digest}`);
      try {
        await addVerifiedBlob(tar, archivePath(d.digest as Digest), source, d, { emit, signal });
      } catch (err) {
        stats.failed++;
        if (err instanceof IntegrityError) integrityFailure ??= err;
        throw err;
      }
      stats.fetched++;
      stats.bytesFetched += d.size;
    }

    let sendError: unknown;
    try {
      await producing;
    } catch (err) {
      sendError = err;
      // The daemon must see a truncated archive, never a complete one without this blob.
      tar.abort(err);
    }
    producerDone = true;
    const loaded = await loading.then(
      () => undefined,
      (err: unknown) => err ?? new FerryError('DAEMON_LOAD_FAILED', 'load failed'),
    );
    if (sendError !== undefined && loadFailedFirst) sendError = loaded;
    if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : new AbortedError();
    if (sendError !== undefined) {
      // Nothing of this load was named: report the blob's error for every image in it.
      for (const job of toLoad) fail(job, sendError);
    } else {
      // 5. Confirm each image, also after a daemon error (images before the failing one load).
      for (const job of toLoad) {
        const id = job.chosen!.manifest.config.digest as Digest;
        const name = job.name!;
        try {
          const have = await client.inspectImage(name.lookup(id), signal);
          if (have?.Id === id) {
            finish(job, { ...job.base, status: 'done', destination: name.destination(id), destinationDigest: id });
            continue;
          }
          if (loaded !== undefined) throw loaded;
          throw new FerryError(
            'DAEMON_LOAD_INCOMPLETE',
            have
              ? `after the load, ${name.lookup(id)} is image ${have.Id}, not ${id}`
              : `after the load, the Docker daemon has no image ${name.lookup(id)}`,
          );
        } catch (err) {
          if (signal?.aborted) throw err;
          fail(job, err);
        }
      }
    }
  }

  // 6. The images that only needed a name, once the load is over: in all-or-nothing mode a
  // blob that failed its check means nothing is named.
  for (const job of toTag) {
    const id = job.chosen!.manifest.config.digest as Digest;
    const name = job.name!;
    try {
      if ((opts.allOrNothing ?? true) && integrityFailure !== undefined) throw new NotLoadedError(integrityFailure);
      const ref = parseReference(name.repoTag!);
      await client.tagImage(id, ref.name, ref.tag!, signal);
      finish(job, { ...job.base, status: 'done', destination: name.destination(id), destinationDigest: id, skipped: true });
    } catch (err) {
      if (signal?.aborted) throw err;
      fail(job, err);
    }
  }

  return { images: jobs.map((j) => j.result!), blobs: stats, durationMs: Date.now() - started };
}

/** `docker-daemon[:SOCKET]` as a destination (the images keep their names). */
export function openDockerDaemonDestination(socket: string | undefined): PlanDestination {
  return {
    description: socket ? `docker-daemon:${socket}` : 'docker-daemon',
    write: (plan, sources, w) =>
      loadIntoDockerDaemon(plan, sources, {
        ...(w.concurrency !== undefined ? { concurrency: w.concurrency } : {}),
        ...(w.signal ? { signal: w.signal } : {}),
        ...(w.onEvent ? { onEvent: w.onEvent } : {}),
        allOrNothing: !!w.allOrNothing,
        ...(socket ? { socket } : {}),
      }),
    close: async () => {},
  };
}
