import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMBER, zstdBlobPath } from '../../../src/bundle/format.js';
import { verifyBundle } from '../../../src/bundle/verify.js';
import { cleanupHarness } from '../../harness/temp.js';
import { sha, type Store, indexOf, jsonOf, rewriteManifest, setIndex, verifyAndLoad, baseBundle, type BaseBundle } from './craft.js';

let work: string;
let st: Store;
let bundle: string;
let craft: BaseBundle['craft'];
let n = 0;

beforeAll(async () => {
  ({ work, st, bundle, craft } = await baseBundle('hostile-agree', 64 * 1024));
});
afterAll(cleanupHarness);

async function expectRefused(file: string, opts: { platform?: boolean } = {}): Promise<void> {
  const o = await verifyAndLoad(file, path.join(work, `out-${n++}`), opts);
  expect(o, JSON.stringify(o)).toMatchObject({ verify: 3, load: 3, named: 0 });
}

describe('the reference bundle', () => {
  it('verifies and loads', async () => {
    const o = await verifyAndLoad(bundle, path.join(work, 'ok'));
    expect(o).toEqual({ verify: 0, load: 0, named: 2 });
  });
});

describe('verify refuses what load refuses (exit 3, nothing named)', () => {
  it('a layer descriptor whose size is off by one', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const d = jsonOf(ms, st.dock.digest) as { layers: Array<{ size: number }> };
        d.layers[0]!.size += 1;
        rewriteManifest(ms, man, st.dock.digest, Buffer.from(JSON.stringify(d)));
      }),
    );
  });

  it('an index child whose size is off by one', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const d = jsonOf(ms, st.idx.digest);
        (d.manifests![1] as { size: number }).size += 1;
        rewriteManifest(ms, man, st.idx.digest, Buffer.from(JSON.stringify(d)));
      }),
    );
  });

  it('a config descriptor whose size is off by one', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const d = jsonOf(ms, st.dock.digest) as { config: { size: number } };
        d.config.size -= 1;
        rewriteManifest(ms, man, st.dock.digest, Buffer.from(JSON.stringify(d)));
      }),
    );
  });

  it('a zstd-stored layer whose descriptor size is off by one', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const d = jsonOf(ms, st.amd.digest) as { layers: Array<{ size: number; digest: string }> };
        d.layers.find((l) => l.digest === st.rawLayer.digest)!.size += 1;
        const amd = rewriteManifest(ms, man, st.amd.digest, Buffer.from(JSON.stringify(d)));
        const idx = jsonOf(ms, st.idx.digest);
        const c = idx.manifests!.find((m) => m.digest === st.amd.digest)!;
        Object.assign(c, { digest: amd, size: Buffer.from(JSON.stringify(d)).length });
        rewriteManifest(ms, man, st.idx.digest, Buffer.from(JSON.stringify(idx)));
      }),
    );
  });

  it.each([
    ['one more', 1],
    ['one less', -1],
  ])('a ferry-bundle.json image size %s', async (_, delta) => {
    await expectRefused(
      await craft((_ms, man) => {
        man.images[1]!.size += delta;
      }),
    );
  });

  it.each([
    ['-1', -1],
    ['2^63', 2 ** 63],
    ['1.5', 1.5],
    ['"12"', '12'],
  ])('an extra index.json entry with size %s', async (_, size) => {
    await expectRefused(
      await craft((ms, man) => {
        const idx = indexOf(ms);
        idx.manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: st.dock.digest, size });
        setIndex(ms, man, idx);
      }),
    );
  });

  it('an extra index.json entry with size 1e400', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const idx = indexOf(ms);
        idx.manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: st.dock.digest, size: 0 });
        const text = JSON.stringify(idx).replace('"size":0}', '"size":1e400}');
        ms.find((m) => m.name === MEMBER.index)!.data = Buffer.from(text);
        const e = man.members.find((m) => m.path === MEMBER.index)!;
        e.size = text.length;
        e.sha256 = sha(Buffer.from(text));
      }),
    );
  });

  it('an index.json entry that is null (no crash)', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const idx = indexOf(ms);
        idx.manifests.unshift(null as never);
        setIndex(ms, man, idx);
      }),
    );
  });

  it('index.json without a manifests array, or not an object', async () => {
    await expectRefused(await craft((ms, man) => setIndex(ms, man, { schemaVersion: 2 })));
    await expectRefused(await craft((ms, man) => setIndex(ms, man, [1, 2])));
    await expectRefused(await craft((ms, man) => setIndex(ms, man, null)));
  });

  it('oci-layout version 2.0.0', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const data = Buffer.from('{"imageLayoutVersion":"2.0.0"}');
        ms.find((m) => m.name === MEMBER.layoutHeader)!.data = data;
        const e = man.members.find((m) => m.path === MEMBER.layoutHeader)!;
        e.size = data.length;
        e.sha256 = sha(data);
      }),
    );
  });

  it('an index child of unknown media type pointing at a zstd-stored member', async () => {
    await expectRefused(
      await craft((ms, man) => {
        expect(man.members.some((m) => m.path === zstdBlobPath(st.rawLayer.digest.slice(7)))).toBe(true);
        const idx = jsonOf(ms, st.idx.digest);
        idx.manifests!.push({ mediaType: 'application/x-unknown', digest: st.rawLayer.digest, size: st.rawLayer.size });
        rewriteManifest(ms, man, st.idx.digest, Buffer.from(JSON.stringify(idx)));
      }),
    );
  });

  it('an index child that is null (no crash)', async () => {
    await expectRefused(
      await craft((ms, man) => {
        const idx = jsonOf(ms, st.idx.digest);
        idx.manifests!.push(null as never);
        rewriteManifest(ms, man, st.idx.digest, Buffer.from(JSON.stringify(idx)));
      }),
    );
  });

  it.each([
    ['a 1 MB tag (over the reference limit)', `example.com/app:${'a'.repeat(1_000_000)}`, 'MANIFEST_INVALID'],
    ['a 129-character tag', `example.com/app:${'a'.repeat(129)}`, 'REFERENCE_INVALID'],
    ['a 256-character name', `example.com/${'a'.repeat(256)}:v1`, 'REFERENCE_INVALID'],
    ['terminal escapes', 'example.com/app:\u001b]0;owned\u0007', 'REFERENCE_INVALID'],
  ])('an image ref that is not a bounded reference: %s', async (_, ref, code) => {
    const file = await craft((ms, man) => {
      const old = man.images[1]!.ref;
      man.images[1]!.ref = ref;
      const idx = indexOf(ms);
      for (const d of idx.manifests) {
        const a = d.annotations as Record<string, string> | undefined;
        if (a?.['org.opencontainers.image.ref.name'] === old) a['org.opencontainers.image.ref.name'] = ref;
      }
      setIndex(ms, man, idx);
    });
    await expectRefused(file);
    expect((await verifyBundle(file)).problems.map((p) => p.code)).toEqual([code]);
  });
});
