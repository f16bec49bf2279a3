/**
 * A store or an output that cannot be written is reported about its path, with what ferry was
 * doing there and why (EROFS, EACCES/EPERM, ENOSPC), not as a bare errno from deep inside.
 * Tests run as root, which chmod does not stop: /sys refuses new entries even to root (EPERM
 * for mkdir, EACCES for files), so it stands for a read-only place here.
 */
import { access, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PathError, pathError, wrap } from '../../src/util/errors.js';
import { cleanupHarness, createTempDir } from '../harness/temp.js';
import { ferry } from '../helpers/cli.js';
import { makeStore } from './bundle/craft.js';

afterAll(cleanupHarness);

const SYS_OK = await access('/sys/kernel').then(
  () => true,
  () => false,
);

describe.skipIf(!SYS_OK)('a path ferry may not write', () => {
  it('--store there: the store path, "creating the store" and the reason, exit 1', async () => {
    const src = makeStore(path.join(createTempDir('ro'), 'src'), 1024);
    const r = await ferry(['pull', `oci:${src.dir}:example.com/app:docker`, '--store', '/sys/ferry-test-store']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      /cannot write \/sys\/ferry-test-store: creating the store: (operation not permitted \(EPERM\)|permission denied \(EACCES\)|read-only file system \(EROFS\))/,
    );
    expect(r.stderr).toContain('hint: choose a path');
    expect(r.stderr).not.toContain('ENOENT');
  });

  it('--store under /proc (mkdir says ENOENT with the parent present): said at once, not a hang, not a bare ENOENT', async () => {
    const src = makeStore(path.join(createTempDir('ro'), 'src'), 1024);
    const started = Date.now();
    const r = await ferry(['pull', `oci:${src.dir}:example.com/app:docker`, '--store', '/proc/ferry-test-store/s']);
    expect(r.code, r.stderr).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.stderr).toContain('cannot write /proc/ferry-test-store/s: creating the store: /proc takes no new directories (ENOENT)');
    expect(r.stderr).not.toContain("mkdir '");
  }, 20_000);

  it('-o there: said before anything is pulled, about the output path', async () => {
    const work = createTempDir('ro');
    const src = makeStore(path.join(work, 'src'), 1024);
    const store = path.join(work, 'store');
    const r = await ferry(['bundle', `oci:${src.dir}:example.com/app:docker`, '--store', store, '-o', '/sys/ferry-test.ferry']);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(
      /cannot write \/sys\/ferry-test\.ferry: creating the bundle: (permission denied \(EACCES\)|read-only file system \(EROFS\)|operation not permitted \(EPERM\))/,
    );
    expect(r.stderr).not.toMatch(/tar|member|blobs\//);
    // Nothing was pulled first.
    await expect(access(store)).rejects.toThrow();
  });

  it.skipIf(process.getuid?.() === 0)('a directory made read-only (chmod 0555, not root)', async () => {
    const dir = path.join(createTempDir('ro'), 'locked');
    await mkdir(dir, { mode: 0o555 });
    const r = await ferry(['bundle', '--from-store', '--store', path.join(dir, 's'), '-o', path.join(dir, 'b.ferry')]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`cannot write ${path.join(dir, 'b.ferry')}: creating the bundle: permission denied (EACCES)`);
  });
});

describe('an output directory that does not exist', () => {
  it('is a usage error about -o, before anything is pulled (exit 2)', async () => {
    const work = createTempDir('ro');
    const src = makeStore(path.join(work, 'src'), 1024);
    const out = path.join(work, 'missing', 'b.ferry');
    const r = await ferry(['bundle', `oci:${src.dir}:example.com/app:docker`, '--store', path.join(work, 'store'), '-o', out]);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toContain(`-o ${out}: ${path.dirname(out)} is not a directory that exists`);
    await expect(access(path.join(work, 'store'))).rejects.toThrow();
  });
});

describe('pathError', () => {
  const sys = (code: string, syscall = 'open'): NodeJS.ErrnoException =>
    Object.assign(new Error(`${code}: something, ${syscall} '/x/.tmp'`), { code, syscall, errno: -1 });

  it('names the path, the operation and the reason for EROFS, EACCES, EPERM and ENOSPC, with a hint', () => {
    const cases: Array<[string, string, string]> = [
      ['EROFS', 'PATH_READ_ONLY', 'read-only file system (EROFS)'],
      ['EACCES', 'PATH_PERMISSION', 'permission denied (EACCES)'],
      ['EPERM', 'PATH_PERMISSION', 'operation not permitted (EPERM)'],
      ['ENOSPC', 'PATH_NO_SPACE', 'no space left on device (ENOSPC)'],
    ];
    for (const [errno, code, says] of cases) {
      const e = pathError(sys(errno), '/media/usb/b.ferry', 'writing the bundle') as PathError;
      expect(e).toBeInstanceOf(PathError);
      expect(e.code).toBe(code);
      expect(e.exitCode).toBe(1);
      expect(e.message).toBe(`cannot write /media/usb/b.ferry: writing the bundle: ${says}`);
      expect(e.hint).toBeTruthy();
      expect(e.path).toBe('/media/usb/b.ferry');
    }
  });

  it('finds the system error under context others added (a tar member), without changing it', () => {
    const inner = sys('EROFS', 'write');
    const inTar = wrap(wrap(inner, 'blobs/sha256/abc'), 'writing tar entry');
    const e = pathError(inTar, '/media/usb/b.ferry', 'writing the bundle') as PathError;
    expect(e.code).toBe('PATH_READ_ONLY');
    expect(e.message).not.toContain('tar');
    expect(inner.message).toBe("EROFS: something, write '/x/.tmp'");
    // Anything else passes through unchanged.
    const other = sys('ENOENT');
    expect(pathError(other, '/p', 'x')).toBe(other);
    expect(pathError(new Error('boom'), '/p', 'x')).toBeInstanceOf(Error);
  });
});
