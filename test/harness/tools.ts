// Owns the external binaries the integration tests drive: finding them (failing loudly, naming the
// Debian package, when one is missing — integration tests never skip), running them to completion,
// and supervising long-running ones (log capture, TERM-then-KILL stop, no orphans).
import { spawn, type ChildProcess } from 'node:child_process';
import { FIXTURES } from '../helpers/fixtures.js';
import { accessSync, constants as fsConstants, existsSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { createTempDir, trackResource } from './temp.js';

/** Binaries the harness knows, with the Debian (bookworm) package that ships each. */
export const TOOL_PACKAGES = {
  'docker-registry': 'docker-registry',
  skopeo: 'skopeo',
  umoci: 'umoci',
  openssl: 'openssl',
  zstd: 'zstd',
  dockerd: 'docker.io',
  docker: 'docker.io',
  containerd: 'containerd',
  ctr: 'containerd',
  podman: 'podman',
} as const;

export type ToolName = keyof typeof TOOL_PACKAGES;

/** Thrown when a binary the tests need is not installed. */
export class MissingToolError extends Error {
  readonly code = 'HARNESS_MISSING_TOOL';
  constructor(
    readonly tool: string,
    readonly aptPackage: string,
  ) {
    super(
      `integration tests need the '${tool}' binary, which is not on PATH. ` +
        `Install the Debian package '${aptPackage}' (run \`bash scripts/test-env.sh\` as root, ` +
        `or \`apt-get install -y ${aptPackage}\`). These tests fail rather than skip on purpose.`,
    );
    this.name = 'MissingToolError';
  }
}

const resolvedTools = new Map<string, string>();

// dockerd is installed in /usr/sbin, which a non-root PATH often lacks.
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

function findOnPath(name: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), ...SBIN_DIRS]) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/** Returns the absolute path of a binary, or throws MissingToolError naming its apt package. */
export function requireTool(name: ToolName): string {
  const cached = resolvedTools.get(name);
  if (cached) return cached;
  const found = findOnPath(name);
  if (!found) throw new MissingToolError(name, TOOL_PACKAGES[name]);
  resolvedTools.set(name, found);
  return found;
}

const CREDENTIAL_FLAG = /^--?(?:[a-z-]*creds|password|identity-token|registry-token)$/i;

/** A command line fit for an error message: values of credential flags are masked. */
export function describeCommand(binary: string, args: readonly string[]): string {
  const shown: string[] = [binary];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    const eq = arg.indexOf('=');
    if (eq > 0 && CREDENTIAL_FLAG.test(arg.slice(0, eq))) {
      shown.push(`${arg.slice(0, eq)}=***`);
    } else if (CREDENTIAL_FLAG.test(arg) && i + 1 < args.length) {
      shown.push(arg, '***');
      i++;
    } else {
      shown.push(/\s/.test(arg) ? JSON.stringify(arg) : arg);
    }
  }
  return shown.join(' ');
}

export interface RunOptions {
  cwd?: string;
  /** Merged over process.env. */
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. Without it stdin is empty. */
  input?: string | Buffer;
  /** Default 120 s. The child is SIGKILLed when it is exceeded. */
  timeoutMs?: number;
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
}

export interface RunResult {
  /** Exit code; null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Thrown when a tool exits non-zero (or times out) and allowFailure was not set. */
export class ToolFailedError extends Error {
  readonly code = 'HARNESS_TOOL_FAILED';
  constructor(
    readonly command: string,
    readonly result: RunResult,
    reason: string,
  ) {
    super(`${command} ${reason}\n--- stderr ---\n${tail(result.stderr, 8000)}\n--- stdout ---\n${tail(result.stdout, 4000)}`);
    this.name = 'ToolFailedError';
  }
}

function tail(text: string, max: number): string {
  return text.length <= max ? text : `[…${text.length - max} chars cut…]${text.slice(-max)}`;
}

/** Runs a known binary to completion, capturing its output. */
export async function runTool(name: ToolName, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const binary = requireTool(name);
  const command = describeCommand(name, args);
  const timeoutMs = options.timeoutMs ?? 120_000;
  const started = Date.now();
  const child = spawn(binary, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
  child.stdin.on('error', () => {
    // The tool may exit without reading its input; its exit status tells the story.
  });
  child.stdin.end(options.input ?? '');

  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, timeoutMs);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve({ code: c, signal: s }));
  }).finally(() => clearTimeout(timer));

  const result: RunResult = {
    code,
    signal,
    stdout: Buffer.concat(stdout).toString('utf8'),
    stderr: Buffer.concat(stderr).toString('utf8'),
    durationMs: Date.now() - started,
  };
  if (timedOut) throw new ToolFailedError(command, result, `timed out after ${timeoutMs} ms`);
  if (code !== 0 && !options.allowFailure) {
    throw new ToolFailedError(command, result, signal ? `was killed by ${signal}` : `exited with code ${code}`);
  }
  return result;
}

let skopeoHome: string | undefined;

/**
 * Runs skopeo in a hermetic environment: its own HOME and XDG_RUNTIME_DIR, an empty auth file
 * and an empty registries.conf (so nothing from the machine's config — mirrors, search
 * registries, stored logins — leaks into a test), and `--insecure-policy` so no policy.json is
 * needed. Pass credentials explicitly (`--dest-creds`, `--src-creds`).
 *
 * Note: as root, containers/image keeps its blob-info cache in /var/lib/containers/cache
 * whatever HOME says, so skopeo may try cross-repository mounts of blobs it has seen before.
 */
export async function runSkopeo(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  if (!skopeoHome) {
    skopeoHome = createTempDir('skopeo-home');
    writeFileSync(join(skopeoHome, 'registries.conf'), '# intentionally empty: hermetic tests\n');
  }
  return runTool('skopeo', ['--insecure-policy', ...args], {
    ...options,
    env: {
      HOME: skopeoHome,
      XDG_RUNTIME_DIR: skopeoHome,
      XDG_CONFIG_HOME: join(skopeoHome, '.config'),
      REGISTRY_AUTH_FILE: join(skopeoHome, 'auth.json'),
      CONTAINERS_REGISTRIES_CONF: join(skopeoHome, 'registries.conf'),
      DOCKER_CONFIG: join(skopeoHome, '.docker'),
      ...options.env,
    },
  });
}

export interface DaemonOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Used in errors and teardown reports, e.g. "registry 127.0.0.1:5000". */
  description: string;
  /** How much of the combined stdout+stderr to keep (the newest bytes). Default 2 MiB. */
  logLimitBytes?: number;
  /** Directories the watchdog removes after killing an orphaned daemon (its temp/work dirs). */
  orphanCleanupDirs?: string[];
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Daemon {
  readonly pid: number;
  readonly description: string;
  /** Combined stdout+stderr captured so far (newest logLimitBytes). */
  logs(): string;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  /** Undefined while running. */
  exitStatus(): ExitStatus | undefined;
  /** SIGTERM, then SIGKILL after graceMs (default 3000); resolves once it has exited. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts a long-running binary as a direct child. It is stopped by `stop()`, by
 * `cleanupHarness()`, and by the process 'exit' hook. A tiny watchdog (`sh` blocked reading a
 * pipe from this process) SIGKILLs it if this process dies without running any hook, e.g. when
 * a test worker is itself SIGKILLed — so no registry outlives its test run.
 */
export function startDaemon(name: ToolName, args: readonly string[], options: DaemonOptions): Daemon {
  const binary = requireTool(name);
  const limit = options.logLimitBytes ?? 2 * 1024 * 1024;
  const child: ChildProcess = spawn(binary, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) {
    // spawn failures surface asynchronously as 'error'; with requireTool done first this is rare.
    throw new Error(`could not start ${describeCommand(name, args)}`);
  }
  const pid = child.pid;

  // Newest `limit` bytes of stdout+stderr; compacted lazily so capture stays cheap.
  let logChunks: Buffer[] = [];
  let logBytes = 0;
  let droppedBytes = 0;
  const compact = (): void => {
    const all = Buffer.concat(logChunks);
    const kept = all.subarray(Math.max(0, all.length - limit));
    droppedBytes += all.length - kept.length;
    logChunks = [kept];
    logBytes = kept.length;
  };
  const capture = (chunk: Buffer): void => {
    logChunks.push(chunk);
    logBytes += chunk.length;
    if (logBytes > limit * 2) compact();
  };
  child.stdout?.on('data', capture);
  child.stderr?.on('data', capture);
  const logs = (): string => {
    if (logBytes > limit) compact();
    const text = Buffer.concat(logChunks).toString('utf8');
    return droppedBytes > 0 ? `[…${droppedBytes} earlier bytes dropped…]\n${text}` : text;
  };

  let status: ExitStatus | undefined;
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', (err) => {
      capture(Buffer.from(`\n[harness] spawn error: ${err.message}\n`));
      status ??= { code: null, signal: null };
      resolve(status);
    });
    // 'close', not 'exit': by then stdout/stderr are drained, so logs() has the last words.
    child.once('close', (code, signal) => {
      status = { code, signal };
      resolve(status);
    });
  });

  // sh -c SCRIPT PID DIR...: "$0" is the pid, "$@" the directories to remove afterwards.
  const watchdogScript = 'read -r _ignored; kill -KILL "$0" 2>/dev/null; [ "$#" -eq 0 ] || rm -rf -- "$@"';
  const watchdog = spawn('/bin/sh', ['-c', watchdogScript, String(pid), ...(options.orphanCleanupDirs ?? [])], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  watchdog.stdin?.on('error', () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  const disarmWatchdog = (): void => {
    if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill('SIGKILL');
  };

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 3000): Promise<void> => {
    stopping ??= (async () => {
      disarmWatchdog();
      if (!status) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      untrack();
    })();
    return stopping;
  };

  const untrack = trackResource({
    description: options.description,
    stop: () => stop(),
    killSync: () => {
      if (!status) child.kill('SIGKILL');
      disarmWatchdog();
    },
  });
  void exited.then(disarmWatchdog);

  return {
    pid,
    description: options.description,
    logs,
    exited,
    exitStatus: () => status,
    stop,
  };
}

/** The project's shared fixtures: `shared/` sits beside the repository (in CI too). */
export const SHARED_FIXTURES_DIR = FIXTURES;

export interface SampleImage {
  /** A skopeo source reference, e.g. `docker-archive:/…/almostempty.tar` or `oci:/tmp/…:latest`. */
  ref: string;
  origin: 'shared-fixture' | 'umoci';
}

let sample: Promise<SampleImage> | undefined;

/**
 * A tiny single-layer image to push around: the shared containers/image fixture
 * `almostempty.tar` when the fixtures folder is there, else one built on the spot with umoci
 * (an OCI layout with one layer holding /hello.txt).
 */
export function sampleImage(): Promise<SampleImage> {
  sample ??= (async (): Promise<SampleImage> => {
    const archive = join(SHARED_FIXTURES_DIR, 'containers-image/docker/archive/fixtures/almostempty.tar');
    if (existsSync(archive)) return { ref: `docker-archive:${archive}`, origin: 'shared-fixture' };
    const dir = createTempDir('sample-image');
    const layout = join(dir, 'layout');
    const file = join(dir, 'hello.txt');
    writeFileSync(file, 'hello from ferry tests\n');
    await runTool('umoci', ['init', '--layout', layout]);
    await runTool('umoci', ['new', '--image', `${layout}:latest`]);
    await runTool('umoci', ['insert', '--rootless', '--image', `${layout}:latest`, file, '/hello.txt']);
    return { ref: `oci:${layout}:latest`, origin: 'umoci' };
  })().catch((err: unknown) => {
    sample = undefined;
    throw err;
  });
  return sample;
}
