// Owns real distribution registries (`docker-registry serve`, distribution 2.8) for integration
// tests: one per call, on 127.0.0.1 and an ephemeral port, with filesystem storage in a temp dir,
// optionally behind TLS (test PKI) and htpasswd or token auth (our token server). Each is stopped
// by `stop()`, by `cleanupHarness()`, or at process exit.
import { writeFile, mkdir } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { stringify as toYaml } from 'yaml';
import { sharedPki, type TestPki } from './pki.js';
import { createTempDir, removeTempDir } from './temp.js';
import { startTokenServer, type RunningTokenServer, type TokenPolicy } from './token-server.js';
import { startDaemon, type Daemon } from './tools.js';

export type RegistryAuth = 'none' | 'htpasswd' | 'token';

export interface RegistryOptions {
  /** Default 'none'. */
  auth?: RegistryAuth;
  /** Serve HTTPS with the test PKI's server cert (SANs 127.0.0.1, ::1, localhost). Default false. */
  tls?: boolean;
  /** username -> password for htpasswd/token auth. Default `{ ferry: 'ferry-secret' }`. */
  users?: Record<string, string>;
  /** Storage root; default a temp dir. A dir given here is left in place at stop (the caller owns it). */
  storageDir?: string;
  /** PKI for TLS and token signing; default `sharedPki()`. */
  pki?: TestPki;
  /**
   * Token mode: grant policy for the token server this registry starts (users come from `users`).
   * Or `server`: use an already running token server (not stopped with the registry), and
   * `realm`: advertise another realm URL (e.g. a fault proxy in front of the token server).
   */
  token?: TokenPolicy & { server?: RunningTokenServer; realm?: string };
  /** Deep-merged over the generated config.yml, e.g. `{ storage: { maintenance: { readonly: { enabled: true } } } }`. */
  extraConfig?: Record<string, unknown>;
  /** How long to wait for `GET /v2/` to answer. Default 20 s. */
  startTimeoutMs?: number;
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT`: what goes into image references. */
  host: string;
  /** `http(s)://127.0.0.1:PORT`. */
  url: string;
  /** TLS only: the CA that signed the server cert, as a file and as PEM. */
  caFile?: string;
  caPem?: string;
  /** TLS only: a directory holding `ca.crt`, for `skopeo --dest-cert-dir` / Docker certs.d. */
  certDir?: string;
  /** htpasswd/token only: the first configured user and its password. */
  username?: string;
  password?: string;
  /** All configured users (empty without auth). */
  users: Record<string, string>;
  storageDir: string;
  configFile: string;
  /** Token mode only. */
  tokenServer?: RunningTokenServer;
  pid: number;
  /** The registry's combined stdout/stderr so far. */
  logs(): string;
  /** SIGTERM, SIGKILL after 3 s; stops the token server it started; removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Thrown when the registry exits or does not answer in time; the message carries its log. */
export class RegistryStartError extends Error {
  readonly code = 'HARNESS_REGISTRY_START';
  constructor(
    message: string,
    readonly log: string,
  ) {
    super(`${message}\n--- registry log ---\n${log.length > 12_000 ? `[…]${log.slice(-12_000)}` : log}`);
    this.name = 'RegistryStartError';
  }
}

const DEFAULT_USERS: Record<string, string> = { ferry: 'ferry-secret' };
const MAX_PORT_ATTEMPTS = 5;

/** A port that was free a moment ago on 127.0.0.1 (the registry can't be handed a listening socket). */
export async function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.unref();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function deepMerge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] = isPlainObject(current) && isPlainObject(value) ? deepMerge(current, value) : value;
  }
  return out;
}

/** GET url, resolving with the status code (or undefined on any connection error). */
function probeStatus(url: string, caPem: string | undefined): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = request(url, { method: 'GET', agent: false, timeout: 2000, ...(caPem ? { ca: caPem } : {}) }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntilServing(daemon: Daemon, host: string, url: string, caPem: string | undefined, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  while (Date.now() < deadline) {
    const exit = daemon.exitStatus();
    if (exit) {
      throw new RegistryStartError(`docker-registry exited during start-up (code ${exit.code}, signal ${exit.signal})`, daemon.logs());
    }
    // The port was only free a moment ago: until our process logs that *it* is listening, an
    // answer on that port could come from whoever won the race for it.
    if (daemon.logs().includes(`listening on ${host}`)) {
      const status = await probeStatus(`${url}/v2/`, caPem);
      if (status === 200 || status === 401) return;
    }
    await sleep(delay);
    delay = Math.min(delay * 2, 250);
  }
  throw new RegistryStartError(`docker-registry did not answer GET ${url}/v2/ within ${timeoutMs} ms`, daemon.logs());
}

function buildConfig(input: {
  port: number;
  storageDir: string;
  tls?: { certFile: string; keyFile: string };
  htpasswdFile?: string;
  token?: { realm: string; service: string; issuer: string; rootCertFile: string };
}): Record<string, unknown> {
  const http: Record<string, unknown> = {
    addr: `127.0.0.1:${input.port}`,
    secret: randomBytes(16).toString('hex'),
    headers: { 'X-Content-Type-Options': ['nosniff'] },
  };
  if (input.tls) http.tls = { certificate: input.tls.certFile, key: input.tls.keyFile };
  const config: Record<string, unknown> = {
    version: '0.1',
    log: { level: 'info', formatter: 'text', accesslog: { disabled: false } },
    storage: {
      filesystem: { rootdirectory: input.storageDir },
      delete: { enabled: true },
      redirect: { disable: true },
      maintenance: { uploadpurging: { enabled: false } },
    },
    http,
    health: { storagedriver: { enabled: false } },
  };
  if (input.htpasswdFile) config.auth = { htpasswd: { realm: 'ferry-test-registry', path: input.htpasswdFile } };
  if (input.token) {
    config.auth = {
      token: {
        realm: input.token.realm,
        service: input.token.service,
        issuer: input.token.issuer,
        rootcertbundle: input.token.rootCertFile,
      },
    };
  }
  return config;
}

/** Starts a real distribution registry and waits until `GET /v2/` answers (200, or 401 with auth). */
export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const auth = options.auth ?? 'none';
  const tls = options.tls ?? false;
  const users = auth === 'none' ? {} : (options.users ?? DEFAULT_USERS);
  const firstUser = Object.entries(users)[0];
  if (auth !== 'none' && !firstUser) throw new Error(`auth '${auth}' needs at least one user`);
  const pki = tls || auth === 'token' ? (options.pki ?? (await sharedPki())) : undefined;

  const workDir = createTempDir('registry');
  const storageDir = options.storageDir ?? join(workDir, 'storage');
  await mkdir(storageDir, { recursive: true });

  let htpasswdFile: string | undefined;
  if (auth === 'htpasswd') {
    htpasswdFile = join(workDir, 'htpasswd');
    // Cost 4 (bcrypt's minimum): the registry checks the hash on every request, keep that cheap.
    const lines = Object.entries(users).map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4)}`);
    await writeFile(htpasswdFile, `${lines.join('\n')}\n`, { mode: 0o600 });
  }

  let tokenServer: RunningTokenServer | undefined;
  let ownsTokenServer = false;
  let tokenConfig: { realm: string; service: string; issuer: string; rootCertFile: string } | undefined;
  if (auth === 'token' && pki) {
    const { server, realm, ...policy } = options.token ?? {};
    if (server) {
      tokenServer = server;
    } else {
      tokenServer = await startTokenServer({ ...policy, users, pki, tls });
      ownsTokenServer = true;
    }
    tokenConfig = {
      realm: realm ?? tokenServer.realm,
      service: tokenServer.service,
      issuer: tokenServer.issuer,
      rootCertFile: tokenServer.pki.ca.certFile,
    };
  }

  const configFile = join(workDir, 'config.yml');
  const scheme = tls ? 'https' : 'http';
  const caPem = pki && tls ? pki.ca.certPem : undefined;
  let daemon: Daemon | undefined;
  let host = '';

  const cleanupAfterFailure = async (): Promise<void> => {
    await daemon?.stop();
    if (ownsTokenServer) await tokenServer?.stop();
    await removeTempDir(workDir);
  };

  try {
    for (let attempt = 1; ; attempt++) {
      const port = await findFreePort();
      host = `127.0.0.1:${port}`;
      let config = buildConfig({
        port,
        storageDir,
        ...(tls && pki ? { tls: pki.server } : {}),
        ...(htpasswdFile ? { htpasswdFile } : {}),
        ...(tokenConfig ? { token: tokenConfig } : {}),
      });
      if (options.extraConfig) config = deepMerge(config, options.extraConfig);
      await writeFile(configFile, toYaml(config));

      daemon = startDaemon('docker-registry', ['serve', configFile], {
        cwd: workDir,
        description: `registry ${scheme}://${host}`,
        orphanCleanupDirs: [workDir],
        // The registry reads these over its config file; make sure the machine's env can't leak in.
        env: Object.fromEntries(
          Object.keys(process.env)
            .filter((k) => k.startsWith('REGISTRY_'))
            .map((k) => [k, undefined]),
        ),
      });
      try {
        await waitUntilServing(daemon, host, `${scheme}://${host}`, caPem, options.startTimeoutMs ?? 20_000);
        break;
      } catch (err) {
        const lostPortRace = /address already in use/i.test(daemon.logs());
        await daemon.stop();
        if (!lostPortRace || attempt >= MAX_PORT_ATTEMPTS) throw err;
      }
    }
  } catch (err) {
    await cleanupAfterFailure();
    throw err;
  }

  const running = daemon;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await running.stop();
      if (ownsTokenServer) await tokenServer?.stop();
      await removeTempDir(workDir);
    })();
    return stopping;
  };

  const result: RunningRegistry = {
    host,
    url: `${scheme}://${host}`,
    users,
    storageDir,
    configFile,
    pid: running.pid,
    logs: () => running.logs(),
    stop,
  };
  if (tls && pki) {
    result.caFile = pki.ca.certFile;
    result.caPem = pki.ca.certPem;
    result.certDir = pki.certDir;
  }
  if (firstUser) {
    result.username = firstUser[0];
    result.password = firstUser[1];
  }
  if (tokenServer) result.tokenServer = tokenServer;
  return result;
}
