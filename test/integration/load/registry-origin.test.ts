/**
 * Credentials go to the registry's own origin only. A registry (or a proxy in front of it) may
 * answer an upload POST with an absolute Location on another origin; the client must not send
 * its Authorization there. Here the client talks to `localhost:PORT` while the proxy rewrites
 * every Location to `127.0.0.1:PORT` (same server, another origin), in front of a real
 * docker-registry with htpasswd auth.
 */
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { load } from '../../../src/commands/load.js';
import { startFaultProxy, type RunningFaultProxy } from '../../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';

const USER = 'pusher';
const PASS = 'pusher-secret';
let reg: RunningRegistry;
let proxy: RunningFaultProxy;
let store: string;

beforeAll(async () => {
  store = path.join(createTempDir('origin'), 'store');
  await storeFromSmallCorpus(store, ['ferry-test/base:1']);
  reg = await startRegistry({ auth: 'htpasswd', users: { [USER]: PASS } });
  proxy = await startFaultProxy(reg.url);
}, 120_000);
afterAll(cleanupHarness);

it('an upload Location on another origin gets no Authorization; the push fails with 401 and no tag', async () => {
  const port = proxy.host.split(':')[1]!;
  const r = await load({
    source: `oci:${store}:ferry-test/base:1`,
    to: `docker://localhost:${port}/o`,
    staticCredential: { kind: 'basic', username: USER, password: PASS },
    retry: { baseDelayMs: 10, maxDelayMs: 50, maxAttempts: 2 },
  });
  expect(r.failures).toEqual([expect.objectContaining({ errorCode: 'UNAUTHORIZED' })]);
  // The POSTs (to localhost, the registry's origin as the client knows it) carried credentials;
  // nothing sent to the Location's origin did.
  const toSessions = proxy.requests.filter((q) => /\/blobs\/uploads\/[^?]/.test(q.url));
  expect(toSessions.length).toBeGreaterThan(0);
  expect(toSessions.every((q) => q.headers.host?.startsWith('127.0.0.1:'))).toBe(true);
  expect(toSessions.map((q) => q.headers.authorization)).toEqual(toSessions.map(() => undefined));
  const posts = proxy.requests.filter((q) => q.method === 'POST' && q.status === 202);
  expect(posts.length).toBeGreaterThan(0);
  expect(posts.every((q) => q.headers.host?.startsWith('localhost:') && typeof q.headers.authorization === 'string')).toBe(true);
  // No tag at the destination.
  const tags = await fetch(`${reg.url}/v2/o/ferry-test/base/tags/list`, {
    headers: { authorization: `Basic ${Buffer.from(`${USER}:${PASS}`).toString('base64')}` },
  });
  expect([404, 200]).toContain(tags.status);
  if (tags.status === 200) expect(((await tags.json()) as { tags?: string[] | null }).tags ?? []).toEqual([]);
});
