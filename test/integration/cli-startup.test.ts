/**
 * The shipped CLI's start-up path (scripts/bundle-cli.mjs, scripts/cli-launcher.mjs): the
 * bundle runs with its V8 code cache, and a missing, stale or corrupt cache only costs time,
 * never a different outcome. The string-width shim bundled in place of string-width gives the
 * same widths as the package for every kind of text.
 */
import { spawn } from 'node:child_process';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../helpers/fixtures.js';
import { CLI } from '../helpers/cli.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(cli: string, args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], {
      env: { ...process.env, CI: '1', FERRY_DEBUG_STARTUP: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** What the cache line says, and the run's outcome without that line. */
function split(r: Run): { cache: string; outcome: Run } {
  const m = /^ferry: code cache (.*)\n/m.exec(r.stderr);
  return {
    cache: m?.[1] ?? '(no cache line)',
    outcome: { code: r.code, stdout: r.stdout, stderr: r.stderr.replace(/^ferry: code cache .*\n/m, '') },
  };
}

describe('the bundled CLI starts from its code cache', () => {
  let dir: string;
  let copy: string;
  const cacheFile = (): string => path.join(copy, 'ferry-app.cjs.cache');
  // A command that fails after parsing its arguments and touching the file system.
  const failing = ['verify', '/nonexistent/bundle.ferry'];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'ferry-startup-'));
    copy = path.join(dir, 'bin');
    await cp(path.dirname(CLI), copy, { recursive: true });
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the build leaves a cache that V8 accepts', async () => {
    const r = split(await run(CLI, ['--version']));
    expect(r.cache).toBe('used');
    expect(r.outcome.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('a missing, stale or corrupt cache is ignored and changes nothing else', async () => {
    const reference = split(await run(CLI, failing)).outcome;
    expect(reference.code).not.toBe(0);
    expect(reference.stderr).toContain('/nonexistent/bundle.ferry');
    const help = split(await run(CLI, ['pull', '--help'])).outcome;
    expect(help.stdout).toContain('ferry pull');

    const good = await readFile(cacheFile());
    const cases: Array<[string, () => Promise<void>, string]> = [
      ['absent', () => rm(cacheFile()), 'absent'],
      // Another build's cache: the sha256 in front does not match this bundle.
      ['stale', () => writeFile(cacheFile(), Buffer.concat([Buffer.alloc(32, 7), good.subarray(32)])), 'made for another build, ignored'],
      // Right bundle, damaged cache data: V8 refuses it.
      [
        'corrupt',
        () => writeFile(cacheFile(), Buffer.concat([good.subarray(0, 32), Buffer.alloc(good.length - 32, 0x5a)])),
        'rejected by V8, ignored',
      ],
      ['truncated', () => writeFile(cacheFile(), good.subarray(0, 10)), 'made for another build, ignored'],
    ];
    for (const [name, damage, said] of cases) {
      await damage();
      const failed = split(await run(path.join(copy, 'ferry.mjs'), failing));
      expect(failed.cache, name).toBe(said);
      expect(failed.outcome, name).toEqual(reference);
      const helped = split(await run(path.join(copy, 'ferry.mjs'), ['pull', '--help']));
      expect(helped.outcome, name).toEqual(help);
    }
  });
});

describe('the string-width shim', () => {
  it('gives the widths string-width gives', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-sw-'));
    try {
      const { lazyStringWidth } = (await import(
        pathToFileURL(path.join(PROJECT_ROOT, 'scripts', 'shims', 'esbuild-plugins.mjs')).href
      )) as { lazyStringWidth: Plugin };
      const entry = path.join(dir, 'entry.mjs');
      await writeFile(entry, "import stringWidth from 'string-width';\nexport default stringWidth;\n");
      const out = path.join(dir, 'out.mjs');
      await build({
        entryPoints: [entry],
        outfile: out,
        bundle: true,
        format: 'esm',
        platform: 'node',
        plugins: [lazyStringWidth],
        nodePaths: [path.join(PROJECT_ROOT, 'node_modules')],
        logLevel: 'silent',
      });
      const shimmed = ((await import(pathToFileURL(out).href)) as { default: (s: string, o?: object) => number }).default;
      const real = ((await import('string-width')) as { default: (s: string, o?: object) => number }).default;
      const samples = [
        '',
        'plain ascii text, with punctuation: [x] {y} ~',
        'tab\tand\nnewline',
        '\u001b[32m✔\u001b[39m green tick',
        'naïve café',
        '日本語のテキスト',
        '👩‍👩‍👧 family',
        'e\u0301 combining',
        'Ａ fullwidth',
      ];
      for (const s of samples) expect(shimmed(s), JSON.stringify(s)).toBe(real(s));
      expect(shimmed('±', { ambiguousIsNarrow: false })).toBe(real('±', { ambiguousIsNarrow: false }));
      // The shim must have been what ran: the bundle holds it.
      expect(await readFile(out, 'utf8')).toContain('x20-\\x7e');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
