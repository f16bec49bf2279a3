import { describe, expect, it } from 'vitest';
import { SendBufferPool, Semaphore } from '../../../src/server/limits.js';

describe('Semaphore', () => {
  it('grants up to max slots, queues the rest in order, and passes a released slot on', async () => {
    const s = new Semaphore(2);
    const a = await s.acquire(0);
    const b = await s.acquire(0);
    expect(a).toBeDefined();
    expect(b).toBeDefined();
    expect(await s.acquire(0)).toBeUndefined();
    const order: string[] = [];
    const c = s.acquire(10_000).then((r) => (order.push('c'), r));
    const d = s.acquire(10_000).then((r) => (order.push('d'), r));
    expect(s.waiting).toBe(2);
    a!();
    a!(); // idempotent: does not free a second slot
    const rc = await c;
    expect(order).toEqual(['c']);
    expect(s.inUse).toBe(2);
    b!();
    const rd = await d;
    expect(order).toEqual(['c', 'd']);
    rc!();
    rd!();
    expect(s.inUse).toBe(0);
  });

  it('gives up after the wait and leaves the queue', async () => {
    const s = new Semaphore(1);
    const a = await s.acquire(0);
    const t = Date.now();
    expect(await s.acquire(50)).toBeUndefined();
    expect(Date.now() - t).toBeGreaterThanOrEqual(40);
    expect(s.waiting).toBe(0);
    a!();
    expect(s.inUse).toBe(0);
    expect(() => new Semaphore(0)).toThrow(RangeError);
  });
});

describe('SendBufferPool', () => {
  it('creates at most maxPairs pairs, reuses returned ones, and replaces discarded ones', () => {
    const p = new SendBufferPool(2, 1024);
    const a = p.take()!;
    const b = p.take()!;
    expect(a[0].length).toBe(1024);
    expect(p.take()).toBeUndefined();
    p.give(a);
    expect(p.take()).toBe(a);
    p.discard(); // b was still in use by a dead socket: forgotten
    expect(p.allocated).toBe(1);
    const c = p.take()!;
    expect(c).not.toBe(b);
    expect(p.allocated).toBe(2);
  });
});
