// Private container engines for client-compatibility tests: a dockerd and a containerd, each
// with its own socket, data and state directories in a temp dir (nothing from the machine's
// /etc/docker, /etc/containerd or /var/lib is read or written), supervised by startDaemon so
// they are stopped at teardown and never outlive the test run; and a daemonless podman with
// its own storage root, run root and configuration. Requires root.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTempDir } from './temp.js';
import { requireTool, runTool, startDaemon, type Daemon, type RunOptions, type RunResult, type ToolName } from './tools.js';

export interface Engine {
  readonly daemon: Daemon;
  /** The daemon's private unix socket. */
  readonly socket: string;
  /** Runs the matching client (docker / ctr) against this daemon. */
  run(args: readonly string[], options?: RunOptions): Promise<RunResult>;
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;

/** Polls `probe` until it exits 0; fails with the daemon log if the daemon dies or time runs out. */
async function waitReady(daemon: Daemon, probe: () => Promise<RunResult>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: RunResult | undefined;
  while (Date.now() < deadline) {
    const exit = daemon.exitStatus();
    if (exit) {
      throw new Error(
        `${daemon.description} exited before answering (code ${exit.code}, signal ${exit.signal})\n--- log ---\n${daemon.logs().slice(-8000)}`,
      );
    }
    last = await probe().catch(() => undefined);
    if (last?.code === 0) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  await daemon.stop();
  throw new Error(
    `${daemon.description} did not answer within ${READY_TIMEOUT_MS} ms\n--- last probe stderr ---\n${last?.stderr ?? ''}` +
      `\n--- log ---\n${daemon.logs().slice(-8000)}`,
  );
}

function requireRoot(what: string): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(`${what} needs root to start a private daemon (running as uid ${process.getuid()})`);
  }
}

function withLogOnFailure(daemon: Daemon, tool: ToolName, socketArgs: string[], env?: NodeJS.ProcessEnv) {
  return async (args: readonly string[], options: RunOptions = {}): Promise<RunResult> => {
    try {
      return await runTool(tool, [...socketArgs, ...args], { ...options, env: { ...env, ...options.env } });
    } catch (err) {
      if (err instanceof Error) err.message += `\n--- ${daemon.description} log (tail) ---\n${daemon.logs().slice(-6000)}`;
      throw err;
    }
  };
}

/**
 * Starts dockerd (vfs storage, no bridge, no iptables) on a private socket. `insecureRegistries`
 * are passed as --insecure-registry (loopback is insecure by default anyway); `config` is the
 * daemon.json it reads (default `{}`). The docker client runs with its own DOCKER_CONFIG, so no
 * stored logins or contexts apply.
 */
export async function startDockerd(opts: { insecureRegistries?: string[]; config?: Record<string, unknown> } = {}): Promise<Engine> {
  requireTool('dockerd');
  requireTool('docker');
  requireRoot('dockerd');
  const dir = createTempDir('dockerd');
  const socket = join(dir, 'docker.sock');
  const config = join(dir, 'daemon.json');
  writeFileSync(config, `${JSON.stringify(opts.config ?? {})}\n`);
  const clientConfig = join(dir, 'client');
  mkdirSync(clientConfig);
  writeFileSync(join(clientConfig, 'config.json'), '{}\n');
  const args = [
    '--host',
    `unix://${socket}`,
    '--config-file',
    config,
    '--data-root',
    join(dir, 'data'),
    '--exec-root',
    join(dir, 'exec'),
    '--pidfile',
    join(dir, 'docker.pid'),
    '--storage-driver=vfs',
    '--iptables=false',
    '--ip6tables=false',
    '--bridge=none',
    ...(opts.insecureRegistries ?? []).flatMap((r) => ['--insecure-registry', r]),
  ];
  const daemon = startDaemon('dockerd', args, { description: `dockerd ${socket}`, orphanCleanupDirs: [dir] });
  const run = withLogOnFailure(daemon, 'docker', ['-H', `unix://${socket}`], { DOCKER_CONFIG: clientConfig });
  await waitReady(daemon, () => run(['version'], { allowFailure: true, timeoutMs: 5000 }));
  return { daemon, socket, run, stop: () => daemon.stop(10_000) };
}

/** Starts containerd (CRI plugin disabled) with its own root, state and sockets. */
export async function startContainerd(): Promise<Engine> {
  requireTool('containerd');
  requireTool('ctr');
  requireRoot('containerd');
  const dir = createTempDir('containerd');
  const socket = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(
    config,
    [
      'version = 2',
      `root = ${JSON.stringify(join(dir, 'root'))}`,
      `state = ${JSON.stringify(join(dir, 'state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = ${JSON.stringify(socket)}`,
      '[ttrpc]',
      `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
    ].join('\n'),
  );
  const daemon = startDaemon('containerd', ['--config', config], {
    description: `containerd ${socket}`,
    orphanCleanupDirs: [dir],
  });
  const run = withLogOnFailure(daemon, 'ctr', ['--address', socket]);
  await waitReady(daemon, () => run(['version'], { allowFailure: true, timeoutMs: 5000 }));
  return { daemon, socket, run, stop: () => daemon.stop(10_000) };
}

export interface Podman {
  /** Storage root (graphroot) of this private podman. */
  readonly root: string;
  /** Runs `podman` with this instance's storage, config and HOME. */
  run(args: readonly string[], options?: RunOptions): Promise<RunResult>;
}

/**
 * A private podman: vfs storage under its own --root/--runroot, an empty registries.conf (no
 * search registries, mirrors or short-name aliases), a storage.conf and containers.conf of its
 * own, its own HOME/XDG dirs and auth file, cgroupfs and file events (no systemd or journald).
 * Podman is daemonless, so there is nothing to stop; the dirs are removed with the harness temp.
 */
export function createPodman(): Podman {
  requireTool('podman');
  requireRoot('podman');
  const dir = createTempDir('podman');
  const root = join(dir, 'root');
  const runroot = join(dir, 'runroot');
  const home = join(dir, 'home');
  mkdirSync(home);
  const registries = join(dir, 'registries.conf');
  writeFileSync(registries, '# intentionally empty: hermetic tests\n');
  const storage = join(dir, 'storage.conf');
  writeFileSync(
    storage,
    ['[storage]', 'driver = "vfs"', `graphroot = ${JSON.stringify(root)}`, `runroot = ${JSON.stringify(runroot)}`, ''].join('\n'),
  );
  // Podman stats REGISTRY_AUTH_FILE when it is set, so it must exist: no stored logins.
  const authFile = join(dir, 'auth.json');
  writeFileSync(authFile, '{"auths":{}}\n');
  const containersConf = join(dir, 'containers.conf');
  writeFileSync(containersConf, ['[engine]', 'cgroup_manager = "cgroupfs"', 'events_logger = "file"', ''].join('\n'));
  const env: NodeJS.ProcessEnv = {
    HOME: home,
    XDG_RUNTIME_DIR: join(dir, 'xdg-runtime'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_DATA_HOME: join(home, '.local', 'share'),
    REGISTRY_AUTH_FILE: authFile,
    DOCKER_CONFIG: join(home, '.docker'),
    CONTAINERS_REGISTRIES_CONF: registries,
    CONTAINERS_STORAGE_CONF: storage,
    CONTAINERS_CONF: containersConf,
  };
  mkdirSync(env.XDG_RUNTIME_DIR as string, { mode: 0o700 });
  const globalArgs = [
    '--root',
    root,
    '--runroot',
    runroot,
    '--storage-driver',
    'vfs',
    '--cgroup-manager',
    'cgroupfs',
    '--events-backend',
    'file',
  ];
  return {
    root,
    run: (args, options = {}) => runTool('podman', [...globalArgs, ...args], { ...options, env: { ...env, ...options.env } }),
  };
}
