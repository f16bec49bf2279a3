/**
 * The small test corpus, generated once per machine into a cache folder (the generator is
 * deterministic and locks its folder), pushed by skopeo into a registry a suite started.
 */
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateCorpus, type CorpusManifest } from '../../scripts/corpus/generate.js';
import { pushCorpus } from '../../scripts/corpus/push.js';
import type { RunningRegistry } from '../harness/registry.js';
import { requireTool } from '../harness/tools.js';

export const CORPUS_DIR = path.join(tmpdir(), 'ferry-test-corpus-small');

export async function smallCorpus(): Promise<{ dir: string; corpus: CorpusManifest }> {
  requireTool('zstd');
  const corpus = await generateCorpus(CORPUS_DIR, 'small');
  return { dir: CORPUS_DIR, corpus };
}

export async function pushSmallCorpus(reg: RunningRegistry): Promise<{ dir: string; corpus: CorpusManifest }> {
  const c = await smallCorpus();
  await pushCorpus(c.dir, c.corpus, reg.host, {
    ...(reg.caFile && reg.certDir ? { tls: { caDir: reg.certDir } } : { insecure: true }),
    ...(reg.username && reg.password ? { creds: { username: reg.username, password: reg.password } } : {}),
  });
  return c;
}
