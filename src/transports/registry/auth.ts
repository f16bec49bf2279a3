/**
 * Registry authentication for one host: the challenge a 401 gave (kept, so later scopes fetch
 * their tokens up front), the credential (a --username one for this registry, else the
 * configured source, looked up once), and bearer tokens per scope, fetched once however many
 * requests want them concurrently, cached until shortly before they expire. Basic auth, Docker
 * token service GETs, OAuth2 refresh-token grants (identity tokens) and registry tokens.
 */
import type { Challenge, Credential, CredentialSource } from '../../auth/index.js';
import { parseWWWAuthenticate, registryKey } from '../../auth/index.js';
import { AuthError, errorMessage } from '../../util/errors.js';
import { z } from '../../util/zod.js';
import { drain, readCapped, type HttpPool, type HttpResponse } from './http.js';
import { USER_AGENT } from './ping.js';
import { redactUrl } from './redact.js';
import {
  backoffDelay,
  isRetryableNetworkError,
  isRetryableStatus,
  parseRetryAfter,
  wait,
  withinBudget,
  type RetryPolicy,
} from './retry.js';

const MAX_TOKEN_BODY = 1024 * 1024;

const TokenResponse = z.looseObject({
  token: z.string().optional(),
  access_token: z.string().optional(),
  expires_in: z.number().optional(),
  issued_at: z.string().optional(),
  refresh_token: z.string().optional(),
});

interface CachedToken {
  token: string;
  expiresAt: number;
}

export interface RegistryAuthOptions {
  credentials?: CredentialSource | undefined;
  staticCredential?: { registry: string; credential: Credential } | undefined;
  policy: RetryPolicy;
  agent: () => Promise<HttpPool>;
}

export class RegistryAuth {
  private readonly tokens = new Map<string, CachedToken>();
  private readonly tokenFetches = new Map<string, Promise<CachedToken>>();
  /** The challenge from the last 401, reused so later scopes fetch tokens up front. */
  private challenge: Challenge | undefined;
  private credential: Promise<Credential | undefined> | undefined;

  constructor(
    private readonly registry: string,
    private readonly options: RegistryAuthOptions,
  ) {}

  /** Whether any registry challenge has been seen. */
  get challenged(): boolean {
    return this.challenge !== undefined;
  }

  /** Forget a scope's token (the registry refused it: expired, or lacking the scope). */
  forgetToken(scope: string): void {
    this.tokens.delete(scope);
  }

  /** Keep a 401's challenge (bearer preferred over basic); an answer without one keeps the last. */
  noteChallenge(headers: HttpResponse['headers']): Challenge[] {
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

  getCredential(): Promise<Credential | undefined> {
    this.credential ??= (async () => {
      const fixed = this.options.staticCredential;
      if (fixed && registryKey(fixed.registry) === registryKey(this.registry)) return fixed.credential;
      return this.options.credentials?.get(this.registry);
    })();
    return this.credential;
  }

  /** The Authorization header to send for a scope, or undefined before any challenge. */
  async authorization(scope: string, signal?: AbortSignal): Promise<string | undefined> {
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
    const agent = await this.options.agent();
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
        if (isRetryableNetworkError(err) && withinBudget(this.options.policy, attempt, started)) {
          await wait(backoffDelay(this.options.policy, attempt++), signal);
          continue;
        }
        throw new AuthError(`requesting a token for ${this.registry} from ${redactUrl(realmUrl)}: ${errorMessage(err)}`, {
          cause: err,
          retryable: isRetryableNetworkError(err),
        });
      }
      if (isRetryableStatus(res.statusCode) && withinBudget(this.options.policy, attempt, started)) {
        await drain(res.body);
        await wait(backoffDelay(this.options.policy, attempt++, parseRetryAfter(res.headers['retry-after'])), signal);
        continue;
      }
      try {
        text = await readCapped(res.body, MAX_TOKEN_BODY);
      } catch (err) {
        // The reply broke off mid-body: ask again, as for a failed request.
        if (!signal?.aborted && isRetryableNetworkError(err) && withinBudget(this.options.policy, attempt, started)) {
          await wait(backoffDelay(this.options.policy, attempt++), signal);
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
}
