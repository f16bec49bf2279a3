/**
 * The tar reader's bundle mode (`strict`): only path/linkpath/size pax records, no global pax
 * headers, and nothing but zero bytes after the end-of-archive marker. Third-party archives
 * (the default) keep the lenient behaviour.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerFor, tarPadding } from '../../../src/tar/format.js';
import { indexTarFile, iterateTar, type TarReadOptions } from '../../../src/tar/reader.js';
import { headerWithFlag, paxHeader } from '../../integration/bundle/craft.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ferry-tar-strict-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function file(name: string, data: Buffer): Buffer {
  return Buffer.concat([headerFor({ name, type: 'file', size: data.length }), data, Buffer.alloc(tarPadding(data.length))]);
}

/** Read `bytes` both ways; the error code (or 'ok') of each. */
async function readBoth(bytes: Buffer, opts: TarReadOptions): Promise<{ file: string; stream: string; messages: string[] }> {
  const f = path.join(work, `t-${Math.random().toString(36).slice(2)}.tar`);
  await writeFile(f, bytes);
  const messages: string[] = [];
  const fileRes = await indexTarFile(f, opts).then(
    () => 'ok',
    (e: { code: string; message: string }) => (messages.push(e.message), e.code),
  );
  const streamRes = await (async () => {
    for await (const { body } of iterateTar(Readable.from([bytes]), opts)) body.resume();
    return 'ok';
  })().catch((e: { code: string; message: string }) => (messages.push(e.message), e.code));
  return { file: fileRes, stream: streamRes, messages };
}

const END = Buffer.alloc(1024);

describe('strict (bundle) tar reads', () => {
  it('reject a pax record other than path, linkpath, size, naming the key; lenient reads accept it', async () => {
    const tar = Buffer.concat([
      paxHeader([
        ['GNU.sparse.major', '1'],
        ['path', 'a'],
      ]),
      file('a', Buffer.from('x')),
      END,
    ]);
    const strict = await readBoth(tar, { strict: true });
    expect([strict.file, strict.stream]).toEqual(['TAR_INVALID', 'TAR_INVALID']);
    for (const m of strict.messages) expect(m).toMatch(/"GNU\.sparse\.major"/);
    expect(await readBoth(tar, {})).toMatchObject({ file: 'ok', stream: 'ok' });
    // What ferry's writer emits (a long name: a pax path record) is accepted.
    const long = Buffer.concat([file(`blobs/${'x'.repeat(150)}`, Buffer.from('y')), END]);
    expect(await readBoth(long, { strict: true })).toMatchObject({ file: 'ok', stream: 'ok' });
  });

  it('reject a global pax header; lenient reads ignore it', async () => {
    const tar = Buffer.concat([paxHeader([['comment', 'hi']], 'g'), file('a', Buffer.from('x')), END]);
    const strict = await readBoth(tar, { strict: true });
    expect([strict.file, strict.stream]).toEqual(['TAR_INVALID', 'TAR_INVALID']);
    expect(await readBoth(tar, {})).toMatchObject({ file: 'ok', stream: 'ok' });
  });

  it('reject anything but zeros after the end-of-archive marker (TRAILING_DATA); lenient reads stop at the marker', async () => {
    const base = Buffer.concat([file('a', Buffer.from('x')), END]);
    const second = Buffer.concat([file('etc/passwd', Buffer.from('x')), END]);
    const trailing = Buffer.concat([base, second]);
    expect(await readBoth(trailing, { strict: true })).toMatchObject({ file: 'TRAILING_DATA', stream: 'TRAILING_DATA' });
    expect(await readBoth(trailing, {})).toMatchObject({ file: 'ok', stream: 'ok' });
    // One stray byte far into the padding.
    const pad = Buffer.alloc(20480);
    pad[20000] = 1;
    expect(await readBoth(Buffer.concat([base, pad]), { strict: true })).toMatchObject({ file: 'TRAILING_DATA', stream: 'TRAILING_DATA' });
    // Record padding (GNU tar pads to 10 KiB) is fine.
    expect(await readBoth(Buffer.concat([base, Buffer.alloc(10240 - base.length)]), { strict: true })).toMatchObject({
      file: 'ok',
      stream: 'ok',
    });
    expect(await readBoth(base, { strict: true })).toMatchObject({ file: 'ok', stream: 'ok' });
    // The unrelated 'L' long name path still works in strict mode.
    const nm = Buffer.from('long/name\0');
    const gnu = Buffer.concat([
      headerWithFlag('././@LongLink', 'L', nm.length),
      nm,
      Buffer.alloc(tarPadding(nm.length)),
      file('placeholder', Buffer.from('z')),
      END,
    ]);
    expect(await readBoth(gnu, { strict: true })).toMatchObject({ file: 'ok', stream: 'ok' });
  });
});

describe('bounds (issue 11)', () => {
  const member = (name: string, data: Buffer): Buffer[] => [
    headerFor({ name, type: 'file', size: data.length, mtime: 0 }),
    data,
    Buffer.alloc(tarPadding(data.length)),
  ];

  it('a stream of endless zero padding after the marker is refused once past the bound (strict)', async () => {
    let served = 0;
    const endless = Readable.from(
      (function* () {
        yield Buffer.concat([...member('a', Buffer.from('x')), Buffer.alloc(1024)]);
        for (;;) {
          served += 65536;
          yield Buffer.alloc(65536);
        }
      })(),
    );
    const names: string[] = [];
    await expect(
      (async () => {
        for await (const { entry } of iterateTar(endless, { strict: true })) names.push(entry.name);
      })(),
    ).rejects.toMatchObject({ code: 'TRAILING_DATA' });
    expect(names).toEqual(['a']);
    expect(served).toBeLessThan(4 * 1024 * 1024);
  });

  it('record padding (10240) and up to 1 MiB of zeros are still accepted from a stream', async () => {
    const tar = Buffer.concat([...member('a', Buffer.from('x')), Buffer.alloc(1024 + 1024 * 1024)]);
    const names: string[] = [];
    for await (const { entry } of iterateTar(Readable.from([tar]), { strict: true })) names.push(entry.name);
    expect(names).toEqual(['a']);
  });

  it('a file index refuses more members than maxEntries, and reads small headers in few reads', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-tar-bounds-'));
    try {
      const parts: Buffer[] = [];
      for (let i = 0; i < 2000; i++) parts.push(...member(`m/${i}`, Buffer.alloc(0)));
      parts.push(Buffer.alloc(1024));
      const file = path.join(dir, 'many.tar');
      await writeFile(file, Buffer.concat(parts));
      expect((await indexTarFile(file)).length).toBe(2000);
      await expect(indexTarFile(file, { maxEntries: 1999 })).rejects.toThrow(/more than 1999 members/);
      // One string per name when the name is already normal.
      const [e] = await indexTarFile(file);
      expect(e!.name).toBe(e!.rawName);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
