/**
 * Pushing through the fault proxy in front of a real docker-registry: 429, 5xx, resets in the
 * middle of a chunked upload, slow answers are recovered from; 401, 403, 413 and
 * MANIFEST_INVALID stop with a message naming what failed and what to do. In every case no tag
 * points at incomplete content.
 */
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../../scripts/corpus/generate.js';
import { load, type LoadOptions } from '../../../src/commands/load.js';
import { startFaultProxy, type RunningFaultProxy } from '../../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../../harness/registry.js';
import { runSkopeo } from '../../harness/tools.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';

let corpus: CorpusManifest;
let store: string;
let reg: RunningRegistry;
let proxy: RunningFaultProxy;
let medium: CorpusManifest['images'][number];
let prefixN = 0;

const fast: LoadOptions['retry'] = { baseDelayMs: 20, maxDelayMs: 200 };
/** The medium image's 2 MiB layer goes up in PATCH chunks of 1 MiB. */
const CHUNK = 1024 * 1024;

beforeAll(async () => {
  const work = createTempDir('load-faults');
  store = path.join(work, 'store');
  ({ corpus } = await storeFromSmallCorpus(store, ['ferry-test/medium:1', 'ferry-test/base:1']));
  medium = corpus.images.find((i) => i.repo === 'ferry-test/medium')!;
  reg = await startRegistry();
  proxy = await startFaultProxy(reg.url);
}, 120_000);
afterAll(cleanupHarness);
beforeEach(() => {
  proxy.setRules([]);
  proxy.clearRequests();
});

/** A fresh prefix per test, so nothing is already there. */
function nextPrefix(): string {
  return `f${++prefixN}`;
}

function loadVia(prefix: string, extra: Partial<LoadOptions> = {}) {
  return load({
    source: `oci:${store}:ferry-test/medium:1`,
    to: `docker://${proxy.host}/${prefix}`,
    retry: fast,
    chunkSize: CHUNK,
    ...extra,
  });
}

/** Tags the registry holds for the medium image under `prefix` (straight, not through the proxy). */
async function tags(prefix: string): Promise<string[]> {
  const res = await fetch(`${reg.url}/v2/${prefix}/${medium.repo}/tags/list`);
  if (res.status === 404) return [];
  const body = (await res.json()) as { tags?: string[] | null };
  return body.tags ?? [];
}

async function assertComplete(prefix: string): Promise<void> {
  expect(await tags(prefix)).toEqual([medium.tag]);
  // skopeo copies it, checking every blob's digest: the content behind the tag is complete.
  await runSkopeo([
    'copy',
    '--src-tls-verify=false',
    `docker://${reg.host}/${prefix}/${medium.repo}:${medium.tag}`,
    `oci:${createTempDir('copy')}:x`,
  ]);
}

describe('recovers from', () => {
  it('429 with Retry-After and 503 when opening uploads', async () => {
    const p = nextPrefix();
    proxy.setRules([
      { method: 'POST', path: /\/blobs\/uploads\//, times: 2, fault: { kind: 'status', status: 429, retryAfter: 0 } },
      { method: 'POST', path: /\/blobs\/uploads\//, skip: 2, times: 1, fault: { kind: 'status', status: 503 } },
    ]);
    const r = await loadVia(p);
    expect(r.failures).toEqual([]);
    expect(proxy.ruleStats().map((s) => s.injected)).toEqual([2, 1]);
    await assertComplete(p);
  });

  it('a 500 on the PUT that carries a small blob (the source is read again)', async () => {
    const p = nextPrefix();
    proxy.setRules([{ method: 'PUT', path: /\/blobs\/uploads\/.*digest=/, times: 1, fault: { kind: 'status', status: 500 } }]);
    const r = await loadVia(p);
    expect(r.failures).toEqual([]);
    expect(proxy.ruleStats()[0]!.injected).toBe(1);
    await assertComplete(p);
  });

  it('a 401 on a PATCH chunk (a token that expired mid-upload): the chunk is sent again, not the blob failed', async () => {
    const p = nextPrefix();
    proxy.setRules([
      {
        method: 'PATCH',
        path: /\/blobs\/uploads\//,
        skip: 1,
        times: 1,
        fault: { kind: 'status', status: 401, headers: { 'www-authenticate': 'Basic realm="registry"' } },
      },
    ]);
    const r = await loadVia(p);
    expect(r.failures).toEqual([]);
    expect(proxy.ruleStats()[0]!.injected).toBe(1);
    await assertComplete(p);
  });

  it('a connection reset on a PATCH chunk: resumes where the registry says the session ends', async () => {
    const p = nextPrefix();
    proxy.setRules([{ method: 'PATCH', path: /\/blobs\/uploads\//, skip: 1, times: 2, fault: { kind: 'reset' } }]);
    const retries: Array<{ attempt: number; delayMs?: number }> = [];
    const r = await loadVia(p, {
      onEvent: (e) =>
        e.kind === 'retry' && e.digest !== undefined
          ? retries.push({ attempt: e.attempt, ...(e.delayMs !== undefined ? { delayMs: e.delayMs } : {}) })
          : undefined,
    });
    expect(r.failures).toEqual([]);
    expect(proxy.ruleStats()[0]!.injected).toBe(2);
    // Two failures in a row without progress between them: retries 1 and 2, each with its delay.
    expect(retries.map((x) => x.attempt)).toEqual([1, 2]);
    expect(retries.every((x) => typeof x.delayMs === 'number' && x.delayMs >= 0)).toBe(true);
    // It asked the session where it stands, and did not start the blob over.
    const methods = proxy.requests.filter((q) => q.url.includes('/blobs/uploads/')).map((q) => q.method);
    expect(methods).toContain('GET');
    const patches = proxy.requests.filter((q) => q.method === 'PATCH');
    const sent = patches.reduce((n, q) => n + q.requestBytes, 0);
    expect(sent).toBeLessThan(corpus.largestLayer.size + 3 * CHUNK);
    await assertComplete(p);
  });

  it('a connection reset on the first PATCH (distribution then reports the empty session as "0-0")', async () => {
    const p = nextPrefix();
    proxy.setRules([{ method: 'PATCH', path: /\/blobs\/uploads\//, times: 1, fault: { kind: 'reset' } }]);
    const r = await loadVia(p);
    expect(r.failures).toEqual([]);
    expect(proxy.ruleStats()[0]!.injected).toBe(1);
    await assertComplete(p);
  });

  it('a reset after the registry took the chunk (it answered, the answer was lost)', async () => {
    const p = nextPrefix();
    proxy.setRules([{ method: 'PATCH', path: /\/blobs\/uploads\//, times: 1, fault: { kind: 'reset', afterBytes: 0 } }]);
    const r = await loadVia(p);
    expect(r.failures).toEqual([]);
    await assertComplete(p);
  });

  it('a reset after the registry committed each blob (every final PUT answered, every answer lost): found with HEAD, no second session', async () => {
    const p = nextPrefix();
    proxy.setRules([{ method: 'PUT', path: /\/blobs\/uploads\/.*digest=/, fault: { kind: 'reset', afterBytes: 0 } }]);
    const r = await loadVia(p);
    expect(r.failures).toEqual([]);
    const blobPuts = proxy.requests.filter((q) => q.method === 'PUT' && /\/blobs\/uploads\/.*digest=/.test(q.url));
    expect(blobPuts.length).toBeGreaterThan(0);
    expect(blobPuts.every((q) => q.outcome === 'reset')).toBe(true);
    // One upload session per blob: a committed blob is not sent again.
    const digests = new Set(blobPuts.map((q) => /digest=([^&]+)/.exec(q.url)![1]));
    const posts = proxy.requests.filter((q) => q.method === 'POST' && q.url.includes('/blobs/uploads/'));
    expect(posts).toHaveLength(digests.size);
    const patched = proxy.requests.filter((q) => q.method === 'PATCH').reduce((n, q) => n + q.requestBytes, 0);
    expect(patched).toBe(corpus.largestLayer.size);
    await assertComplete(p);
  });

  it('a reset on the second and on the third chunk under a budget of 2 attempts and 1 ms: the chunk acknowledged between renews it', async () => {
    const p = nextPrefix();
    // The layer (just over 2 MiB) goes up in 3 chunks; the first try of chunks 2 and 3 is reset
    // before it reaches the registry (PATCHes 2 and 4; PATCH 3, chunk 2 again, is acknowledged).
    expect(corpus.largestLayer.size).toBeGreaterThan(2 * CHUNK);
    proxy.setRules([
      { method: 'PATCH', path: /\/blobs\/uploads\//, skip: 1, times: 1, fault: { kind: 'reset' } },
      { method: 'PATCH', path: /\/blobs\/uploads\//, skip: 3, times: 1, fault: { kind: 'reset' } },
    ]);
    const r = await loadVia(p, { retry: { ...fast, maxAttempts: 2, maxElapsedMs: 1 } });
    expect(r.failures).toEqual([]);
    expect(proxy.ruleStats().map((s) => s.injected)).toEqual([1, 1]);
    // Resumed, never started over: one upload session for the layer.
    expect(proxy.requests.filter((q) => q.method === 'POST' && q.url.includes('/blobs/uploads/')).length).toBe(
      new Set(proxy.requests.filter((q) => q.method === 'PUT' && q.url.includes('digest=')).map((q) => /digest=([^&]+)/.exec(q.url)![1]))
        .size,
    );
    await assertComplete(p);
  });

  it('a 401 on every cross-repository mount: the blobs are uploaded instead', async () => {
    const p = nextPrefix();
    proxy.setRules([{ method: 'POST', path: /\/blobs\/uploads\/\?mount=/, fault: { kind: 'status', status: 401 } }]);
    // Both images: the base's blobs are shared, so the second repository would mount them.
    const r = await load({ source: `oci:${store}`, to: `docker://${proxy.host}/${p}`, retry: fast, chunkSize: CHUNK });
    expect(r.failures).toEqual([]);
    expect(proxy.ruleStats()[0]!.injected).toBeGreaterThan(0);
    await assertComplete(p);
    const base = corpus.images.find((i) => i.repo === 'ferry-test/base')!;
    await runSkopeo([
      'copy',
      '--src-tls-verify=false',
      `docker://${reg.host}/${p}/${base.repo}:${base.tag}`,
      `oci:${createTempDir('copy')}:x`,
    ]);
  });

  it('slow answers', async () => {
    const p = nextPrefix();
    proxy.setRules([{ path: /\/blobs\//, times: 4, fault: { kind: 'delay', ms: 300 } }]);
    const r = await loadVia(p);
    expect(r.failures).toEqual([]);
    await assertComplete(p);
  });
});

describe('stops with a message naming what failed and what to do', () => {
  it.each([
    [
      '401 on the manifest',
      { method: 'PUT', path: /\/manifests\//, fault: { kind: 'status' as const, status: 401 } },
      /HTTP 401/,
      /log in|credentials/,
    ],
    [
      '403 when opening an upload',
      { method: 'POST', path: /\/blobs\/uploads\//, fault: { kind: 'status' as const, status: 403 } },
      /DENIED/,
      /may not push/,
    ],
    [
      '413 on a chunk',
      { method: 'PATCH', path: /\/blobs\/uploads\//, fault: { kind: 'status' as const, status: 413 } },
      /HTTP 413/,
      /body size limit/,
    ],
    [
      'MANIFEST_INVALID',
      {
        method: 'PUT',
        path: /\/manifests\//,
        fault: {
          kind: 'status' as const,
          status: 400,
          body: JSON.stringify({ errors: [{ code: 'MANIFEST_INVALID', message: 'manifest invalid', detail: {} }] }),
        },
      },
      /MANIFEST_INVALID/,
      /rejected the manifest/,
    ],
  ])('%s', async (_label, rule, message, hint) => {
    const p = nextPrefix();
    proxy.setRules([rule]);
    const r = await loadVia(p);
    expect(r.failures).toHaveLength(1);
    const f = r.failures[0]!;
    expect(f.name).toBe(`docker.io/${medium.ref}`);
    expect(f.error).toMatch(message);
    expect(f.hint).toMatch(hint);
    expect(r.mapping).toEqual({});
    // No tag points at incomplete content.
    expect(await tags(p)).toEqual([]);
  });
});
