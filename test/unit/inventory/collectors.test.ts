// The pure parts of the inventory collectors: which repositories a prefix takes, what `ctr
// content ls -q` lists, and what Docker's image list lets one say.
import { describe, expect, it } from 'vitest';
import { parseContentList } from '../../../src/inventory/containerd.js';
import { fromImageList } from '../../../src/inventory/docker-daemon.js';
import { underPrefix } from '../../../src/inventory/registry.js';

const d = (c: string): `sha256:${string}` => `sha256:${c.repeat(64)}`;

describe('underPrefix', () => {
  const repos = ['site/a', 'site/b/c', 'site', 'sitex/a', 'other/site/a', 'a'];
  it('takes the prefix itself and what lies under it, not a name that merely starts with it', () => {
    expect(underPrefix(repos, 'site')).toEqual(['site', 'site/a', 'site/b/c']);
    expect(underPrefix(repos, 'site/b')).toEqual(['site/b/c']);
    expect(underPrefix(repos, '')).toEqual([...repos].sort());
    expect(underPrefix(repos, 'nothing')).toEqual([]);
  });
});

describe('parseContentList', () => {
  it('reads one digest a line, each once, and skips anything else', () => {
    const out = `${d('a')}\n${d('b')}\r\n\nWARN[0000] something\n${d('a')}\nsha256:short\nsha512:${'c'.repeat(128)}\n`;
    expect(parseContentList(out)).toEqual([d('a'), d('b')]);
    expect(parseContentList('')).toEqual([]);
  });
});

describe('fromImageList', () => {
  it('names tags at image IDs and repository digests at manifest digests; blobs are the IDs', () => {
    const got = fromImageList([
      { Id: d('1'), RepoTags: ['app:1', 'registry.local/app:1'], RepoDigests: [`registry.local/app@${d('2')}`] },
      { Id: d('3'), RepoTags: ['<none>:<none>'], RepoDigests: [`example.com/a@${d('4')}`] },
      { Id: d('5'), RepoTags: null, RepoDigests: null },
      { Id: 'not-a-digest', RepoTags: ['x:1'] },
      { Id: d('6'), RepoTags: ['app:1'] },
    ]);
    expect(got.images).toEqual([
      { name: `registry.local/app@${d('2')}`, digest: d('2') },
      { name: 'app:1', digest: d('1') },
      { name: 'registry.local/app:1', digest: d('1') },
      { name: `example.com/a@${d('4')}`, digest: d('4') },
    ]);
    expect(got.blobs).toEqual([d('1'), d('3'), d('5'), d('6')]);
    expect(got.notes[0]).toContain('layers could not be confirmed');
    expect(got.notes[1]).toMatch(/^2 tagged names recorded at the image ID/);
  });

  it('with no tags named by ID, says only that layers could not be confirmed', () => {
    const got = fromImageList([{ Id: d('3'), RepoTags: [], RepoDigests: [`example.com/a@${d('4')}`] }]);
    expect(got.notes).toHaveLength(1);
  });
});
