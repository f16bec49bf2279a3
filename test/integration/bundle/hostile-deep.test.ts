/**
 * Issue 11, "crash instead of exit 3": input nested or repeated far beyond what ferry reads
 * (a 100,000-deep JSON field, a 10,000-deep index chain, a bundle listing 300,000 images).
 * Each is refused with a named problem (exit 3 for bundles, nothing named), never by a stack
 * overflow, and serving an OCI archive holding such a chain neither crashes nor serves it.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { MEMBER, rawBlobPath, type BundleManifest } from '../../../src/bundle/format.js';
import { verifyBundle } from '../../../src/bundle/verify.js';
import { runInspect } from '../../../src/cli/inspect.js';
import { load } from '../../../src/commands/load.js';
import { openServed, parseServedLocation } from '../../../src/transports/table.js';
import { cleanupHarness } from '../../harness/temp.js';
import {
  manOf,
  readMembers,
  setMan,
  sha,
  tarOf,
  type Member,
  type Store,
  jsonOf,
  namedIn,
  rewriteManifest,
  verifyAndLoad,
  baseBundle,
  type BaseBundle,
} from './craft.js';

let work: string;
let st: Store;
let bundle: string;
let craft: BaseBundle['craft'];
let n = 0;

beforeAll(async () => {
  ({ work, st, bundle, craft } = await baseBundle('hostile-deep', 16 * 1024));
});
afterAll(cleanupHarness);

/** `depth` indexes, each the only child of the next, the innermost listing the amd64 manifest: members to add, and the outermost. */
function chain(depth: number): { members: Member[]; top: { digest: string; size: number } } {
  const members: Member[] = [];
  let child: Record<string, unknown> = {
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: st.amd.digest,
    size: st.amd.size,
    platform: { os: 'linux', architecture: 'amd64' },
  };
  let top = { digest: st.amd.digest, size: st.amd.size };
  for (let i = 0; i < depth; i++) {
    const data = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [child],
        annotations: { i: `${i}` },
      }),
    );
    top = { digest: `sha256:${sha(data)}`, size: data.length };
    members.push({ name: rawBlobPath(sha(data)), data });
    child = { mediaType: 'application/vnd.oci.image.index.v1+json', ...top, platform: { os: 'linux', architecture: 'amd64' } };
  }
  return { members, top };
}

/** Add raw blob members before index.json (tar and ferry-bundle.json alike). */
function addMembers(ms: Member[], man: BundleManifest, add: Member[]): void {
  ms.splice(
    ms.findIndex((m) => m.name === MEMBER.index),
    0,
    ...add,
  );
  const at = man.members.findIndex((m) => m.path === MEMBER.index);
  man.members.splice(
    at,
    0,
    ...add.map((m) => ({
      path: m.name,
      size: m.data.length,
      sha256: sha(m.data),
      storage: 'raw' as const,
      digest: `sha256:${sha(m.data)}`,
    })),
  );
}

describe('deep input is refused, not a stack overflow', () => {
  it('a 100,000-deep field in an index: verify and load --platform exit 3, nothing named', async () => {
    const file = await craft((ms, man) => {
      const idx = jsonOf(ms, st.idx.digest);
      const text = JSON.stringify(idx).replace(/}$/, `,"deep":${'['.repeat(100_000)}${']'.repeat(100_000)}}`);
      rewriteManifest(ms, man, st.idx.digest, Buffer.from(text));
    });
    const o = await verifyAndLoad(file, path.join(work, `out-${n++}`), { platform: true });
    expect(o, JSON.stringify(o)).toMatchObject({ verify: 3, load: 3, named: 0 });
    const r = await verifyBundle(file);
    expect(r.problems.map((p) => p.code)).toContain('IMAGE_INVALID');
    expect(r.problems.find((p) => p.code === 'IMAGE_INVALID')!.message).toMatch(/nested more than 64 levels/);
  });

  it('a 10,000-deep index chain in a bundle: verify and load --platform exit 3, nothing named', async () => {
    const file = await craft((ms, man) => {
      const { members, top } = chain(10_000);
      addMembers(ms, man, members);
      const idx = jsonOf(ms, st.idx.digest);
      idx.manifests!.push({
        mediaType: 'application/vnd.oci.image.index.v1+json',
        ...top,
        platform: { os: 'linux', architecture: 'amd64' },
      });
      rewriteManifest(ms, man, st.idx.digest, Buffer.from(JSON.stringify(idx)));
    });
    const o = await verifyAndLoad(file, path.join(work, `out-${n++}`), { platform: true });
    expect(o, JSON.stringify(o)).toMatchObject({ verify: 3, load: 3, named: 0 });
    expect((await verifyBundle(file)).problems.map((p) => p.code)).toContain('INDEX_TOO_DEEP');
  }, 60_000);

  it('a 10,000-deep index chain in an OCI archive: load --platform fails naming it, serve leaves it out; no crash', async () => {
    const { members, top } = chain(10_000);
    const blobs = (await readMembers(bundle)).filter((m) => m.name.startsWith('blobs/'));
    const index = {
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.index.v1+json',
          ...top,
          annotations: { 'org.opencontainers.image.ref.name': 'example.com/deep:1' },
        },
      ],
    };
    const file = path.join(work, 'deep.tar');
    await writeFile(
      file,
      tarOf([
        { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
        ...blobs,
        ...members,
        { name: 'index.json', data: Buffer.from(JSON.stringify(index)) },
      ]),
    );
    const out = path.join(work, `out-${n++}`);
    const r = await load({
      source: `oci-archive:${file}`,
      to: `oci:${out}`,
      platforms: [{ os: 'linux', architecture: 'amd64', variant: undefined }],
    });
    expect(r.failures).toHaveLength(1);
    expect(r.failures[0]!.error).toMatch(/nested more than 8 deep/);
    expect(namedIn(out)).toBe(0);
    const served = await openServed(parseServedLocation(`oci-archive:${file}`));
    try {
      expect(served.warnings.join('\n')).toMatch(/nested more than 8 indexes deep; not served/);
      // Keyed by where the image came from (served-graph.ts); answered at `deep` and `example.com/deep`.
      expect(served.repositories()).toEqual(['example.com/deep']);
    } finally {
      await served.close();
    }
  }, 60_000);
});

describe('inspect of a bundle listing 300,000 images', () => {
  it('is refused with exit 3 naming what is wrong, no stack overflow', async () => {
    const ms = await readMembers(bundle);
    const man = manOf(ms);
    const img = man.images[0]!;
    for (let i = 0; i < 300_000; i++) man.images.push({ ...img, mediaType: 'x', ref: `example.com/a:${i}`, platforms: [] });
    man.totals.images = man.images.length;
    const out0 = setMan(ms, man);
    out0.find((m) => m.name === MEMBER.manifest)!.data = Buffer.from(JSON.stringify(man)); // compact: under the 64 MiB limit
    const file = path.join(work, 'many-images.ferry');
    await writeFile(file, tarOf(out0));
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let said = '';
    const err = vi.spyOn(process.stderr, 'write').mockImplementation((s) => ((said += String(s)), true));
    const t = Date.now();
    try {
      // index.json names two of them: verify and load refuse the rest, so inspect does too.
      expect(await runInspect({ source: file })).toBe(3);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    console.log(`inspect of 300,002 images: ${Date.now() - t} ms`);
    expect(said).toMatch(/INDEX_MISMATCH: index.json has no entry naming example.com\/a:0 /);
  }, 60_000);
});
