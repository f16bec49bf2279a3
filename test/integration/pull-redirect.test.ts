/**
 * Blob redirects, as registries backed by object stores answer: the download follows the
 * redirect, and the registry's Authorization header never goes to the other host.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../scripts/corpus/generate.js';
import { pull } from '../../src/commands/pull.js';
import { startFaultProxy, type RunningFaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { pushSmallCorpus } from './corpus-registry.js';

let authed: RunningRegistry;
let blobHost: RunningRegistry;
let front: RunningFaultProxy;
let storage: RunningFaultProxy;
let corpus: CorpusManifest;

beforeAll(async () => {
  authed = await startRegistry({ auth: 'htpasswd' });
  blobHost = await startRegistry();
  ({ corpus } = await pushSmallCorpus(authed));
  await pushSmallCorpus(blobHost);
  front = await startFaultProxy(authed.url);
  storage = await startFaultProxy(blobHost.url);
});
afterAll(cleanupHarness);

describe('blob redirects', () => {
  it('follows a 307 to another host without sending it the Authorization header', async () => {
    const img = corpus.images.find((i) => i.repo === 'ferry-test/medium')!;
    const layer = corpus.largestLayer.digest;
    front.setRules([
      {
        method: 'GET',
        path: new RegExp(`/blobs/${layer}$`),
        fault: {
          kind: 'status',
          status: 307,
          headers: { location: `${storage.url}/v2/${img.repo}/blobs/${layer}?X-Amz-Signature=secret` },
        },
      },
    ]);
    const r = await pull({
      refs: [`${front.host}/${img.repo}:${img.tag}`],
      store: path.join(createTempDir('redirect'), 'store'),
      staticCredential: { kind: 'basic', username: authed.username!, password: authed.password! },
    });
    expect(r.failures).toEqual([]);
    expect(r.images[0]!.digest).toBe(img.digest);
    const redirected = storage.requests.filter((q) => q.url.includes(layer));
    expect(redirected).toHaveLength(1);
    expect(redirected[0]!.headers.authorization).toBeUndefined();
    // The registry itself did get credentials.
    expect(front.requests.filter((q) => q.url.includes('/manifests/')).every((q) => q.headers.authorization?.startsWith('Basic '))).toBe(
      true,
    );
  });
});
