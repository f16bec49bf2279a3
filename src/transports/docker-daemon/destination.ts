/**
 * The `docker-daemon` destination of `ferry load`: a CopyPlan into a Docker Engine through its
 * API (`POST /images/load`), the way `docker load` does, without a temp file. An ordered-stream
 * ImageDestination (DockerDaemonDestination) that the one executor (copy/execute.ts) drives.
 *
 * What happens, in order:
 * 1. prepare(): connect (`GET /_ping`, API version negotiation) and learn the daemon's platform;
 *    per image, pick the manifest for the platform from an index; refuse artifacts (no image
 *    config), and zstd layers on daemons that cannot decompress them (Engine < 23.0). Skip
 *    what is there: an image whose name already has the config digest as its ID is done; one
 *    whose ID is present under another name only gets tagged (nothing sent), after the load.
 * 2. putBlob(): everything else goes into ONE load request whose body is a docker-archive tar
 *    built while it streams: `manifest.json` first (prepare() knows everything it needs), then
 *    each config and layer blob once, as stored (dockerd decompresses gzip, and zstd from
 *    23.0). Every blob passes a DigestVerifier; its last chunk is held back until the check
 *    passes, so the daemon never receives a complete bad blob. A failure destroys the request:
 *    the daemon reads a truncated tar and loads nothing.
 * 3. commit(): end the archive, await the daemon, confirm each image by inspecting it (its ID
 *    must be the config digest); then tag the images that only needed a name.
 *
 * Docker Engine identifies an image by its config digest (the image ID), so that is what
 * `destinationDigest` reports; the manifest and index are not stored by the classic engine.
 */
import type { CopyPlan, PlannedBlob, PlannedImage } from '../../copy/plan.js';
import { hex, isDigest, type Digest } from '../../oci/digest.js';
import { parseManifest, type Descriptor, type ImageManifest, type ManifestDocument } from '../../oci/manifest.js';
import { MediaType, declaredCompression } from '../../oci/mediatypes.js';
import { formatPlatform, normalizePlatform, platformMatches, type PlatformSpec } from '../../oci/platform.js';
import { parseReference } from '../../ref/reference.js';
import type {
  BlobOpener,
  CommitResult,
  DestinationCapabilities,
  DestinationName,
  ImageDestination,
  PreparedImage,
  PutBlobOptions,
  PutBlobResult,
} from '../types.js';
import { AbortedError, FerryError, NotFoundError, SizeMismatchError, UsageError } from '../../util/errors.js';
import { TarWriter } from '../../tar/writer.js';
import { putVerifiedMember } from '../archive-blob.js';
import { DockerClient, ZSTD_MIN_API_VERSION, resolveDockerEndpoint } from './api.js';
import type { EventSink } from '../../copy/events.js';
import { formatNamePrefix, prefixedTargets, type PrefixRenaming } from '../registry/names.js';

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

/** How an image is named in the engine: a repo:tag (digest-only names get a digest tag, see engineName). */
export interface EngineName {
  /** `docker.io/library/nginx:1.25`. */
  repoTag: string;
  /** The source name had no tag: repoTag's tag is `sha256-<hex>` of its digest. */
  digestTag: boolean;
  /** For the report: `docker-daemon:nginx:1.25`. */
  destination: string;
  /** What `GET /images/{x}/json` is asked for before and after the load. */
  lookup: string;
}

/** `sha256:<hex>` → `sha256-<hex>`: the tag a digest-only name gets (cosign's spelling; 71 characters, a valid tag). */
export function digestTag(digest: Digest): string {
  return `sha256-${hex(digest)}`;
}

/**
 * The engine name of a plan name. A name with a tag and a digest is stored under its tag. A
 * digest-only name (`repo@sha256:…`) is stored as `repo:sha256-<hex>`: Docker Engine keeps no
 * digest-only names (`docker load` would leave the image `<none>:<none>`, which the next
 * `docker image prune` deletes), and a tag made of the digest survives, reads back as the pin,
 * and cannot meet a tag of another digest.
 */
export function engineName(name: string): EngineName {
  const ref = parseReference(name);
  if (ref.tag === undefined && ref.digest === undefined) {
    throw new FerryError('NAME_INVALID', `${name} has neither a tag nor a digest to name it by in Docker Engine`);
  }
  const tag = ref.tag ?? digestTag(ref.digest as Digest);
  const tagged = `${ref.name}:${tag}`;
  const familiar = parseReference(tagged).familiar();
  return { repoTag: tagged, digestTag: ref.tag === undefined, destination: `docker-daemon:${familiar}`, lookup: tagged };
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

/** What prepare() decided for an image the engine takes (copy or name only). */
interface EngineImage {
  state: 'copy' | 'name';
  name: EngineName;
  chosen: ChosenImage;
  /** The image ID: the chosen config's digest. */
  id: Digest;
}

/** The one `POST /images/load` request of a run, and the docker-archive tar it streams. */
interface LoadStream {
  tar: TarWriter;
  /** manifest.json and the blob directories, written when the stream opens. */
  header: Promise<void>;
  /** Resolves once the request is over: undefined, or the daemon's error. Never rejects. */
  settled: Promise<unknown>;
  /** The error that broke the stream (a blob failed, or the daemon gave up): final. */
  broken?: unknown;
  /** finish() was called: the tar is complete, only the daemon's answer is awaited. */
  finishing: boolean;
  /** The daemon's request failed before our side broke or finished the stream. */
  daemonFirst: boolean;
}

export interface DockerDaemonOptions {
  /** unix socket path, or undefined = from DOCKER_HOST (unix:///path or tcp://host:port) else /var/run/docker.sock */
  socket?: string;
  /** platform to pick from multi-arch indexes; default: the daemon's own (GET /version Os/Arch, plus variant if known) */
  platform?: PlatformSpec;
  /** Names under a prefix (`--prefix`, `--scoped`), as in a registry; default: the source names. */
  naming?: PrefixRenaming;
}

/**
 * The engine name of every plan image, in order: the source name, or its name under the
 * prefix. A name that cannot be placed, or two images on one repo:tag, are a UsageError for
 * the whole run, before anything is sent; an image whose own name cannot be used in Docker (a
 * nameless one) is that image's failure.
 */
export function engineNames(
  images: ReadonlyArray<{ name: string; root: { digest: Digest } }>,
  naming?: PrefixRenaming,
): Array<EngineName | Error> {
  const targets = naming
    ? prefixedTargets(
        images.map((i) => ({ name: i.name, digest: i.root.digest })),
        naming.prefix,
        { scoped: naming.scoped, where: `docker-daemon (--prefix ${formatNamePrefix(naming.prefix)})`, verb: 'loaded', action: 'load' },
      ).map((t) => t.destination)
    : images.map((i) => i.name);
  const out = targets.map((t): EngineName | Error => {
    try {
      return engineName(t);
    } catch (err) {
      return err instanceof Error ? err : new FerryError('NAME_INVALID', String(err));
    }
  });
  // A digest tag can meet a source tag spelled the same way; one repo:tag holds one image.
  const taken = new Map<string, { name: string; digest: Digest }>();
  const problems: string[] = [];
  out.forEach((n, i) => {
    if (n instanceof Error) return;
    const img = images[i]!;
    const other = taken.get(n.repoTag);
    // The same image under two spellings of one name is one name, not a collision.
    if (other !== undefined && other.digest !== img.root.digest) {
      problems.push(`${other.name} and ${img.name} would both be loaded as ${n.repoTag}`);
    }
    taken.set(n.repoTag, { name: img.name, digest: img.root.digest });
  });
  if (problems.length > 0) {
    throw new UsageError(
      `cannot name ${problems.length === 1 ? 'an image' : `${problems.length} images`} in docker-daemon:\n  ${problems.join('\n  ')}`,
      {
        hint: 'nothing was loaded',
      },
    );
  }
  return out;
}

/**
 * Docker Engine as an ordered-stream ImageDestination. prepare() connects, chooses each image's
 * platform manifest and asks the engine what it has; every image to copy goes into one
 * `POST /images/load` request that the first putBlob opens (manifest.json first: the engine
 * reads it before the blobs), each blob a verified member; commit() ends the archive and
 * confirms each image by inspecting it, then gives the tags of the images that only needed one.
 */
export class DockerDaemonDestination implements ImageDestination {
  readonly capabilities: DestinationCapabilities = { parallelBlobs: false, mount: false, orderedStream: true, knowsBlobs: false };
  readonly description: string;
  private client: DockerClient | undefined;
  /** Per plan index, the images the engine takes; failed and done images are absent. */
  private images = new Map<number, EngineImage>();
  /** Declared size of each blob the chosen manifests name (the plan's is -1 on a size conflict). */
  private sizes = new Map<string, number>();
  private stream: LoadStream | undefined;
  /** Images of the stream whose names were set: confirmed at commit(). */
  private toConfirm: number[] = [];
  /** Images present under another ID-only name whose names were set: tagged at commit(). */
  private toTag: number[] = [];
  /** The engine name of each plan name (prepare()). */
  private namesByPlanName = new Map<string, EngineName>();

  constructor(private readonly opts: DockerDaemonOptions = {}) {
    this.description = opts.socket ? `docker-daemon:${opts.socket}` : 'docker-daemon';
  }

  async prepare(plan: CopyPlan, ctx: { signal?: AbortSignal; onEvent?: EventSink }): Promise<PreparedImage[]> {
    const signal = ctx.signal;
    // Names first: a collision stops the run before the engine is even asked.
    const names = engineNames(plan.images, this.opts.naming);
    this.namesByPlanName = new Map(
      plan.images.flatMap((img, i) => (names[i] instanceof Error ? [] : [[img.name, names[i] as EngineName]])),
    );
    this.images.clear();
    this.sizes.clear();
    this.toConfirm = [];
    this.toTag = [];
    // Connect here, once for the run: a daemon that is not there fails the whole run.
    const client = this.client ?? (await DockerClient.connect(resolveDockerEndpoint(this.opts.socket), signal));
    this.client = client;
    let platform = this.opts.platform;
    if (!platform) {
      const v = await client.version(signal);
      platform = daemonPlatform(v.Os, v.Arch, v.Arch === 'arm' ? await client.machine(signal) : undefined);
    }
    const blobInfo = new Map<string, PlannedBlob>(plan.blobs.map((b) => [b.desc.digest, b]));

    const out: PreparedImage[] = [];
    for (const [i, img] of plan.images.entries()) {
      let chosen: ChosenImage | undefined;
      try {
        const name = names[i]!;
        if (name instanceof Error) throw name;
        if (name.digestTag) {
          ctx.onEvent?.({
            kind: 'warning',
            image: img.name,
            message: `docker has no digest-only names; ${img.name} is tagged as ${name.repoTag}`,
          });
        }
        chosen = chooseImage(img, platform);
        this.checkImage(img, chosen, blobInfo);
        const id = chosen.manifest.config.digest as Digest;
        const blobs: Descriptor[] = [chosen.manifest.config, ...chosen.manifest.layers];
        const where = {
          destination: name.destination,
          destinationDigest: id,
          ...(chosen.platform ? { platforms: [chosen.platform] } : {}),
          blobs,
        };
        const have = await client.inspectImage(name.lookup, signal);
        if (have?.Id === id) {
          out.push({ ...where, state: 'done' });
          continue;
        }
        const state = (await client.inspectImage(id, signal))?.Id === id ? 'name' : 'copy';
        this.images.set(i, { state, name, chosen, id });
        if (state === 'name') {
          // The content is there under another name: naming it is all that is left.
          out.push({ ...where, state });
          continue;
        }
        for (const d of blobs) this.sizes.set(d.digest, d.size);
        // The engine stores no manifests: only the chosen config and layers are sent.
        out.push({ ...where, state, manifests: [] });
      } catch (err) {
        if (signal?.aborted) throw err;
        this.images.delete(i);
        out.push({ state: 'failed', error: err, ...(chosen?.platform ? { platforms: [chosen.platform] } : {}) });
      }
    }
    return out;
  }

  /** Refuse what this engine cannot take: zstd before 23.0, a blob two images disagree about. */
  private checkImage(img: PlannedImage, chosen: ChosenImage, blobInfo: ReadonlyMap<string, PlannedBlob>): void {
    const client = this.client!;
    if (!client.supportsZstd && chosen.manifest.layers.some((l) => declaredCompression(l.mediaType) === 'zstd')) {
      throw new FerryError(
        'ZSTD_UNSUPPORTED',
        `${img.name} has zstd-compressed layers, which this Docker Engine (API ${client.apiVersion}) cannot decompress`,
        { hint: `Docker Engine 23.0 (API ${ZSTD_MIN_API_VERSION}) or later loads zstd layers; or load a gzip variant of the image` },
      );
    }
    for (const d of [chosen.manifest.config, ...chosen.manifest.layers]) {
      const planned = blobInfo.get(d.digest);
      if (!planned) throw new FerryError('PLAN_INCOMPLETE', `${img.name}: the plan lacks blob ${d.digest}`);
      if (planned.desc.size !== d.size) {
        // Two manifests disagree about this blob's size and only one copy is sent.
        throw new SizeMismatchError(d.size, planned.desc.size, `blob ${d.digest} of ${img.name} (another image declares a different size)`);
      }
    }
  }

  async hasBlob(): Promise<boolean> {
    // A stream cannot tell what the engine holds blob by blob; prepare() skipped whole images.
    return false;
  }

  async storedBlobSize(): Promise<number | undefined> {
    return undefined;
  }

  async putBlob(desc: Descriptor, open: BlobOpener, opts: PutBlobOptions): Promise<PutBlobResult> {
    const s = this.stream ?? this.openStream(opts.signal);
    if (s.broken !== undefined) throw s.broken;
    // The size the chosen manifests declare (the executor sends -1 when other images disagree).
    const size = this.sizes.get(desc.digest) ?? desc.size;
    try {
      await s.header;
      const bytes = await putVerifiedMember(s.tar, archivePath(desc.digest as Digest), { ...desc, size }, open, {
        what: opts.what,
        onProgress: opts.onProgress,
      });
      return { bytes, sent: true };
    } catch (err) {
      s.broken = err;
      // The daemon must see a truncated archive, never a complete one without this blob.
      s.tar.abort(err);
      const loadError = await s.settled;
      if (opts.signal?.aborted) throw abortError(opts.signal);
      // Which side failed first decides what is reported: a daemon that refused the request
      // also makes our writes fail (its body is closed), and vice versa.
      if (s.daemonFirst && loadError !== undefined) s.broken = loadError;
      throw s.broken;
    }
  }

  /** Start the load request: manifest.json (every image to copy), then the blob directories. */
  private openStream(signal: AbortSignal | undefined): LoadStream {
    const client = this.client;
    if (!client) throw new FerryError('INTERNAL', `${this.description}: putBlob before prepare`);
    const entries: ArchiveEntry[] = [];
    for (const img of this.images.values()) {
      if (img.state !== 'copy') continue;
      entries.push({
        config: img.id,
        repoTags: [img.name.repoTag],
        layers: img.chosen.manifest.layers.map((l) => l.digest as Digest),
      });
    }
    const tar = new TarWriter();
    const header = (async () => {
      await tar.addFile('manifest.json', buildManifestJson(entries));
      await tar.addDir('blobs');
      await tar.addDir('blobs/sha256');
    })();
    header.catch(() => {}); // observed by putBlob
    const s: LoadStream = { tar, header, settled: Promise.resolve(undefined), finishing: false, daemonFirst: false };
    s.settled = client.loadImages(tar.output, signal).then(
      () => undefined,
      (err: unknown) => {
        if (s.broken === undefined && !s.finishing) s.daemonFirst = true;
        return err ?? new FerryError('DAEMON_LOAD_FAILED', 'load failed');
      },
    );
    this.stream = s;
    return s;
  }

  async putManifest(): Promise<void> {
    // The engine stores no manifests (prepare() asks for none).
  }

  async setName(image: DestinationName): Promise<boolean> {
    const img = this.images.get(image.index);
    if (!img) throw new FerryError('INTERNAL', `${image.name} was not prepared for ${this.description}`);
    // Names take effect at commit(): in manifest.json for a loaded image, by a tag otherwise.
    (img.state === 'copy' ? this.toConfirm : this.toTag).push(image.index);
    return true;
  }

  nameOf(image: Pick<DestinationName, 'name'>): string {
    // prepare() gives every image its destination; this is only the fallback.
    const named = this.namesByPlanName.get(image.name);
    return named ? named.destination : `docker-daemon:${image.name}`;
  }

  async commit(signal?: AbortSignal): Promise<CommitResult> {
    const failed = new Map<number, unknown>();
    const client = this.client;
    const s = this.stream;
    const confirm = this.toConfirm;
    const tags = this.toTag;
    this.stream = undefined;
    this.toConfirm = [];
    this.toTag = [];
    if (!client) return { failed };

    if (s?.broken !== undefined) {
      // The executor already failed the run: only let the request end.
      await s.settled;
    } else {
      let finishError: unknown;
      let loadError: unknown;
      if (s) {
        s.finishing = true;
        try {
          await s.header;
          await s.tar.finish();
        } catch (err) {
          finishError = err;
          s.tar.abort(err);
        }
        loadError = await s.settled;
        if (signal?.aborted) throw abortError(signal);
      }
      // Without a stream nothing was sent: an image named anyway is confirmed like the others.
      for (const i of confirm) {
        const img = this.images.get(i)!;
        try {
          // The tar can only fail to end when the request gave up: the daemon says why.
          if (finishError !== undefined) throw loadError ?? finishError;
          // Confirm even after a daemon error: the images before the failing one load.
          const have = await client.inspectImage(img.name.lookup, signal);
          if (have?.Id === img.id) continue;
          if (loadError !== undefined) throw loadError;
          throw new FerryError(
            'DAEMON_LOAD_INCOMPLETE',
            have
              ? `after the load, ${img.name.lookup} is image ${have.Id}, not ${img.id}`
              : `after the load, the Docker daemon has no image ${img.name.lookup}`,
          );
        } catch (err) {
          if (signal?.aborted) throw err;
          failed.set(i, err);
        }
      }
    }

    // Images present under another name: their tags, once the load is over.
    for (const i of tags) {
      const img = this.images.get(i)!;
      try {
        const ref = parseReference(img.name.repoTag);
        await client.tagImage(img.id, ref.name, ref.tag!, signal);
      } catch (err) {
        if (signal?.aborted) throw err;
        failed.set(i, err);
      }
    }
    return { failed };
  }

  async close(): Promise<void> {
    // Closed without commit(): the daemon reads a truncated archive and loads nothing.
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      s.broken ??= new AbortedError('the load was closed before it was committed');
      s.tar.abort(s.broken);
      await s.settled;
    }
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new AbortedError();
}

/** `docker-daemon[:SOCKET]` as a destination (the images keep their names, or take them under `naming`'s prefix). */
export function openDockerDaemonDestination(socket: string | undefined, naming?: PrefixRenaming): DockerDaemonDestination {
  return new DockerDaemonDestination({ ...(socket ? { socket } : {}), ...(naming ? { naming } : {}) });
}
