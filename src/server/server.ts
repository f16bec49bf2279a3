/**
 * `ferry serve`'s HTTP side: a read-only OCI distribution registry (distribution-spec v1.1
 * pull and discovery endpoints) over ServedContent. Blobs are streamed from their files with
 * flat memory; manifests are served as their exact stored bytes. Writes get 405 UNSUPPORTED.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pipeline } from 'node:stream';
import type { Digest } from '../oci/digest.js';
import { MediaType } from '../oci/mediatypes.js';
import { FerryError, UsageError, errorMessage } from '../util/errors.js';
import { BlobGoneError, isMissing, mergeContent, notAFile, type ServedBlob, type ServedContent } from './content.js';
import { BlobChecks, BlobHasher, DigestGate } from './digest-check.js';
import { FailureThrottle, Htpasswd, parseBasicAuth } from './htpasswd.js';
import { Semaphore, SendBufferPool } from './limits.js';
import { formatCommonLog, formatJsonLog } from './log.js';
import { nextLink, paginate, parsePageRequest } from './pagination.js';
import { contentRange, parseRange } from './range.js';
import { MirrorNames } from './mirror-names.js';
import { scopedHost } from './names.js';
import { matchRoute, namespaceOf, type ApiError, type Route } from './routes.js';

export const DEFAULT_LISTEN = '127.0.0.1:5000';

export interface ServerLimits {
  /** Connections accepted at once; more are dropped until one closes. */
  maxConnections: number;
  /** Bytes of request line plus headers. */
  maxHeaderSize: number;
  /** Time allowed to receive the request headers. */
  headersTimeoutMs: number;
  /** Time allowed to receive a whole request. */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection is kept. */
  keepAliveTimeoutMs: number;
  /** A connection on which nothing moves for this long (a stalled reader) is closed. */
  idleTimeoutMs: number;
  /** On close(), how long in-flight requests may finish before connections are cut. */
  closeGraceMs: number;
  /**
   * Failed logins allowed per client address and user name within the window, then 429 for that
   * user from that address. Credentials already verified are never throttled.
   */
  authFailures: number;
  /** Failed logins allowed per client address within the window, whatever the user names (bounds bcrypt work). */
  authAddressFailures: number;
  authFailureWindowMs: number;
  /** zstd restores (bundle members stored compressed) running at once; more wait, then get 503. */
  zstdRestores: number;
  /** How long a request waits for a zstd restore slot before it is answered 503 with Retry-After. */
  zstdQueueMs: number;
  /**
   * Pairs of 1 MiB send buffers shared by all blob bodies; a body that finds none free is sent
   * through 64 KiB buffers of its own. Bounds memory whatever the number of connections.
   */
  sendBufferPairs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 512,
  maxHeaderSize: 16 * 1024,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 30_000,
  idleTimeoutMs: 120_000,
  closeGraceMs: 5_000,
  authFailures: 10,
  authAddressFailures: 100,
  authFailureWindowMs: 60_000,
  zstdRestores: Math.max(2, os.availableParallelism()),
  zstdQueueMs: 10_000,
  sendBufferPairs: 32,
};

export interface ServerOptions {
  sources: ServedContent[];
  /** HOST:PORT ([v6]:PORT for IPv6); default 127.0.0.1:5000; port 0 picks a free port. */
  listen?: string;
  /** PEM certificate (chain) and key: serve HTTPS. */
  tls?: { cert: string; key: string };
  /** htpasswd file with bcrypt entries: require HTTP Basic authentication. */
  htpasswd?: string;
  /** Receives one access log line per request. */
  log?: (line: string) => void;
  /** Log lines as JSON objects instead of common log format. */
  json?: boolean;
  limits?: Partial<ServerLimits>;
  /**
   * Answer for each image at its scoped path only (`/v2/docker.io/library/nginx`); otherwise
   * at its unscoped path (with `?ns=`) too (mirror-names.ts).
   */
  scoped?: boolean;
}

export interface RunningServer {
  /** `http://127.0.0.1:5000`: what clients use. */
  url: string;
  host: string;
  port: number;
  /** Stop accepting, let in-flight requests finish (up to closeGraceMs), then close. Idempotent. */
  close(): Promise<void>;
}

/** Parse `HOST:PORT`, `[IPV6]:PORT` or `:PORT` (all IPv4 interfaces). */
export function parseListen(s: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(`invalid listen address ${JSON.stringify(s)}: want HOST:PORT, e.g. 127.0.0.1:5000, 0.0.0.0:5000 or [::1]:5000`);
  }
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

const READ_METHODS = new Set(['GET', 'HEAD']);

interface Ctx {
  content: ServedContent;
  /** Request names (and ns) to the content's repositories. */
  names: MirrorNames;
  /** Ambiguous names already logged: each is said once. */
  ambiguousLogged: Set<string>;
  auth: Htpasswd | undefined;
  /** Failed logins per address and user name. */
  throttle: FailureThrottle;
  /** Failed logins per address. */
  addressThrottle: FailureThrottle;
  restores: Semaphore;
  zstdQueueMs: number;
  buffers: SendBufferPool;
  /** A problem of the server itself (not of a request), for the operator's log. */
  problem: (message: string) => void;
  /** Blobs found to match (or not) their digests while being sent (digest-check.ts). */
  checks: BlobChecks;
  closing: boolean;
}

/** Per-request state the access log needs. */
interface Exchange {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  user: string | undefined;
  bytes: number;
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  const { host, port } = parseListen(opts.listen ?? DEFAULT_LISTEN);
  const content = mergeContent(opts.sources);
  const format = opts.json ? formatJsonLog : formatCommonLog;
  const log = opts.log;
  /** Problems of the server itself go to the same sink as the access log. */
  const logProblem = (message: string): void => {
    log?.(opts.json ? JSON.stringify({ type: 'server-error', time: new Date().toISOString(), message }) : `ferry serve: ${message}`);
  };
  const ctx: Ctx = {
    content,
    names: mirrorNames(content, !!opts.scoped),
    ambiguousLogged: new Set(),
    auth: opts.htpasswd !== undefined ? await Htpasswd.load(opts.htpasswd) : undefined,
    throttle: new FailureThrottle(limits.authFailures, limits.authFailureWindowMs),
    addressThrottle: new FailureThrottle(limits.authAddressFailures, limits.authFailureWindowMs),
    restores: new Semaphore(limits.zstdRestores),
    zstdQueueMs: limits.zstdQueueMs,
    buffers: new SendBufferPool(limits.sendBufferPairs, SEND_CHUNK),
    problem: logProblem,
    checks: new BlobChecks(),
    closing: false,
  };

  const serverOptions: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderSize,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAlive: true,
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
  };
  let server: http.Server;
  try {
    server = opts.tls
      ? https.createServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key, minVersion: 'TLSv1.2' })
      : http.createServer(serverOptions);
  } catch (err) {
    throw new FerryError('TLS_INVALID', `cannot use the TLS certificate and key: ${errorMessage(err)}`, { cause: err });
  }
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  server.setTimeout(limits.idleTimeoutMs);

  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const ex: Exchange = { req, res, user: undefined, bytes: 0 };
    const started = performance.now();
    const time = new Date();
    // Read now: once the connection is gone the socket no longer knows its peer.
    const remote = remoteAddress(req.socket);
    res.once('close', () => {
      // While shutting down, a connection is let go as soon as its last response is done.
      if (ctx.closing) server.closeIdleConnections();
      log?.(
        format({
          remote,
          user: ex.user,
          time,
          method: req.method ?? '',
          target: req.url ?? '',
          protocol: `HTTP/${req.httpVersion}`,
          status: res.statusCode,
          bytes: ex.bytes,
          durationMs: performance.now() - started,
          userAgent: req.headers['user-agent'],
        }),
      );
    });
    handle(ctx, ex).catch((err: unknown) => {
      // The details (file paths, say) are for the operator, not for clients.
      logProblem(`${req.method ?? ''} ${req.url ?? ''}: ${errorMessage(err)}`);
      if (!res.headersSent) sendError(ex, { status: 500, code: 'UNKNOWN', message: 'internal server error' });
      else res.destroy();
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, reason] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout']
          : [400, 'Bad Request'];
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    log?.(
      format({
        remote: remoteAddress(socket),
        user: undefined,
        time: new Date(),
        method: '',
        target: '',
        protocol: '',
        status,
        bytes: 0,
        durationMs: 0,
      }),
    );
  });
  // Failed TLS handshakes (plain HTTP to the HTTPS port, distrusted certificate) end the
  // connection; there is no request to answer or log.
  server.on('tlsClientError', (_err: Error, socket: Socket) => socket.destroy());

  await listen(server, host, port);
  // Later server errors (EMFILE on accept, say) must not crash the process.
  server.on('error', (err: Error) => logProblem(`server error: ${errorMessage(err)}`));
  const actualPort = (server.address() as AddressInfo).port;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      ctx.closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), limits.closeGraceMs);
      force.unref();
      await closed;
      clearTimeout(force);
      await content.close();
    })();
    return closing;
  };

  return {
    url: `${opts.tls ? 'https' : 'http'}://${urlHost(host)}:${actualPort}`,
    host,
    port: actualPort,
    close,
  };
}

/** The server's names over the (merged) content's repositories. */
export function mirrorNames(content: ServedContent, scoped: boolean): MirrorNames {
  return new MirrorNames(
    content.repositories().map((repository) => ({ repository, origin: content.origin?.(repository) })),
    { scoped },
  );
}

async function listen(server: http.Server, host: string, port: number): Promise<void> {
  try {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        server.off('listening', onListening);
        reject(err);
      };
      const onListening = (): void => {
        server.off('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host, port });
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'EADDRINUSE' ? 'the address is already in use' : e.code === 'EACCES' ? 'permission denied' : e.message;
    throw new FerryError('LISTEN_FAILED', `cannot listen on ${urlHost(host)}:${port}: ${why}`, { cause: err });
  }
}

function hasBody(req: http.IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
}

function remoteAddress(socket: Socket): string {
  const a = socket.remoteAddress ?? '-';
  return a.startsWith('::ffff:') ? a.slice('::ffff:'.length) : a;
}

// ---------------------------------------------------------------------------------------
// Request handling

async function handle(ctx: Ctx, ex: Exchange): Promise<void> {
  const { req, res } = ex;
  res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
  res.setHeader('X-Content-Type-Options', 'nosniff');
  if (ctx.closing) res.setHeader('Connection', 'close');

  if (ctx.auth && !(await authenticate(ctx, ctx.auth, ex))) return;

  const method = req.method ?? '';
  const raw = req.url ?? '';
  const q = raw.indexOf('?');
  const path = q === -1 ? raw : raw.slice(0, q);
  const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1));
  const matched = matchRoute(path);
  if (!READ_METHODS.has(method)) {
    // The upload endpoints support no method at all here (RFC 9110: an empty Allow).
    res.setHeader('Allow', matched.ok && matched.route.kind === 'upload' ? '' : 'GET, HEAD');
    // Do not spend time reading an upload nobody will store.
    if (hasBody(req)) res.setHeader('Connection', 'close');
    sendError(ex, {
      status: 405,
      code: 'UNSUPPORTED',
      message: `this is a read-only registry: ${method} is not supported`,
      detail: { method },
    });
    return;
  }

  if (!matched.ok) {
    sendError(ex, matched.error);
    return;
  }
  const route = matched.route;
  switch (route.kind) {
    case 'base':
      sendJson(ex, 200, {});
      return;
    case 'catalog':
      listing(ex, query, '/v2/_catalog', ctx.names.catalog(), (items) => ({ repositories: items }));
      return;
    case 'upload':
      res.setHeader('Allow', '');
      if (hasBody(req)) res.setHeader('Connection', 'close');
      sendError(ex, {
        status: 405,
        code: 'UNSUPPORTED',
        message: 'this is a read-only registry: blob uploads are not supported',
        detail: { name: route.name },
      });
      return;
    default:
      break;
  }
  // Every remaining route names a repository, which a mirror request qualifies with ns.
  const namespace = namespaceOf(query);
  if (!namespace.ok) {
    sendError(ex, namespace.error);
    return;
  }
  const { ns } = namespace;
  const resolved = ctx.names.resolve(route.name, ns);
  if (resolved.kind === 'ambiguous') {
    const message = `repository ${route.name} is ambiguous: this registry holds it for ${resolved.registries.join(' and ')}; name the registry with ?ns=${resolved.registries[0]} or use the scoped path /v2/${scopedHost(resolved.registries[0]!)}/${route.name}`;
    if (!ctx.ambiguousLogged.has(route.name)) {
      ctx.ambiguousLogged.add(route.name);
      ctx.problem(`${message} (said once per name)`);
    }
    sendError(ex, { status: 404, code: 'NAME_UNKNOWN', message, detail: { name: route.name, registries: resolved.registries } });
    return;
  }
  const tags = resolved.kind === 'found' ? ctx.content.tags(resolved.repository) : undefined;
  if (resolved.kind !== 'found' || tags === undefined) {
    sendError(ex, {
      status: 404,
      code: 'NAME_UNKNOWN',
      message: resolved.kind === 'unknown' ? resolved.message : `repository ${route.name} is not known to this registry`,
      detail: { name: route.name, ...(ns !== undefined ? { ns } : {}) },
    });
    return;
  }
  const repo = resolved.repository;
  switch (route.kind) {
    case 'tags':
      // The Link keeps ns: the next page must resolve to the same repository.
      listing(ex, query, `/v2/${route.name}/tags/list`, tags, (items) => ({ name: route.name, tags: items }), ns);
      return;
    case 'manifest':
      await serveManifest(ctx, ex, route, repo);
      return;
    case 'blob':
      await serveBlob(ctx, ex, route.name, repo, route.digest);
      return;
    case 'referrers':
      serveReferrers(ctx, ex, repo, route.digest, query);
      return;
  }
}

/**
 * True when the request may proceed; otherwise the response (401 or 429) has been sent.
 *
 * Credentials bcrypt already accepted pass without any throttle. Others are throttled per
 * address and user name (a client with a wrong password locks out only itself, not the other
 * users behind the same address or NAT), and per address with a higher limit, so that trying
 * many user names from one address still costs a bounded amount of bcrypt work.
 */
async function authenticate(ctx: Ctx, auth: Htpasswd, ex: Exchange): Promise<boolean> {
  const addr = remoteAddress(ex.req.socket);
  const creds = parseBasicAuth(ex.req.headers.authorization);
  if (creds && auth.isVerified(creds.user, creds.password)) {
    ex.user = creds.user;
    return true;
  }
  if (creds) {
    const key = `${addr} ${creds.user.slice(0, 256)}`;
    const wait = Math.max(ctx.throttle.retryAfter(key), ctx.addressThrottle.retryAfter(addr));
    if (wait > 0) {
      ex.res.setHeader('Retry-After', String(wait));
      sendError(ex, { status: 429, code: 'TOOMANYREQUESTS', message: `too many failed logins from ${addr}; retry in ${wait}s` });
      return false;
    }
    if (await auth.verify(creds.user, creds.password)) {
      ctx.throttle.succeed(key);
      ex.user = creds.user;
      return true;
    }
    ctx.throttle.fail(key);
    ctx.addressThrottle.fail(addr);
  }
  ex.res.setHeader('WWW-Authenticate', 'Basic realm="ferry"');
  sendError(ex, {
    status: 401,
    code: 'UNAUTHORIZED',
    message: creds ? 'authentication failed: wrong user name or password' : 'authentication required',
  });
  return false;
}

type ManifestRoute = Extract<Route, { kind: 'manifest' }>;

/** `repo` is the content's repository the request's name resolved to; messages use the name asked for. */
async function serveManifest(ctx: Ctx, ex: Exchange, route: ManifestRoute, repo: string): Promise<void> {
  let digest: Digest;
  if (route.tag !== undefined) {
    const target = ctx.content.resolveTag(repo, route.tag);
    if (!target) {
      sendError(ex, {
        status: 404,
        code: 'MANIFEST_UNKNOWN',
        message: `manifest unknown: ${route.name}:${route.tag}`,
        detail: { name: route.name, tag: route.tag },
      });
      return;
    }
    digest = target.digest;
  } else {
    digest = route.digest;
  }
  const m = await ctx.content.manifest(repo, digest);
  if (!m) {
    sendError(ex, {
      status: 404,
      code: 'MANIFEST_UNKNOWN',
      message: `manifest unknown: ${route.name}@${digest}`,
      detail: { name: route.name, ...(route.tag !== undefined ? { tag: route.tag } : {}), digest },
    });
    return;
  }
  const res = ex.res;
  res.setHeader('Docker-Content-Digest', m.digest);
  res.setHeader('ETag', `"${m.digest}"`);
  if (notModified(ex, m.digest)) return;
  res.setHeader('Content-Type', m.mediaType);
  res.setHeader('Content-Length', m.bytes.length);
  res.statusCode = 200;
  endWith(ex, m.bytes);
}

async function serveBlob(ctx: Ctx, ex: Exchange, name: string, repo: string, digest: Digest): Promise<void> {
  const unknown = (): void =>
    sendError(ex, {
      status: 404,
      code: 'BLOB_UNKNOWN',
      message: `blob unknown to repository ${name}: ${digest}`,
      detail: { name, digest },
    });
  let blob: ServedBlob | undefined;
  try {
    blob = await ctx.content.blob(repo, digest);
  } catch (err) {
    blobFailure(ctx, ex, err, name, digest);
    return;
  }
  if (!blob) {
    unknown();
    return;
  }
  if (ctx.checks.get(digest) === 'bad') {
    // Found not to match its digest while it was sent: never served again (the log said why).
    sendError(ex, badBlob(ctx, digest));
    return;
  }
  const { req, res } = ex;
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('ETag', `"${digest}"`);
  res.setHeader('Accept-Ranges', 'bytes');
  // Content-addressed: the bytes behind a digest never change.
  res.setHeader('Cache-Control', 'max-age=31536000');
  if (notModified(ex, digest)) return;

  const ifRange = req.headers['if-range'];
  const rangeHeader = ifRange === undefined || ifRange === `"${digest}"` ? req.headers.range : undefined;
  const range = parseRange(rangeHeader, blob.size);
  if (range.kind === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${blob.size}`);
    sendError(ex, {
      status: 416,
      code: 'RANGE_INVALID',
      message: `range ${JSON.stringify(rangeHeader)} is not satisfiable for a blob of ${blob.size} bytes`,
      detail: { size: blob.size },
    });
    return;
  }
  const partial = range.kind === 'partial' ? { start: range.start, end: range.end } : undefined;
  const length = partial ? partial.end - partial.start + 1 : blob.size;
  if (req.method === 'HEAD' || length === 0) {
    writeBlobHead(ex, blob.size, partial, length);
    res.end();
    return;
  }
  // A range of a blob not yet hashed whole is read whole: the range is sent, the rest hashed.
  const whole = !partial || ctx.checks.get(digest) !== 'verified';
  if (blob.file) {
    let fh: FileHandle;
    let owned: boolean;
    const position = blob.file.offset + (partial?.start ?? 0);
    try {
      if (blob.file.handle) {
        // Kept open by the content (a bundle, opened once): never closed here.
        fh = blob.file.handle;
        owned = false;
      } else {
        // O_NOFOLLOW: a layout's blob file checked at start-up cannot have become a symlink since.
        fh = await open(blob.file.path, constants.O_RDONLY | constants.O_NOFOLLOW);
        owned = true;
      }
    } catch (err) {
      if (isMissing(err)) unknown();
      else blobFailure(ctx, ex, err, name, digest);
      return;
    }
    try {
      // Caught here, before the headers: a directory in the file's place, a file cut short.
      const st = await fh.stat();
      if (!st.isFile()) throw notAFile(blob.file.path ?? 'the served file', st.isDirectory());
      if (st.size < (whole ? blob.file.offset + blob.size : position + length)) {
        throw new Error(
          `${blob.file.path ?? ctx.content.description} is ${st.size} bytes, too short for bytes ${position}-${position + length - 1} of blob ${digest}: was it truncated or rewritten while served?`,
        );
      }
    } catch (err) {
      if (owned) await fh.close().catch(() => {});
      blobFailure(ctx, ex, err, name, digest);
      return;
    }
    writeBlobHead(ex, blob.size, partial, length);
    const check = whole ? { blobOffset: blob.file.offset, size: blob.size } : undefined;
    await sendFileRange(ctx, ex, fh, owned, position, length, digest, check);
    return;
  }
  let release: (() => void) | undefined;
  if (blob.restore) {
    release = await ctx.restores.acquire(ctx.zstdQueueMs);
    if (!release) {
      res.setHeader('Retry-After', String(RESTORE_RETRY_AFTER_S));
      sendError(ex, {
        status: 503,
        code: 'UNAVAILABLE',
        message: `too many compressed blobs are being restored at once (${ctx.restores.max}); retry in ${RESTORE_RETRY_AFTER_S}s`,
        detail: { digest },
      });
      return;
    }
    // The client may have gone while it waited.
    if (res.destroyed || req.socket.destroyed) {
      release();
      return;
    }
  }
  let stream;
  try {
    stream = await blob.open(whole ? undefined : partial);
  } catch (err) {
    release?.();
    blobFailure(ctx, ex, err, name, digest);
    return;
  }
  writeBlobHead(ex, blob.size, partial, length);
  let mismatch: Error | undefined;
  const from = partial?.start ?? 0;
  const body = whole
    ? stream.pipe(
        new DigestGate(digest, blob.size, from, from + length, (ok, err) => {
          if (ok) ctx.checks.verified(digest);
          else mismatch = err;
        }),
      )
    : stream;
  if (body !== stream) stream.on('error', (err) => body.destroy(err));
  body.on('data', (chunk: Buffer) => {
    ex.bytes += chunk.length;
  });
  // pipeline destroys the source (closing its descriptor, stopping zstd) when the client goes away.
  pipeline(body, res, (err) => {
    release?.();
    if (body !== stream) stream.destroy();
    if (mismatch) {
      contentMismatch(ctx, ex, digest, mismatch, length);
      return;
    }
    // A client that went away is not a problem of the server; anything else is (a failed restore,
    // a read error): the connection is cut, the only signal left once the headers are out.
    if (err && (err as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') {
      ctx.problem(
        `${req.method ?? ''} ${req.url ?? ''}: sending blob ${digest} failed after ${ex.bytes} of ${length} bytes: ${errorMessage(err)}`,
      );
    }
  });
}

const RESTORE_RETRY_AFTER_S = 2;

/**
 * The blob's bytes do not match its digest: the response was cut before its last bytes; say so
 * in the log and answer 500 for the blob from now on.
 */
function contentMismatch(ctx: Ctx, ex: Exchange, digest: Digest, err: Error, length: number): void {
  ctx.checks.bad(digest);
  ctx.problem(
    `${ex.req.method ?? ''} ${ex.req.url ?? ''}: blob ${digest} in ${ctx.content.description} does not match its digest ` +
      `(${errorMessage(err)}): ${ex.res.headersSent ? `the response was cut after ${ex.bytes} of ${length} bytes` : 'answered 500'}, and the blob is answered 500 from now on`,
  );
  if (!ex.res.headersSent && !ex.res.destroyed) {
    // Nothing went out yet (the blob was one chunk): a clean error instead of a cut.
    ex.res.removeHeader('Content-Range');
    sendError(ex, badBlob(ctx, digest));
    return;
  }
  ex.res.destroy();
}

function badBlob(ctx: Ctx, digest: Digest): ApiError {
  return {
    status: 500,
    code: 'UNKNOWN',
    message: `blob ${digest} does not match its digest in ${ctx.content.description}: it is not served (see the server's log)`,
    detail: { digest },
  };
}

/**
 * Answer a blob request that could not be served because of a file error: 404 BLOB_UNKNOWN only
 * when the file is gone; 503 (with Retry-After) when the process is out of descriptors; 500
 * otherwise (EACCES, EIO, a directory in the file's place…). Errors other than 404 are logged:
 * the details (paths, errno) are for the operator, not for clients.
 */
function blobFailure(ctx: Ctx, ex: Exchange, err: unknown, name: string, digest: Digest): void {
  if (err instanceof BlobGoneError || isMissing(err)) {
    sendError(ex, {
      status: 404,
      code: 'BLOB_UNKNOWN',
      message: `blob unknown to repository ${name}: ${digest}`,
      detail: { name, digest },
    });
    return;
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  ctx.problem(
    `${ex.req.method ?? ''} ${ex.req.url ?? ''}: cannot read blob ${digest}: ${errorMessage(err)}${code && !errorMessage(err).includes(code) ? ` (${code})` : ''}`,
  );
  if (code === 'EMFILE' || code === 'ENFILE') {
    ex.res.setHeader('Retry-After', '1');
    sendError(ex, {
      status: 503,
      code: 'UNAVAILABLE',
      message: `blob ${digest} cannot be read right now (the server is out of file descriptors); retry later`,
      detail: { digest },
    });
    return;
  }
  sendError(ex, {
    status: 500,
    code: 'UNKNOWN',
    message: `blob ${digest} cannot be read: internal server error (see the server's log)`,
    detail: { digest },
  });
}

const SEND_CHUNK = 1024 * 1024;
/** Buffers of a body that found the shared pool empty, or of a small blob. */
const SMALL_CHUNK = 64 * 1024;

/**
 * Send `length` bytes of `fh` from `position` as the response body, through two buffers used in
 * turn: a buffer is read into again only once the socket took what was written from it. Keeps
 * the garbage collector out of the way of large blobs (a fresh 1 MiB buffer per chunk was most of
 * the server's own CPU time). The 1 MiB pairs come from a pool shared by all requests (bounded
 * memory); a body that finds it empty uses 64 KiB buffers of its own. Closes `fh` if `owned`; a
 * client that goes away stops the loop; a read that fails cuts the connection and is logged.
 */
async function sendFileRange(
  ctx: Ctx,
  ex: Exchange,
  fh: FileHandle,
  owned: boolean,
  position: number,
  length: number,
  digest: Digest,
  check?: { blobOffset: number; size: number },
): Promise<void> {
  const res = ex.res;
  const hasher = check ? new BlobHasher(digest, check.size) : undefined;
  let mismatch: Error | undefined;
  const pooled = length > SMALL_CHUNK ? ctx.buffers.take() : undefined;
  const own = Math.min(SMALL_CHUNK, length);
  const buffers = pooled ?? [Buffer.allocUnsafe(own), Buffer.allocUnsafe(own)];
  const written: Array<Promise<void> | undefined> = [undefined, undefined];
  let pending = 0;
  let gone = false;
  let onClose!: () => void;
  // A write to a socket that closed may never call back: waits end at 'close' as well.
  const closed = new Promise<void>((resolve) => {
    onClose = () => {
      gone = true;
      resolve();
    };
  });
  res.once('close', onClose);
  try {
    let pos = position;
    const end = position + length;
    // The blob's bytes before the range: hashed, not sent.
    if (hasher && check) await hashFileBytes(fh, buffers[0]!, check.blobOffset, position, hasher);
    for (let i = 0; pos < end && !gone; i ^= 1) {
      await Promise.race([written[i], closed]);
      if (gone) break;
      const buf = buffers[i]!;
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos);
      if (bytesRead === 0) throw new Error(`the file ended at byte ${pos}, before the blob did (truncated while served?)`);
      pos += bytesRead;
      if (hasher && check) {
        hasher.update(buf.subarray(0, bytesRead));
        if (pos === end) {
          // The last bytes go out only once the whole blob matched: the rest is hashed first
          // (through the other buffer, whose write the loop has not awaited: wait for it).
          await Promise.race([written[i ^ 1], closed]);
          if (gone) break;
          await hashFileBytes(fh, buffers[i ^ 1]!, end, check.blobOffset + check.size, hasher);
          try {
            hasher.check();
          } catch (err) {
            mismatch = err as Error;
            break;
          }
          ctx.checks.verified(digest);
        }
      }
      ex.bytes += bytesRead;
      pending++;
      written[i] = new Promise<void>((resolve) => {
        res.write(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead), () => {
          pending--;
          resolve();
        });
      });
    }
    if (mismatch) {
      // Cut before the last bytes: whatever the client checks, it has a truncated body.
      await Promise.race([Promise.all(written), closed]);
      contentMismatch(ctx, ex, digest, mismatch, length);
      return;
    }
    await Promise.race([Promise.all(written), closed]);
    if (!gone) res.end();
  } catch (err) {
    if (!gone) {
      ctx.problem(
        `${ex.req.method ?? ''} ${ex.req.url ?? ''}: sending blob ${digest} failed after ${ex.bytes} of ${length} bytes: ${errorMessage(err)}`,
      );
    }
    // The headers are out: the only honest signal left is a cut connection.
    res.destroy();
  } finally {
    res.off('close', onClose);
    if (owned) await fh.close().catch(() => {});
    if (pooled) {
      // A buffer a dead socket may still hold a write of is not handed to another body.
      if (pending === 0) ctx.buffers.give(pooled);
      else ctx.buffers.discard();
    }
  }
}

/** Hash file bytes [from, to) through `buf`. */
async function hashFileBytes(fh: FileHandle, buf: Buffer, from: number, to: number, hasher: BlobHasher): Promise<void> {
  for (let pos = from; pos < to; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - pos), pos);
    if (bytesRead === 0) throw new Error(`the file ended at byte ${pos}, before the blob did (truncated while served?)`);
    hasher.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

function writeBlobHead(ex: Exchange, size: number, partial: { start: number; end: number } | undefined, length: number): void {
  const res = ex.res;
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Length', length);
  if (partial) {
    res.setHeader('Content-Range', contentRange(partial.start, partial.end, size));
    res.statusCode = 206;
  } else {
    res.statusCode = 200;
  }
}

function serveReferrers(ctx: Ctx, ex: Exchange, name: string, subject: Digest, query: URLSearchParams): void {
  const artifactType = query.get('artifactType') ?? '';
  let manifests = ctx.content.referrers(name, subject);
  if (artifactType !== '') {
    manifests = manifests.filter((d) => d.artifactType === artifactType);
    ex.res.setHeader('OCI-Filters-Applied', 'artifactType');
  }
  sendJson(ex, 200, { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests }, MediaType.OciIndex);
}

function listing(
  ex: Exchange,
  query: URLSearchParams,
  path: string,
  all: readonly string[],
  body: (items: string[]) => Record<string, unknown>,
  ns?: string,
): void {
  const req = parsePageRequest(query);
  if ('status' in req) {
    sendError(ex, req);
    return;
  }
  const page = paginate(all, req);
  if (page.next !== undefined && req.n !== undefined) ex.res.setHeader('Link', nextLink(path, page.next, req.n, ns));
  sendJson(ex, 200, body(page.items));
}

/** If-None-Match on content-addressed responses: 304 when the client has this digest. */
function notModified(ex: Exchange, digest: string): boolean {
  const inm = ex.req.headers['if-none-match'];
  if (inm === undefined) return false;
  const hit = inm.split(',').some((t) => {
    const v = t.trim().replace(/^W\//, '');
    return v === '*' || v === `"${digest}"`;
  });
  if (!hit) return false;
  ex.res.statusCode = 304;
  ex.res.end();
  return true;
}

// ---------------------------------------------------------------------------------------
// Responses

function endWith(ex: Exchange, body: Buffer): void {
  if (ex.req.method !== 'HEAD') ex.bytes += body.length;
  ex.res.end(ex.req.method === 'HEAD' ? undefined : body);
}

function sendJson(ex: Exchange, status: number, value: unknown, contentType = 'application/json'): void {
  const body = Buffer.from(JSON.stringify(value));
  ex.res.statusCode = status;
  ex.res.setHeader('Content-Type', contentType);
  ex.res.setHeader('Content-Length', body.length);
  endWith(ex, body);
}

/** An error in the distribution API's shape: `{"errors":[{"code","message","detail"}]}`. */
function sendError(ex: Exchange, e: ApiError): void {
  // Headers meant for a successful answer must not leak onto an error.
  for (const h of ['Docker-Content-Digest', 'ETag', 'Cache-Control']) ex.res.removeHeader(h);
  sendJson(ex, e.status, { errors: [{ code: e.code, message: e.message, detail: e.detail ?? {} }] });
}
