// Owns everything the integration harness must undo at teardown: temp directories, and the
// stop functions of the servers and child processes it starts. `cleanupHarness()` is the
// afterAll hook; a process 'exit' hook removes what is left if a suite forgot it or crashed.
import { mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Something the harness started that must be stopped at teardown. */
export interface TrackedResource {
  /** What it is, for error messages ("registry 127.0.0.1:41234"). */
  readonly description: string;
  /** Orderly stop; must be idempotent. */
  stop(): Promise<void>;
  /** Last resort run from the synchronous process 'exit' hook (e.g. SIGKILL a child). */
  killSync?(): void;
}

const tempDirs = new Set<string>();
const resources = new Set<TrackedResource>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const resource of resources) {
      try {
        resource.killSync?.();
      } catch {
        // Exiting anyway; nothing useful to do with the error.
      }
    }
    for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  });
}

/** Creates a fresh directory under the OS temp dir, removed at teardown. */
export function createTempDir(label = 'tmp'): string {
  installExitHook();
  const safeLabel = label.replace(/[^A-Za-z0-9_.-]/g, '-');
  const dir = mkdtempSync(join(tmpdir(), `ferry-test-${safeLabel}-`));
  tempDirs.add(dir);
  return dir;
}

/** Removes a directory made by createTempDir now rather than at teardown. */
export async function removeTempDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Registers a resource for teardown; returns the function that unregisters it. */
export function trackResource(resource: TrackedResource): () => void {
  installExitHook();
  resources.add(resource);
  return () => {
    resources.delete(resource);
  };
}

/** Descriptions of resources still running (handy for asserting a suite cleaned up after itself). */
export function trackedResources(): string[] {
  return [...resources].map((r) => r.description);
}

/**
 * Stops every tracked resource (newest first, so a registry stops before the token server it
 * uses), then removes every temp dir. Use as `afterAll(cleanupHarness)`. Throws an
 * AggregateError naming whatever failed to stop, after trying all of them.
 */
export async function cleanupHarness(): Promise<void> {
  const failures: Error[] = [];
  for (const resource of [...resources].reverse()) {
    try {
      await resource.stop();
    } catch (err) {
      failures.push(new Error(`stopping ${resource.description}: ${String(err)}`, { cause: err }));
    }
    resources.delete(resource);
  }
  for (const dir of [...tempDirs]) await removeTempDir(dir);
  if (failures.length > 0) throw new AggregateError(failures, 'harness cleanup failed');
}
