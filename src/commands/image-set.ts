/**
 * What a run carries, from whichever way it was said: references and -f lists, profiles
 * (`-p`, tags listed and filtered), or a lock file (`--lock`, nothing re-resolved). pull,
 * bundle, mirror and plan all start here.
 */
import type { Digest } from '../oci/digest.js';
import type { PlatformSpec } from '../oci/platform.js';
import { loadProfiles, type LoadedProfileFile } from '../profile/load.js';
import { readLock } from '../profile/lock.js';
import { expandImageSet, type SetFailure, type SetImage } from '../profile/resolve.js';
import { RegistryClient } from '../transports/registry/client.js';
import { listTags } from '../transports/registry/tags.js';
import { UsageError } from '../util/errors.js';
import { bindStaticCredential, DEFAULT_CONCURRENCY, registryClientOptions, type RegistryAccessOptions } from './registry-access.js';
import type { EventSink } from '../copy/events.js';

export interface ImageSetInput {
  /** References from the command line and -f lists, as typed. */
  refs: string[];
  /** -p PROFILE (repeatable). */
  profiles: string[];
  /** --lock LOCK. */
  lock?: string;
  /** --platform: for plain references only (a profile says its own platforms). */
  platforms?: PlatformSpec[];
}

/** Where a profile or lock run came from, for reports, lock files and bundles. */
export interface ImageSetOrigin {
  /** metadata.name of each root profile (or of each profile the lock was planned from). */
  names: string[];
  profiles: LoadedProfileFile[];
  lock?: { file: string; digest: Digest };
}

export interface ResolvedImageSet {
  /** Registry images chosen by profiles or a lock; undefined for a plain list (refs are used as given). */
  images?: SetImage[];
  /** Entries that could not be resolved (tag lists, filters that selected nothing). */
  failures: SetFailure[];
  origin?: ImageSetOrigin;
}

export function isImageSetRun(input: ImageSetInput): boolean {
  return input.profiles.length > 0 || input.lock !== undefined;
}

/** Check the combination of inputs; a usage error before anything is read. */
export function checkImageSetInput(input: ImageSetInput): void {
  if (input.lock !== undefined && input.profiles.length > 0) {
    throw new UsageError('--lock and -p cannot be combined: a lock already says what its profiles selected', {
      hint: 'plan again with ferry plan -p PROFILE -o LOCK to change what is carried',
    });
  }
  if (isImageSetRun(input) && input.refs.length > 0) {
    throw new UsageError(`${input.lock !== undefined ? '--lock' : '-p'} cannot be combined with image references or -f lists`, {
      hint: 'add the references to a profile (images: - ref: …), or run them separately',
    });
  }
  if (isImageSetRun(input) && input.platforms?.length) {
    throw new UsageError('--platform applies to image references; a profile names its platforms (platforms: at the top or per image)');
  }
}

export interface ResolveOptions extends RegistryAccessOptions {
  concurrency?: number;
  signal?: AbortSignal;
  onEvent?: EventSink;
}

/** Profiles are read and expanded (tag lists only); a lock is read; plain references pass through. */
export async function resolveImageSet(input: ImageSetInput, opts: ResolveOptions): Promise<ResolvedImageSet> {
  checkImageSetInput(input);
  if (input.lock !== undefined) {
    const read = await readLock(input.lock);
    return {
      images: read.images,
      failures: [],
      origin: {
        names: [...new Set(read.lock.profiles.map((p) => p.name))],
        profiles: read.lock.profiles,
        lock: { file: input.lock, digest: read.digest },
      },
    };
  }
  if (input.profiles.length === 0) return { failures: [] };
  const set = await loadProfiles(input.profiles);
  if (set.entries.length === 0) {
    throw new UsageError(`${set.files.map((f) => f.file).join(', ')}: no images (images: is empty in every profile and include)`);
  }
  const hosts = [...new Set(set.entries.filter((e) => e.kind === 'repository').map((e) => e.ref.domain))];
  const clients = new Map<string, RegistryClient>();
  const clientOpts = registryClientOptions(opts, bindStaticCredential(opts, [...new Set(set.entries.map((e) => e.ref.domain))]));
  try {
    const { images, failures } = await expandImageSet(set, {
      listTags: (repo, signal) => {
        let client = clients.get(repo.domain);
        if (!client) {
          client = new RegistryClient(repo.domain, clientOpts);
          clients.set(repo.domain, client);
        }
        return listTags(client, repo.path, signal ? { signal } : {});
      },
      concurrency: Math.max(hosts.length, opts.concurrency ?? DEFAULT_CONCURRENCY),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    return { images, failures, origin: { names: set.names, profiles: set.files } };
  } finally {
    await Promise.all([...clients.values()].map((c) => c.close()));
  }
}
