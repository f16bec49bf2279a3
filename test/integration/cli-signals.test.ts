/**
 * Interrupting the built CLI: the first SIGINT/SIGTERM stops the run and the process exits with
 * 128 + the signal's number (130, 143), as an interrupted command should; a bundle being
 * spooled from stdin stops at once and its spool directory is removed.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI } from '../helpers/cli.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(path.join(os.tmpdir(), 'ferry-signals-'));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

async function waitFor(check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

describe('signals', () => {
  for (const [sig, code] of [
    ['SIGTERM', 143],
    ['SIGINT', 130],
  ] as const) {
    it(`${sig} while a bundle is spooled from stdin: exit ${code} at once, spool removed`, async () => {
      const tmp = await mkdtemp(path.join(work, 'tmp-'));
      // stdin stays open and silent: the spool waits for bytes that never come.
      const child = spawn(process.execPath, [CLI, 'load', '-', '--to', `oci:${path.join(work, `dest-${sig}`)}`], {
        env: { ...process.env, CI: '1', FERRY_TMPDIR: tmp },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
      expect(await waitFor(async () => (await readdir(tmp)).some((n) => n.startsWith('ferry-stdin-')), 10_000)).toBe(true);
      const sentAt = Date.now();
      child.kill(sig);
      const exitCode = await exited;
      expect(exitCode, stderr).toBe(code);
      expect(Date.now() - sentAt).toBeLessThan(5_000);
      expect(await readdir(tmp)).toEqual([]);
      child.stdin.destroy();
    });
  }
});
