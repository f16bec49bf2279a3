/**
 * Faults injected by a proxy in front of the real registry: what a client can recover from
 * (429, 5xx, resets, slow bodies, servers without Range) it recovers from; what it must not
 * trust (wrong bytes, endless truncation) is refused with a named error and nothing is stored.
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { pull, type PullOptions } from '../../src/commands/pull.js';
import { OciLayout } from '../../src/transports/oci/layout.js';
import type { RunningFaultProxy } from '../harness/fault-proxy.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { corpusBehindFaultProxy, type ProxiedImage } from './corpus-registry.js';
import { HAVE_FIXTURES, fixture } from '../helpers/fixtures.js';

let proxy: RunningFaultProxy;
let medium: ProxiedImage;

beforeAll(async () => {
  ({ proxy, medium } = await corpusBehindFaultProxy());
});
afterAll(cleanupHarness);
beforeEach(() => {
  proxy.setRules([]);
  proxy.clearRequests();
});

const fast: PullOptions['retry'] = { baseDelayMs: 20, maxDelayMs: 200 };

async function pullVia(refs: string[], extra: Partial<PullOptions> = {}) {
  const store = path.join(createTempDir('faults'), 'store');
  const report = await pull({ refs, store, retry: fast, ...extra });
  return { report, store };
}

async function blobFiles(store: string): Promise<string[]> {
  return (await readdir(path.join(store, 'blobs', 'sha256'))).sort();
}

const blobPath = (digest: string): RegExp => new RegExp(`/blobs/${digest.replace(':', ':')}$`);

describe('recovered faults', () => {
  it('429 with Retry-After on manifests: waits and succeeds', async () => {
    proxy.setRules([{ method: 'GET', path: /\/manifests\//, times: 2, fault: { kind: 'status', status: 429, retryAfter: 1 } }]);
    const started = Date.now();
    const { report } = await pullVia([medium.ref], { retry: { baseDelayMs: 20, maxDelayMs: 1000 } });
    expect(report.failures).toEqual([]);
    expect(proxy.requests.filter((r) => r.status === 429)).toHaveLength(2);
    // Retry-After: 1 was honoured (twice), not replaced by the 20 ms backoff.
    expect(Date.now() - started).toBeGreaterThanOrEqual(1900);
  });

  it('500 and 503 on a blob: retried', async () => {
    proxy.setRules([
      { method: 'GET', path: blobPath(medium.layer), times: 1, fault: { kind: 'status', status: 500 } },
      { method: 'GET', path: blobPath(medium.layer), skip: 1, times: 1, fault: { kind: 'status', status: 503 } },
    ]);
    const { report } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
    expect(proxy.requests.filter((r) => r.url.endsWith(medium.layer)).map((r) => r.status)).toEqual([500, 503, 200]);
  });

  it('connection reset before the response: retried', async () => {
    proxy.setRules([{ method: 'GET', path: /\/manifests\//, times: 2, fault: { kind: 'reset' } }]);
    const { report } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
  });

  it('connection reset mid-body: resumes with Range from where it stopped', async () => {
    proxy.setRules([{ method: 'GET', path: blobPath(medium.layer), times: 1, fault: { kind: 'reset', afterBytes: 700_000 } }]);
    const { report, store } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
    const gets = proxy.requests.filter((r) => r.url.endsWith(medium.layer));
    expect(gets).toHaveLength(2);
    expect(gets[0]!.headers.range).toBeUndefined();
    expect(gets[1]!.headers.range).toMatch(/^bytes=\d+-$/);
    const from = Number(/bytes=(\d+)-/.exec(String(gets[1]!.headers.range))![1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(700_000);
    expect(await (await OciLayout.open(store)).hasBlob(medium.layer, medium.size)).toBe(true);
  });

  it('a truncated body once: resumed and completed', async () => {
    proxy.setRules([{ method: 'GET', path: blobPath(medium.layer), times: 1, fault: { kind: 'truncate', afterBytes: 1_000_000 } }]);
    const { report } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
    const gets = proxy.requests.filter((r) => r.url.endsWith(medium.layer));
    expect(gets[1]!.headers.range).toBe('bytes=1000000-');
  });

  it('a server without Range support: the resumed download skips what it already has', async () => {
    proxy.setRules([
      { method: 'GET', path: blobPath(medium.layer), fault: { kind: 'noRange' } },
      { method: 'GET', path: blobPath(medium.layer), times: 1, fault: { kind: 'truncate', afterBytes: 500_000 } },
    ]);
    const { report, store } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
    expect(await (await OciLayout.open(store)).hasBlob(medium.layer, medium.size)).toBe(true);
  });

  it('the /v2/ ping reset twice: retried, then the pull goes on', async () => {
    proxy.setRules([{ method: 'GET', path: /^\/v2\/$/, times: 2, fault: { kind: 'reset' } }]);
    const { report } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
    expect(proxy.requests.filter((r) => r.url === '/v2/').map((r) => r.outcome)).toEqual(['reset', 'reset', 'completed']);
  });

  it('a manifest body broken off mid-way: asked again', async () => {
    proxy.setRules([{ method: 'GET', path: /\/manifests\//, times: 1, fault: { kind: 'truncate', afterBytes: 20 } }]);
    const { report } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
    const manifestGets = proxy.requests.filter((r) => r.url.includes('/manifests/'));
    expect(manifestGets[0]!.outcome).toBe('truncated');
    expect(manifestGets.length).toBeGreaterThanOrEqual(2);
  });

  it('a slow body completes', async () => {
    proxy.setRules([{ method: 'GET', path: blobPath(medium.layer), fault: { kind: 'throttle', bytesPerSecond: 4 * 1024 * 1024 } }]);
    const { report } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([]);
  });
});

describe('refused faults: nothing stored', () => {
  it('wrong bytes: DIGEST_MISMATCH, no blob file, no temp file, no name', async () => {
    proxy.setRules([{ method: 'GET', path: blobPath(medium.layer), fault: { kind: 'corrupt', offset: 12345 } }]);
    const { report, store } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([expect.objectContaining({ name: medium.ref, errorCode: 'DIGEST_MISMATCH' })]);
    expect(report.failures[0]!.error).toContain(medium.layer);
    const files = await blobFiles(store);
    expect(files).not.toContain(medium.layer.slice(7));
    expect(files.filter((f) => f.startsWith('.'))).toEqual([]);
    expect((await (await OciLayout.open(store)).readIndex()).manifests).toEqual([]);
  });

  it('a body truncated on every attempt: BLOB_TRUNCATED after bounded resumes, nothing stored', async () => {
    proxy.setRules([{ method: 'GET', path: blobPath(medium.layer), fault: { kind: 'truncate', afterBytes: 100_000 } }]);
    const { report, store } = await pullVia([medium.ref], { retry: { ...fast, maxAttempts: 3 } });
    expect(report.failures).toEqual([expect.objectContaining({ errorCode: 'BLOB_TRUNCATED' })]);
    // First attempt plus two resumes, then it gives up.
    expect(proxy.requests.filter((r) => r.url.endsWith(medium.layer))).toHaveLength(3);
    // Not stored under its name; what arrived is kept only as a temp file, for the next run to resume.
    const left = (await blobFiles(store)).filter((f) => f === medium.layer.slice(7) || f.startsWith('.'));
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(new RegExp(`^\\.${medium.layer.slice(7)}\\..*\\.tmp$`));
    expect((await (await OciLayout.open(store)).readIndex()).manifests).toEqual([]);
  });

  it('a blob shorter than its descriptor, served complete: SIZE_MISMATCH at once, not a resume', async () => {
    // A whole, well-framed answer with fewer bytes than the manifest declares.
    proxy.setRules([
      {
        method: 'GET',
        path: blobPath(medium.layer),
        fault: { kind: 'status', status: 200, body: 'short blob', headers: { 'content-type': 'application/octet-stream' } },
      },
    ]);
    const { report, store } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([expect.objectContaining({ errorCode: 'SIZE_MISMATCH' })]);
    expect(proxy.requests.filter((r) => r.url.endsWith(medium.layer))).toHaveLength(1);
    expect((await blobFiles(store)).filter((f) => f === medium.layer.slice(7) || f.startsWith('.'))).toEqual([]);
    expect((await (await OciLayout.open(store)).readIndex()).manifests).toEqual([]);
  });

  it('plain HTTP answering /v2/ with a redirect is not taken for the registry', async () => {
    proxy.setRules([
      { method: 'GET', path: /^\/v2\/$/, fault: { kind: 'status', status: 301, headers: { location: `https://${proxy.host}/v2/` } } },
    ]);
    const { report } = await pullVia([medium.ref]);
    expect(report.failures).toEqual([expect.objectContaining({ errorCode: 'REGISTRY_UNREACHABLE' })]);
    expect(report.failures[0]!.error).toContain('http: plain HTTP answered 301');
    expect(report.failures[0]!.error).toContain('https: no TLS on that port');
    // Nothing past the ping was asked.
    expect(proxy.requests.filter((r) => r.url !== '/v2/')).toEqual([]);
  });

  it.skipIf(!HAVE_FIXTURES)(
    'a signed schema1 manifest: SCHEMA1_UNSUPPORTED, not a digest mismatch (needs ../shared/fixtures)',
    async () => {
      // containers/image's signed fixture, served for the tag with the digest a registry announces
      // for it (the payload's, without the JWS signatures), so the raw bytes do not hash to it.
      const body = await readFile(fixture('containers-image', 'manifest', 'fixtures', 'v2s1.manifest.json'), 'utf8');
      proxy.setRules([
        {
          method: 'GET',
          path: /\/manifests\//,
          fault: {
            kind: 'status',
            status: 200,
            body,
            headers: {
              'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws',
              'docker-content-digest': `sha256:${'5'.repeat(64)}`,
            },
          },
        },
      ]);
      const { report, store } = await pullVia([medium.ref]);
      expect(report.failures).toEqual([expect.objectContaining({ errorCode: 'SCHEMA1_UNSUPPORTED' })]);
      expect((await (await OciLayout.open(store)).readIndex()).manifests).toEqual([]);
    },
  );

  it('503 forever: gives up within the bounds, naming the registry', async () => {
    proxy.setRules([{ method: 'GET', path: /\/manifests\//, fault: { kind: 'status', status: 503 } }]);
    const { report } = await pullVia([medium.ref], { retry: { ...fast, maxAttempts: 4 } });
    expect(report.failures).toEqual([expect.objectContaining({ errorCode: 'UNAVAILABLE' })]);
    expect(report.failures[0]!.error).toContain('HTTP 503');
    expect(proxy.requests.filter((r) => r.url.includes('/manifests/'))).toHaveLength(4);
  });
});
