// Owns the fault-injecting reverse proxy that integration tests put between a client and a real
// registry (or token server) on loopback. It forwards requests faithfully — method, path, headers
// including Authorization, body — and rewrites absolute URLs that point at the target (Location,
// Content-Location, Link, WWW-Authenticate realm) so the client keeps talking through the proxy.
// Rules pick requests by method, path regex and occurrence, and inject one or more faults:
// error statuses, connection resets, truncated or corrupted bodies, throttling, no Range support.
import { listenLoopback } from './net.js';
import { createServer as createHttpServer, request as httpRequest, Agent as HttpAgent } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { isIP, type Socket } from 'node:net';
import type { CertAndKey } from './pki.js';
import { trackResource } from './temp.js';

export type Fault =
  /** Answer without forwarding: e.g. 429 with Retry-After, 500, 503. Body: a distribution-style `errors[]`. */
  | { kind: 'status'; status: number; retryAfter?: number | string; headers?: Record<string, string>; body?: string }
  /**
   * TCP RST. Without afterBytes: before any response (the request is not forwarded). With it: after
   * the headers and that many body bytes. (An RST may make the client's kernel drop bytes it had
   * not read yet, so the client can see fewer; use `truncate` for an exact count.)
   */
  | { kind: 'reset'; afterBytes?: number }
  /** Send the true headers (Content-Length intact), then only afterBytes of the body, then FIN. */
  | { kind: 'truncate'; afterBytes: number }
  /** Same length, one byte changed: the body byte at `offset` (default 0) is XORed with 0xff. */
  | { kind: 'corrupt'; offset?: number }
  /** Deliver the response body at about this rate. */
  | { kind: 'throttle'; bytesPerSecond: number }
  /** The registry "doesn't support Range": Range/If-Range are dropped upstream, Accept-Ranges removed. */
  | { kind: 'noRange' }
  /** Wait this long before doing anything else (slow first byte, client timeouts, a slow 503). */
  | { kind: 'delay'; ms: number };

/**
 * Selects requests and says what to do to them. Every rule keeps its own count of matching
 * requests, whether or not another rule also matched. When several rules are active for one
 * request, all their faults apply together (e.g. noRange + throttle); `status` and a `reset`
 * without afterBytes answer at once, without asking the target.
 */
export interface FaultRule {
  /** Shown in recorded requests and stats; default `${fault.kind} ${path}`. */
  name?: string;
  /** Method(s) to match, case-insensitive; default any. */
  method?: string | string[];
  /** Matched against the path with query string, e.g. /\/blobs\/sha256:/. A string is compiled to a RegExp. */
  path: RegExp | string;
  /** Let this many matching requests through untouched first ("the 3rd GET" = skip 2, times 1). Default 0. */
  skip?: number;
  /** Inject into this many matching requests after `skip`; default unlimited. */
  times?: number;
  fault: Fault | Fault[];
}

export type RequestOutcome = 'completed' | 'injected-status' | 'reset' | 'truncated' | 'client-aborted' | 'upstream-error';

export interface RecordedRequest {
  seq: number;
  method: string;
  /** Path and query as the client sent it. */
  url: string;
  /** Request headers as received from the client (Authorization included: tests assert on it). */
  headers: IncomingHttpHeaders;
  /** Names of the rules whose faults were applied. */
  faults: string[];
  /** Status the client received (injected or forwarded); undefined if reset before headers. */
  status?: number;
  /** Status the target answered with; undefined if it was not asked. */
  upstreamStatus?: number;
  requestBytes: number;
  /** Body bytes written to the client. */
  responseBytes: number;
  outcome: RequestOutcome;
  startedAt: number;
  durationMs: number;
}

export interface RuleStats {
  name: string;
  /** Requests that matched method and path. */
  matched: number;
  /** Requests the faults were applied to. */
  injected: number;
}

export interface FaultProxyOptions {
  /** CA to trust when the target is https. */
  targetCaPem?: string;
  /** Serve HTTPS with this certificate instead of plain HTTP. */
  tls?: CertAndKey;
  /** More absolute URL prefixes to rewrite in response headers, e.g. a token server's origin -> another proxy's. */
  extraRewrites?: Array<{ from: string; to: string }>;
  /** Initial rules. */
  rules?: FaultRule[];
}

export interface RunningFaultProxy {
  /** Origin, e.g. `http://127.0.0.1:41235`. */
  url: string;
  /** `127.0.0.1:PORT`, for image references. */
  host: string;
  target: string;
  /** Replaces the rules and resets their counters. `setRules([])` makes the proxy transparent. */
  setRules(rules: FaultRule[]): void;
  ruleStats(): RuleStats[];
  /** Every request seen, oldest first; entries are completed when their response ends. */
  readonly requests: RecordedRequest[];
  clearRequests(): void;
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const REWRITTEN_HEADERS = ['location', 'content-location', 'link', 'www-authenticate'];
const ERROR_CODES: Record<number, string> = {
  429: 'TOOMANYREQUESTS',
  503: 'UNAVAILABLE',
  401: 'UNAUTHORIZED',
  403: 'DENIED',
  404: 'NOT_FOUND',
};

function isLoopbackHost(hostname: string): boolean {
  const bare = hostname.replace(/^\[|\]$/g, '');
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1';
  return false;
}

interface CompiledRule {
  name: string;
  methods?: Set<string>;
  path: RegExp;
  skip: number;
  times: number;
  faults: Fault[];
  matched: number;
  injected: number;
}

function compileRule(rule: FaultRule): CompiledRule {
  const faults = Array.isArray(rule.fault) ? rule.fault : [rule.fault];
  const path = typeof rule.path === 'string' ? new RegExp(rule.path) : rule.path;
  const methods =
    rule.method === undefined ? undefined : new Set((Array.isArray(rule.method) ? rule.method : [rule.method]).map((m) => m.toUpperCase()));
  const compiled: CompiledRule = {
    name: rule.name ?? `${faults.map((f) => f.kind).join('+')} ${path.source}`,
    path: new RegExp(path.source, path.flags.replace('g', '')), // a /g regex would carry lastIndex between requests
    skip: rule.skip ?? 0,
    times: rule.times ?? Number.POSITIVE_INFINITY,
    faults,
    matched: 0,
    injected: 0,
  };
  if (methods) compiled.methods = methods;
  return compiled;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes and waits until the chunk is handed to the socket; rejects if the client is gone first. */
function writeChunk(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = (): void => reject(new Error('client closed the connection'));
    res.once('close', onClose);
    res.write(chunk, (err) => {
      res.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Starts the proxy on 127.0.0.1, an ephemeral port, in front of a loopback `targetUrl`. */
export async function startFaultProxy(targetUrl: string, options: FaultProxyOptions = {}): Promise<RunningFaultProxy> {
  const target = new URL(targetUrl);
  if (!isLoopbackHost(target.hostname)) {
    throw new Error(`fault proxy targets loopback only; refusing ${target.origin}`);
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') throw new Error(`unsupported target ${targetUrl}`);
  const targetIsTls = target.protocol === 'https:';
  const agent = targetIsTls
    ? new HttpsAgent({ keepAlive: true, ...(options.targetCaPem ? { ca: options.targetCaPem } : {}) })
    : new HttpAgent({ keepAlive: true });

  let rules: CompiledRule[] = (options.rules ?? []).map(compileRule);
  const requests: RecordedRequest[] = [];
  let seq = 0;
  let rewrites: Array<{ from: string; to: string }> = [];

  const rewrite = (value: string): string => rewrites.reduce((text, { from, to }) => text.split(from).join(to), value);

  const selectFaults = (method: string, url: string): { names: string[]; faults: Fault[] } => {
    const names: string[] = [];
    const faults: Fault[] = [];
    for (const rule of rules) {
      if (rule.methods && !rule.methods.has(method)) continue;
      if (!rule.path.test(url)) continue;
      rule.matched++;
      if (rule.matched <= rule.skip || rule.injected >= rule.times) continue;
      rule.injected++;
      names.push(rule.name);
      faults.push(...rule.faults);
    }
    return { names, faults };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = req.url ?? '/';
    const { names, faults } = selectFaults(method, url);
    const record: RecordedRequest = {
      seq: ++seq,
      method,
      url,
      headers: { ...req.headers },
      faults: names,
      requestBytes: 0,
      responseBytes: 0,
      outcome: 'completed',
      startedAt: Date.now(),
      durationMs: 0,
    };
    requests.push(record);
    let clientGone = false;
    res.on('close', () => {
      if (!res.writableFinished && record.outcome === 'completed') {
        clientGone = true;
        record.outcome = 'client-aborted';
      }
      record.durationMs = Date.now() - record.startedAt;
    });
    // Paused first, so that counting bytes doesn't start the flow (and lose data) before the body
    // is piped upstream, which may be after a `delay`.
    req.pause();
    req.on('data', (chunk: Buffer) => {
      record.requestBytes += chunk.length;
    });
    const socket: Socket = req.socket;

    const find = <K extends Fault['kind']>(kind: K): Extract<Fault, { kind: K }> | undefined =>
      faults.find((f): f is Extract<Fault, { kind: K }> => f.kind === kind);

    const delayFault = find('delay');
    if (delayFault) await sleep(delayFault.ms);
    if (clientGone) return;

    const resetFault = find('reset');
    if (resetFault && resetFault.afterBytes === undefined) {
      record.outcome = 'reset';
      socket.resetAndDestroy();
      return;
    }

    const statusFault = find('status');
    if (statusFault) {
      // Read the request body first so the client isn't cut off mid-upload (it must see the status).
      req.resume();
      await new Promise<void>((resolve) => {
        if (req.readableEnded) resolve();
        else req.once('end', resolve).once('error', () => resolve());
      });
      const code = ERROR_CODES[statusFault.status] ?? (statusFault.status >= 500 ? 'UNKNOWN' : 'UNSUPPORTED');
      const body =
        statusFault.body ??
        JSON.stringify({ errors: [{ code, message: `injected by fault proxy (${statusFault.status})`, detail: null }] });
      const headers: OutgoingHttpHeaders = {
        'Content-Type': 'application/json; charset=utf-8',
        'Docker-Distribution-Api-Version': 'registry/2.0',
        'Content-Length': Buffer.byteLength(body),
        ...(statusFault.retryAfter !== undefined ? { 'Retry-After': String(statusFault.retryAfter) } : {}),
        ...statusFault.headers,
      };
      record.status = statusFault.status;
      record.outcome = 'injected-status';
      res.writeHead(statusFault.status, headers);
      if (method === 'HEAD') {
        res.end();
      } else {
        res.end(body);
        record.responseBytes = Buffer.byteLength(body);
      }
      return;
    }

    const noRange = find('noRange') !== undefined;
    const upstreamHeaders: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      if (noRange && (name === 'range' || name === 'if-range')) continue;
      upstreamHeaders[name] = value;
    }
    upstreamHeaders.host = target.host;

    const send = targetIsTls ? httpsRequest : httpRequest;
    const upstreamReq = send({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method,
      path: url,
      headers: upstreamHeaders,
      agent,
    });
    res.on('close', () => {
      if (clientGone) upstreamReq.destroy();
    });

    const upstreamRes = await new Promise<IncomingMessage | Error>((resolve) => {
      upstreamReq.once('response', resolve);
      upstreamReq.once('error', resolve);
      req.pipe(upstreamReq);
    });
    if (upstreamRes instanceof Error) {
      record.outcome = 'upstream-error';
      if (clientGone) return;
      const body = `fault proxy: upstream ${target.origin} failed: ${upstreamRes.message}\n`;
      record.status = 502;
      res.writeHead(502, { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const status = upstreamRes.statusCode ?? 502;
    record.upstreamStatus = status;
    record.status = status;

    const responseHeaders: OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(upstreamRes.headers)) {
      if (value === undefined || HOP_BY_HOP.has(name)) continue;
      if (noRange && name === 'accept-ranges') continue;
      responseHeaders[name] = REWRITTEN_HEADERS.includes(name) ? (Array.isArray(value) ? value.map(rewrite) : rewrite(value)) : value;
    }

    const hasBody = method !== 'HEAD' && status !== 204 && status !== 304;
    const truncate = find('truncate');
    const resetAfter = resetFault?.afterBytes;
    const cutAt = Math.min(truncate?.afterBytes ?? Number.POSITIVE_INFINITY, resetAfter ?? Number.POSITIVE_INFINITY);
    let body: AsyncIterable<Buffer> = upstreamRes;
    if (hasBody && Number.isFinite(cutAt) && responseHeaders['content-length'] === undefined) {
      // A cut body must still promise its full length; a chunked upstream reply is buffered to learn it.
      const chunks: Buffer[] = [];
      for await (const chunk of upstreamRes as AsyncIterable<Buffer>) chunks.push(chunk);
      const whole = Buffer.concat(chunks);
      responseHeaders['content-length'] = whole.length;
      body = [whole] as unknown as AsyncIterable<Buffer>;
    }
    res.writeHead(status, responseHeaders);
    if (!hasBody) {
      upstreamRes.resume();
      res.end();
      return;
    }

    const corrupt = find('corrupt');
    const corruptAt = corrupt ? (corrupt.offset ?? 0) : -1;
    const throttle = find('throttle');
    const throttleStart = Date.now();
    let offset = 0;
    try {
      for await (const incoming of body) {
        if (clientGone) return;
        let chunk: Buffer = incoming;
        if (corruptAt >= offset && corruptAt < offset + chunk.length) {
          chunk = Buffer.from(chunk);
          chunk[corruptAt - offset] = (chunk[corruptAt - offset] as number) ^ 0xff;
        }
        if (offset + chunk.length >= cutAt) chunk = chunk.subarray(0, cutAt - offset);
        if (throttle) {
          const slice = Math.max(1, Math.floor(throttle.bytesPerSecond / 20));
          for (let i = 0; i < chunk.length && !clientGone; i += slice) {
            const piece = chunk.subarray(i, i + slice);
            await writeChunk(res, piece);
            offset += piece.length;
            record.responseBytes += piece.length;
            const due = throttleStart + (offset / throttle.bytesPerSecond) * 1000;
            if (due > Date.now()) await sleep(due - Date.now());
          }
        } else if (chunk.length > 0) {
          await writeChunk(res, chunk);
          offset += chunk.length;
          record.responseBytes += chunk.length;
        }
        if (offset >= cutAt) break;
      }
    } catch {
      // The client went away mid-write; the 'close' handler recorded it.
      upstreamRes.destroy();
      return;
    }
    if (offset >= cutAt) {
      upstreamRes.destroy();
      if (resetAfter !== undefined && resetAfter <= (truncate?.afterBytes ?? Number.POSITIVE_INFINITY)) {
        record.outcome = 'reset';
        socket.resetAndDestroy();
      } else {
        record.outcome = 'truncated';
        socket.end(); // FIN after the bytes already written, well short of Content-Length
      }
      return;
    }
    res.end();
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`fault proxy error: ${String(err)}\n`);
      } else {
        res.destroy();
      }
    });
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: options.tls.certPem, key: options.tls.keyPem }, listener)
    : createHttpServer(listener);
  const port = await listenLoopback(server);
  const host = `127.0.0.1:${port}`;
  const origin = `${options.tls ? 'https' : 'http'}://${host}`;
  rewrites = [{ from: target.origin, to: origin }, ...(options.extraRewrites ?? [])];

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      untrack();
      server.close(() => resolve());
      server.closeAllConnections();
      agent.destroy();
    });
    return stopped;
  };
  const untrack = trackResource({ description: `fault proxy ${origin} -> ${target.origin}`, stop });

  return {
    url: origin,
    host,
    target: target.origin,
    setRules: (next) => {
      rules = next.map(compileRule);
    },
    ruleStats: () => rules.map(({ name, matched, injected }) => ({ name, matched, injected })),
    requests,
    clearRequests: () => {
      requests.length = 0;
    },
    stop,
  };
}
