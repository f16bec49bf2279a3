import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';

const fault = vi.hoisted(() => ({ failNextLockWrite: false }));

// A full disk: the lock file is created, but writing the holder's token fails.
vi.mock('node:fs/promises', async (importOriginal) => {
  const orig = await importOriginal<typeof import('node:fs/promises')>();
  const open: typeof orig.open = async (...args) => {
    const fh = await orig.open(...args);
    if (fault.failNextLockWrite && String(args[0]).endsWith('.ferry.lock')) {
      fault.failNextLockWrite = false;
      fh.writeFile = async () => {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      };
    }
    return fh;
  };
  return { ...orig, default: { ...orig, open }, open };
});

const { withLayoutLock } = await import('../../../src/transports/oci/lock.js');

describe('store lock on a full disk', () => {
  it('a failed token write leaves no empty lock file to hold off later runs', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ferry-lock-'));
    fault.failNextLockWrite = true;
    await expect(withLayoutLock(dir, async () => 1, 1000)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(fault.failNextLockWrite).toBe(false);
    expect(await readdir(dir)).toEqual([]);
    expect(await withLayoutLock(dir, async () => 2, 1000)).toBe(2);
  });
});
