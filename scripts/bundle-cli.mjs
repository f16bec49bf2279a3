// The shipped CLI is one ESM file (dist/ferry.mjs, package.json "bin"): bundling the compiled
// modules and their dependencies cuts start-up by about a third (fewer module files to find,
// read and link), which is most of what a run with nothing to do costs. dist/ keeps the
// per-module build for the library and for debugging.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/cli/main.js'],
  outfile: 'dist/ferry.mjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  // A few dependencies are CommonJS and call require() for Node built-ins.
  banner: { js: "import { createRequire as __ferryCreateRequire } from 'node:module'; const require = __ferryCreateRequire(import.meta.url);" },
  legalComments: 'linked',
  logLevel: 'warning',
});
