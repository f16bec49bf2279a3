/** Assertions on CLI runs and OCI layouts that the integration tests share. */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';

/** The run exited 0; its output is the failure message otherwise. Returns the run. */
export function ok<R extends { code: number | null; stderr: string; stdout: string }>(r: R): R {
  expect(r.code, `${r.stderr}\n${r.stdout}`).toBe(0);
  return r;
}

/** Every `ref.name@digest` of a layout's index.json, sorted; [] where there is no index yet. */
export function layoutNames(dir: string): string[] {
  if (!existsSync(path.join(dir, 'index.json'))) return [];
  const index = JSON.parse(readFileSync(path.join(dir, 'index.json'), 'utf8')) as {
    manifests: Array<{ digest: string; annotations?: Record<string, string> }>;
  };
  return index.manifests.map((m) => `${m.annotations?.['org.opencontainers.image.ref.name']}@${m.digest}`).sort();
}
