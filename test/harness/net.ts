/** Listening on an ephemeral loopback port, for the harness's own servers. */
import type { Server } from 'node:net';
import type { AddressInfo } from 'node:net';

export async function listenLoopback(server: Server): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}
