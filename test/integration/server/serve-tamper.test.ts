/**
 * Issue 11, "serve sends wrong bytes": a blob tampered at the same size (raw or zstd member), or
 * a duplicated member whose last copy is bad, was answered 200 with the claimed
 * Docker-Content-Digest and a body that did not match. Now the body is hashed as it is sent and
 * cut before its last bytes when it does not match, the server logs it, and the blob is
 * answered 500 from then on; a bundle that verify refuses structurally is not served at all.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MEMBER, rawBlobPath, zstdBlobPath } from '../../../src/bundle/format.js';
import { writeBundle } from '../../../src/bundle/writer.js';
import { bundleContent } from '../../../src/server/bundle-content.js';
import { startServer, type RunningServer } from '../../../src/server/server.js';
import { OciLayout } from '../../../src/transports/oci/layout.js';
import { cleanupHarness } from '../../harness/temp.js';
import { baseBundle, manOf, readMembers, replaceData, setMan, tarOf, zstdCompress, type BaseBundle, type Store } from '../bundle/craft.js';

let work: string;
let st: Store;
let bundle: string;
let craft: BaseBundle['craftMembers'];
const _n = 0;

beforeAll(async () => {
  ({ work, st, bundle, craftMembers: craft } = await baseBundle('serve-tamper'));
});
afterAll(cleanupHarness);

interface Got {
  status: number;
  digestHeader: string | undefined;
  length: number | undefined;
  body: Buffer;
  /** The body arrived whole (as long as Content-Length said, the connection not cut). */
  complete: boolean;
}

function get(url: string, headers: Record<string, string> = {}): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let cut = false;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('aborted', () => (cut = true));
      res.on('error', () => (cut = true));
      res.on('close', () => {
        const body = Buffer.concat(chunks);
        const length = res.headers['content-length'] !== undefined ? Number(res.headers['content-length']) : undefined;
        resolve({
          status: res.statusCode ?? 0,
          digestHeader: res.headers['docker-content-digest'] as string | undefined,
          length,
          body,
          complete: !cut && res.complete && (length === undefined || body.length === length),
        });
      });
    });
    req.on('error', reject);
  });
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The repository the store's images are served under. */
let repo = '';

async function serve(file: string): Promise<{ server: RunningServer; log: string[] }> {
  const log: string[] = [];
  const content = await bundleContent(file);
  repo = content.repositories()[0]!;
  const server = await startServer({ sources: [content], listen: '127.0.0.1:0', log: (l) => log.push(l) });
  return { server, log };
}

const blobUrl = (server: RunningServer, digest: string): string => `${server.url}/v2/${repo}/blobs/${digest}`;

/** Whatever came, no complete body that does not match its digest. */
function neverWrong(r: Got, digest: string): void {
  if (r.status === 200 || r.status === 206) {
    if (r.complete && r.status === 200) expect(sha(r.body)).toBe(digest);
  }
}

describe('a blob tampered at the same size', () => {
  it('raw member: the body is cut before its end, the log says why, and the blob is 500 from then on', async () => {
    const digest = st.gzLayer.digest;
    const file = await craft((ms) => {
      const m = ms.find((x) => x.name === rawBlobPath(digest.slice(7)))!;
      m.data = Buffer.from(m.data);
      m.data[m.data.length - 10]! ^= 0xff; // same size, one byte changed near the end
    });
    const { server, log } = await serve(file);
    try {
      // One chunk (100 KB): nothing has gone out when the mismatch is found, so a clean 500.
      const first = await get(blobUrl(server, digest));
      expect(first.status).toBe(500);
      expect(first.digestHeader).toBeUndefined();
      expect(first.body.length).toBeLessThan(st.gzLayer.size);
      expect(log.join('\n')).toMatch(new RegExp(`blob ${digest} in .* does not match its digest`));
      const again = await get(blobUrl(server, digest));
      expect(again.status).toBe(500);
      const head = await new Promise<number>((resolve, reject) =>
        http
          .request(blobUrl(server, digest), { method: 'HEAD', agent: false }, (res) => resolve(res.statusCode ?? 0))
          .on('error', reject)
          .end(),
      );
      expect(head).toBe(500);
      // The other blobs are still served, whole and right.
      const cfgOk = await get(blobUrl(server, st.amd.digest));
      expect(cfgOk.status).toBe(200);
      expect(sha(cfgOk.body)).toBe(st.amd.digest);
    } finally {
      await server.close();
    }
  });

  it('raw member: a range of a blob not yet checked whole is not sent whole when the blob is bad', async () => {
    const digest = st.gzLayer.digest;
    const file = await craft((ms) => {
      const m = ms.find((x) => x.name === rawBlobPath(digest.slice(7)))!;
      m.data = Buffer.from(m.data);
      m.data[m.data.length - 10]! ^= 0xff;
    });
    const { server, log } = await serve(file);
    try {
      // The range itself is intact; the bytes after it are not: the range is still not delivered whole.
      const r = await get(blobUrl(server, digest), { range: 'bytes=0-999' });
      expect(r.status).toBe(500);
      expect(r.body.equals(Buffer.from(readFileSync(path.join(st.dir, 'blobs', 'sha256', digest.slice(7))).subarray(0, 1000)))).toBe(false);
      expect(log.join('\n')).toMatch(/does not match its digest/);
      expect((await get(blobUrl(server, digest), { range: 'bytes=0-999' })).status).toBe(500);
    } finally {
      await server.close();
    }
  });

  it('zstd member restoring to other bytes of the declared size: cut, logged, then 500', async () => {
    const digest = st.rawLayer.digest;
    const file = await craft((ms) => {
      const man = manOf(ms);
      const other = Buffer.alloc(st.rawLayer.size, 7);
      replaceData(ms, man, zstdBlobPath(digest.slice(7)), zstdCompress(other));
      return setMan(ms, man);
    });
    const { server, log } = await serve(file);
    try {
      const first = await get(blobUrl(server, digest));
      expect(first.complete).toBe(false);
      neverWrong(first, digest);
      expect(log.join('\n')).toMatch(new RegExp(`blob ${digest} in .* does not match its digest`));
      expect((await get(blobUrl(server, digest))).status).toBe(500);
    } finally {
      await server.close();
    }
  });

  it('an intact bundle serves every blob whole, and ranges after a full read', async () => {
    const { server, log } = await serve(bundle);
    try {
      for (const b of [st.gzLayer, st.rawLayer, st.amd]) {
        const r = await get(blobUrl(server, b.digest));
        expect(r.status).toBe(200);
        expect(r.complete).toBe(true);
        expect(sha(r.body)).toBe(b.digest);
      }
      const part = await get(blobUrl(server, st.rawLayer.digest), { range: 'bytes=100-4195' });
      expect(part.status).toBe(206);
      expect(part.body.length).toBe(4096);
      // A range of a blob not read whole before: checked whole, sent in part.
      const cold = await get(blobUrl(server, st.arm.digest), { range: 'bytes=1-10' });
      expect(cold.status).toBe(206);
      expect(cold.body.length).toBe(10);
      expect(log.filter((l) => l.startsWith('ferry serve:'))).toEqual([]);
    } finally {
      await server.close();
    }
  });
});

describe('a large raw blob tampered at the same size', () => {
  it('goes out 200 with its digest, and is cut before its last bytes: the client never has the whole body', async () => {
    const plain = path.join(work, 'plain.ferry');
    await writeBundle({ store: await OciLayout.open(st.dir), output: plain, compression: 'none' });
    const digest = st.rawLayer.digest;
    const ms = await readMembers(plain);
    const m = ms.find((x) => x.name === rawBlobPath(digest.slice(7)))!;
    m.data = Buffer.from(m.data);
    m.data[m.data.length - 1]! ^= 0xff; // the very last byte
    const file = path.join(work, 'plain-tampered.ferry');
    writeFileSync(file, tarOf(ms));
    const { server, log } = await serve(file);
    try {
      const first = await get(blobUrl(server, digest));
      expect(first.status).toBe(200);
      expect(first.digestHeader).toBe(digest);
      expect(first.length).toBe(st.rawLayer.size);
      expect(first.complete).toBe(false);
      expect(first.body.length).toBeLessThan(st.rawLayer.size);
      expect(log.join('\n')).toMatch(/the response was cut after \d+ of \d+ bytes/);
      expect((await get(blobUrl(server, digest))).status).toBe(500);
    } finally {
      await server.close();
    }
  });
});

describe('a duplicated member whose last copy is bad', () => {
  it('is refused at start-up, or never sent with wrong bytes', async () => {
    const digest = st.gzLayer.digest;
    const file = await craft((ms) => {
      const good = ms.find((x) => x.name === rawBlobPath(digest.slice(7)))!;
      const bad = Buffer.from(good.data);
      bad[0]! ^= 0xff;
      ms.push({ name: good.name, data: bad });
    });
    let content: Awaited<ReturnType<typeof bundleContent>> | undefined;
    try {
      content = await bundleContent(file);
    } catch (err) {
      // verify's structural checks refuse duplicates: nothing is served.
      expect((err as { exitCode?: number }).exitCode).toBe(3);
      return;
    }
    repo = content.repositories()[0]!;
    const server = await startServer({ sources: [content], listen: '127.0.0.1:0' });
    try {
      const r = await get(blobUrl(server, digest));
      expect(r.status).not.toBe(404);
      neverWrong(r, digest);
      // The last copy (the one extraction would keep) is bad: never a whole body.
      if (r.status === 200) expect(r.complete).toBe(false);
      else expect(r.status).toBe(500);
    } finally {
      await server.close();
    }
  });
});

describe('start-up', () => {
  it('a bundle that verify refuses structurally is not served (exit 3)', async () => {
    const file = await craft((ms) => {
      // index.json changed without SHA256SUMS or ferry-bundle.json following.
      const idx = ms.find((m) => m.name === MEMBER.index)!;
      idx.data = Buffer.concat([idx.data.subarray(0, idx.data.length - 1), Buffer.from(' ')]);
    });
    await expect(bundleContent(file)).rejects.toMatchObject({ code: 'BUNDLE_INVALID', exitCode: 3 });
  });
});
