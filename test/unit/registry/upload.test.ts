/**
 * Upload edge cases real registries show (see ../shared/fixtures/distribution-registry-2.8.2-
 * transcripts): a relative Location whose `_state` must be kept byte for byte with `digest=`
 * appended, and a mount the registry cannot do answered with a 202 session to upload into.
 * A scripted server stands in for those answers (fault injection); the happy paths run against
 * the real docker-registry in test/integration/load.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient, type RegistryClientOptions } from '../../../src/transports/registry/client.js';
import { uploadBlob } from '../../../src/transports/registry/upload.js';

const STATE = 'abc%2Bdef%3D%3D';
let server: Server;
let host: string;
const seen: string[] = [];
let stored: Buffer | undefined;

async function body(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

beforeAll(async () => {
  server = createServer(async (req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const data = await body(req);
    if (req.method === 'GET' && req.url === '/v2/') return res.writeHead(200).end('{}');
    if (req.method === 'POST' && req.url?.startsWith('/v2/r/blobs/uploads/')) {
      // A mount of a blob the other repository lacks: a plain session instead (202), relative.
      return res.writeHead(202, { location: `/v2/r/blobs/uploads/u1?_state=${STATE}`, range: '0-0', 'content-length': '0' }).end();
    }
    if (req.method === 'PUT' && req.url?.startsWith('/v2/r/blobs/uploads/u1?')) {
      stored = data;
      return res.writeHead(201, { 'content-length': '0' }).end();
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('uploadBlob against scripted registry answers', () => {
  it('uploads into the 202 session a refused mount opens, keeping the relative Location and its _state', async () => {
    const content = Buffer.from('hello, far side');
    const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
    const client = new RegistryClient(host);
    try {
      const outcome = await uploadBlob(
        client,
        'r',
        { mediaType: 'application/octet-stream', digest, size: content.length },
        () => Readable.from([content]),
        {
          what: 'test blob',
          mountFrom: 'other',
        },
      );
      expect(outcome).toBe('uploaded');
    } finally {
      await client.close();
    }
    expect(stored).toEqual(content);
    expect(seen).toContain(`POST /v2/r/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=other`);
    // digest= appended to the Location as given: _state untouched.
    expect(seen).toContain(`PUT /v2/r/blobs/uploads/u1?_state=${STATE}&digest=${encodeURIComponent(digest)}`);
  });

  it('never sends the last byte of content that does not match its digest', async () => {
    stored = undefined;
    const content = Buffer.from('not what the descriptor says');
    const client = new RegistryClient(host);
    try {
      await expect(
        uploadBlob(
          client,
          'r',
          { mediaType: 'application/octet-stream', digest: `sha256:${'0'.repeat(64)}`, size: content.length },
          () => Readable.from([content]),
          {
            what: 'test blob',
          },
        ),
      ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    } finally {
      await client.close();
    }
    expect(stored).toBeUndefined();
  });
});

// ------------------------------------------------------------------------------------------------
// A small in-memory registry for the upload path's faults: upload sessions whose `_state` changes
// with every answer (POST, PATCH and the status GET each hand out the next Location), chunks that
// must start where the session ends, HEAD on blobs, and optionally bearer tokens. `fault` picks
// requests to break: a reset (after storing `keep` bytes of a PATCH, or after committing a PUT),
// or a status with headers.

type Kind = 'ping' | 'token' | 'post' | 'mount' | 'patch' | 'status' | 'put' | 'head' | 'delete' | 'other';
interface Req {
  kind: Kind;
  method: string;
  url: string;
  /** 1-based count of requests of this kind so far, this one included. */
  n: number;
  bytes: number;
  at: number;
}
type Fault = { reset: true; keep?: number; commit?: boolean } | { status: number; headers?: Record<string, string> };
interface ScriptOptions {
  /** PATCH/PUT/DELETE must use the latest Location handed out (a stale `_state` → 404 BLOB_UPLOAD_INVALID). */
  strictState?: boolean;
  /** The status GET answers with a relative Location (the others are absolute). */
  relativeStatusLocation?: boolean;
  /** Require `Bearer t`; the token service refuses any scope naming repository `other`. */
  bearer?: boolean;
  fault?: (q: Req) => Fault | undefined;
}
interface Scripted {
  host: string;
  reqs: Req[];
  blobs: Map<string, Buffer>;
  /** Locations handed out, by request index in `reqs`. */
  locations: Map<number, string>;
  count(kind: Kind): number;
  close(): Promise<void>;
}

const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function scripted(opts: ScriptOptions = {}): Promise<Scripted> {
  const reqs: Req[] = [];
  const blobs = new Map<string, Buffer>();
  const locations = new Map<number, string>();
  const sessions = new Map<string, { parts: Buffer[]; size: number; state: string }>();
  let seq = 0;
  let uploads = 0;
  const counts = new Map<Kind, number>();
  const srv = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const method = req.method ?? 'GET';
    const data = await body(req);
    const path = url.split('?')[0]!;
    const query = url.includes('?') ? url.slice(url.indexOf('?') + 1) : '';
    const state = /(?:^|&)_state=([^&]*)/.exec(query)?.[1];
    const session = /^\/v2\/r\/blobs\/uploads\/([^/]+)$/.exec(path)?.[1];
    const kind: Kind =
      path === '/v2/'
        ? 'ping'
        : path === '/token'
          ? 'token'
          : method === 'POST'
            ? query.includes('mount=')
              ? 'mount'
              : 'post'
            : method === 'PATCH'
              ? 'patch'
              : method === 'GET' && session
                ? 'status'
                : method === 'PUT'
                  ? 'put'
                  : method === 'HEAD'
                    ? 'head'
                    : method === 'DELETE'
                      ? 'delete'
                      : 'other';
    const n = (counts.get(kind) ?? 0) + 1;
    counts.set(kind, n);
    const q: Req = { kind, method, url, n, bytes: data.length, at: Date.now() };
    const index = reqs.push(q) - 1;
    const origin = `http://${req.headers.host}`;
    const challenge = { 'www-authenticate': `Bearer realm="${origin}/token",service="scripted"` };
    if (kind === 'token') {
      const scopes = new URL(url, origin).searchParams.getAll('scope');
      if (scopes.some((x) => x.startsWith('repository:other:'))) return void res.writeHead(403, { 'content-length': '0' }).end();
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token: 't', expires_in: 300 }));
    }
    if (opts.bearer && req.headers.authorization !== 'Bearer t')
      return void res.writeHead(401, { ...challenge, 'content-length': '0' }).end();
    if (kind === 'ping') return void res.writeHead(200).end('{}');
    const fault = opts.fault?.(q);
    if (fault && 'status' in fault) {
      return void res
        .writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers })
        .end(JSON.stringify({ errors: [{ code: 'SCRIPTED', message: `scripted ${fault.status}` }] }));
    }
    const handOut = (id: string, relative = false): string => {
      const s = sessions.get(id)!;
      s.state = `s${++seq}%2Bx%3D%3D`;
      const loc = `/v2/r/blobs/uploads/${id}?_state=${s.state}`;
      locations.set(index, loc);
      return relative ? loc : `${origin}${loc}`;
    };
    const range = (id: string): string => `0-${Math.max(0, sessions.get(id)!.size - 1)}`;
    const invalid = (): void =>
      void res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'blob upload invalid' }] }));
    if (kind === 'post' || kind === 'mount') {
      const id = `u${++uploads}`;
      sessions.set(id, { parts: [], size: 0, state: '' });
      return void res.writeHead(202, { location: handOut(id), range: '0-0', 'content-length': '0' }).end();
    }
    if (kind === 'head') {
      const digest = /^\/v2\/r\/blobs\/(sha256:[0-9a-f]{64})$/.exec(path)?.[1];
      const blob = digest ? blobs.get(digest) : undefined;
      return void res.writeHead(blob ? 200 : 404, { 'content-length': String(blob ? blob.length : 0) }).end();
    }
    const s = session ? sessions.get(session) : undefined;
    if (!session || !s)
      return void res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_UNKNOWN', message: 'blob upload unknown' }] }));
    if (kind === 'status')
      return void res.writeHead(204, { location: handOut(session, opts.relativeStatusLocation), range: range(session) }).end();
    if (opts.strictState && state !== s.state) return invalid();
    if (kind === 'delete') {
      sessions.delete(session);
      return void res.writeHead(204).end();
    }
    if (kind === 'patch') {
      const from = Number(/^(\d+)-/.exec(String(req.headers['content-range']))?.[1]);
      if (from !== s.size) return void res.writeHead(416, { range: range(session), 'content-length': '0' }).end();
      if (fault && 'reset' in fault) {
        const kept = data.subarray(0, fault.keep ?? 0);
        s.parts.push(kept);
        s.size += kept.length;
        return void req.socket.resetAndDestroy();
      }
      s.parts.push(data);
      s.size += data.length;
      return void res.writeHead(202, { location: handOut(session), range: range(session), 'content-length': '0' }).end();
    }
    if (kind === 'put') {
      const all = Buffer.concat([...s.parts, data]);
      const digest = decodeURIComponent(/(?:^|&)digest=([^&]*)/.exec(query)?.[1] ?? '');
      if (sha(all) !== digest)
        return void res
          .writeHead(400, { 'content-type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'DIGEST_INVALID' }] }));
      if (fault && 'reset' in fault && !fault.commit) return void req.socket.resetAndDestroy();
      blobs.set(digest, all);
      sessions.delete(session);
      if (fault && 'reset' in fault) return void req.socket.resetAndDestroy(); // committed; the answer is lost
      return void res.writeHead(201, { location: `${origin}/v2/r/blobs/${digest}`, 'content-length': '0' }).end();
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
  }
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(srv.address() as AddressInfo).port}`,
    reqs,
    blobs,
    locations,
    count: (kind) => reqs.filter((q) => q.kind === kind).length,
    close: () =>
      new Promise<void>((r) => {
        srv.close(() => r());
        srv.closeAllConnections();
      }),
  };
}

const MiB = 1024 * 1024;
const fastRetry = { baseDelayMs: 1, maxDelayMs: 5 };

/** Upload `content` into repository `r` of `srv` (source chunks of 256 KiB, so resumes re-read). */
async function push(srv: Scripted, content: Buffer, opts: { chunkSize?: number; mountFrom?: string; client?: RegistryClientOptions } = {}) {
  const client = new RegistryClient(srv.host, { retry: fastRetry, ...opts.client });
  const retries: string[] = [];
  try {
    const outcome = await uploadBlob(
      client,
      'r',
      { mediaType: 'application/octet-stream', digest: sha(content) as `sha256:${string}`, size: content.length },
      (start) =>
        Readable.from(
          (function* () {
            for (let i = start; i < content.length; i += 256 * 1024) yield content.subarray(i, Math.min(i + 256 * 1024, content.length));
          })(),
        ),
      {
        what: 'test blob',
        ...(opts.chunkSize ? { chunkSize: opts.chunkSize } : {}),
        ...(opts.mountFrom ? { mountFrom: opts.mountFrom } : {}),
        onRetry: (r) => retries.push(r),
      },
    );
    return { outcome, retries };
  } finally {
    await client.close();
  }
}

/** The registry committed exactly `content` (compared by digest: toEqual on MiBs of Buffer is slow). */
function expectStored(srv: Scripted, content: Buffer): void {
  const got = srv.blobs.get(sha(content));
  expect(got?.length).toBe(content.length);
  expect(got && sha(got)).toBe(sha(content));
}

function sentBytes(srv: Scripted, kind: Kind): number {
  return srv.reqs.filter((q) => q.kind === kind).reduce((n, q) => n + q.bytes, 0);
}

describe('retry budget: failures without progress, not the whole blob', () => {
  it('a long chunked upload with a reset every other chunk completes under a budget of 2 attempts and 1 ms', async () => {
    const content = randomBytes(6 * MiB + 123);
    // Every even PATCH breaks; half of them after the registry stored half of the chunk.
    const srv = await scripted({
      fault: (q) => (q.kind === 'patch' && q.n % 2 === 0 ? { reset: true, keep: q.n % 4 === 0 ? MiB / 2 : 0 } : undefined),
    });
    try {
      const { outcome, retries } = await push(srv, content, {
        chunkSize: MiB,
        client: { retry: { ...fastRetry, maxAttempts: 2, maxElapsedMs: 1 } },
      });
      expect(outcome).toBe('uploaded');
      expect(retries.length).toBeGreaterThanOrEqual(4);
      expectStored(srv, content);
      // One session, resumed each time: never started over.
      expect(srv.count('post')).toBe(1);
      expect(sentBytes(srv, 'patch')).toBeLessThan(content.length + retries.length * MiB + 1);
    } finally {
      await srv.close();
    }
  });

  it('every chunk gets through only on its second try, whose answer is lost: the status the registry gives counts as progress', async () => {
    const content = randomBytes(4 * MiB);
    // After the first chunk, even PATCHes break before the registry keeps anything, odd ones
    // (the second try of the same chunk) after it kept the chunk.
    const srv = await scripted({
      fault: (q) => (q.kind === 'patch' && q.n >= 2 ? { reset: true, keep: q.n % 2 === 0 ? 0 : MiB } : undefined),
    });
    try {
      const { outcome, retries } = await push(srv, content, {
        chunkSize: MiB,
        client: { retry: { ...fastRetry, maxAttempts: 2, maxElapsedMs: 1 } },
      });
      expect(outcome).toBe('uploaded');
      expect(retries).toHaveLength(6);
      expectStored(srv, content);
      expect(srv.count('post')).toBe(1);
    } finally {
      await srv.close();
    }
  });

  it('still gives up on a chunk that never gets through (progress is what resets the budget)', async () => {
    // A guard on the fix, not a bug reproduction: passes before and after.
    const content = randomBytes(3 * MiB);
    const srv = await scripted({ fault: (q) => (q.kind === 'patch' && q.n >= 2 ? { reset: true } : undefined) });
    try {
      await expect(push(srv, content, { chunkSize: MiB, client: { retry: { ...fastRetry, maxAttempts: 3 } } })).rejects.toMatchObject({
        retryable: true,
      });
      expect(srv.count('patch')).toBe(4);
      expect(srv.blobs.size).toBe(0);
    } finally {
      await srv.close();
    }
  });

  it('a session that breaks at the same point each time runs out of attempts (redoing old ground is not progress)', async () => {
    // A guard on the fix: passes before and after; without the high-water mark it would loop forever.
    const content = randomBytes(3 * MiB);
    // Every second chunk of a session breaks and the status GET then fails: the blob starts over.
    const srv = await scripted({
      fault: (q) => (q.kind === 'patch' && q.n % 2 === 0 ? { reset: true } : q.kind === 'status' ? { status: 404 } : undefined),
    });
    try {
      await expect(push(srv, content, { chunkSize: MiB, client: { retry: { ...fastRetry, maxAttempts: 3 } } })).rejects.toMatchObject({
        retryable: true,
      });
      expect(srv.count('post')).toBe(3);
    } finally {
      await srv.close();
    }
  });
});

describe('the status GET after a broken chunk', () => {
  it('resumes at the Location the status GET returned (relative, its _state byte for byte), not the one from before', async () => {
    const content = randomBytes(3 * MiB);
    const srv = await scripted({
      strictState: true,
      relativeStatusLocation: true,
      fault: (q) => (q.kind === 'patch' && q.n === 2 ? { reset: true } : undefined),
    });
    try {
      const { outcome } = await push(srv, content, { chunkSize: MiB });
      expect(outcome).toBe('uploaded');
      expectStored(srv, content);
      expect(srv.count('post')).toBe(1);
      const statusAt = srv.reqs.findIndex((q) => q.kind === 'status');
      expect(statusAt).toBeGreaterThan(0);
      const given = srv.locations.get(statusAt)!;
      expect(given).toMatch(/^\/v2\/r\/blobs\/uploads\/u1\?_state=s\d+%2Bx%3D%3D$/);
      // The next request, the resumed PATCH, went exactly there.
      expect(srv.reqs[statusAt + 1]).toMatchObject({ kind: 'patch', url: given });
    } finally {
      await srv.close();
    }
  });
});

describe('a cross-repository mount that fails', () => {
  it('with 401 on the mount POST: a plain upload session, and the blob lands', async () => {
    const content = Buffer.from('mounted elsewhere, refused here');
    const srv = await scripted({ fault: (q) => (q.kind === 'mount' ? { status: 401 } : undefined) });
    try {
      const { outcome } = await push(srv, content, { mountFrom: 'other' });
      expect(outcome).toBe('uploaded');
      expectStored(srv, content);
      expect(srv.count('mount')).toBeGreaterThanOrEqual(1);
      expect(srv.count('post')).toBe(1);
    } finally {
      await srv.close();
    }
  });

  it('with the token for the other repository refused: a plain upload with this repository’s scope', async () => {
    const content = Buffer.from('token refused for the mount');
    const srv = await scripted({ bearer: true });
    try {
      const { outcome } = await push(srv, content, { mountFrom: 'other' });
      expect(outcome).toBe('uploaded');
      expectStored(srv, content);
      expect(srv.count('mount')).toBe(0); // refused at the token service
      expect(srv.count('post')).toBe(1);
    } finally {
      await srv.close();
    }
  });

  it('keeps a failure of the upload after the mount opened a session (413 on the PUT): one session, the 413 reported', async () => {
    const content = Buffer.from('too large, say');
    const srv = await scripted({ fault: (q) => (q.kind === 'put' ? { status: 413 } : undefined) });
    try {
      await expect(push(srv, content, { mountFrom: 'other' })).rejects.toMatchObject({ status: 413 });
      expect(srv.count('mount') + srv.count('post')).toBe(1);
      expect(srv.count('put')).toBe(1);
    } finally {
      await srv.close();
    }
  });
});

describe('a final PUT whose answer was lost after the registry committed', () => {
  it.each([
    ['chunked', 3 * MiB],
    ['one request', 1000],
  ])('%s: the blob is found with HEAD, no second session, no bytes sent again', async (_label, size) => {
    const content = randomBytes(size);
    const srv = await scripted({ fault: (q) => (q.kind === 'put' && q.n === 1 ? { reset: true, commit: true } : undefined) });
    try {
      const { outcome } = await push(srv, content, { chunkSize: MiB });
      expect(outcome).toBe('uploaded');
      expectStored(srv, content);
      expect(srv.count('post')).toBe(1);
      expect(srv.count('head')).toBeGreaterThanOrEqual(1);
      expect(sentBytes(srv, 'patch') + sentBytes(srv, 'put')).toBe(content.length);
    } finally {
      await srv.close();
    }
  });
});

describe('Retry-After on answers to requests carrying blob bytes', () => {
  it.each([
    ['429 on a PATCH', 'patch' as const, 429, 3 * MiB],
    ['503 on the PUT of a small blob', 'put' as const, 503, 1000],
  ])('%s: waits as told', async (_label, kind, status, size) => {
    const content = randomBytes(size);
    const srv = await scripted({ fault: (q) => (q.kind === kind && q.n === 1 ? { status, headers: { 'retry-after': '1' } } : undefined) });
    try {
      const { outcome } = await push(srv, content, { chunkSize: MiB, client: { retry: { baseDelayMs: 1, maxDelayMs: 500 } } });
      expect(outcome).toBe('uploaded');
      expectStored(srv, content);
      const at = srv.reqs.findIndex((q) => q.kind === kind);
      const next = srv.reqs[at + 1]!;
      expect(next.at - srv.reqs[at]!.at).toBeGreaterThanOrEqual(950);
    } finally {
      await srv.close();
    }
  });
});
