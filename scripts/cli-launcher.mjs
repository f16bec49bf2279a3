#!/usr/bin/env node
// The ferry executable (copied to dist/bin/ferry.mjs by scripts/bundle-cli.mjs): compiles the
// bundled CLI, dist/bin/ferry-app.cjs, with the V8 code cache written beside it at build time,
// and runs it on this process's arguments. The cache file starts with the sha256 of the bundle
// it was made from; one that does not match, or that V8 rejects (another Node version or other
// flags), is ignored, which costs only the time the cache saves.
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import v8 from 'node:v8';
import vm from 'node:vm';

const file = fileURLToPath(new URL('./ferry-app.cjs', import.meta.url));
const cacheFile = `${file}.cache`;
let cacheState = 'absent';
// Only the wrapped source stays alive (V8 keeps it for lazy compilation): the file's bytes and
// any other copy of the bundle's text are left to the collector once it is compiled.
const { script, sourceHash, usedCache } = (() => {
  const bytes = readFileSync(file);
  const sourceHash = createHash('sha256').update(bytes).digest();
  let cachedData;
  try {
    const cache = readFileSync(cacheFile);
    if (cache.subarray(0, 32).equals(sourceHash)) cachedData = cache.subarray(32);
    else cacheState = 'made for another build, ignored';
  } catch {
    // no cache: compile from source
  }
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${bytes.toString('utf8')}\n})`, {
    filename: file,
    cachedData,
  });
  return { script, sourceHash, usedCache: cachedData !== undefined };
})();
if (usedCache) cacheState = script.cachedDataRejected ? 'rejected by V8, ignored' : 'used';
// FERRY_DEBUG_STARTUP=1: say whether the cache was used (the start-up tests and the bench check it).
if (process.env.FERRY_DEBUG_STARTUP === '1') process.stderr.write(`ferry: code cache ${cacheState}\n`);
// How far the old generation may grow past what survived the last full collection before the
// next one: V8's default on a machine with a large heap limit is up to 4x, so a run whose live
// heap is ~40 MB (a 2000-image registry load) peaked at ~215 MB RSS, mostly garbage. 1.5x keeps
// that load at ~165 MB for no measurable CPU. It is not a cap: the heap still grows to V8's
// limit when the live data needs it. But a small heap must not get it: with ~11 MB live, 1.5x
// leaves so little room that the 1 MiB buffers a bundle streams (external memory V8 counts)
// forced a full collection every ~25 MB, 16 of them for a 400 MB bundle, +0.3 s of CPU and ~25%
// of its time. So the flag is set only once the heap holds more than HEAP_GROWTH_AFTER, checked
// four times a second on an unref'd timer (nothing is kept alive by it). Set after compiling,
// so the flag hash the code cache was checked against is the one it was made with (V8 folds
// flags into that check), and never in the build's run that writes the cache.
const HEAP_GROWTH_AFTER = 32 * 1024 * 1024;
if (process.env.FERRY_BUILD_CODE_CACHE !== '1') {
  const watch = setInterval(() => {
    if (v8.getHeapStatistics().used_heap_size < HEAP_GROWTH_AFTER) return;
    v8.setFlagsFromString('--heap-growing-percent=50');
    clearInterval(watch);
  }, 250);
  watch.unref();
}
const module = { exports: {} };
script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
if (process.env.FERRY_BUILD_CODE_CACHE === '1') {
  // After the run, so the cache also holds the functions the run compiled.
  process.once('exit', () => {
    writeFileSync(`${cacheFile}.tmp`, Buffer.concat([sourceHash, script.createCachedData()]));
    renameSync(`${cacheFile}.tmp`, cacheFile);
  });
}
process.exitCode = await module.exports.main(process.argv.slice(2));
