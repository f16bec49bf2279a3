/**
 * Issue 11, the verify-vs-load property: a few hundred seeded mutations of a valid bundle
 * (byte flips in members, with and without their hashes kept consistent; JSON field edits in
 * manifests, index.json and ferry-bundle.json with every hash kept consistent; members
 * duplicated, removed or unlisted), each run through verify and `load --to oci:` in-process.
 * Whenever load fails, it fails on integrity (exit 3), verify fails too (exit 3), and load has
 * named nothing. The seed is fixed and printed (FERRY_PROPERTY_SEED overrides it).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMBER, RAW_BLOB_RE, type BundleManifest } from '../../../src/bundle/format.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import {
  makeStore,
  manOf,
  readMembers,
  replaceData,
  setMan,
  tarOf,
  type Member,
  indexOf,
  rewriteManifest,
  setIndex,
  verifyAndLoad,
} from './craft.js';

const SEED = Number(process.env.FERRY_PROPERTY_SEED ?? 0x11a5eed);
const CASES = Number(process.env.FERRY_PROPERTY_CASES ?? 200);

/** mulberry32: small, seedable, good enough to pick mutations. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let work: string;
let bundle: string;
let base: Member[];

beforeAll(async () => {
  work = createTempDir('property');
  const st = makeStore(path.join(work, 'store'), 8 * 1024);
  bundle = path.join(work, 'b.ferry');
  await writeBundle({ store: await OciLayout.open(st.dir), output: bundle, compression: 'auto' });
  base = await readMembers(bundle);
});
afterAll(cleanupHarness);

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

/** Values a JSON edit may put in a field. */
function oddValue(r: Rand, was: unknown): unknown {
  const n = typeof was === 'number' ? was : 0;
  return pick(r, [n + 1, n - 1, -1, 2 ** 63, 1.5, String(n), null, {}, [], '', 'x'.repeat(300), true, 0]);
}

/** Edit one field somewhere in a JSON document, iteratively chosen (depth ≤ 6). */
function editJson(r: Rand, doc: unknown): { doc: unknown; what: string } {
  const root = { v: doc } as Record<string, unknown>;
  let holder: Record<string, unknown> | unknown[] = root;
  let key: string | number = 'v';
  let where = '';
  for (let d = 0; d < 6; d++) {
    const v = (holder as Record<string, unknown>)[key as string];
    if (v === null || typeof v !== 'object' || r() < 0.25) break;
    const keys: Array<string | number> = Array.isArray(v) ? v.map((_, i) => i) : Object.keys(v);
    if (keys.length === 0) break;
    holder = v as Record<string, unknown>;
    key = pick(r, keys);
    where += `.${key}`;
  }
  const h = holder as Record<string, unknown>;
  const old = h[key as string];
  const op = holder === root ? 1 : r(); // the document itself is replaced, never deleted
  if (op < 0.15 && !Array.isArray(holder)) {
    delete h[key as string];
    return { doc: root.v, what: `delete ${where}` };
  }
  if (op < 0.25 && Array.isArray(old)) {
    old.push(old.length > 0 ? structuredClone(old[0]) : null);
    return { doc: root.v, what: `append to ${where}` };
  }
  if (op < 0.4 && typeof old === 'string' && old.length > 0) {
    const i = Math.floor(r() * old.length);
    h[key as string] = `${old.slice(0, i)}${old[i] === 'a' ? 'b' : 'a'}${old.slice(i + 1)}`;
    return { doc: root.v, what: `change a character of ${where}` };
  }
  h[key as string] = oddValue(r, old);
  return { doc: root.v, what: `set ${where} to ${JSON.stringify(h[key as string])?.slice(0, 40)}` };
}

/** One mutation of the base bundle: the tar bytes and what was done. */
function mutate(r: Rand): { tar: Buffer; what: string } {
  const ms = base.map((m) => ({ name: m.name, data: Buffer.from(m.data) }));
  const man: BundleManifest = manOf(ms);
  const kind = pick(r, ['flip', 'flip-consistent', 'manifest-json', 'index-json', 'bundle-json', 'duplicate', 'remove', 'unlist'] as const);
  const member = pick(r, ms);
  switch (kind) {
    case 'flip': {
      if (member.data.length === 0) return { tar: tarOf(ms), what: 'nothing' };
      const i = Math.floor(r() * member.data.length);
      member.data[i]! ^= 1 << Math.floor(r() * 8);
      return { tar: tarOf(ms), what: `flip a bit of ${member.name} at ${i}` };
    }
    case 'flip-consistent': {
      const listed = ms.filter((m) => man.members.some((e) => e.path === m.name) && m.name !== MEMBER.checksums);
      const m = pick(r, listed);
      const data = Buffer.from(m.data);
      if (data.length === 0) return { tar: tarOf(ms), what: 'nothing' };
      const i = Math.floor(r() * data.length);
      data[i]! ^= 1 << Math.floor(r() * 8);
      replaceData(ms, man, m.name, data);
      return { tar: tarOf(setMan(ms, man)), what: `flip a bit of ${m.name} at ${i}, hashes kept` };
    }
    case 'manifest-json': {
      const jsonBlobs = ms.filter((m) => RAW_BLOB_RE.test(m.name) && m.data[0] === 0x7b);
      const m = pick(r, jsonBlobs);
      const { doc, what } = editJson(r, JSON.parse(m.data.toString('utf8')));
      const digest = `sha256:${RAW_BLOB_RE.exec(m.name)![1]}`;
      rewriteManifest(ms, man, digest, Buffer.from(JSON.stringify(doc) ?? 'null'));
      return { tar: tarOf(setMan(ms, man)), what: `${m.name}: ${what}, hashes kept` };
    }
    case 'index-json': {
      const { doc, what } = editJson(r, indexOf(ms));
      setIndex(ms, man, doc);
      return { tar: tarOf(setMan(ms, man)), what: `index.json: ${what}, hashes kept` };
    }
    case 'bundle-json': {
      const { doc, what } = editJson(r, { images: man.images, members: man.members });
      const d = (doc ?? {}) as Partial<BundleManifest>;
      man.images = d.images as never;
      man.members = d.members as never;
      try {
        return { tar: tarOf(setMan(ms, man)), what: `ferry-bundle.json: ${what}` };
      } catch {
        // The edit broke what setMan needs (members): write ferry-bundle.json as edited.
        ms.find((m) => m.name === MEMBER.manifest)!.data = Buffer.from(JSON.stringify(man));
        return { tar: tarOf(ms), what: `ferry-bundle.json: ${what} (sums not kept)` };
      }
    }
    case 'duplicate': {
      const at = Math.floor(r() * (ms.length + 1));
      ms.splice(at, 0, { name: member.name, data: Buffer.from(member.data) });
      return { tar: tarOf(ms), what: `duplicate ${member.name} at ${at}` };
    }
    case 'remove':
      return { tar: tarOf(ms.filter((m) => m !== member)), what: `remove ${member.name} from the tar` };
    case 'unlist': {
      const listed = man.members.filter((m) => m.path !== MEMBER.checksums);
      const e = pick(r, listed);
      man.members = man.members.filter((m) => m !== e);
      return {
        tar: tarOf(
          setMan(
            ms.filter((m) => m.name !== e.path),
            man,
          ),
        ),
        what: `remove ${e.path} from the tar and the listing`,
      };
    }
  }
}

describe(`verify vs load over ${CASES} seeded mutations (seed ${SEED})`, () => {
  it('load fails only on integrity, verify fails whenever load does, and a failed load names nothing', async () => {
    console.log(`property: seed ${SEED} (FERRY_PROPERTY_SEED), ${CASES} cases`);
    const r = prng(SEED);
    const bad: string[] = [];
    let loadFailed = 0;
    let verifyFailed = 0;
    // Mutations are drawn in order (the seed decides them all), then run a few at a time.
    const cases = Array.from({ length: CASES }, () => mutate(r));
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let i = next++; i < CASES; i = next++) {
        const { tar, what } = cases[i]!;
        const file = path.join(work, `m-${i}.ferry`);
        await writeFile(file, tar);
        const o = await verifyAndLoad(file, path.join(work, `out-${i}`), { parallel: false });
        if (o.verify !== 0) verifyFailed++;
        if (o.load !== 0) loadFailed++;
        const wrong =
          (o.load !== 0 && (o.load !== 3 || o.verify !== 3 || o.named !== 0)) ||
          (o.verify !== 0 && o.verify !== 3) ||
          (o.verify === 3 && o.load === 0);
        if (wrong) bad.push(`case ${i} (${what}): ${JSON.stringify(o)}`);
      }
    };
    const t = Date.now();
    await Promise.all([worker(), worker(), worker(), worker()]);
    console.log(`property: ${CASES} cases in ${Date.now() - t} ms`);
    console.log(`property: verify refused ${verifyFailed}, load refused ${loadFailed} of ${CASES}`);
    expect(bad, bad.slice(0, 10).join('\n')).toEqual([]);
    // The mutations must bite: most are refused.
    expect(verifyFailed).toBeGreaterThan(CASES / 2);
  }, 120_000);
});
