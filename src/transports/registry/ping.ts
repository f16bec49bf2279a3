/**
 * Scheme discovery: which of https:// and http:// a registry host speaks, found by pinging
 * /v2/ as Docker does (HTTPS first; plain HTTP only where allowed, and only when HTTPS could
 * not be spoken at all). A 401 answer is a registry too; its challenge goes to the caller.
 */
import { isIP } from 'node:net';
import { errorMessage, FerryError, RegistryError } from '../../util/errors.js';
import { drain, type HttpPool, type HttpResponse } from './http.js';
import { backoffDelay, isRetryableNetworkError, wait, withinBudget, type RetryPolicy } from './retry.js';

export const USER_AGENT = 'ferry/0.1';

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

/** What a ping needs to know of the client. */
export interface PingTarget {
  registry: string;
  /** The API host (apiHost(registry)). */
  host: string;
  /** --insecure for this host, or a loopback host. */
  plainHttpAllowed: boolean;
  agent: HttpPool;
  /** A 401 answer's headers (its WWW-Authenticate challenge is worth keeping). */
  onChallenge(headers: HttpResponse['headers']): void;
}

/** Observes retries (progress output). */
export type RetryObserver = (info: { method: string; url: string; attempt: number; delayMs: number; reason: string }) => void;

/** The base URL, retrying pings the network broke (reset, timeout) under the retry policy. */
export async function discoverBase(
  t: PingTarget,
  policy: RetryPolicy,
  onRetry: RetryObserver | undefined,
  signal?: AbortSignal,
): Promise<string> {
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await pingOnce(t, signal);
    } catch (err) {
      if (signal?.aborted || !isTransientPingError(err) || !withinBudget(policy, attempt, started)) throw err;
      const delayMs = backoffDelay(policy, attempt);
      onRetry?.({ method: 'GET', url: `${t.host}/v2/`, attempt: attempt + 1, delayMs, reason: errorMessage(err) });
      await wait(delayMs, signal);
    }
  }
}

async function pingOnce(t: PingTarget, signal?: AbortSignal): Promise<string> {
  const plainOk = t.plainHttpAllowed;
  // HTTPS first (Docker's order), so credentials never go in clear text to a registry that
  // has TLS. Loopback is the exception: its traffic never leaves the host, and a first TLS
  // attempt costs ~35 ms of CA parsing on every run against a local plain-HTTP registry; a
  // TLS port answers plain HTTP with 400, and then HTTPS is tried.
  const https = `https://${t.host}`;
  const http = `http://${t.host}`;
  const order = !plainOk ? [https] : isLoopbackHost(t.host) ? [http, https] : [https, http];
  const failures: unknown[] = [];
  for (const base of order) {
    let res: HttpResponse;
    try {
      res = await t.agent.request(`${base}/v2/`, {
        method: 'GET',
        headers: { 'user-agent': USER_AGENT },
        ...(signal ? { signal } : {}),
        headersTimeoutMs: 15_000,
      });
    } catch (err) {
      // A certificate that does not verify is an answer, not an absence of TLS: never
      // fall back to plain HTTP over it.
      if (base.startsWith('https:') && isCertificateError(err)) {
        throw new FerryError('TLS_VERIFY_FAILED', `registry ${t.registry}: TLS certificate not trusted (${errorMessage(err)})`, {
          cause: err,
          hint: `give its CA with --ca-file, or put it in /etc/docker/certs.d/${t.host}/ca.crt; --insecure-registry ${t.host} skips verification`,
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
    if (res.statusCode === 401) t.onChallenge(res.headers);
    return base;
  }
  const lastErr = failures.at(-1);
  const hint = plainOk
    ? `check that a registry is listening on ${t.host}`
    : `check the host name and network; if ${t.host} serves plain HTTP, pass --insecure-registry ${t.host}`;
  throw new RegistryError(
    'REGISTRY_UNREACHABLE',
    `cannot reach registry ${t.registry} (${failures.map((e, i) => `${order[i]!.split(':')[0]}: ${pingFailure(e)}`).join('; ')})`,
    'GET',
    `${order[order.length - 1]}/v2/`,
    undefined,
    [],
    { cause: lastErr, retryable: failures.some(isRetryableNetworkError), hint },
  );
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
