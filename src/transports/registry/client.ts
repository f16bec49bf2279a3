/**
 * One registry host: connection pool, scheme discovery, authentication (anonymous, basic,
 * bearer tokens with scopes and expiry, identity and registry tokens), retries, and error
 * mapping. Everything above this (manifests, blobs) speaks in paths and scopes only.
 */
import { z } from '../../util/zod.js';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { HttpPool, drain, type HttpResponse } from './http.js';
import { isIP } from 'node:net';
import type { Credential, CredentialSource } from '../../auth/index.js';
import { parseWWWAuthenticate, registryKey, type Challenge } from '../../auth/index.js';
import { AuthError, FerryError, RegistryError, errorMessage, type RegistryErrorDetail } from '../../util/errors.js';
import { redactUrl } from './redact.js';
import {
  DEFAULT_RETRY,
  backoffDelay,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  wait,
  withinBudget,
  type RetryPolicy,
} from './retry.js';
import { loadTlsMaterial } from './tls.js';

export const USER_AGENT = 'ferry/0.1';
const MAX_ERROR_BODY = 64 * 1024;
const MAX_TOKEN_BODY = 1024 * 1024;

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
  onRetry?: (info: { method: string; url: string; attempt: number; delayMs: number; reason: string }) => void;
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

const TokenResponse = z.looseObject({
  token: z.string().optional(),
  access_token: z.string().optional(),
  expires_in: z.number().optional(),
  issued_at: z.string().optional(),
  refresh_token: z.string().optional(),
});

const ErrorsBody = z.object({
  errors: z.array(z.looseObject({ code: z.string(), message: z.string().optional(), detail: z.unknown().optional() })),
});

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Docker Hub's API lives on another host than its name. */
export function apiHost(registry: string): string {
  return registry === 'docker.io' ? 'registry-1.docker.io' : registry;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1';
  return false;
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
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenFetches = new Map<string, Promise<CachedToken>>();
  /** The challenge from the last 401, reused so later scopes fetch tokens up front. */
  private challenge: Challenge | undefined;
  private credential: Promise<Credential | undefined> | undefined;

  constructor(registry: string, options: RegistryClientOptions = {}) {
    this.registry = registry;
    this.host = apiHost(registry);
    this.options = options;
    this.policy = { ...DEFAULT_RETRY, ...options.retry };
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
   * registries are pinged over plain HTTP first; see pingOnce.) A ping broken by the network
   * (reset, timeout) is retried under the retry policy.
   */
  baseUrl(signal?: AbortSignal): Promise<string> {
    this.base ??= this.discoverBase(signal).catch((err: unknown) => {
      this.base = undefined;
      throw err;
    });
    return this.base;
  }

  private async discoverBase(signal?: AbortSignal): Promise<string> {
    const started = Date.now();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.pingOnce(signal);
      } catch (err) {
        if (signal?.aborted || !isTransientPingError(err) || !withinBudget(this.policy, attempt, started)) throw err;
        const delayMs = backoffDelay(this.policy, attempt);
        this.options.onRetry?.({ method: 'GET', url: `${this.host}/v2/`, attempt: attempt + 1, delayMs, reason: errorMessage(err) });
        await wait(delayMs, signal);
      }
    }
  }

  private async pingOnce(signal?: AbortSignal): Promise<string> {
    const agent = await this.getAgent();
    const plainOk = this.plainHttpAllowed();
    // HTTPS first (Docker's order), so credentials never go in clear text to a registry that
    // has TLS. Loopback is the exception: its traffic never leaves the host, and a first TLS
    // attempt costs ~35 ms of CA parsing on every run against a local plain-HTTP registry; a
    // TLS port answers plain HTTP with 400, and then HTTPS is tried.
    const https = `https://${this.host}`;
    const http = `http://${this.host}`;
    const order = !plainOk ? [https] : isLoopbackHost(this.host) ? [http, https] : [https, http];
    const failures: unknown[] = [];
    for (const base of order) {
      let res: HttpResponse;
      try {
        res = await agent.request(`${base}/v2/`, {
          method: 'GET',
          headers: { 'user-agent': USER_AGENT },
          ...(signal ? { signal } : {}),
          headersTimeoutMs: 15_000,
        });
      } catch (err) {
        // A certificate that does not verify is an answer, not an absence of TLS: never
        // fall back to plain HTTP over it.
        if (base.startsWith('https:') && isCertificateError(err)) {
          throw new FerryError('TLS_VERIFY_FAILED', `registry ${this.registry}: TLS certificate not trusted (${errorMessage(err)})`, {
            cause: err,
            hint: `give its CA with --ca-file, or put it in /etc/docker/certs.d/${this.host}/ca.crt; --insecure-registry ${this.host} skips verification`,
          });
        }
        failures.push(err);
        continue;
      }
      await drain(res.body);
      // Plain HTTP answered with a redirect (to https, typically) or with 400 (a TLS port):
      // that is not a registry speaking plain HTTP.
      if (base.startsWith('http:') && ((res.statusCode >= 300 && res.statusCode < 400) || res.statusCode === 400)) {
        failures.push(
          new Error(`plain HTTP answered ${res.statusCode}${res.statusCode === 400 ? ' (a TLS port?)' : ' (a redirect, to HTTPS?)'}`),
        );
        continue;
      }
      if (res.statusCode === 401) this.noteChallenge(res.headers);
      return base;
    }
    const lastErr = failures.at(-1);
    const hint = plainOk
      ? `check that a registry is listening on ${this.host}`
      : `check the host name and network; if ${this.host} serves plain HTTP, pass --insecure-registry ${this.host}`;
    throw new RegistryError(
      'REGISTRY_UNREACHABLE',
      `cannot reach registry ${this.registry} (${failures.map((e, i) => `${order[i]!.split(':')[0]}: ${pingFailure(e)}`).join('; ')})`,
      'GET',
      `${order[order.length - 1]}/v2/`,
      undefined,
      [],
      { cause: lastErr, retryable: failures.some(isRetryableNetworkError), hint },
    );
  }

  private noteChallenge(headers: RegistryResponse['headers']): Challenge[] {
    const raw = headers['www-authenticate'];
    const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
    const challenges: Challenge[] = [];
    for (const v of values) {
      try {
        challenges.push(...parseWWWAuthenticate(v));
      } catch {
        // An unparsable challenge is reported below as an auth failure if nothing else works.
      }
    }
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    this.challenge = bearer ?? basic ?? this.challenge;
    return challenges;
  }

  private getCredential(): Promise<Credential | undefined> {
    this.credential ??= (async () => {
      const fixed = this.options.staticCredential;
      if (fixed && registryKey(fixed.registry) === registryKey(this.registry)) return fixed.credential;
      return this.options.credentials?.get(this.registry);
    })();
    return this.credential;
  }

  /** The Authorization header to send for a scope, or undefined before any challenge. */
  private async authorization(scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const ch = this.challenge;
    const cred = await this.getCredential();
    if (cred?.kind === 'registryToken') return `Bearer ${cred.token}`;
    if (!ch) return undefined;
    if (ch.scheme === 'basic') {
      if (cred?.kind === 'basic') return `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
      return undefined;
    }
    if (ch.scheme === 'bearer') {
      const t = await this.token(ch, scope, cred, signal);
      return `Bearer ${t.token}`;
    }
    return undefined;
  }

  private async token(ch: Challenge, scope: string, cred: Credential | undefined, signal?: AbortSignal): Promise<CachedToken> {
    const key = scope;
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt - 10_000 > Date.now()) return cached;
    const inflight = this.tokenFetches.get(key);
    if (inflight) return inflight;
    const p = this.fetchToken(ch, scope, cred, signal)
      .then((t) => {
        this.tokens.set(key, t);
        return t;
      })
      .finally(() => this.tokenFetches.delete(key));
    this.tokenFetches.set(key, p);
    return p;
  }

  private async fetchToken(ch: Challenge, scope: string, cred: Credential | undefined, signal?: AbortSignal): Promise<CachedToken> {
    const realm = ch.params.realm;
    if (!realm) throw new AuthError(`registry ${this.registry} asked for a bearer token but gave no realm`);
    let realmUrl: URL;
    try {
      realmUrl = new URL(realm);
    } catch {
      throw new AuthError(`registry ${this.registry} gave an invalid token realm ${JSON.stringify(realm)}`);
    }
    const service = ch.params.service;
    // Several scopes travel space-separated (a cross-repository mount needs two).
    const scopes = scope ? scope.split(' ').filter((x) => x !== '') : [];
    const agent = await this.getAgent();
    let res: HttpResponse;
    let text: string;
    const started = Date.now();
    let attempt = 0;
    for (;;) {
      try {
        if (cred?.kind === 'identityToken') {
          // OAuth2 refresh-token grant, as `docker login` identity tokens are meant to be used.
          const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cred.token, client_id: 'ferry' });
          if (service) form.set('service', service);
          if (scopes.length) form.set('scope', scopes.join(' '));
          res = await agent.request(realmUrl, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded', 'user-agent': USER_AGENT },
            body: form.toString(),
            ...(signal ? { signal } : {}),
          });
        } else {
          const u = new URL(realmUrl);
          if (service) u.searchParams.set('service', service);
          for (const s of scopes) u.searchParams.append('scope', s);
          if (cred?.kind === 'basic') u.searchParams.set('account', cred.username);
          const headers: Record<string, string> = { 'user-agent': USER_AGENT };
          if (cred?.kind === 'basic') {
            headers.authorization = `Basic ${Buffer.from(`${cred.username}:${cred.password}`).toString('base64')}`;
          }
          res = await agent.request(u, { method: 'GET', headers, ...(signal ? { signal } : {}) });
        }
      } catch (err) {
        if (isRetryableNetworkError(err) && withinBudget(this.policy, attempt, started)) {
          await wait(backoffDelay(this.policy, attempt++), signal);
          continue;
        }
        throw new AuthError(`requesting a token for ${this.registry} from ${redactUrl(realmUrl)}: ${errorMessage(err)}`, {
          cause: err,
          retryable: isRetryableNetworkError(err),
        });
      }
      if (isRetryableStatus(res.statusCode) && withinBudget(this.policy, attempt, started)) {
        await drain(res.body);
        await wait(backoffDelay(this.policy, attempt++, parseRetryAfter(res.headers['retry-after'])), signal);
        continue;
      }
      try {
        text = await readCapped(res.body, MAX_TOKEN_BODY);
      } catch (err) {
        // The reply broke off mid-body: ask again, as for a failed request.
        if (!signal?.aborted && isRetryableNetworkError(err) && withinBudget(this.policy, attempt, started)) {
          await wait(backoffDelay(this.policy, attempt++), signal);
          continue;
        }
        throw new AuthError(`reading the token from ${redactUrl(realmUrl)} for ${this.registry}: ${errorMessage(err)}`, {
          cause: err,
          retryable: isRetryableNetworkError(err),
        });
      }
      break;
    }
    if (res.statusCode !== 200) {
      const who = cred ? 'with the configured credentials' : 'anonymously';
      throw new AuthError(
        `token service ${redactUrl(realmUrl)} refused access to ${scope || this.registry} ${who} (HTTP ${res.statusCode})`,
        {
          hint: cred
            ? 'check the username and password or token for this registry'
            : `log in: docker login ${this.registry}, or pass --username and --password-stdin`,
        },
      );
    }
    let parsed: z.infer<typeof TokenResponse>;
    try {
      parsed = TokenResponse.parse(JSON.parse(text));
    } catch {
      throw new AuthError(`token service ${redactUrl(realmUrl)} answered with something that is not a token response`);
    }
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new AuthError(`token service ${redactUrl(realmUrl)} answered without a token`);
    // Docker's token spec: 60 s when expires_in is absent, and never less (as distribution's
    // client enforces), so a service answering expires_in: 5 does not cost a token per request.
    const lifetime = Math.max(parsed.expires_in ?? 60, 60) * 1000;
    const issued = parsed.issued_at ? Date.parse(parsed.issued_at) : NaN;
    const start = Number.isNaN(issued) || Math.abs(issued - Date.now()) > 300_000 ? Date.now() : issued;
    return { token, expiresAt: start + lifetime };
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
        const auth = await this.authorization(req.scope, req.signal);
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
        const before = this.challenge;
        this.noteChallenge(res.headers);
        // A fresh token for this scope: the old one may have expired or lacked the scope.
        this.tokens.delete(req.scope);
        if (this.challenge || before) continue;
      }
      if (status === 401 && sameOrigin && !resendable) {
        // A streamed body cannot be sent again here. The token may have expired mid-run:
        // forget it and let the caller (an upload, which can resume) try again once.
        await drain(res.body);
        this.noteChallenge(res.headers);
        this.tokens.delete(req.scope);
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
      throw await this.errorFromResponse(req, url, res);
    }
  }

  private async errorFromResponse(req: RegistryRequest, url: string, res: HttpResponse): Promise<FerryError> {
    const status = res.statusCode;
    const text = req.method === 'HEAD' ? '' : await readCapped(res.body, MAX_ERROR_BODY).catch(() => '');
    let errors: RegistryErrorDetail[] = [];
    try {
      const parsed = ErrorsBody.safeParse(JSON.parse(text));
      if (parsed.success)
        errors = parsed.data.errors.map((e) => ({ code: e.code, ...(e.message ? { message: e.message } : {}), detail: e.detail }));
    } catch {
      // Plain-text error bodies happen (distribution 2.8 answers some 404s in text/plain).
    }
    const first = errors[0];
    const detail = first
      ? `${first.code}${first.message ? `: ${first.message}` : ''}`
      : text.trim().slice(0, 200) || httpStatusText(status);
    const safeUrl = redactUrl(url);
    const msg = `${req.what}: ${req.method} ${safeUrl}: HTTP ${status}: ${detail}`;
    const retryable = isRetryableStatus(status);
    if (status === 401) {
      const cred = await this.getCredential().catch(() => undefined);
      return new AuthError(msg, {
        hint: cred
          ? `the credentials configured for ${this.registry} were rejected; check them (docker login ${this.registry})`
          : `log in first (docker login ${this.registry}) or pass --username and --password-stdin`,
      });
    }
    const code =
      first?.code ??
      (status === 404
        ? 'NOT_FOUND'
        : status === 403
          ? 'DENIED'
          : status === 429
            ? 'TOOMANYREQUESTS'
            : status >= 500
              ? 'REGISTRY_UNAVAILABLE'
              : `HTTP_${status}`);
    const hint =
      status === 404
        ? `check the repository name and tag on ${this.registry}`
        : status === 403
          ? `your account may not have access to this repository on ${this.registry}`
          : status === 429
            ? 'the registry is rate-limiting; wait and rerun, or log in for a higher limit'
            : status >= 500
              ? `${this.registry} is failing; rerun later`
              : undefined;
    const err = new RegistryError(code, msg, req.method, safeUrl, status, errors, { retryable, ...(hint ? { hint } : {}) });
    const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
    if (retryAfterMs !== undefined) err.retryAfterMs = retryAfterMs;
    return err;
  }

  async close(): Promise<void> {
    if (this.agent) (await this.agent).close();
  }
}

const CERT_ERROR_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

function isCertificateError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && CERT_ERROR_CODES.has(code)) return true;
  }
  return false;
}

/** A ping failure in a few words: OpenSSL's multi-line "wrong version number" means no TLS there. */
function pingFailure(err: unknown): string {
  const msg = errorMessage(err);
  if (/wrong version number/i.test(msg)) return 'no TLS on that port';
  return msg.split('\n')[0]!.trim();
}

/**
 * A ping failure worth another try: the network broke the exchange. A refused connection is
 * not retried (nothing listens there: say so at once).
 */
function isTransientPingError(err: unknown): boolean {
  if (!(err instanceof RegistryError) || err.code !== 'REGISTRY_UNREACHABLE' || !err.retryable) return false;
  for (let e: unknown = err.cause, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === 'ECONNREFUSED') return false;
  }
  return true;
}

function httpStatusText(status: number): string {
  const names: Record<number, string> = {
    400: 'Bad Request',
    403: 'Forbidden',
    404: 'Not Found',
    405: 'Method Not Allowed',
    413: 'Payload Too Large',
    416: 'Range Not Satisfiable',
    429: 'Too Many Requests',
    500: 'Internal Server Error',
    502: 'Bad Gateway',
    503: 'Service Unavailable',
    504: 'Gateway Timeout',
  };
  return names[status] ?? 'unexpected status';
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
