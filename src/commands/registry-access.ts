/**
 * How commands reach registries (pull, load, mirror, copy): credentials, TLS and retry
 * settings, which registry a --username credential belongs to, and RegistryClient options.
 */
import type { CredentialSource } from '../auth/index.js';
import { normalizeRegistry, registryKey, type Credential } from '../auth/index.js';
import type { EventSink } from '../copy/events.js';
import type { RegistryClientOptions } from '../transports/registry/client.js';
import { UsageError } from '../util/errors.js';

export const DEFAULT_CONCURRENCY = 8;

/** How to reach registries: credentials, TLS and retry settings (pull, load, mirror). */
export interface RegistryAccessOptions {
  credentials?: CredentialSource;
  /**
   * --username/--password-stdin: a credential for ONE registry: `staticCredentialRegistry`, or
   * else the only registry the run talks to (mirror: its destination). See bindStaticCredential.
   */
  staticCredential?: Credential;
  staticCredentialRegistry?: string;
  insecure?: boolean | string[];
  caFiles?: string[];
  certsDirs?: string[];
  retry?: RegistryClientOptions['retry'];
}

/**
 * The registry a --username credential belongs to. A password must never reach a registry it
 * was not given for (Docker Hub's token service, when the list also names Hub images), so:
 * the registry named with --auth-registry (which must be one the run talks to), else
 * `preferred` (mirror: the destination), else the one registry the run talks to; with several
 * and none named, a usage error before anything is sent.
 */
export function bindStaticCredential(
  opts: Pick<RegistryAccessOptions, 'staticCredential' | 'staticCredentialRegistry'>,
  registries: string[],
  preferred?: string,
): { registry: string; credential: Credential } | undefined {
  const credential = opts.staticCredential;
  if (!credential) return undefined;
  const talked = [...new Set(registries.map(registryKey))];
  if (opts.staticCredentialRegistry !== undefined) {
    const named = normalizeRegistry(opts.staticCredentialRegistry);
    if (!named) throw new UsageError(`--auth-registry ${JSON.stringify(opts.staticCredentialRegistry)} is not a registry host[:port]`);
    if (!talked.includes(named)) {
      throw new UsageError(
        `--auth-registry ${named}: this run does not talk to that registry${talked.length ? ` (it talks to ${talked.join(', ')})` : ''}`,
      );
    }
    return { registry: named, credential };
  }
  if (preferred !== undefined) return { registry: registryKey(preferred), credential };
  if (talked.length === 1) return { registry: talked[0]!, credential };
  if (talked.length === 0) throw new UsageError('--username is for a registry, and this run talks to none');
  throw new UsageError(`--username is for one registry, and this run talks to ${talked.length}: ${talked.join(', ')}`, {
    hint: 'name the one it is for with --auth-registry HOST; the others use docker config.json (docker login HOST)',
  });
}

/** RegistryClient options for a run: access settings, a pool sized for the concurrency, retries as events. */
export function registryClientOptions(
  opts: RegistryAccessOptions & { concurrency?: number; onEvent?: EventSink },
  staticCredential?: { registry: string; credential: Credential },
): RegistryClientOptions {
  return {
    ...(opts.credentials ? { credentials: opts.credentials } : {}),
    ...(staticCredential ? { staticCredential } : {}),
    ...(opts.insecure !== undefined ? { insecure: opts.insecure } : {}),
    ...(opts.caFiles ? { caFiles: opts.caFiles } : {}),
    ...(opts.certsDirs ? { certsDirs: opts.certsDirs } : {}),
    ...(opts.retry ? { retry: opts.retry } : {}),
    connections: Math.max(4, (opts.concurrency ?? DEFAULT_CONCURRENCY) * 2),
    onRetry: (info) =>
      opts.onEvent?.({ kind: 'retry', reason: `${info.method} ${info.url}: ${info.reason}`, attempt: info.attempt, delayMs: info.delayMs }),
  };
}
