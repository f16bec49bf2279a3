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
import vm from 'node:vm';

const file = fileURLToPath(new URL('./ferry-app.cjs', import.meta.url));
const cacheFile = `${file}.cache`;
const source = readFileSync(file, 'utf8');
const sourceHash = createHash('sha256').update(source).digest();
let cachedData;
let cacheState = 'absent';
try {
  const cache = readFileSync(cacheFile);
  if (cache.subarray(0, 32).equals(sourceHash)) cachedData = cache.subarray(32);
  else cacheState = 'made for another build, ignored';
} catch {
  // no cache: compile from source
}
const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
  filename: file,
  cachedData,
});
if (cachedData) cacheState = script.cachedDataRejected ? 'rejected by V8, ignored' : 'used';
// FERRY_DEBUG_STARTUP=1: say whether the cache was used (the start-up tests and the bench check it).
if (process.env.FERRY_DEBUG_STARTUP === '1') process.stderr.write(`ferry: code cache ${cacheState}\n`);
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
