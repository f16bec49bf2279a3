/**
 * A small Docker Engine API client: where the daemon is (DOCKER_HOST, socket paths), API
 * version negotiation (`GET /_ping`), the few endpoints `ferry load` needs (version, image
 * inspect, tag, load) and the JSON message stream the daemon answers long operations with.
 * Plain node:http over a unix socket (or plain TCP); no TLS, no SSH, no named pipes.
 */
import http from 'node:http';
import type { Readable } from 'node:stream';
import { z } from '../../util/zod.js';
import { AbortedError, DaemonUnavailableError, FerryError, type FerryErrorOptions } from '../../util/errors.js';

export const DEFAULT_DOCKER_SOCKET = '/var/run/docker.sock';
/**
 * Highest Engine API version ferry speaks (Docker Engine 28.3); lower is used when the daemon
 * is older. Between 1.41 and 1.53 nothing ferry relies on changed: `_ping`, `version`, `info`,
 * `images/{name}/json` (Id, RepoTags, Os, Architecture, Variant), `images/{name}/tag` and
 * `images/load` only gained optional parameters and lost fields ferry does not read (1.48
 * deprecates a stream message's `error`; ferry reads `errorDetail.message` first).
 */
export const MAX_API_VERSION = '1.51';
/** Lowest Engine API version ferry accepts (Docker 1.12): `quiet` loads and JSON streams exist there. */
export const MIN_API_VERSION = '1.24';
/** moby#41759 (zstd layer decompression) first shipped in Docker Engine 23.0, API 1.42; 20.10 answers "invalid tar header". */
export const ZSTD_MIN_API_VERSION = '1.42';

/** Cap on a JSON answer or error body read into memory. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
/** Cap on one message of a JSON message stream. */
const MAX_MESSAGE_BYTES = 1024 * 1024;

export type DockerEndpoint = { kind: 'unix'; socketPath: string } | { kind: 'tcp'; host: string; port: number };

export { DaemonUnavailableError };

/** The daemon answered with an error (non-2xx status, or an error message in its stream). */
export class DockerDaemonError extends FerryError {
  constructor(
    code: string,
    message: string,
    readonly status: number | undefined,
    options?: FerryErrorOptions,
  ) {
    super(code, message, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Where the daemon is

/**
 * Parse a DOCKER_HOST value: `unix:///path/docker.sock` or `tcp://host:port` (port defaults
 * to 2375, the plain-HTTP port). Anything else (ssh://, npipe://, fd://) is refused by name.
 */
export function parseDockerHost(value: string): DockerEndpoint {
  const v = value.trim();
  if (v.startsWith('unix://')) {
    const socketPath = v.slice('unix://'.length);
    if (!socketPath.startsWith('/')) {
      throw new FerryError('DOCKER_HOST_INVALID', `DOCKER_HOST ${JSON.stringify(value)}: want unix:///absolute/path`);
    }
    return { kind: 'unix', socketPath };
  }
  if (v.startsWith('tcp://')) {
    let url: URL;
    try {
      url = new URL(`http://${v.slice('tcp://'.length)}`);
    } catch {
      throw new FerryError('DOCKER_HOST_INVALID', `DOCKER_HOST ${JSON.stringify(value)}: want tcp://host:port`);
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.username) {
      throw new FerryError('DOCKER_HOST_INVALID', `DOCKER_HOST ${JSON.stringify(value)}: want tcp://host:port, without a path`);
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    return { kind: 'tcp', host, port: url.port === '' ? 2375 : Number(url.port) };
  }
  if (v.startsWith('/')) return { kind: 'unix', socketPath: v };
  const scheme = /^([a-z0-9+.-]+):\/\//i.exec(v)?.[1];
  throw new FerryError(
    'DOCKER_HOST_INVALID',
    scheme
      ? `DOCKER_HOST ${JSON.stringify(value)}: the ${scheme}:// scheme is not supported (use unix:///path or tcp://host:port)`
      : `DOCKER_HOST ${JSON.stringify(value)}: want unix:///path or tcp://host:port`,
  );
}

/**
 * The endpoint to use: an explicit socket path (or `unix://`/`tcp://` URL) wins; else
 * DOCKER_HOST; else the default socket. TLS (DOCKER_TLS_VERIFY) is refused rather than ignored.
 */
export function resolveDockerEndpoint(socket: string | undefined, env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  if (socket !== undefined && socket !== '') {
    return socket.includes('://') ? parseDockerHost(socket) : { kind: 'unix', socketPath: socket };
  }
  const host = env.DOCKER_HOST;
  if (host === undefined || host === '') return { kind: 'unix', socketPath: DEFAULT_DOCKER_SOCKET };
  const endpoint = parseDockerHost(host);
  if (endpoint.kind === 'tcp' && env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== '') {
    throw new FerryError(
      'DOCKER_HOST_INVALID',
      `DOCKER_HOST ${host} with DOCKER_TLS_VERIFY: TLS connections to dockerd are not supported`,
      {
        hint: "give the daemon's unix socket instead: docker-daemon:/path/to/docker.sock",
      },
    );
  }
  return endpoint;
}

export function formatEndpoint(e: DockerEndpoint): string {
  return e.kind === 'unix' ? `unix://${e.socketPath}` : `tcp://${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}

// ---------------------------------------------------------------------------------------------
// API versions

/** Compare "1.41"-style versions numerically; negative when a < b. */
export function compareApiVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

function isApiVersion(v: string | undefined): v is string {
  return v !== undefined && /^\d+\.\d+$/.test(v);
}

/**
 * The version to speak, as the Docker CLI negotiates it: the daemon's highest (`_ping`'s
 * API-Version header), capped at ours; absent, the oldest we accept. A daemon whose lowest
 * accepted version (`MinAPIVersion` of `GET /version`) is above that gets its lowest instead:
 * the endpoints ferry uses are stable, and Docker Engine 29 refuses anything below 1.44.
 */
export function negotiateApiVersion(serverVersion: string | undefined, serverMinVersion?: string): string {
  let version = MIN_API_VERSION;
  if (isApiVersion(serverVersion)) {
    if (compareApiVersions(serverVersion, MIN_API_VERSION) < 0) {
      throw new DockerDaemonError(
        'DAEMON_TOO_OLD',
        `the Docker daemon speaks API ${serverVersion}; ferry needs at least ${MIN_API_VERSION} (Docker 1.12)`,
        undefined,
      );
    }
    version = compareApiVersions(serverVersion, MAX_API_VERSION) > 0 ? MAX_API_VERSION : serverVersion;
  }
  if (
    isApiVersion(serverMinVersion) &&
    compareApiVersions(serverMinVersion, version) > 0 &&
    (!isApiVersion(serverVersion) || compareApiVersions(serverMinVersion, serverVersion) <= 0)
  ) {
    version = serverMinVersion;
  }
  return version;
}

// ---------------------------------------------------------------------------------------------
// JSON message streams

/** One message of the stream `POST /images/load` (and pull, push, build) answers with. */
export const JsonMessageSchema = z.looseObject({
  stream: z.string().optional(),
  status: z.string().optional(),
  id: z.string().optional(),
  progress: z.string().optional(),
  error: z.string().optional(),
  errorDetail: z.looseObject({ code: z.number().optional(), message: z.string().optional() }).optional(),
  aux: z.unknown().optional(),
});
export type JsonMessage = z.infer<typeof JsonMessageSchema>;

/**
 * Splits a byte stream of concatenated JSON objects (dockerd separates them with "\r\n", but
 * any whitespace or none is accepted) into schema-checked messages. Feed with push(), then end().
 */
export class JsonMessageParser {
  private buf = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private start = -1;
  /** Where scanning resumes in `buf`. */
  private pos = 0;

  push(chunk: string): JsonMessage[] {
    this.buf += chunk;
    const out: JsonMessage[] = [];
    for (; this.pos < this.buf.length; this.pos++) {
      const c = this.buf[this.pos]!;
      if (this.depth === 0) {
        if (c === '{') {
          this.depth = 1;
          this.start = this.pos;
        } else if (!/\s/.test(c)) {
          throw new DockerDaemonError(
            'DAEMON_BAD_RESPONSE',
            `the Docker daemon sent a malformed message stream (unexpected ${JSON.stringify(c)})`,
            undefined,
          );
        }
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (c === '\\') this.escaped = true;
        else if (c === '"') this.inString = false;
      } else if (c === '"') this.inString = true;
      else if (c === '{' || c === '[') this.depth++;
      else if (c === '}' || c === ']') {
        this.depth--;
        if (this.depth === 0) out.push(parseMessage(this.buf.slice(this.start, this.pos + 1)));
      }
    }
    // Keep only the unfinished message.
    if (this.depth === 0) {
      this.buf = '';
      this.pos = 0;
    } else if (this.start > 0) {
      this.buf = this.buf.slice(this.start);
      this.pos -= this.start;
      this.start = 0;
    }
    if (this.buf.length > MAX_MESSAGE_BYTES) {
      throw new DockerDaemonError('DAEMON_BAD_RESPONSE', `the Docker daemon sent a message over ${MAX_MESSAGE_BYTES} bytes`, undefined);
    }
    return out;
  }

  /** Call at end of stream: a message cut off part-way is an error. */
  end(): void {
    if (this.depth !== 0) {
      throw new DockerDaemonError('DAEMON_BAD_RESPONSE', "the Docker daemon's message stream ended in the middle of a message", undefined);
    }
  }
}

function parseMessage(text: string): JsonMessage {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new DockerDaemonError(
      'DAEMON_BAD_RESPONSE',
      `the Docker daemon sent invalid JSON in its message stream (${(err as Error).message})`,
      undefined,
    );
  }
  const r = JsonMessageSchema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new DockerDaemonError(
      'DAEMON_BAD_RESPONSE',
      `the Docker daemon sent an unexpected message (${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'})`,
      undefined,
    );
  }
  return r.data;
}

/** The error a message carries, if any: errorDetail.message, else error. */
export function messageError(m: JsonMessage): string | undefined {
  const detail = m.errorDetail?.message;
  if (detail !== undefined && detail !== '') return detail;
  if (m.error !== undefined && m.error !== '') return m.error;
  return m.errorDetail !== undefined ? 'unknown error' : undefined;
}

/** Parse a whole message stream (a test and small-answer convenience). */
export function parseJsonMessages(text: string): JsonMessage[] {
  const p = new JsonMessageParser();
  const out = p.push(text);
  p.end();
  return out;
}

// ---------------------------------------------------------------------------------------------
// The client

const ErrorBody = z.looseObject({ message: z.string() });
const PingVersion = z.looseObject({
  Os: z.string(),
  Arch: z.string(),
  Version: z.string().optional(),
  ApiVersion: z.string().optional(),
  MinAPIVersion: z.string().optional(),
});
/** What negotiation reads of an unversioned `GET /version` (old daemons lack MinAPIVersion). */
const VersionRange = z.looseObject({ ApiVersion: z.string().optional(), MinAPIVersion: z.string().optional() });
export type DaemonVersion = z.infer<typeof PingVersion>;
const InfoSchema = z.looseObject({ Architecture: z.string().optional() });
const ImageInspectSchema = z.looseObject({
  Id: z.string(),
  RepoTags: z.array(z.string()).nullish(),
  Os: z.string().optional(),
  Architecture: z.string().optional(),
  Variant: z.string().optional(),
});
export type ImageInspect = z.infer<typeof ImageInspectSchema>;
/** One row of `GET /images/json` (what `docker images` lists). */
const ImageSummarySchema = z.looseObject({
  Id: z.string(),
  RepoTags: z.array(z.string()).nullish(),
  RepoDigests: z.array(z.string()).nullish(),
});
export type ImageSummary = z.infer<typeof ImageSummarySchema>;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: http.IncomingMessage;
}

interface RequestOptions {
  body?: Readable;
  headers?: Record<string, string>;
  signal?: AbortSignal | undefined;
}

/** Escape a name or ID for a URL path, keeping the characters Docker's router expects raw. */
export function imagePathSegment(nameOrId: string): string {
  return encodeURIComponent(nameOrId).replace(/%2F/gi, '/').replace(/%3A/gi, ':').replace(/%40/gi, '@');
}

export class DockerClient {
  private constructor(
    readonly endpoint: DockerEndpoint,
    /** The negotiated API version, e.g. "1.41". */
    readonly apiVersion: string,
  ) {}

  /** Ping the daemon and negotiate the API version. Throws DaemonUnavailableError when nobody answers. */
  static async connect(endpoint: DockerEndpoint, signal?: AbortSignal): Promise<DockerClient> {
    const probe = new DockerClient(endpoint, '');
    const res = await probe.send('GET', '/_ping', { signal });
    const text = await readCapped(res.body, 64 * 1024);
    if (res.status !== 200) {
      throw new DockerDaemonError(
        'DAEMON_ERROR',
        `${formatEndpoint(endpoint)}: GET /_ping answered ${res.status}: ${errorText(text)}`,
        res.status,
      );
    }
    const raw = res.headers['api-version'];
    const header = Array.isArray(raw) ? raw[0] : raw;
    // A daemon at or below our maximum accepts its own highest version. Above it (or without
    // the header), ask the unversioned GET /version for its range: a daemon newer than ferry
    // may refuse our maximum as too old (Engine 29 refuses everything below 1.44).
    if (isApiVersion(header) && compareApiVersions(header, MAX_API_VERSION) <= 0) {
      return new DockerClient(endpoint, negotiateApiVersion(header));
    }
    const range = await probe.versionRange(signal);
    return new DockerClient(endpoint, negotiateApiVersion(isApiVersion(header) ? header : range?.ApiVersion, range?.MinAPIVersion));
  }

  /**
   * The daemon's API version range from the unversioned `GET /version` (the daemon's current
   * version answers it). Best effort: undefined when the daemon refuses it or answers oddly.
   */
  private async versionRange(signal?: AbortSignal): Promise<z.infer<typeof VersionRange> | undefined> {
    const res = await this.send('GET', '/version', { signal });
    const text = await readCapped(res.body, 64 * 1024);
    if (res.status !== 200) return undefined;
    try {
      const r = VersionRange.safeParse(JSON.parse(text));
      return r.success ? r.data : undefined;
    } catch {
      return undefined;
    }
  }

  get description(): string {
    return formatEndpoint(this.endpoint);
  }

  /** True when this daemon decompresses zstd layers in `docker load`. */
  get supportsZstd(): boolean {
    return compareApiVersions(this.apiVersion, ZSTD_MIN_API_VERSION) >= 0;
  }

  async version(signal?: AbortSignal): Promise<DaemonVersion> {
    return (await this.getJson('/version', PingVersion, signal, 'GET /version'))!;
  }

  /** uname -m of the daemon's host ("x86_64", "armv7l"); used for the ARM variant. */
  async machine(signal?: AbortSignal): Promise<string | undefined> {
    return (await this.getJson('/info', InfoSchema, signal, 'GET /info'))?.Architecture;
  }

  /** `GET /images/{name}/json`; undefined when the daemon has no such image. */
  async inspectImage(nameOrId: string, signal?: AbortSignal): Promise<ImageInspect | undefined> {
    return this.getJson(`/images/${imagePathSegment(nameOrId)}/json`, ImageInspectSchema, signal, `inspecting image ${nameOrId}`);
  }

  /** `GET /images/json`: the images `docker images` lists (tagged ones and dangling tops). */
  async listImages(signal?: AbortSignal): Promise<ImageSummary[]> {
    return (await this.getJson('/images/json', z.array(ImageSummarySchema), signal, 'listing images')) ?? [];
  }

  /** `POST /images/{id}/tag?repo=&tag=`: give an image that is present one more name. */
  async tagImage(id: string, repo: string, tag: string, signal?: AbortSignal): Promise<void> {
    const q = new URLSearchParams({ repo, tag });
    const res = await this.send('POST', `${this.prefix}/images/${imagePathSegment(id)}/tag?${q}`, { signal });
    const text = await readCapped(res.body, MAX_RESPONSE_BYTES);
    if (res.status !== 201 && res.status !== 200) {
      throw new DockerDaemonError(
        'DAEMON_ERROR',
        `tagging ${id} as ${repo}:${tag}: the Docker daemon answered ${res.status}: ${errorText(text)}`,
        res.status,
      );
    }
  }

  /**
   * `POST /images/load?quiet=1` with `body` (a docker-archive tar) as a chunked upload. Resolves
   * with the messages of the daemon's answer; a non-200 status, or an error message inside
   * the 200 stream, rejects with DockerDaemonError carrying the daemon's message. If `body`
   * fails, the request is destroyed so the daemon sees a truncated upload, and that error
   * is the rejection.
   */
  async loadImages(body: Readable, signal?: AbortSignal, onMessage?: (m: JsonMessage) => void): Promise<JsonMessage[]> {
    const res = await this.send('POST', `${this.prefix}/images/load?quiet=1`, {
      body,
      headers: { 'Content-Type': 'application/x-tar' },
      signal,
    });
    if (res.status !== 200) {
      if (!body.readableEnded) body.destroy(new AbortedError('the Docker daemon refused the upload'));
      const text = await readCapped(res.body, MAX_RESPONSE_BYTES);
      throw new DockerDaemonError(
        'DAEMON_LOAD_FAILED',
        `the Docker daemon refused the load (${res.status}): ${errorText(text)}`,
        res.status,
      );
    }
    const parser = new JsonMessageParser();
    const messages: JsonMessage[] = [];
    let failure: string | undefined;
    res.body.setEncoding('utf8');
    for await (const chunk of res.body as AsyncIterable<string>) {
      for (const m of parser.push(chunk)) {
        messages.push(m);
        onMessage?.(m);
        failure ??= messageError(m);
      }
    }
    parser.end();
    if (failure !== undefined) {
      throw new DockerDaemonError('DAEMON_LOAD_FAILED', `the Docker daemon failed to load the images: ${failure}`, 200);
    }
    return messages;
  }

  private get prefix(): string {
    return `/v${this.apiVersion}`;
  }

  private async getJson<T>(path: string, schema: z.ZodType<T>, signal: AbortSignal | undefined, what: string): Promise<T | undefined> {
    const res = await this.send('GET', `${this.prefix}${path}`, { signal });
    const text = await readCapped(res.body, MAX_RESPONSE_BYTES);
    if (res.status === 404) return undefined;
    if (res.status !== 200) {
      throw new DockerDaemonError('DAEMON_ERROR', `${what}: the Docker daemon answered ${res.status}: ${errorText(text)}`, res.status);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new DockerDaemonError('DAEMON_BAD_RESPONSE', `${what}: the Docker daemon answered with invalid JSON`, res.status);
    }
    const r = schema.safeParse(value);
    if (!r.success) {
      const i = r.error.issues[0];
      throw new DockerDaemonError(
        'DAEMON_BAD_RESPONSE',
        `${what}: unexpected answer from the Docker daemon (${i ? `${i.path.join('.') || '(root)'}: ${i.message}` : 'invalid'})`,
        res.status,
      );
    }
    return r.data;
  }

  /**
   * One HTTP exchange; resolves at the response headers. Connection failures become
   * DaemonUnavailableError; a body stream that fails destroys the request with its error.
   */
  private send(method: string, path: string, opts: RequestOptions): Promise<Answer> {
    const { signal } = opts;
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<Answer>((resolve, reject) => {
      const target =
        this.endpoint.kind === 'unix' ? { socketPath: this.endpoint.socketPath } : { host: this.endpoint.host, port: this.endpoint.port };
      const req = http.request({
        ...target,
        method,
        path,
        headers: { Host: 'docker', 'User-Agent': 'ferry', ...opts.headers },
        // A fresh connection per request: nothing lingers after a destroyed upload.
        agent: false,
      });
      let settled = false;
      let bodyError: unknown;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener('abort', onAbort);
        reject(err);
      };
      const onAbort = () => {
        const reason = abortReason(signal!);
        opts.body?.destroy();
        req.destroy();
        fail(reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (bodyError !== undefined) fail(bodyError);
        else if (signal?.aborted) fail(abortReason(signal));
        else fail(this.connectionError(err));
      });
      req.on('response', (res) => {
        if (settled) {
          res.destroy();
          return;
        }
        settled = true;
        // The abort listener stays while the caller reads the body; it destroys the request.
        res.once('close', () => signal?.removeEventListener('abort', onAbort));
        if (signal) {
          const onAbortBody = () => res.destroy(abortReason(signal));
          signal.addEventListener('abort', onAbortBody, { once: true });
          res.once('close', () => signal.removeEventListener('abort', onAbortBody));
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      });
      const body = opts.body;
      if (!body) {
        req.end();
        return;
      }
      // A request that ends early (daemon error, dropped connection) must stop the producer,
      // which would otherwise wait forever for the consumer to read more.
      req.on('close', () => {
        if (!body.readableEnded && !body.destroyed)
          body.destroy(new AbortedError('the Docker daemon closed the connection before the upload finished'));
      });
      body.on('error', (err) => {
        // Destroying the socket without the final chunk: the daemon reads an unexpected EOF.
        bodyError = err;
        req.destroy(err);
        fail(err);
      });
      body.pipe(req);
    });
  }

  private connectionError(err: NodeJS.ErrnoException): Error {
    const where = formatEndpoint(this.endpoint);
    const code = err.code ?? '';
    if (
      ['ENOENT', 'ECONNREFUSED', 'EACCES', 'EPERM', 'ENOTSOCK', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE'].includes(code) &&
      !this.apiVersion
    ) {
      const hint =
        code === 'EACCES' || code === 'EPERM'
          ? `no permission to use ${where}: run as root or as a member of the docker group`
          : `is dockerd running? set DOCKER_HOST or give docker-daemon:/path/to/docker.sock`;
      return new DaemonUnavailableError(`cannot connect to the Docker daemon at ${where}: ${err.message}`, { cause: err, hint });
    }
    return new DockerDaemonError('DAEMON_CONNECTION', `talking to the Docker daemon at ${where}: ${err.message}`, undefined, {
      cause: err,
      retryable: true,
    });
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new AbortedError();
}

async function readCapped(body: Readable, cap: number): Promise<string> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > cap) {
      body.destroy();
      throw new DockerDaemonError('DAEMON_BAD_RESPONSE', `the Docker daemon's answer is over ${cap} bytes`, undefined);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The daemon's `{"message": ...}` error body, or the raw text (trimmed, capped). */
function errorText(text: string): string {
  try {
    const r = ErrorBody.safeParse(JSON.parse(text));
    if (r.success) return r.data.message;
  } catch {
    // not JSON: fall through to the raw text
  }
  const t = text.trim();
  return t === '' ? '(no message)' : t.slice(0, 500);
}
