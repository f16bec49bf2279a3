/**
 * One registry host: its connection pool and the request core every call goes through
 * (authorization header, retries with backoff, redirects, credentials only to the registry's
 * own origin). The rest is beside it: scheme discovery in ping.ts, the challenge/credential/
 * token state in auth.ts, turning a failed answer into an error in error-response.ts.
 * Everything above this (manifests, blobs) speaks in paths and scopes only.
 */
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { Credential, CredentialSource } from '../../auth/index.js';
import { AuthError, errorMessage, FerryError, RegistryError } from '../../util/errors.js';
import { RegistryAuth } from './auth.js';
import { errorFromResponse } from './error-response.js';
import { drain, HttpPool, type HttpResponse } from './http.js';
import { apiHost, discoverBase, isLoopbackHost, type RetryObserver, USER_AGENT } from './ping.js';
import { redactUrl } from './redact.js';
import {
  backoffDelay,
  DEFAULT_RETRY,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  type RetryPolicy,
  wait,
  withinBudget,
} from './retry.js';
import { loadTlsMaterial } from './tls.js';

// Callers import these from here, where they have always been.
export { readCapped, readCappedBytes } from './http.js';
export { apiHost, isLoopbackHost, USER_AGENT } from './ping.js';

export interface RegistryClientOptions {
  credentials?: CredentialSource;
  /**
   * --username/--password-stdin: a credential for one registry, used there in place of the
   * docker config; every other registry gets its own configured credentials.
   */
  staticCredential?: { registry: string; credential: Credential };
  /** Allow plain HTTP for these hosts (or all with true). Loopback hosts are always allowed. */
  insecure?: boolean | string[];
  caFiles?: string[];
  certsDirs?: string[];
  retry?: Partial<RetryPolicy>;
  /** Connections per origin. */
  connections?: number;
  /** Observe retries (for progress/event output). */
  onRetry?: RetryObserver;
}

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path beginning with /v2/, or an absolute URL (upload locations, redirects). */
  path: string;
  /** Token scope, e.g. repository:library/nginx:pull */
  scope: string;
  headers?: Record<string, string>;
  /**
   * A stream body (blob uploads) is sent once: such a request is never retried here, since
   * the bytes are gone; a retryable failure is thrown with `retryable` set for the caller,
   * which knows how to reopen its source.
   */
  body?: Buffer | string | Readable;
  contentLength?: number;
  /** Statuses that are success for this call; anything else becomes a RegistryError. */
  expect: number[];
  signal?: AbortSignal;
  /** What is being done, for error messages: "fetching manifest for docker.io/library/nginx:1". */
  what: string;
  /** Follow 3xx (blob downloads); Authorization is never sent to another origin. */
  followRedirects?: boolean;
}

export interface RegistryResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: IncomingMessage;
  url: string;
}

export function header(headers: RegistryResponse['headers'], name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export class RegistryClient {
  readonly registry: string;
  private readonly host: string;
  private readonly options: RegistryClientOptions;
  readonly policy: RetryPolicy;
  private agent: Promise<HttpPool> | undefined;
  private base: Promise<string> | undefined;
  private readonly auth: RegistryAuth;

  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.host = apiHost(registry);
    this.options = options;
    this.policy = { ...DEFAULT_RETRY, ...options.retry };
    this.auth = new RegistryAuth(registry, {
      credentials: options.credentials,
      staticCredential: options.staticCredential,
      policy: this.policy,
      agent: () => this.getAgent(),
    });
  }

  private getAgent(): Promise<HttpPool> {
    this.agent ??= (async () => {
      const tls = await loadTlsMaterial(this.host, {
        ...(this.options.caFiles ? { caFiles: this.options.caFiles } : {}),
        ...(this.options.certsDirs ? { certsDirs: this.options.certsDirs } : {}),
      });
      return new HttpPool({
        maxSockets: this.options.connections ?? 16,
        headersTimeoutMs: 60_000,
        idleTimeoutMs: 120_000,
        ca: tls.ca,
        ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
        // --insecure / --insecure-registry: like skopeo's --tls-verify=false.
        ...(this.explicitlyInsecure() ? { rejectUnauthorized: false } : {}),
      });
    })();
    return this.agent;
  }

  private explicitlyInsecure(): boolean {
    const insecure = this.options.insecure;
    if (insecure === true) return true;
    return Array.isArray(insecure) && (insecure.includes(this.registry) || insecure.includes(this.host));
  }

  private plainHttpAllowed(): boolean {
    return this.explicitlyInsecure() || isLoopbackHost(this.host);
  }

  /**
   * The base URL, found by pinging /v2/ over HTTPS first and falling back to plain HTTP only
   * where allowed (--insecure hosts) and only when HTTPS could not be spoken at all, as Docker
   * does: so credentials never travel in clear text to a registry that has TLS. (Loopback
   * registries are pinged over plain HTTP first; see ping.ts.) A ping broken by the network
   * (reset, timeout) is retried under the retry policy.
   */
  baseUrl(signal?: AbortSignal): Promise<string> {
    this.base ??= this.discover(signal).catch((err: unknown) => {
      this.base = undefined;
      throw err;
    });
    return this.base;
  }

  private async discover(signal?: AbortSignal): Promise<string> {
    const target = {
      registry: this.registry,
      host: this.host,
      plainHttpAllowed: this.plainHttpAllowed(),
      agent: await this.getAgent(),
      onChallenge: (headers: HttpResponse['headers']) => this.auth.noteChallenge(headers),
    };
    return discoverBase(target, this.policy, this.options.onRetry, signal);
  }

  /**
   * Send a request with authentication and retries. Retries cover network errors, 429 and
   * 5xx for requests whose body can be resent; a 401 refreshes credentials once.
   */
  async send(req: RegistryRequest): Promise<RegistryResponse> {
    const base = await this.baseUrl(req.signal);
    const agent = await this.getAgent();
    let url = /^https?:\/\//.test(req.path) ? req.path : `${base}${req.path}`;
    // Credentials go only to the registry's own origin: an absolute upload Location or a
    // redirect naming another host (a storage front end, plain HTTP) gets none.
    const origin = new URL(base).origin;
    const started = Date.now();
    let attempt = 0;
    let authRetried = false;
    let redirects = 0;
    const resendable = !(req.body instanceof Readable);
    for (;;) {
      const sameOrigin = new URL(url).origin === origin;
      const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...req.headers };
      if (sameOrigin) {
        const auth = await this.auth.authorization(req.scope, req.signal);
        if (auth) headers.authorization = auth;
      }
      let res: HttpResponse;
      if (process.env.FERRY_DEBUG_HTTP) process.stderr.write(`> ${req.method} ${redactUrl(url)}\n`);
      try {
        res = await agent.request(url, {
          method: req.method,
          headers,
          ...(req.body !== undefined ? { body: req.body } : {}),
          ...(req.contentLength !== undefined ? { contentLength: req.contentLength } : {}),
          ...(req.signal ? { signal: req.signal } : {}),
        });
      } catch (err) {
        if (req.signal?.aborted) throw err;
        // Errors raised by the body stream itself (a digest check) are the caller's, unchanged.
        if (err instanceof FerryError && !resendable) throw err;
        if (resendable && isRetryableNetworkError(err) && withinBudget(this.policy, attempt, started)) {
          const delayMs = backoffDelay(this.policy, attempt);
          this.options.onRetry?.({ method: req.method, url: redactUrl(url), attempt: attempt + 1, delayMs, reason: errorMessage(err) });
          attempt++;
          await wait(delayMs, req.signal);
          continue;
        }
        throw new RegistryError(
          'REGISTRY_UNREACHABLE',
          `${req.what}: ${req.method} ${redactUrl(url)}: ${errorMessage(err)}`,
          req.method,
          redactUrl(url),
          undefined,
          [],
          {
            cause: err,
            retryable: isRetryableNetworkError(err),
          },
        );
      }
      const status = res.statusCode;
      if (process.env.FERRY_DEBUG_HTTP) process.stderr.write(`< ${status} ${req.method} ${redactUrl(url)}\n`);
      if (status === 401 && sameOrigin && !authRetried && resendable) {
        authRetried = true;
        await drain(res.body);
        this.auth.noteChallenge(res.headers);
        // A fresh token for this scope: the old one may have expired or lacked the scope.
        this.auth.forgetToken(req.scope);
        if (this.auth.challenged) continue;
      }
      if (status === 401 && sameOrigin && !resendable) {
        // A streamed body cannot be sent again here. The token may have expired mid-run:
        // forget it and let the caller (an upload, which can resume) try again once.
        await drain(res.body);
        this.auth.noteChallenge(res.headers);
        this.auth.forgetToken(req.scope);
        throw new AuthError(`${req.what}: ${req.method} ${redactUrl(url)}: HTTP 401 (token refused mid-upload)`, {
          retryable: !authRetried,
          hint: `the credentials for ${this.registry} were refused; check them (docker login ${this.registry})`,
        });
      }
      if (req.followRedirects && status >= 300 && status < 400 && status !== 304) {
        const loc = header(res.headers, 'location');
        await drain(res.body);
        if (!loc)
          throw new RegistryError(
            'REGISTRY_PROTOCOL',
            `${req.what}: redirect without Location from ${redactUrl(url)}`,
            req.method,
            redactUrl(url),
            status,
            [],
          );
        if (++redirects > 5)
          throw new RegistryError('REGISTRY_PROTOCOL', `${req.what}: too many redirects`, req.method, redactUrl(url), status, []);
        url = new URL(loc, url).toString();
        continue;
      }
      if (req.expect.includes(status)) {
        return { status, headers: res.headers, body: res.body, url };
      }
      if (resendable && isRetryableStatus(status) && withinBudget(this.policy, attempt, started)) {
        await drain(res.body);
        const delayMs = backoffDelay(this.policy, attempt, parseRetryAfter(res.headers['retry-after']));
        this.options.onRetry?.({ method: req.method, url: redactUrl(url), attempt: attempt + 1, delayMs, reason: `HTTP ${status}` });
        attempt++;
        await wait(delayMs, req.signal);
        continue;
      }
      throw await errorFromResponse(req, url, res, this.registry, () => this.auth.getCredential());
    }
  }

  async close(): Promise<void> {
    if (this.agent) (await this.agent).close();
  }
}
