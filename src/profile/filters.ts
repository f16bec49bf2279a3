/**
 * Tag filters: allow → deny → semver → latest, each a pure step over the repository's tag list,
 * with a count after each step so that "selects nothing" can say which step emptied the list.
 */
import semver from 'semver';
import type { CompiledTagFilter } from './load.js';

export interface TagSelection {
  /** The chosen tags: highest version first when semver or latest took part, else in byte order. */
  tags: string[];
  /** How many tags were left after each step that ran, in order: listed, allow, deny, semver, latest. */
  steps: Array<{ step: 'listed' | 'allow' | 'deny' | 'semver' | 'latest'; left: number; notVersions?: number }>;
}

/** A tag as a semantic version (a leading v accepted), or undefined. Strict: 7.2 and latest are not versions. */
export function tagVersion(tag: string): semver.SemVer | undefined {
  const bare = tag.startsWith('v') || tag.startsWith('V') ? tag.slice(1) : tag;
  // Docker tags cannot hold "+", so build metadata never appears; strict parsing (no loose mode)
  // keeps "7.2" or "7.2.4-alpine3.20" from being read as something they do not say.
  return semver.parse(bare) ?? undefined;
}

function byVersionDesc(a: { tag: string; v: semver.SemVer }, b: { tag: string; v: semver.SemVer }): number {
  const c = semver.rcompare(a.v, b.v);
  if (c !== 0) return c;
  // 1.2.3 and v1.2.3 are one version: a fixed order between them (byte order).
  return a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0;
}

export function selectTags(listed: readonly string[], filter: CompiledTagFilter): TagSelection {
  const steps: TagSelection['steps'] = [{ step: 'listed', left: listed.length }];
  let tags = [...new Set(listed)];
  if (filter.allow) {
    const allow = filter.allow;
    tags = tags.filter((t) => allow.some((r) => r.test(t)));
    steps.push({ step: 'allow', left: tags.length });
  }
  if (filter.deny) {
    const deny = filter.deny;
    tags = tags.filter((t) => !deny.some((r) => r.test(t)));
    steps.push({ step: 'deny', left: tags.length });
  }
  if (filter.semver === undefined && filter.latest === undefined) {
    return { tags: tags.sort(), steps };
  }
  let versions = tags.flatMap((tag) => {
    const v = tagVersion(tag);
    return v ? [{ tag, v }] : [];
  });
  // Said on the first step that needs versions: "latest kept 0" alone hides why.
  const notVersions = tags.length - versions.length;
  const versionNote = notVersions > 0 ? { notVersions } : {};
  if (filter.semver !== undefined) {
    const range = filter.semver;
    const includePrerelease = filter.prerelease === true;
    versions = versions.filter(({ v }) => semver.satisfies(v, range, { includePrerelease }));
    steps.push({ step: 'semver', left: versions.length, ...versionNote });
  } else if (filter.prerelease !== true) {
    // latest alone: "the newest three releases" does not mean release candidates (a range that
    // names a pre-release, or prerelease: true, lets them in).
    versions = versions.filter(({ v }) => v.prerelease.length === 0);
  }
  versions.sort(byVersionDesc);
  if (filter.latest !== undefined) {
    versions = versions.slice(0, filter.latest);
    steps.push({ step: 'latest', left: versions.length, ...(filter.semver === undefined ? versionNote : {}) });
  }
  return { tags: versions.map((x) => x.tag), steps };
}

/** "42 listed, allow kept 10, deny kept 8, semver kept 0": for a filter that selected nothing. */
export function describeSteps(steps: TagSelection['steps']): string {
  return steps
    .map((s) => {
      if (s.step === 'listed') return `${s.left} tag${s.left === 1 ? '' : 's'} listed`;
      const note = s.notVersions
        ? ` (${s.notVersions} ${s.notVersions === 1 ? 'is not a semantic version' : 'are not semantic versions'})`
        : '';
      return `${s.step} kept ${s.left}${note}`;
    })
    .join(', ');
}
