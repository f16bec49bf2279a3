/**
 * Upload edge cases real registries show (see ../shared/fixtures/distribution-registry-2.8.2-
 * transcripts): a relative Location whose `_state` must be kept byte for byte with `digest=`
 * appended, and a mount the registry cannot do answered with a 202 session to upload into.
 * A scripted server stands in for those answers (fault injection); the happy paths run against
 * the real docker-registry in test/integration/load.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RegistryClient } from '../../../src/transports/registry/client.js';
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
      const outcome = await uploadBlob(client, 'r', { mediaType: 'application/octet-stream', digest, size: content.length }, () => Readable.from([content]), {
        what: 'test blob',
        mountFrom: 'other',
      });
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
        uploadBlob(client, 'r', { mediaType: 'application/octet-stream', digest: `sha256:${'0'.repeat(64)}`, size: content.length }, () => Readable.from([content]), {
          what: 'test blob',
        }),
      ).rejects.toMatchObject({ code: 'DIGEST_MISMATCH' });
    } finally {
      await client.close();
    }
    expect(stored).toBeUndefined();
  });
});
