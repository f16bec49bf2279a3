/**
 * A --username/--password-stdin credential belongs to one registry and reaches no other: two
 * real registries with different users, the second behind a recording proxy, pulled in one run.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { CorpusManifest } from '../../scripts/corpus/generate.js';
import { loadDockerConfig } from '../../src/auth/index.js';
import { pull } from '../../src/commands/pull.js';
import { mirror } from '../../src/commands/mirror.js';
import { startFaultProxy, type RunningFaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { pushSmallCorpus } from './corpus-registry.js';

afterAll(cleanupHarness);

const A_USER = 'alice';
const A_PASS = 'alice-secret-for-a';
const B_USER = 'bob';
const B_PASS = 'bob-secret-for-b';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

let regA: RunningRegistry;
let regB: RunningRegistry;
let proxyB: RunningFaultProxy;
let corpus: CorpusManifest;

beforeAll(async () => {
  regA = await startRegistry({ auth: 'htpasswd', users: { [A_USER]: A_PASS } });
  regB = await startRegistry({ auth: 'htpasswd', users: { [B_USER]: B_PASS } });
  ({ corpus } = await pushSmallCorpus(regA));
  await pushSmallCorpus(regB);
  proxyB = await startFaultProxy(regB.url);
});
beforeEach(() => proxyB.clearRequests());

async function configFor(entries: Record<string, string>): Promise<Awaited<ReturnType<typeof loadDockerConfig>>> {
  const file = path.join(createTempDir('cred-scope-config'), 'config.json');
  await writeFile(file, JSON.stringify({ auths: Object.fromEntries(Object.entries(entries).map(([host, auth]) => [host, { auth }])) }));
  return loadDockerConfig({ path: file });
}

const store = (): string => path.join(createTempDir('cred-scope'), 'store');
const aPassword = { kind: 'basic' as const, username: A_USER, password: A_PASS };

/** Every Authorization header the second registry received, decoded. */
function authSeenByB(): string[] {
  return proxyB.requests.flatMap((r) => {
    const h = r.headers.authorization;
    return typeof h === 'string' && h.startsWith('Basic ') ? [Buffer.from(h.slice(6), 'base64').toString('utf8')] : h ? [String(h)] : [];
  });
}

describe('--username is for one registry', () => {
  it('two registries and no --auth-registry: refused before anything is sent', async () => {
    const img = corpus.images[0]!;
    await expect(
      pull({
        refs: [`${regA.host}/${img.repo}:${img.tag}`, `${proxyB.host}/${img.repo}:${img.tag}`],
        store: store(),
        staticCredential: aPassword,
      }),
    ).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringContaining('talks to 2'),
    });
    expect(proxyB.requests).toEqual([]);
  });

  it('bound to the first registry: the second gets its own config.json credentials, never the password', async () => {
    const img = corpus.images[0]!;
    const r = await pull({
      refs: [`${regA.host}/${img.repo}:${img.tag}`, `${proxyB.host}/${img.repo}:${img.tag}`],
      store: store(),
      staticCredential: aPassword,
      staticCredentialRegistry: regA.host,
      credentials: await configFor({ [proxyB.host]: b64(`${B_USER}:${B_PASS}`) }),
    });
    expect(r.failures).toEqual([]);
    expect(r.images.map((i) => i.digest)).toEqual([img.digest, img.digest]);
    const seen = authSeenByB();
    expect(seen.length).toBeGreaterThan(0);
    expect(new Set(seen)).toEqual(new Set([`${B_USER}:${B_PASS}`]));
    expect(JSON.stringify(proxyB.requests.map((q) => q.headers))).not.toContain(b64(`${A_USER}:${A_PASS}`));
  });

  it('--auth-registry naming a registry the run does not use: refused', async () => {
    const img = corpus.images[0]!;
    await expect(
      pull({
        refs: [`${regA.host}/${img.repo}:${img.tag}`],
        store: store(),
        staticCredential: aPassword,
        staticCredentialRegistry: 'registry.example.com',
      }),
    ).rejects.toMatchObject({ code: 'USAGE', message: expect.stringContaining('does not talk to that registry') });
  });

  it("mirror: the credential is the destination's; the source gets none of it", async () => {
    const img = corpus.images.find((i) => i.kind !== 'oci-index') ?? corpus.images[0]!;
    // Source: the second registry (through the recording proxy), with its config.json entry;
    // destination: the first, with --username.
    const report = await mirror({
      refs: [`${proxyB.host}/${img.repo}:${img.tag}`],
      to: `docker://${regA.host}/mirrored`,
      staticCredential: aPassword,
      credentials: await configFor({ [proxyB.host]: b64(`${B_USER}:${B_PASS}`) }),
    });
    expect(report.failures).toEqual([]);
    expect(report.images.map((i) => i.destinationDigest ?? i.digest)).toEqual([img.digest]);
    expect(new Set(authSeenByB())).toEqual(new Set([`${B_USER}:${B_PASS}`]));
  });
});
