/**
 * A small HTTP/1.1 client on node:http/https with keep-alive pools, shaped like the subset of
 * undici's request() ferry used. Measured on loopback, node:http delivers large bodies about
 * twice as fast as undici 7 (docs/benchmarks.md), and blob bodies are most of what ferry moves.
 */
import http, { type ClientRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FerryError } from '../../util/errors.js';

export interface HttpPoolOptions {
  ca?: string[];
  cert?: string;
  key?: string;
  rejectUnauthorized?: boolean;
  maxSockets?: number;
  /** Time allowed for response headers. */
  headersTimeoutMs?: number;
  /** Time a body may stall without a byte. */
  idleTimeoutMs?: number;
}

export interface HttpRequestOptions {
  method: string;
  headers?: Record<string, string>;
  /**
   * A stream body is sent with its Content-Length when `contentLength` is given (else chunked).
   * If the stream fails, the request is destroyed: the server never sees a complete body.
   */
  body?: Buffer | string | Readable;
  contentLength?: number;
  signal?: AbortSignal;
  headersTimeoutMs?: number;
}

export interface HttpResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

export class HttpTimeoutError extends FerryError {
  constructor(message: string) {
    super('ETIMEDOUT', message, { retryable: true });
  }
}

/** Read and discard a body so its connection can be reused. */
export async function drain(body: IncomingMessage): Promise<void> {
  if (body.destroyed || body.readableEnded) return;
  // Even a complete body (a HEAD answer) must be read to its end: only then does the socket
  // go back to the pool.
  body.resume();
  if (body.readableEnded) return;
  await new Promise<void>((resolve) => {
    body.once('end', resolve);
    body.once('error', () => resolve());
    body.once('close', resolve);
  });
}

/**
 * The requests in flight under each AbortSignal, with one 'abort' listener per signal. A run has
 * one signal (Ctrl-C) shared by every request; handing it to http.request would add a listener
 * per request, and a run holds more than ten at once (blob bodies streaming from the source while
 * their uploads run, manifest probes), which Node reports as a MaxListenersExceededWarning. The
 * listener is removed when the signal's last request closes.
 */
const inFlight = new Map<AbortSignal, { requests: Set<ClientRequest>; onAbort: () => void }>();

/** The error a request aborted by `signal` fails with: Node's own shape (name AbortError, code ABORT_ERR). */
function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The operation was aborted', { cause: signal.reason }), { name: 'AbortError', code: 'ABORT_ERR' });
}

/** Destroy `req` when `signal` aborts, until the request closes. */
function governBy(signal: AbortSignal, req: ClientRequest): void {
  let entry = inFlight.get(signal);
  if (!entry) {
    const requests = new Set<ClientRequest>();
    const onAbort = (): void => {
      inFlight.delete(signal);
      for (const r of requests) r.destroy(abortError(signal));
      requests.clear();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    entry = { requests, onAbort };
    inFlight.set(signal, entry);
  }
  const { requests, onAbort } = entry;
  requests.add(req);
  req.once('close', () => {
    if (!requests.delete(req) || requests.size > 0) return;
    signal.removeEventListener('abort', onAbort);
    if (inFlight.get(signal)?.requests === requests) inFlight.delete(signal);
  });
}

/** Signals currently listened to (tests: none is left once every request has closed). */
export function signalsInFlight(): number {
  return inFlight.size;
}

export class HttpPool {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly opts: HttpPoolOptions;

  constructor(opts: HttpPoolOptions = {}) {
    this.opts = opts;
    const common = { keepAlive: true, maxSockets: opts.maxSockets ?? 16, scheduling: 'lifo' as const };
    this.httpAgent = new http.Agent(common);
    this.httpsAgent = new https.Agent({
      ...common,
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
      ...(opts.rejectUnauthorized === false ? { rejectUnauthorized: false } : {}),
    });
  }

  request(url: string | URL, options: HttpRequestOptions): Promise<HttpResponse> {
    const u = typeof url === 'string' ? new URL(url) : url;
    const isHttps = u.protocol === 'https:';
    if (!isHttps && u.protocol !== 'http:') {
      return Promise.reject(new FerryError('UNSUPPORTED_URL', `unsupported URL scheme ${u.protocol}`));
    }
    const mod = isHttps ? https : http;
    const headersTimeout = options.headersTimeoutMs ?? this.opts.headersTimeoutMs ?? 60_000;
    const idleTimeout = this.opts.idleTimeoutMs ?? 120_000;
    if (options.signal?.aborted) return Promise.reject(abortError(options.signal));
    return new Promise<HttpResponse>((resolve, reject) => {
      const headers: Record<string, string> = { ...options.headers };
      const body = options.body;
      if (body instanceof Readable) {
        if (options.contentLength !== undefined) headers['content-length'] = String(options.contentLength);
      } else if (body !== undefined) {
        headers['content-length'] = String(Buffer.byteLength(body));
      }
      const req = mod.request(u, {
        method: options.method,
        headers,
        agent: isHttps ? this.httpsAgent : this.httpAgent,
      });
      if (options.signal) governBy(options.signal, req);
      let settled = false;
      // The timeout destroys the request; its 'error' handler below rejects (settling here first
      // left the promise pending forever: a stalled registry ended the run with exit 13).
      const timer = setTimeout(() => {
        if (!settled) req.destroy(new HttpTimeoutError(`no response headers from ${u.host} within ${headersTimeout} ms`));
      }, headersTimeout);
      req.on('response', (res) => {
        clearTimeout(timer);
        settled = true;
        // A body that stalls for idleTimeout is broken; the error surfaces on the body stream.
        res.setTimeout(idleTimeout, () => res.destroy(new HttpTimeoutError(`body from ${u.host} stalled for ${idleTimeout} ms`)));
        resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      req.on('error', (err) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(err);
        }
      });
      if (body instanceof Readable) {
        // A failing body stream destroys the request (pipeline does), which rejects above.
        pipeline(body, req).catch((err: unknown) => {
          if (!req.destroyed) req.destroy(err as Error);
          if (!settled) {
            settled = true;
            clearTimeout(timer);
            reject(err);
          }
        });
      } else {
        req.end(body);
      }
    });
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }
}

/** Read a body as text, refusing more than `cap` bytes (error bodies, token replies). */
export async function readCapped(body: NodeJS.ReadableStream & { destroy(): void }, cap: number): Promise<string> {
  return (await readCappedBytes(body, cap, 'reading response')).toString('utf8');
}

export async function readCappedBytes(body: NodeJS.ReadableStream & { destroy(): void }, cap: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    total += b.length;
    if (total > cap) {
      body.destroy();
      throw new FerryError('RESPONSE_TOO_LARGE', `${what}: response body over ${cap} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}
