import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseImageList, readImageList } from '../../../src/commands/image-list.js';

describe('image lists', () => {
  it('one reference per line; blanks and # comments ignored; CRLF tolerated', () => {
    const text = '# base images\nnginx:1.27\n\n  ghcr.io/org/app:2   # pinned\r\n#quay.io/ignored\noci:/srv/store:v1\n';
    expect(parseImageList(text)).toEqual(['nginx:1.27', 'ghcr.io/org/app:2', 'oci:/srv/store:v1']);
  });
  it('a # inside a reference is not a comment', () => {
    expect(parseImageList('a/b:1#x')).toEqual(['a/b:1#x']);
  });
  it('a missing list file is a usage error naming the file', async () => {
    await expect(readImageList('/nonexistent/list.txt')).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('/nonexistent/list.txt'),
    });
  });
  it('reads a file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-list-'));
    await writeFile(path.join(dir, 'l.txt'), 'busybox\n');
    expect(await readImageList(path.join(dir, 'l.txt'))).toEqual(['busybox']);
  });
});
