// Owns a small Docker-Hub-like token service for integration tests, implementing the
// distribution token auth spec: `GET /token?service=&scope=&account=` with optional Basic auth,
// and the OAuth2 `POST /token` form (grant_type=password | refresh_token) that `docker login`
// identity tokens use. Tokens are JWTs signed ES256 with an `x5c` chain that distribution
// verifies against its `rootcertbundle`. Every request is recorded so tests can assert the
// scopes a client asked for.
import { listenLoopback } from './net.js';
import { createPrivateKey, randomBytes, randomUUID, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { pemToDerBase64, sharedPki, type TestPki } from './pki.js';
import { trackResource } from './temp.js';

/** One `scope` item: `repository:library/busybox:pull,push`, `repository(plugin):x:pull`, `registry:catalog:*`. */
export interface ResourceScope {
  type: string;
  /** The optional resource class in parentheses, e.g. `plugin`. */
  class?: string;
  name: string;
  actions: string[];
}

/** An entry of the JWT `access` claim. */
export interface AccessEntry {
  type: string;
  class?: string;
  name: string;
  actions: string[];
}

export interface GrantRequest {
  /** The authenticated user, undefined for anonymous requests. */
  user?: string;
  scope: ResourceScope;
}

/** Returns the actions to grant for one requested scope; `'*'` grants every action asked for. */
export type GrantPolicy = (request: GrantRequest) => string[];

export type ReplyField = 'token' | 'access_token' | 'both';

export interface TokenServerOptions {
  /** username -> password. Default `{ ferry: 'ferry-secret' }`. */
  users?: Record<string, string>;
  /** username -> actions granted on every repository. A user not listed gets `['*']` (everything asked). */
  permissions?: Record<string, string[]>;
  /** Anonymous clients get `pull`. Default false: they get a token with an empty `access`. */
  anonymousPull?: boolean;
  /** Full control over grants; replaces `permissions` and `anonymousPull`. */
  grant?: GrantPolicy;
  /** The `service` (JWT `aud`) clients must name. Default `ferry-test-registry`. */
  service?: string;
  /** JWT `iss`. Default `ferry-test-token-issuer`. */
  issuer?: string;
  /**
   * Lifetime of access tokens in seconds (JWT `exp - iat`). Default 300. Distribution 2.8 adds
   * 60 s of leeway to `exp`, so a short lifetime exercises the *client's* renewal (which follows
   * `expires_in`); a lifetime below -60 yields tokens the registry rejects at once.
   */
  tokenTtlSeconds?: number;
  /** `expires_in` in replies; default = tokenTtlSeconds; null leaves the field out. */
  reportedExpiresIn?: number | null;
  /** Which field carries the token in replies. Default `both`, like Docker Hub. */
  replyField?: ReplyField;
  /** Where the signing key, x5c chain and root come from. Default: `sharedPki()`. */
  pki?: TestPki;
  /** Serve HTTPS with the PKI's server certificate. Default plain HTTP. */
  tls?: boolean;
}

/** What `configure()` may change while running (identity and transport are fixed at start). */
export type TokenPolicy = Omit<TokenServerOptions, 'pki' | 'tls' | 'service' | 'issuer'>;

export interface TokenRequestRecord {
  seq: number;
  at: Date;
  method: string;
  /** Path with query string, exactly as received. */
  url: string;
  /** `password` / `refresh_token` for POST; undefined for GET. */
  grantType?: string;
  service?: string;
  /** Raw scope strings, in the order sent (GET: repeated `scope` params; POST: space-separated). */
  scopes: string[];
  /** The `account` parameter (GET) or `username` (POST), as claimed by the client. */
  account?: string;
  clientId?: string;
  /** GET `offline_token=true` or POST `access_type=offline`. */
  offline: boolean;
  /** Which credential the client presented (never the secret itself). */
  credential: 'none' | 'basic' | 'password' | 'refresh_token';
  /** The user the credential proved, if it did. */
  authenticatedAs?: string;
  status: number;
  granted: AccessEntry[];
}

export interface MintOptions {
  /** JWT `sub`; default empty (anonymous). */
  subject?: string;
  ttlSeconds?: number;
  /** Override `aud`, e.g. to test a token meant for another service. */
  audience?: string;
  /** Override `iss`. */
  issuer?: string;
}

export interface RunningTokenServer {
  /** Origin, e.g. `http://127.0.0.1:41234`. */
  url: string;
  /** The token endpoint: `${url}/token`. Use as the registry's `auth.token.realm`. */
  realm: string;
  service: string;
  issuer: string;
  /** The PKI in use: `pki.ca` signed the token chain and is the registry's `rootcertbundle`. */
  pki: TestPki;
  /** Every request received, oldest first. Cleared by `clearRequests()`. */
  readonly requests: TokenRequestRecord[];
  clearRequests(): void;
  /** Changes policy for later requests (users, grants, lifetimes, reply field). */
  configure(patch: TokenPolicy): void;
  /** Signs a token directly, bypassing the endpoint (tests that talk to the registry with fetch). */
  mintToken(access: AccessEntry[], options?: MintOptions): string;
  /** An OAuth2 refresh token ("identity token") for a user, as `docker login` would store. */
  issueRefreshToken(user: string): string;
  /** Invalidates every refresh token issued so far. */
  revokeRefreshTokens(): void;
  stop(): Promise<void>;
}

const DEFAULT_USERS: Record<string, string> = { ferry: 'ferry-secret' };
const MAX_FORM_BYTES = 64 * 1024;

/** Parses one scope item; the name may itself contain ':' (type is before the first, actions after the last). */
export function parseScope(raw: string): ResourceScope | undefined {
  const first = raw.indexOf(':');
  const last = raw.lastIndexOf(':');
  if (first <= 0 || last === first) return undefined;
  const typePart = raw.slice(0, first);
  const name = raw.slice(first + 1, last);
  const actions = raw
    .slice(last + 1)
    .split(',')
    .map((a) => a.trim())
    .filter((a) => a.length > 0);
  const typeMatch = /^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$/i.exec(typePart);
  if (!typeMatch || !name) return undefined;
  const scope: ResourceScope = { type: typeMatch[1] as string, name, actions };
  if (typeMatch[2]) scope.class = typeMatch[2];
  return scope;
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

function safeEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

function parseBasicAuth(header: string | undefined): { user: string; password: string } | undefined {
  const match = header ? /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header) : null;
  if (!match) return undefined;
  const decoded = Buffer.from(match[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) throw new Error('form body too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

/** Starts the token service on 127.0.0.1, an ephemeral port. Stopped by `stop()` or `cleanupHarness()`. */
export async function startTokenServer(options: TokenServerOptions = {}): Promise<RunningTokenServer> {
  const pki = options.pki ?? (await sharedPki());
  const privateKey: KeyObject = createPrivateKey(pki.tokenSigner.keyPem);
  const x5c = pki.tokenSigner.chainPems.flatMap(pemToDerBase64);
  if (x5c.length === 0) throw new Error('token signer has no certificate chain for x5c');

  const settings: TokenPolicy = { ...options }; // pki, tls, service and issuer are read once, below
  const service = options.service ?? 'ferry-test-registry';
  const issuer = options.issuer ?? 'ferry-test-token-issuer';
  const requests: TokenRequestRecord[] = [];
  const refreshTokens = new Map<string, string>(); // token -> user
  let seq = 0;

  const users = (): Record<string, string> => settings.users ?? DEFAULT_USERS;
  const ttl = (): number => settings.tokenTtlSeconds ?? 300;

  const mintToken = (access: AccessEntry[], mint: MintOptions = {}): string => {
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'ES256', x5c };
    const claims = {
      iss: mint.issuer ?? issuer,
      sub: mint.subject ?? '',
      aud: mint.audience ?? service,
      exp: now + (mint.ttlSeconds ?? ttl()),
      nbf: now,
      iat: now,
      jti: randomUUID(),
      access,
    };
    const signingInput = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
    const signature = sign('sha256', Buffer.from(signingInput), { key: privateKey, dsaEncoding: 'ieee-p1363' });
    return `${signingInput}.${base64url(signature)}`;
  };

  const issueRefreshToken = (user: string): string => {
    const token = randomBytes(24).toString('base64url');
    refreshTokens.set(token, user);
    return token;
  };

  const grantedActions = (user: string | undefined, scope: ResourceScope): string[] => {
    let allowed: string[];
    if (settings.grant) allowed = settings.grant(user === undefined ? { scope } : { user, scope });
    else if (user === undefined) allowed = settings.anonymousPull ? ['pull'] : [];
    else allowed = settings.permissions?.[user] ?? ['*'];
    if (allowed.includes('*')) return [...scope.actions];
    return scope.actions.filter((action) => allowed.includes(action));
  };

  const grantAll = (user: string | undefined, rawScopes: string[]): AccessEntry[] | string => {
    const access: AccessEntry[] = [];
    for (const raw of rawScopes) {
      const scope = parseScope(raw);
      if (!scope) return `malformed scope ${JSON.stringify(raw)}`;
      const actions = grantedActions(user, scope);
      if (actions.length === 0) continue;
      const entry: AccessEntry = { type: scope.type, name: scope.name, actions };
      if (scope.class) entry.class = scope.class;
      access.push(entry);
    }
    return access;
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    const payload = JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(payload),
      'Cache-Control': 'no-store',
      ...headers,
    });
    res.end(payload);
  };

  const tokenReply = (access: AccessEntry[], user: string | undefined, refreshToken?: string, scope?: string): object => {
    const token = mintToken(access, { subject: user ?? '' });
    const field = settings.replyField ?? 'both';
    const reply: Record<string, unknown> = {};
    if (field === 'token' || field === 'both') reply.token = token;
    if (field === 'access_token' || field === 'both') reply.access_token = token;
    const expiresIn = settings.reportedExpiresIn === undefined ? ttl() : settings.reportedExpiresIn;
    if (expiresIn !== null) reply.expires_in = expiresIn;
    reply.issued_at = new Date().toISOString();
    if (refreshToken) reply.refresh_token = refreshToken;
    if (scope !== undefined) reply.scope = scope;
    return reply;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://token.invalid');
    const record: TokenRequestRecord = {
      seq: ++seq,
      at: new Date(),
      method: req.method ?? '',
      url: req.url ?? '',
      scopes: [],
      offline: false,
      credential: 'none',
      status: 0,
      granted: [],
    };
    requests.push(record);
    const finish = (status: number, body: unknown, headers?: Record<string, string>): void => {
      record.status = status;
      sendJson(res, status, body, headers);
    };
    const unauthorized = (detail: string): void =>
      finish(401, { details: detail, error: 'unauthorized' }, { 'WWW-Authenticate': `Basic realm="${service}"` });

    if (url.pathname !== '/token') return finish(404, { details: 'not found' });

    let user: string | undefined;
    let params: URLSearchParams;
    let refreshToken: string | undefined;
    if (req.method === 'GET') {
      params = url.searchParams;
      record.scopes = params
        .getAll('scope')
        .flatMap((s) => s.split(' '))
        .filter(Boolean);
      record.account = params.get('account') ?? undefined;
      record.offline = params.get('offline_token') === 'true';
      const basic = parseBasicAuth(req.headers.authorization);
      if (basic) {
        record.credential = 'basic';
        const expected = users()[basic.user];
        if (expected === undefined || !safeEqual(expected, basic.password)) {
          return unauthorized('incorrect username or password');
        }
        user = basic.user;
      } else if (req.headers.authorization) {
        return unauthorized('unsupported authorization scheme');
      }
      if (record.offline && user !== undefined) refreshToken = issueRefreshToken(user);
    } else if (req.method === 'POST') {
      const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
      if (type !== 'application/x-www-form-urlencoded') {
        return finish(400, { error: 'invalid_request', error_description: 'expected a form body' });
      }
      params = await readForm(req);
      record.grantType = params.get('grant_type') ?? undefined;
      record.scopes = (params.get('scope') ?? '').split(' ').filter(Boolean);
      record.account = params.get('username') ?? undefined;
      record.offline = params.get('access_type') === 'offline';
      if (!params.get('client_id')) {
        return finish(400, { error: 'invalid_request', error_description: 'client_id is required' });
      }
      if (record.grantType === 'password') {
        record.credential = 'password';
        const name = params.get('username') ?? '';
        const expected = users()[name];
        if (expected === undefined || !safeEqual(expected, params.get('password') ?? '')) {
          return unauthorized('incorrect username or password');
        }
        user = name;
        if (record.offline) refreshToken = issueRefreshToken(user);
      } else if (record.grantType === 'refresh_token') {
        record.credential = 'refresh_token';
        const owner = refreshTokens.get(params.get('refresh_token') ?? '');
        if (owner === undefined) return finish(401, { error: 'invalid_grant', error_description: 'unknown refresh token' });
        user = owner;
      } else {
        return finish(400, { error: 'unsupported_grant_type' });
      }
    } else {
      return finish(405, { details: 'method not allowed' }, { Allow: 'GET, POST' });
    }

    record.clientId = params.get('client_id') ?? undefined;
    record.service = params.get('service') ?? undefined;
    if (record.service !== service) {
      return finish(400, {
        error: 'invalid_request',
        details: `unknown service ${JSON.stringify(record.service ?? '')}; this server issues tokens for ${JSON.stringify(service)}`,
      });
    }
    if (user !== undefined) record.authenticatedAs = user;
    const access = grantAll(user, record.scopes);
    if (typeof access === 'string') return finish(400, { error: 'invalid_scope', details: access });
    record.granted = access;
    const reply = tokenReply(access, user, refreshToken, req.method === 'POST' ? record.scopes.join(' ') : undefined);
    finish(200, reply);
  };

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { details: `token server error: ${String(err)}` });
      else res.destroy();
    });
  };
  const server: Server = options.tls
    ? createHttpsServer({ cert: pki.server.certPem, key: pki.server.keyPem }, listener)
    : createHttpServer(listener);
  const port = await listenLoopback(server);
  const origin = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      untrack();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return stopped;
  };
  const untrack = trackResource({ description: `token server ${origin}`, stop });

  return {
    url: origin,
    realm: `${origin}/token`,
    service,
    issuer,
    pki,
    requests,
    clearRequests: () => {
      requests.length = 0;
    },
    configure: (patch) => {
      Object.assign(settings, patch);
    },
    mintToken,
    issueRefreshToken,
    revokeRefreshTokens: () => refreshTokens.clear(),
    stop,
  };
}
