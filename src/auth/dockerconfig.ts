/**
 * Registry credentials from Docker's client configuration (`~/.docker/config.json`, or the
 * legacy `~/.dockercfg`), including the credential helpers it names.
 *
 * Lookup for a registry host, first match wins:
 *   1. `credHelpers`: the entry for the host runs `docker-credential-<name>`. An empty name
 *      (`""`) means "no helper for this host", as in Docker's CLI.
 *   2. otherwise `credsStore` runs its helper for every host. If it has nothing under the exact
 *      server name, its `list` is consulted for a URL-shaped key of the same host
 *      (`http://host/`, as older `docker login` stored them).
 *   3. the file's `auths` (podman's per-repository keys first when a repository is given),
 *      also when a helper has nothing for the host.
 *
 * Keys in `auths` and `credHelpers` are matched as follows, again first match wins:
 *   - the key equal to the requested host (`registry1.example.com`);
 *   - for Docker Hub, the key `https://index.docker.io/v1/` that `docker login` writes;
 *   - any key naming the same host once normalised: scheme stripped, host lower-cased, Hub
 *     aliases (`index.docker.io`, `registry-1.docker.io`, ...) folded to `docker.io`. A key with a
 *     scheme may carry a directory path (`https://host/path/`) or the old API root (`/v1`); a key
 *     whose path names something below the registry is not a registry key and never matches a
 *     host: Docker Desktop's `https://index.docker.io/v1/access-token` and `/refresh-token`, a
 *     repository URL (`http://host/foo`), podman's `host/namespace` keys (those are used only for
 *     that repository). Ties go to schemeless keys, then https, then the shorter path, then key
 *     order, so the result never depends on JSON member order.
 *
 * Within an entry: `registrytoken` (sent as is as a Bearer token) beats `identitytoken` (an OAuth2
 * refresh token) beats basic credentials; for those the base64 `auth` beats `username`/`password`.
 * An entry with none of them is skipped. A bad `auth` value is reported when that entry is used,
 * not at load. Type errors in the file (`"auths": "x"`, an entry that is not an object, a token
 * that is not a string) fail the load, naming the file and the key but never a value.
 */
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from '../util/zod.js';
import { CredentialsError, type FerryErrorOptions } from '../util/errors.js';
import { CredentialHelper } from './credhelper.js';

/** `origin` says where a credential came from (never its value), for 401 diagnostics. */
export type Credential =
  | { kind: 'basic'; username: string; password: string; origin?: string }
  /** An OAuth2 refresh token: exchange with grant_type=refresh_token; never send as a password. */
  | { kind: 'identityToken'; username?: string; token: string; origin?: string }
  /** A registry bearer token: send directly as `Authorization: Bearer`. */
  | { kind: 'registryToken'; token: string; origin?: string };

export interface CredentialSource {
  /**
   * Credentials for `registry`, a host[:port] with `docker.io` for Docker Hub (Hub aliases and a
   * `https://host/` server URL are accepted too). `repository` (`library/busybox`) enables
   * podman's per-repository keys. Resolves undefined for "anonymous".
   */
  get(registry: string, repository?: string): Promise<Credential | undefined>;
}

export const DOCKER_HUB = 'docker.io';
/** The key Docker uses for Hub in config.json and the server URL it passes to helpers. */
export const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';
const HUB_ALIASES: ReadonlySet<string> = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

export interface LoadDockerConfigOptions {
  /** The config file; default `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
  path?: string;
  /** Environment for DOCKER_CONFIG, HOME and PATH, and for the helpers; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** PATH-style list of directories holding `docker-credential-*` (instead of env.PATH). */
  helperDir?: string;
  /** Per helper invocation; default 30 s. */
  helperTimeoutMs?: number;
}

// ---------------------------------------------------------------------------------------------
// File format

const optionalString = z.string().nullish();
const authEntrySchema = z.looseObject({
  auth: optionalString,
  username: optionalString,
  password: optionalString,
  identitytoken: optionalString,
  registrytoken: optionalString,
});
export type AuthEntry = z.infer<typeof authEntrySchema>;

const configSchema = z.looseObject({
  auths: z.record(z.string(), authEntrySchema).nullish(),
  credHelpers: z.record(z.string(), z.string()).nullish(),
  credsStore: optionalString,
});
const legacySchema = z.record(z.string(), authEntrySchema);

const ENTRY_FIELDS = ['auth', 'username', 'password', 'identitytoken', 'registrytoken', 'email'];

/** The parts of the file that matter for credentials. */
export interface ParsedDockerConfig {
  readonly auths: ReadonlyMap<string, AuthEntry>;
  readonly credHelpers: ReadonlyMap<string, string>;
  readonly credsStore: string | undefined;
  /** The file was in the legacy `.dockercfg` format (no `auths` wrapper). */
  readonly legacy: boolean;
}

function emptyConfig(): ParsedDockerConfig {
  return { auths: new Map(), credHelpers: new Map(), credsStore: undefined, legacy: false };
}

/** Parses config.json (or .dockercfg) text. `file` only names the source in errors. */
export function parseDockerConfig(text: string, file: string): ParsedDockerConfig {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') return emptyConfig();

  let doc: unknown;
  try {
    doc = JSON.parse(body);
  } catch (err) {
    // V8's message quotes the text around the error, which may be a secret: report a position only.
    throw new CredentialsError(`${file}: not valid JSON${jsonErrorPosition(err, body)}`, {
      hint: 'fix or remove the file; `docker login` rewrites it',
    });
  }

  if (isLegacyShape(doc)) {
    const legacy = legacySchema.safeParse(doc);
    if (!legacy.success) throw shapeError(file, legacy.error, true);
    return { ...emptyConfig(), auths: new Map(Object.entries(legacy.data)), legacy: true };
  }
  const parsed = configSchema.safeParse(doc);
  if (!parsed.success) throw shapeError(file, parsed.error, false);
  return {
    auths: new Map(Object.entries(parsed.data.auths ?? {})),
    credHelpers: new Map(Object.entries(parsed.data.credHelpers ?? {})),
    credsStore: parsed.data.credsStore || undefined,
    legacy: false,
  };
}

/** `~/.dockercfg` is the `auths` map without the wrapper: every member an auth entry. */
function isLegacyShape(doc: unknown): boolean {
  if (!isPlainObject(doc) || 'auths' in doc) return false;
  const values = Object.values(doc);
  return values.length > 0 && values.every(isPlainObject) && values.some((v) => ENTRY_FIELDS.some((field) => field in (v as object)));
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function shapeError(file: string, error: z.ZodError, legacy: boolean): CredentialsError {
  // Zod issue messages name types, not input values, so they are safe to show.
  const keyDepth = legacy ? 0 : 1;
  const issues = error.issues
    .slice(0, 3)
    .map((issue) => `${formatPath(issue.path, keyDepth)}: ${issue.message.replace(/^Invalid input: /, '')}`);
  if (error.issues.length > 3) issues.push(`and ${error.issues.length - 3} more`);
  const what = legacy ? 'legacy .dockercfg format' : 'Docker config';
  return new CredentialsError(`${file}: invalid ${what}: ${issues.join('; ')}`);
}

/** `auths["host:5000"].identitytoken`; the segment at `keyDepth` is a registry key, always bracketed. */
function formatPath(path: PropertyKey[], keyDepth: number): string {
  if (path.length === 0) return '(top level)';
  return path
    .map((seg, i) => {
      const name = typeof seg === 'symbol' ? seg.toString() : seg;
      if (i !== keyDepth && typeof name === 'string' && /^[A-Za-z_$][\w$]*$/.test(name)) return i === 0 ? name : `.${name}`;
      return `[${JSON.stringify(name)}]`;
    })
    .join('');
}

function jsonErrorPosition(err: unknown, text: string): string {
  const match = /at position (\d+)/.exec(err instanceof Error ? err.message : '');
  if (match === null) return /end of JSON input/.test(String(err)) ? ' (unexpected end of input)' : '';
  const pos = Number(match[1]);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  return ` (line ${line}, column ${column})`;
}

// ---------------------------------------------------------------------------------------------
// Server keys

interface ServerKey {
  /** Lower-cased host[:port], Hub aliases folded to docker.io. */
  host: string;
  scheme: string | undefined;
  /** Everything from the first "/" after the host, or "". */
  path: string;
}

function parseServerKey(key: string): ServerKey | undefined {
  const schemeMatch = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(key);
  const rest = schemeMatch ? key.slice(schemeMatch[0].length) : key;
  const slash = rest.indexOf('/');
  const rawHost = slash === -1 ? rest : rest.slice(0, slash);
  if (rawHost === '' || /\s/.test(rawHost)) return undefined;
  const lower = rawHost.toLowerCase();
  return {
    host: HUB_ALIASES.has(lower) ? DOCKER_HUB : lower,
    scheme: schemeMatch ? schemeMatch[1]!.toLowerCase() : undefined,
    path: slash === -1 ? '' : rest.slice(slash),
  };
}

/** The registry host a key stands for, or undefined when it names something below a registry. */
function registryOfKey(key: ServerKey): string | undefined {
  if (key.path === '' || key.path === '/') return key.host;
  if (key.scheme === undefined) return undefined; // podman's host/namespace key
  if (key.path.endsWith('/') || /^\/v[12]$/i.test(key.path)) return key.host;
  return undefined;
}

/**
 * Normalises a registry argument to the host form used for lookups: lower-cased host[:port],
 * Docker Hub as `docker.io`. Undefined when the input does not name a registry.
 */
export function normalizeRegistry(registry: string): string | undefined {
  const key = parseServerKey(registry.trim());
  return key === undefined ? undefined : registryOfKey(key);
}

/** A registry host as a comparison key: normalised when it parses, else lower-cased as given. */
export function registryKey(registry: string): string {
  return normalizeRegistry(registry) ?? registry.toLowerCase();
}

/** Keys (of auths or credHelpers) that stand for `host`, best first. */
function matchingKeys(keys: Iterable<string>, host: string): string[] {
  const candidates: { key: string; rank: number[] }[] = [];
  let order = 0;
  for (const key of keys) {
    const index = order++;
    const parsed = parseServerKey(key);
    if (parsed === undefined || registryOfKey(parsed) !== host) continue;
    const schemeRank = parsed.scheme === undefined ? 0 : parsed.scheme === 'https' ? 1 : 2;
    candidates.push({
      key,
      rank: [key === host ? 0 : 1, host === DOCKER_HUB && key === DOCKER_HUB_SERVER_URL ? 0 : 1, schemeRank, parsed.path.length, index],
    });
  }
  candidates.sort((a, b) => compareRanks(a.rank, b.rank));
  return candidates.map((c) => c.key);
}

function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    if (d !== 0) return d;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Entries

function entryToCredential(entry: AuthEntry, origin: string): Credential | undefined {
  if (entry.registrytoken) return { kind: 'registryToken', token: entry.registrytoken, origin };

  const decoded = entry.auth ? decodeAuth(entry.auth, origin) : undefined;
  const username = decoded?.username ?? entry.username ?? '';
  const password = decoded?.password ?? entry.password ?? '';

  if (entry.identitytoken) {
    return username === ''
      ? { kind: 'identityToken', token: entry.identitytoken, origin }
      : { kind: 'identityToken', username, token: entry.identitytoken, origin };
  }
  if (username === '' && password === '') return undefined;
  return { kind: 'basic', username, password, origin };
}

const BASE64 = /^[A-Za-z0-9+/]*$/;

/** Decodes `auth` (base64 of "username:password"). Errors name the entry, never the value. */
function decodeAuth(value: string, origin: string): { username: string; password: string } {
  const fail = (why: string): never => {
    throw new CredentialsError(`${origin}: "auth" ${why}`, {
      hint: 'log in again (docker login) or fix the entry; "auth" must be base64 of "username:password"',
    });
  };
  const body = value.replace(/={1,2}$/, '');
  const padded = body.length !== value.length;
  if (!BASE64.test(body) || body.length % 4 === 1 || (padded && value.length % 4 !== 0)) fail('is not valid base64');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(body, 'base64'));
  } catch {
    return fail('does not decode to UTF-8 text');
  }
  const colon = text.indexOf(':');
  if (colon === -1) fail('does not decode to "username:password"');
  // Docker trims NULs some old clients appended to the password.
  return { username: text.slice(0, colon), password: text.slice(colon + 1).replace(/^\0+|\0+$/g, '') };
}

// ---------------------------------------------------------------------------------------------
// Source

interface HelperChoice {
  helper: CredentialHelper;
  serverURL: string;
  /** credsStore (rather than credHelpers): worth a `list` fallback. */
  isStore: boolean;
}

export class DockerConfigCredentials implements CredentialSource {
  private readonly helpers = new Map<string, CredentialHelper>();

  constructor(
    private readonly config: ParsedDockerConfig,
    /** The file the configuration came from; undefined when none was found. */
    readonly path: string | undefined,
    private readonly helperOptions: { env: NodeJS.ProcessEnv; searchPath?: string; timeoutMs?: number },
  ) {}

  /** True when the file was in the legacy `.dockercfg` format. */
  get legacy(): boolean {
    return this.config.legacy;
  }

  async get(registry: string, repository?: string): Promise<Credential | undefined> {
    const host = normalizeRegistry(registry);
    if (host === undefined) return undefined;

    const choice = this.helperFor(host);
    if (choice !== undefined) {
      const found = await choice.helper.get(choice.serverURL);
      if (found !== undefined) return found;
      if (choice.isStore) {
        const listed = await this.fromStoreList(choice, host);
        if (listed !== undefined) return listed;
      }
    }
    return this.fromAuths(host, repository);
  }

  private helperFor(host: string): HelperChoice | undefined {
    const key = matchingKeys(this.config.credHelpers.keys(), host)[0];
    const name = key === undefined ? undefined : this.config.credHelpers.get(key);
    if (key !== undefined && name) {
      // Ask under the name the helper stored it: a URL key as written, else the host.
      const serverURL = host === DOCKER_HUB ? DOCKER_HUB_SERVER_URL : key.includes('://') ? key : host;
      return { helper: this.helper(name, `credHelpers[${JSON.stringify(key)}]`), serverURL, isStore: false };
    }
    if (this.config.credsStore !== undefined) {
      const serverURL = host === DOCKER_HUB ? DOCKER_HUB_SERVER_URL : host;
      return { helper: this.helper(this.config.credsStore, 'credsStore'), serverURL, isStore: true };
    }
    return undefined;
  }

  /**
   * Best effort, beyond what Docker does (it never lists): a store that kept the entry under
   * another spelling of the host. A store whose `list` fails or is unimplemented is not an
   * error here: the lookup goes on to `auths`, as Docker's would.
   */
  private async fromStoreList(choice: HelperChoice, host: string): Promise<Credential | undefined> {
    let stored: Map<string, string>;
    try {
      stored = await choice.helper.list();
    } catch {
      return undefined;
    }
    for (const key of matchingKeys(stored.keys(), host)) {
      if (key === choice.serverURL) continue;
      const found = await choice.helper.get(key).catch(() => undefined);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  private fromAuths(host: string, repository: string | undefined): Credential | undefined {
    const keys: string[] = [];
    if (repository !== undefined) keys.push(...this.repositoryKeys(host, repository));
    keys.push(...matchingKeys(this.config.auths.keys(), host));
    for (const key of keys) {
      const credential = entryToCredential(this.config.auths.get(key)!, this.describe(`auths[${JSON.stringify(key)}]`));
      if (credential !== undefined) return credential;
    }
    return undefined;
  }

  /** podman's `host/namespace[/repo]` keys for `repository`, longest (most specific) first. */
  private repositoryKeys(host: string, repository: string): string[] {
    const wanted = repository.replace(/^\/+|\/+$/g, '');
    if (wanted === '') return [];
    const byNamespace = new Map<string, string[]>();
    for (const key of this.config.auths.keys()) {
      const parsed = parseServerKey(key);
      if (parsed === undefined || parsed.scheme !== undefined || parsed.host !== host) continue;
      const namespace = parsed.path.replace(/^\/+|\/+$/g, '');
      if (namespace === '') continue;
      const list = byNamespace.get(namespace) ?? [];
      list.push(key);
      byNamespace.set(namespace, list);
    }
    const keys: string[] = [];
    const segments = wanted.split('/');
    for (let n = segments.length; n > 0; n--) {
      const namespace = segments.slice(0, n).join('/');
      const found = byNamespace.get(namespace) ?? [];
      // The key spelled exactly as requested first, then alias spellings (index.docker.io/...).
      const exact = `${host}/${namespace}`;
      keys.push(...found.filter((k) => k === exact), ...found.filter((k) => k !== exact));
    }
    return keys;
  }

  private helper(name: string, configuredAs: string): CredentialHelper {
    const configuredBy = this.describe(configuredAs);
    const cacheKey = `${name}\0${configuredBy}`;
    let helper = this.helpers.get(cacheKey);
    if (helper === undefined) {
      helper = new CredentialHelper(name, { ...this.helperOptions, configuredBy });
      this.helpers.set(cacheKey, helper);
    }
    return helper;
  }

  private describe(what: string): string {
    return this.path === undefined ? what : `${what} in ${this.path}`;
  }
}

/**
 * Loads Docker's client configuration. A missing, empty or whitespace-only file, or `{}`, gives a
 * source with no credentials. Throws CredentialsError for unreadable or malformed files.
 */
export async function loadDockerConfig(opts: LoadDockerConfigOptions = {}): Promise<DockerConfigCredentials> {
  const env = opts.env ?? process.env;
  const helperOptions = {
    env,
    ...(opts.helperDir !== undefined && { searchPath: opts.helperDir }),
    ...(opts.helperTimeoutMs !== undefined && { timeoutMs: opts.helperTimeoutMs }),
  };

  const candidates: string[] = [];
  if (opts.path !== undefined) {
    candidates.push(opts.path);
  } else {
    const home = env.HOME || env.USERPROFILE || homedir();
    candidates.push(join(env.DOCKER_CONFIG || join(home, '.docker'), 'config.json'));
    // Docker's CLI falls back to the pre-1.7 file when config.json does not exist.
    candidates.push(join(home, '.dockercfg'));
  }

  for (const path of candidates) {
    const text = await readConfigFile(path);
    if (text === undefined) continue;
    return new DockerConfigCredentials(parseDockerConfig(text, path), path, helperOptions);
  }
  return new DockerConfigCredentials(emptyConfig(), undefined, helperOptions);
}

async function readConfigFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    const options: FerryErrorOptions = { cause: err };
    const code = (err as NodeJS.ErrnoException).code;
    throw new CredentialsError(`${path}: cannot read Docker config${code ? ` (${code})` : ''}`, options);
  }
}
