/**
 * A registry that accepts a connection and never answers: the request must fail with a timeout
 * error (a stalled request that never settled let a pull end with exit 13 and no message).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpPool, HttpTimeoutError } from '../../../src/transports/registry/http.js';

let server: net.Server;
let port: number;
const sockets: net.Socket[] = [];

beforeAll(async () => {
  server = net.createServer((s) => sockets.push(s)); // reads nothing, answers nothing
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('HttpPool: no response headers within the timeout', () => {
  it('rejects with HttpTimeoutError instead of hanging', async () => {
    const pool = new HttpPool({ headersTimeoutMs: 200 });
    try {
      const started = Date.now();
      const err = await pool.request(`http://127.0.0.1:${port}/v2/`, { method: 'GET' }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(HttpTimeoutError);
      expect(String((err as Error).message)).toMatch(/no response headers from 127\.0\.0\.1:\d+ within 200 ms/);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      pool.close();
    }
  });
});
