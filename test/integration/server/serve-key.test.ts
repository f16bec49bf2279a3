// `ferry serve --key PUB [--require-signature]`: a bundle is served only if its signature
// verifies as `ferry load --key` decides (the same verifyBundle), checked before the server
// listens. Refusals: a wrong key or a tampered signature (exit 3, naming the file), an unsigned
// bundle with a key or a required signature (exit 3), an unreadable key (exit 2), and sources
// that carry no signature with --require-signature (exit 2). Unsigned without flags serves.
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeBundle } from '../../../src/bundle/writer.js';
import { runServe } from '../../../src/cli/serve.js';
import type { RunningServer } from '../../../src/server/server.js';
import type { OciLayout } from '../../../src/transports/oci/layout.js';
import { FerryError, UsageError } from '../../../src/util/errors.js';
import { cleanupHarness, createTempDir } from '../../harness/temp.js';
import { runSkopeo } from '../../harness/tools.js';
import { ferry } from '../../helpers/cli.js';
import { makeKeyPair } from '../../helpers/keys.js';
import { storeFromSmallCorpus } from '../corpus-registry.js';
import { flipByteOfMember } from '../../helpers/tar.js';

const REF = 'ferry-test/app:1.0';

let work: string;
let storeDir: string;
let store: OciLayout;
let signed: string;
let unsigned: string;
let keys: { key: string; pub: string };
let other: { key: string; pub: string };
let digest: string;

/** A loopback port that nothing listens on right now. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

async function listening(port: number): Promise<boolean> {
  return fetch(`http://127.0.0.1:${port}/v2/`).then(
    () => true,
    () => false,
  );
}

/** Serve until ready, then stop; the manifest digest served for REF. */
async function serveOnce(sources: string[], extra: { key?: string; 'require-signature'?: boolean }): Promise<string | null> {
  const ac = new AbortController();
  let served: string | null = null;
  const ready = async (s: RunningServer): Promise<void> => {
    served = (await fetch(`${s.url}/v2/ferry-test/app/manifests/1.0`)).headers.get('docker-content-digest');
    ac.abort();
  };
  let pending: Promise<void> | undefined;
  const code = await runServe(
    { sources, listen: '127.0.0.1:0', ...extra },
    { signal: ac.signal, stdout: () => {}, stderr: () => {}, onReady: (s) => void (pending = ready(s)) },
  );
  await pending;
  expect(code).toBe(0);
  return served;
}

/** runServe's refusal, checking that nothing ever listened on the port it was given. */
async function refusal(sources: string[], extra: { key?: string; 'require-signature'?: boolean }): Promise<FerryError> {
  const port = await freePort();
  let readyCalled = false;
  const err = await runServe(
    { sources, listen: `127.0.0.1:${port}`, ...extra },
    { signal: new AbortController().signal, stdout: () => {}, stderr: () => {}, onReady: () => (readyCalled = true) },
  ).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(FerryError);
  expect(readyCalled).toBe(false);
  expect(await listening(port)).toBe(false);
  return err as FerryError;
}

beforeAll(async () => {
  work = createTempDir('serve-key');
  storeDir = path.join(work, 'store');
  ({ store } = await storeFromSmallCorpus(storeDir, [REF]));
  keys = makeKeyPair(work, 'site', 'ed25519');
  other = makeKeyPair(work, 'other', 'ec-p256');
  signed = path.join(work, 'signed.ferry');
  unsigned = path.join(work, 'unsigned.ferry');
  await writeBundle({ store, output: signed, compression: 'none', signKey: keys.key });
  await writeBundle({ store, output: unsigned, compression: 'none' });
  const index = (await store.readIndex()).manifests;
  digest = index[0]!.digest;
}, 120_000);

afterAll(cleanupHarness);

describe('ferry serve --key', () => {
  it('serves a bundle whose signature verifies, with and without --require-signature', async () => {
    expect(await serveOnce([signed], { key: keys.pub })).toBe(digest);
    expect(await serveOnce([signed], { key: keys.pub, 'require-signature': true })).toBe(digest);
    // A private key file is accepted too (its public half), as for ferry load.
    expect(await serveOnce([`bundle:${signed}`], { key: keys.key })).toBe(digest);
  });

  it('refuses a bundle signed with another key (exit 3, naming the file), and the server never listens', async () => {
    const err = await refusal([signed], { key: other.pub });
    expect(err.exitCode).toBe(3);
    expect(err.code).toBe('BUNDLE_INVALID');
    expect(err.message).toContain(signed);
    expect(err.message).toMatch(/SIGNATURE_INVALID/);
  });

  it('refuses a tampered signature (exit 3), whichever source it is among', async () => {
    const tampered = path.join(work, 'tampered.ferry');
    copyFileSync(signed, tampered);
    await flipByteOfMember(tampered, 'ferry-bundle.json.sig');
    const err = await refusal([signed, tampered], { key: keys.pub });
    expect(err.exitCode).toBe(3);
    expect(err.message).toContain(tampered);
    expect(err.message).toMatch(/SIGNATURE_INVALID/);
  });

  it('refuses an unsigned bundle with --key or --require-signature (exit 3); without them it serves', async () => {
    for (const extra of [{ key: keys.pub }, { key: keys.pub, 'require-signature': true }]) {
      const err = await refusal([unsigned], extra);
      expect(err.exitCode).toBe(3);
      expect(err.message).toContain(unsigned);
      expect(err.message).toMatch(/SIGNATURE_MISSING/);
    }
    expect(await serveOnce([unsigned], {})).toBe(digest);
  });

  it('refuses, with a usage error (exit 2), what no signature can cover and a key it cannot read', async () => {
    const layout = await refusal([signed, `oci:${storeDir}`], { key: keys.pub, 'require-signature': true });
    expect(layout).toBeInstanceOf(UsageError);
    expect(layout.message).toMatch(/OCI layout.*no signature/);
    const noKey = await refusal([signed], { 'require-signature': true });
    expect(noKey).toBeInstanceOf(UsageError);
    expect(noKey.message).toMatch(/needs --key/);
    const missing = await refusal([signed], { key: path.join(work, 'nope.pub') });
    expect(missing.exitCode).toBe(2);
    expect(missing.message).toContain('nope.pub');
    const garbage = path.join(work, 'garbage.pub');
    writeFileSync(garbage, 'not a key\n');
    expect((await refusal([signed], { key: garbage })).exitCode).toBe(2);
    // An OCI archive carries no signature either.
    const dir = createTempDir('serve-key-archive');
    mkdirSync(dir, { recursive: true });
    const archive = path.join(dir, 'app.tar');
    await runSkopeo(['copy', '--preserve-digests', `oci:${storeDir}:${REF}`, `oci-archive:${archive}:${REF}`]);
    const arch = await refusal([`oci-archive:${archive}`], { key: keys.pub, 'require-signature': true });
    expect(arch).toBeInstanceOf(UsageError);
    expect(arch.message).toMatch(/OCI archive.*no signature/);
  });

  it('the CLI exits 3 on a bad signature and 2 on an unreadable key, before listening', async () => {
    const port = await freePort();
    const bad = await ferry(['serve', signed, '--key', other.pub, '--listen', `127.0.0.1:${port}`]);
    expect(bad.code, bad.stderr).toBe(3);
    expect(bad.stderr).toContain(signed);
    expect(bad.stdout).not.toContain('Serving');
    const unreadable = await ferry(['serve', signed, '--key', path.join(work, 'nope.pub'), '--listen', `127.0.0.1:${port}`]);
    expect(unreadable.code, unreadable.stderr).toBe(2);
    const layout = await ferry(['serve', `oci:${storeDir}`, '--key', keys.pub, '--require-signature', '--listen', `127.0.0.1:${port}`]);
    expect(layout.code, layout.stderr).toBe(2);
  }, 60_000);
});
