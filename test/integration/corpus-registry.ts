/**
 * The small test corpus, generated once per machine into a cache folder (the generator is
 * deterministic and locks its folder), pushed by skopeo into a registry a suite started.
 */
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateCorpus, type CorpusManifest } from '../../scripts/corpus/generate.js';
import { pushCorpus } from '../../scripts/corpus/push.js';
import { pull } from '../../src/commands/pull.js';
import { OciLayout } from '../../src/transports/oci/layout.js';
import { startFaultProxy, type RunningFaultProxy } from '../harness/fault-proxy.js';
import { startRegistry, type RunningRegistry } from '../harness/registry.js';
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

/**
 * A ferry store at `storeDir` holding corpus images (`refs`, layout ref names; default every
 * image), pulled from the cached corpus layout, which is only read.
 */
export async function storeFromSmallCorpus(
  storeDir: string,
  refs?: readonly string[],
): Promise<{ corpus: CorpusManifest; corpusDir: string; store: OciLayout }> {
  const { dir, corpus } = await smallCorpus();
  const names = refs ?? [...new Set(corpus.images.map((i) => i.ref))];
  const report = await pull({ refs: names.map((r) => `oci:${dir}:${r}`), store: storeDir });
  if (report.failures.length > 0) {
    throw new Error(`pulling the corpus into ${storeDir} failed: ${report.failures.map((f) => `${f.name}: ${f.error}`).join('; ')}`);
  }
  return { corpus, corpusDir: dir, store: await OciLayout.open(storeDir) };
}

/** An image of the corpus as a client reaches it through the fault proxy, with the corpus's largest layer. */
export interface ProxiedImage {
  ref: string;
  layer: string;
  size: number;
}

/**
 * The small corpus in a fresh loopback registry behind a fault proxy; `medium` is
 * ferry-test/medium through the proxy (the image holding the corpus's largest layer).
 */
export async function corpusBehindFaultProxy(): Promise<{ proxy: RunningFaultProxy; medium: ProxiedImage }> {
  const reg = await startRegistry();
  const { corpus } = await pushSmallCorpus(reg);
  const proxy = await startFaultProxy(reg.url);
  const img = corpus.images.find((i) => i.repo === 'ferry-test/medium')!;
  return {
    proxy,
    medium: { ref: `${proxy.host}/${img.repo}:${img.tag}`, layer: corpus.largestLayer.digest, size: corpus.largestLayer.size },
  };
}
