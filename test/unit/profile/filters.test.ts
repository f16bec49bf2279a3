import { describe, expect, it } from 'vitest';
import { describeSteps, selectTags, tagVersion } from '../../../src/profile/filters.js';
import type { CompiledTagFilter } from '../../../src/profile/load.js';

const TAGS = [
  'latest',
  'nightly-20260101',
  '7',
  '7.2',
  '7.2.0',
  '7.2.4',
  '7.2.4-alpine',
  'v7.2.5',
  '7.4.0-rc.1',
  '7.4.0',
  '7.4.1',
  '7.4.1-alpine',
  '8.0.0',
  '8.0.1-rc.2',
  '6.2.14',
  'v6.2.15',
];

const re = (p: string): RegExp => new RegExp(`^(?:${p})$`);

function pick(filter: CompiledTagFilter): string[] {
  return selectTags(TAGS, filter).tags;
}

describe('selectTags', () => {
  it('allow matches the whole tag, in byte order without semver', () => {
    expect(pick({ allow: [re('7\\.2.*')] })).toEqual(['7.2', '7.2.0', '7.2.4', '7.2.4-alpine']);
    // Not a substring match: "17.2" would not pass '7\..*', and 'v7.2.5' does not start with 7.
    expect(pick({ allow: [re('7\\..*')] })).not.toContain('v7.2.5');
  });

  it('deny drops after allow', () => {
    expect(pick({ allow: [re('7\\.4.*')], deny: [re('.*-alpine'), re('.*-rc.*')] })).toEqual(['7.4.0', '7.4.1']);
  });

  it('semver keeps versions in range (v prefix accepted), drops non-versions and pre-releases, highest first', () => {
    expect(pick({ semver: '>=7.2 <8' })).toEqual(['7.4.1', '7.4.0', 'v7.2.5', '7.2.4', '7.2.0']);
  });

  it('semver admits pre-releases with prerelease: true (a -alpine suffix is one, to semver)', () => {
    expect(pick({ semver: '>=7.4.0-0 <9', prerelease: true })).toEqual([
      '8.0.1-rc.2',
      '8.0.0',
      '7.4.1',
      '7.4.1-alpine',
      '7.4.0',
      '7.4.0-rc.1',
    ]);
  });

  it('latest keeps the N highest after the other filters; alone it skips pre-releases', () => {
    expect(pick({ latest: 3 })).toEqual(['8.0.0', '7.4.1', '7.4.0']);
    expect(pick({ latest: 2, prerelease: true })).toEqual(['8.0.1-rc.2', '8.0.0']);
    expect(pick({ semver: '^6', latest: 1 })).toEqual(['v6.2.15']);
  });

  it('applies allow → deny → semver → latest together, and counts each step', () => {
    const s = selectTags(TAGS, { allow: [re('v?7\\..*')], deny: [re('.*-alpine')], semver: '>=7.2 <8', latest: 3 });
    expect(s.tags).toEqual(['7.4.1', '7.4.0', 'v7.2.5']);
    expect(s.steps).toEqual([
      { step: 'listed', left: 16 },
      { step: 'allow', left: 9 },
      { step: 'deny', left: 7 },
      { step: 'semver', left: 5, notVersions: 1 },
      { step: 'latest', left: 3 },
    ]);
    expect(describeSteps(s.steps)).toBe(
      '16 tags listed, allow kept 9, deny kept 7, semver kept 5 (1 is not a semantic version), latest kept 3',
    );
  });

  it('says when latest found no versions at all', () => {
    const s = selectTags(['v0', 'v1', 'latest'], { allow: [re('v[0-9]+')], latest: 4 });
    expect(s.tags).toEqual([]);
    expect(describeSteps(s.steps)).toBe('3 tags listed, allow kept 2, latest kept 0 (2 are not semantic versions)');
  });

  it('no filter keeps every tag once', () => {
    expect(selectTags([...TAGS, 'latest'], {}).tags).toEqual([...TAGS].sort());
  });

  it('reads versions strictly', () => {
    expect(tagVersion('v1.2.3')?.version).toBe('1.2.3');
    expect(tagVersion('1.2')).toBeUndefined();
    expect(tagVersion('latest')).toBeUndefined();
    expect(tagVersion('1.2.3-alpine')?.prerelease).toEqual(['alpine']);
  });
});
