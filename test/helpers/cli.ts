/** The built CLI (the package's bin) as tests run it: to completion, with stdin and env. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { PROJECT_ROOT } from './fixtures.js';

export const CLI = path.join(PROJECT_ROOT, 'dist', 'bin', 'ferry.mjs');

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface FerryRunOptions {
  /** Bytes written to stdin (then closed); default nothing. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  /** Working directory; default the test's. */
  cwd?: string;
}

/** Run the built CLI to completion. */
export function ferry(args: string[], opts: FerryRunOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, CI: '1', ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}
