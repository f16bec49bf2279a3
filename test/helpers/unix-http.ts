/** An HTTP server on a unix socket in a private temp dir, for scripted fake daemons (Engine API). */
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

export abstract class UnixHttpServer {
  readonly socket: string;
  private readonly dir: string;
  private readonly server: http.Server;

  constructor(prefix: string) {
    this.dir = mkdtempSync(path.join(tmpdir(), prefix));
    this.socket = path.join(this.dir, 'docker.sock');
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  protected abstract handle(req: http.IncomingMessage, res: http.ServerResponse): void | Promise<void>;

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socket, resolve));
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
