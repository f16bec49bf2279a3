/** `ferry serve` in-process for the length of a test step. */
import { expect } from 'vitest';
import { runServe } from '../../src/cli/serve.js';
import type { RunningServer } from '../../src/server/server.js';

/**
 * Serve `sources` while `use` runs against the server's host:port; then stop it (exit 0 expected).
 * Returns what serve wrote to stderr (its warnings).
 */
export async function serving(sources: string[], use: (host: string) => Promise<void>): Promise<string> {
  const ac = new AbortController();
  let ready!: (s: RunningServer) => void;
  const started = new Promise<RunningServer>((r) => (ready = r));
  let err = '';
  const done = runServe(
    { sources, listen: '127.0.0.1:0' },
    { signal: ac.signal, stdout: () => {}, stderr: (t: string) => (err += t), onReady: ready },
  );
  // A refusal at start-up must fail the test, not hang it.
  const s = await Promise.race([started, done.then(() => Promise.reject(new Error(`serve stopped before it was ready: ${err}`)))]);
  try {
    await use(`127.0.0.1:${s.port}`);
  } finally {
    ac.abort();
    expect(await done).toBe(0);
  }
  return err;
}
