/** Helpers for tests that race real processes against each other. */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'store-child.ts');

/** A pid that certainly belonged to a process that has exited. */
export function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '0']).pid!;
}

export interface ChildResult {
  code: number | null;
  stderr: string;
}

/** Start one store-child per argument list, all released at the same moment; wait for all. */
export async function raceChildren(mode: 'lock' | 'create', dir: string, args: string[]): Promise<ChildResult[]> {
  // Time enough for every child to start Node and load tsx before the common start.
  const start = Date.now() + 1500 + 250 * args.length;
  return Promise.all(
    args.map(
      (arg) =>
        new Promise<ChildResult>((resolve, reject) => {
          const child = spawn(process.execPath, ['--import', 'tsx', CHILD, mode, dir, String(start), arg], {
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let stderr = '';
          child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
          child.on('error', reject);
          child.on('close', (code) => resolve({ code, stderr }));
        }),
    ),
  );
}
