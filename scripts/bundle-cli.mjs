// The shipped CLI is bundled (dist/bin/ferry.mjs, package.json "bin"): one file for what
// every run needs, and a chunk for what only some runs load (listr2's terminal view). Bundling
// the compiled modules and their dependencies cuts start-up by about a third (fewer module
// files to find, read and link), which is most of what a run with nothing to do costs.
// dist/ keeps the per-module build for the library and for debugging.
import { build } from 'esbuild';
import { rm } from 'node:fs/promises';

await rm('dist/bin', { recursive: true, force: true });
await build({
  entryPoints: { ferry: 'dist/cli/main.js' },
  outdir: 'dist/bin',
  outExtension: { '.js': '.mjs' },
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // A few dependencies are CommonJS and call require() for Node built-ins.
  banner: { js: "import { createRequire as __ferryCreateRequire } from 'node:module'; const require = __ferryCreateRequire(import.meta.url);" },
  legalComments: 'linked',
  logLevel: 'warning',
});
