/**
 * From profile entries to the images a run carries: repositories expanded through their tag
 * lists and filters, names given (target applied), duplicates merged. Only tag lists are read
 * here; manifests are resolved by the copy planner, as for any other list of references.
 */
import { eachLimit } from '../copy/scheduler.js';
import { formatPlatform, type PlatformSpec } from '../oci/platform.js';
import { parseNormalizedNamed, withTag, type Reference } from '../ref/reference.js';
import { FerryError, UsageError, wrap } from '../util/errors.js';
import { describeSteps, selectTags } from './filters.js';
import type { ImageSet, ProfileEntry } from './load.js';

/** One image a run carries. */
export interface SetImage {
  /** What is fetched: a tag, a digest, or tag@digest (the digest is what is fetched). */
  ref: Reference;
  /** The name the destination records: the full reference, or the target repository with the tag or digest. */
  name: string;
  /** Undefined: every platform. */
  platforms?: PlatformSpec[];
  /** Where it was asked for (file:line:column of each entry). */
  from: string[];
}

export interface SetFailure {
  /** The entry as written. */
  name: string;
  where: string;
  error: unknown;
}

/** Nothing the filters of a repository entry kept: an error for that entry, never a silent no-op. */
export class NoTagsSelectedError extends FerryError {
  constructor(message: string) {
    super('PROFILE_NO_TAGS', message, {
      hint: 'run ferry plan -p PROFILE to see what each filter keeps, and loosen the one that emptied the list',
    });
  }
}

export type TagLister = (repository: Reference, signal?: AbortSignal) => Promise<string[]>;

export interface ExpandOptions {
  listTags: TagLister;
  concurrency?: number;
  signal?: AbortSignal;
}

/** The name an entry's image is recorded as: target repository (if any) with the ref's tag and digest. */
export function setImageName(ref: Reference, target: Reference | undefined): string {
  if (!target) return ref.toString();
  return `${target.name}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`;
}

export async function expandImageSet(set: ImageSet, opts: ExpandOptions): Promise<{ images: SetImage[]; failures: SetFailure[] }> {
  const expanded: Array<{ entry: ProfileEntry; refs: Reference[] } | undefined> = new Array(set.entries.length);
  const failures: SetFailure[] = [];
  // Tag lists are read once per repository, however many entries filter it.
  const lists = new Map<string, Promise<string[]>>();
  await eachLimit(set.entries, opts.concurrency ?? 8, async (entry, i) => {
    if (entry.kind !== 'repository') {
      expanded[i] = { entry, refs: [entry.ref] };
      return;
    }
    try {
      let listing = lists.get(entry.ref.name);
      if (!listing) {
        listing = opts.listTags(entry.ref, opts.signal);
        lists.set(entry.ref.name, listing);
      }
      const listed = await listing;
      const chosen = selectTags(listed, entry.tags ?? {});
      if (chosen.tags.length === 0) {
        throw new NoTagsSelectedError(`the tag filters selected nothing (${describeSteps(chosen.steps)})`);
      }
      expanded[i] = { entry, refs: chosen.tags.map((t) => withTag(entry.ref, t)) };
    } catch (err) {
      opts.signal?.throwIfAborted();
      // The lister's errors name the repository already ("listing tags of HOST/REPO: …").
      failures.push({ name: entry.written, where: entry.where, error: wrap(err, entry.where) });
    }
  });
  // Names in entry order; the same name twice is merged (platforms joined), unless the two
  // entries fetch different things under it.
  const byName = new Map<string, SetImage & { entry: ProfileEntry }>();
  const images: SetImage[] = [];
  for (const x of expanded) {
    if (!x) continue;
    for (const ref of x.refs) {
      const name = setImageName(ref, x.entry.target);
      const earlier = byName.get(name);
      if (!earlier) {
        const image: SetImage & { entry: ProfileEntry } = {
          ref,
          name,
          ...(x.entry.platforms ? { platforms: x.entry.platforms } : {}),
          from: [x.entry.where],
          entry: x.entry,
        };
        byName.set(name, image);
        images.push(image);
        continue;
      }
      if (earlier.ref.toString() !== ref.toString()) {
        throw new UsageError(
          `${x.entry.where}: ${x.entry.written} and ${earlier.entry.where}: ${earlier.entry.written} would both be named ${name} (from ${ref.toString()} and ${earlier.ref.toString()})`,
          { hint: 'give one of them another target:, or drop one' },
        );
      }
      earlier.from.push(x.entry.where);
      earlier.platforms = joinPlatforms(earlier.platforms, x.entry.platforms);
      if (earlier.platforms === undefined) delete earlier.platforms;
    }
  }
  return { images: images.map(({ ref, name, platforms, from }) => ({ ref, name, ...(platforms ? { platforms } : {}), from })), failures };
}

/** Two entries asking for one image: every platform either asks for (undefined is all of them). */
function joinPlatforms(a: PlatformSpec[] | undefined, b: PlatformSpec[] | undefined): PlatformSpec[] | undefined {
  if (!a || !b) return undefined;
  const out = [...a];
  const seen = new Set(a.map(formatPlatform));
  for (const p of b) if (!seen.has(formatPlatform(p))) out.push(p);
  return out;
}

/** A plain reference (command line or -f list) as a set image. */
export function plainSetImage(input: string, platforms: PlatformSpec[] | undefined): SetImage {
  const ref = parseNormalizedNamed(input.startsWith('docker://') ? input.slice('docker://'.length) : input);
  return { ref, name: ref.toString(), ...(platforms?.length ? { platforms } : {}), from: [input] };
}
